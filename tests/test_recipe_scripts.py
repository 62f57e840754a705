"""The top-level recipes (recipes/<corpus>/run.py): steps, resume after a kill, --stage, MP3 corpora."""

from __future__ import annotations

import csv
import json
import os
import runpy
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import soundfile as sf
from conftest import ROOT

RECIPES = ["librispeech", "fsdd", "dspspeech20", "speechocean762", "commonvoice", "digits", "words"]


def _run(name, argv, monkeypatch, capsys):
    """Run recipes/<name>/run.py in this process (as `python run.py ARGV`)."""
    monkeypatch.setattr(sys, "argv", [str(ROOT / "recipes" / name / "run.py"), *map(str, argv)])
    monkeypatch.setenv("GMMSPEECH_PROGRESS", "off")
    runpy.run_path(str(ROOT / "recipes" / name / "run.py"), run_name="__main__")
    return capsys.readouterr().out


@pytest.mark.parametrize("name", RECIPES)
def test_recipe_folder_has_run_script_readme_and_options(name):
    folder = ROOT / "recipes" / name
    readme = (folder / "README.md").read_text()
    assert f"recipes/{name}/run.py" in readme and "--quick" in readme
    assert "measured" in readme.lower()
    out = subprocess.run([sys.executable, str(folder / "run.py"), "--help"], capture_output=True,
                         text=True, check=True).stdout
    for opt in ("--stage", "--quick", "--data-root", "--out", "-j"):
        assert opt in out


def test_recipe_errors_name_what_is_missing(tmp_path, monkeypatch, capsys):
    """A wrong --data-root or a --stage past stage 0 on a fresh --out is a one-line error
    naming the files looked for, not a traceback."""
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(SystemExit) as exc:
        _run("commonvoice", ["--data-root", empty, "--quick", "--out", tmp_path / "cv"], monkeypatch,
             capsys)
    msg = str(exc.value.code)
    assert str(empty / "validated.tsv") in msg and str(empty / "commonvoice" / "validated.tsv") in msg
    with pytest.raises(SystemExit) as exc:
        _run("words", ["--corpus", "fsdd", "--stage", "4", "--quick", "--data-root", empty,
                       "--out", tmp_path / "w"], monkeypatch, capsys)
    msg = str(exc.value.code)
    assert str(tmp_path / "w" / "data" / "fsdd.csv") in msg and "--stage 0" in msg


def _write_commonvoice(root, n_speakers=8, clips=4, sr=16000):
    """A tiny corpus in the Common Voice layout, clips encoded as MP3 by libsndfile (LAME)."""
    from gmmspeech.synth import random_speakers, synth_utterance

    (root / "clips").mkdir(parents=True)
    lines = [["client_id", "path", "sentence", "up_votes", "down_votes", "age", "gender",
              "accents", "locale"]]
    for i, spk in enumerate(random_speakers(n_speakers, seed=3)):
        client = f"{i:02d}" + "ab" * 20  # Common Voice ids are long hex hashes
        for j in range(clips + (i == 0)):  # speaker 0 has one clip more
            y, _snr = synth_utterance(spk, sr=sr, duration=1.2, seed=[i, j])
            name = f"common_voice_xx_{i * 10 + j:08d}.mp3"
            sf.write(root / "clips" / name, np.asarray(y, np.float32) * 0.5, sr, format="MP3")
            lines.append([client, name, f"sentence {j}", "2", "0", "twenties",
                          "female" if i % 2 else "male", "", "xx"])
    lines.append(["ff" * 20, "common_voice_xx_99999999.mp3", "one clip only", "2", "0", "", "", "", "xx"])
    sf.write(root / "clips" / "common_voice_xx_99999999.mp3", np.zeros(8000, np.float32) + 0.01, sr,
             format="MP3")
    with open(root / "validated.tsv", "w", newline="", encoding="utf-8") as fh:
        csv.writer(fh, delimiter="\t", lineterminator="\n").writerows(lines)


def test_commonvoice_manifest_from_real_mp3_tree(tmp_path, capsys):
    from gmmspeech.cli import main
    from gmmspeech.corpus.manifest import from_commonvoice, read_manifest

    cv = tmp_path / "cv"
    _write_commonvoice(cv, n_speakers=3, clips=2)
    info = sf.info(next((cv / "clips").iterdir()))
    assert info.format == "MP3"
    rows = from_commonvoice(cv)
    assert len(rows) == 3 * 2 + 1 + 1
    assert rows[0].path == "clips/common_voice_xx_00000000.mp3" and rows[0].id == "common_voice_xx_00000000"
    assert rows[0].label == "00" + "ab" * 20 and rows[0].extra["text"] == "sentence 0"
    assert rows[0].extra["gender"] == "male"
    assert main(["manifest", "from-commonvoice", str(cv), "--min-clips", "2", "--out",
                 str(tmp_path / "m.csv")]) == 0
    assert "1 speakers with fewer than 2 clips left out" in capsys.readouterr().out
    back = read_manifest(tmp_path / "m.csv", data_root=cv)
    assert len(back) == 7 and all(os.path.isfile(r.path) for r in back)
    # a TSV without the speaker column is refused with the file and its columns named
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "validated.tsv").write_text("path\tsentence\nx.mp3\thello\n")
    from gmmspeech.errors import ManifestError

    with pytest.raises(ManifestError, match="no column client_id"):
        from_commonvoice(tmp_path / "bad")


def test_commonvoice_recipe_quick_on_mp3_files(tmp_path, monkeypatch, capsys):
    cv = tmp_path / "cv"
    _write_commonvoice(cv)
    out = tmp_path / "out"
    text = _run("commonvoice", ["--quick", "--data-root", cv, "--out", out], monkeypatch, capsys)
    assert "$ gmmspeech manifest from-commonvoice" in text
    res = json.loads((out / "results.json").read_text())
    assert list(res["systems"]) == ["diag-8"]  # --quick: one small system
    # 8 speakers with >= 4 clips (the 1-clip one left out): 2 background speakers, 6 enrolled
    # (--quick keeps 3) on half of their clips (speaker 0 has 5: 3 enrolment, 2 test)
    d = res["data"]
    assert d["speakers"] == 3 and d["test"] == 3 * 2
    assert d["background"] in (8, 9) and d["enroll"] in (6, 7) and d["background"] + d["enroll"] <= 15
    for m in res["systems"].values():
        assert m["n_speakers"] == res["data"]["speakers"] and m["n_tests"] == res["data"]["test"]
        assert 0 <= m["accuracy"] <= 1
    report = (out / "report.md").read_text()
    assert "diag-8" in report and "EER" in report and "(quick run)" in report
    # every clip was decoded from MP3 once, into one store
    index = (out / "feats" / "index.tsv").read_text().splitlines()
    assert len(index) - 1 == sum(res["data"][k] for k in ("background", "enroll", "test"))


def _make_layout(argv, capsys):
    """recipes/commonvoice/make_layout.py ARGV in this process: (exit status, stdout, stderr)."""
    mod = runpy.run_path(str(ROOT / "recipes" / "commonvoice" / "make_layout.py"), run_name="make_layout")
    status = mod["main"]([str(a) for a in argv])
    out = capsys.readouterr()
    return status, out.out, out.err, mod


def _kaldi_dir(root, sr=16000):
    """A Kaldi data dir (relative wav.scp paths, as speechocean762's) of FLAC files written by
    libsndfile, with text / spk2gender / spk2age, and one listed file that is not audio."""
    from conftest import speechlike

    (root / "audio").mkdir(parents=True)
    (root / "train").mkdir()
    wav, u2s, text, src = [], [], [], {}
    for k, (spk, f0) in enumerate((("0001", 110.0), ("0002", 220.0))):
        for j in range(3):
            utt = f"{spk}{j:04d}"
            y = 0.5 * speechlike(sr, 0.8 + 0.2 * j, f0=f0, seed=10 * k + j)
            sf.write(root / "audio" / f"{utt}.flac", y, sr)
            src[utt] = y
            wav.append(f"{utt} audio/{utt}.flac")
            u2s.append(f"{utt} {spk}")
            text.append(f"{utt} SENTENCE {k} {j}")
    (root / "audio" / "bad.flac").write_bytes(b"not audio at all" * 64)
    wav.append("bad audio/bad.flac")
    u2s.append("bad 0002")
    for name, lines in (("wav.scp", wav), ("utt2spk", u2s), ("text", text),
                        ("spk2gender", ["0001 m", "0002 f"]), ("spk2age", ["0001 6", "0002 34"])):
        (root / "train" / name).write_text("\n".join(lines) + "\n")
    return root / "train", src


def test_make_layout_writes_a_common_voice_folder_from_a_kaldi_dir(tmp_path, capsys):
    from gmmspeech.audio import load
    from gmmspeech.corpus.manifest import from_commonvoice

    kaldi, src = _kaldi_dir(tmp_path / "corpus")
    cv = tmp_path / "cv"
    status, out, err, mod = _make_layout(["--kaldi", kaldi, "--out", cv], capsys)
    # the unreadable file is reported by name and left out; the six good ones are written
    assert status == 1 and "bad.flac" in err and "1 of 7 recordings" in err
    assert "6 clips of 2 speakers at 48000 Hz" in out
    with open(cv / "validated.tsv", encoding="utf-8") as fh:
        table = list(csv.DictReader(fh, delimiter="\t"))
    assert list(table[0]) == mod["COLUMNS"] and len(table) == 6
    import hashlib

    ids = {row["client_id"] for row in table}
    assert ids == {hashlib.sha512(s.encode()).hexdigest() for s in ("0001", "0002")}
    assert all(len(i) == 128 for i in ids)
    by_spk = {hashlib.sha512(b"0001").hexdigest(): ("teens", "male"),
              hashlib.sha512(b"0002").hexdigest(): ("thirties", "female")}
    assert all((row["age"], row["gender"]) == by_spk[row["client_id"]] for row in table)
    assert sorted(row["sentence"] for row in table) == sorted(f"SENTENCE {k} {j}" for k in (0, 1) for j in range(3))
    # the library reads it back; every clip is an MP3 at 48 kHz holding the source recording
    rows = from_commonvoice(cv)
    assert len(rows) == 6 and all(r.path.startswith("clips/") and r.path.endswith(".mp3") for r in rows)
    by_sentence = {row["sentence"]: row["path"] for row in table}
    for k, spk in enumerate(("0001", "0002")):
        for j in range(3):
            clip = cv / "clips" / by_sentence[f"SENTENCE {k} {j}"]
            assert sf.info(clip).format == "MP3" and sf.info(clip).samplerate == 48000
            y = load(clip, sr=16000)
            x = src[f"{spk}{j:04d}"]
            assert abs(len(y) - len(x)) < 0.06 * 16000  # the encoder's padding only
            n = min(len(x), len(y))
            lag = int(np.argmax(np.correlate(y[: n], x[: n // 2], mode="valid")))  # encoder delay
            m = min(len(x), len(y) - lag)
            c = np.corrcoef(x[:m], y[lag: lag + m])[0, 1]
            assert c > 0.95, (clip, lag, c)
    # a second run keeps the finished clips (resume), and lays out only --speakers N
    before = {p.name: p.stat().st_mtime_ns for p in (cv / "clips").iterdir()}
    status, out, _, _ = _make_layout(["--kaldi", kaldi, "--out", cv, "--speakers", "1"], capsys)
    assert status == 0 and "3 clips of 1 speakers" in out
    assert all(p.stat().st_mtime_ns == before[p.name] for p in (cv / "clips").iterdir())


def test_make_layout_rejects_bad_options_by_name(tmp_path, capsys):
    with pytest.raises(SystemExit):
        _make_layout(["--kaldi", tmp_path, "--out", tmp_path / "cv", "--rate", "100"], capsys)
    assert "--rate must be >= 8000, got 100" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        _make_layout(["--kaldi", tmp_path / "nothing", "--out", tmp_path / "cv"], capsys)
    assert "nothing" in capsys.readouterr().err


def test_make_layout_on_speechocean762_real_kaldi_dir(tmp_path, capsys):
    """The real Kaldi data dir (relative wav.scp paths, FLAC written by the corpus' tools)."""
    from conftest import _dataset

    from gmmspeech.corpus.manifest import from_commonvoice, from_kaldi

    kaldi = _dataset("speechocean762") / "train"
    status, out, _, _ = _make_layout(["--kaldi", kaldi, "--out", tmp_path / "cv", "--speakers", "2",
                                      "--rate", "16000"], capsys)
    assert status == 0 and "16 clips of 2 speakers" in out
    got = from_commonvoice(tmp_path / "cv")
    rows = from_kaldi(kaldi)
    first_two = sorted({r.label for r in rows})[:2]
    want = [r for r in rows if r.label in first_two]
    assert [r.extra["text"] for r in got] == [r.extra["text"] for r in want]
    assert len({r.label for r in got}) == 2


def _mtimes(folder):
    return {p: p.stat().st_mtime_ns for p in folder.rglob("*") if p.is_file()}


def _kill_when(cmd, ready, timeout=900):
    """Start ``cmd``, SIGKILL it as soon as ``ready()`` is true (polled); returns whether it was
    still running then."""
    env = dict(os.environ, GMMSPEECH_PROGRESS="off")
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and proc.poll() is None and not ready():
            time.sleep(0.1)
        killed = proc.poll() is None
        if killed:
            proc.send_signal(signal.SIGKILL)
        proc.wait(60)
    finally:
        if proc.poll() is None:
            proc.kill()
    return killed


def test_fsdd_recipe_killed_midway_resumes_without_redoing(tmp_path, fsdd_root, monkeypatch, capsys):
    out = tmp_path / "fsdd"
    cmd = [sys.executable, str(ROOT / "recipes" / "fsdd" / "run.py"), "--quick",
           "--data-root", str(fsdd_root.parent), "--out", str(out)]
    system = out / "exp" / "diag-8"
    # killed once the UBM is written, while the later steps of the system run
    _kill_when(cmd, lambda: (system / "ubm.npz").is_file())
    assert (system / "ubm.npz").is_file()
    ubm_t = (system / "ubm.npz").stat().st_mtime_ns
    feats_before = _mtimes(out / "feats" / "data")
    text = _run("fsdd", ["--quick", "--data-root", fsdd_root.parent, "--out", out], monkeypatch, capsys)
    assert (system / "ubm.npz").stat().st_mtime_ns == ubm_t  # the finished UBM was not redone
    assert "$ gmmspeech train-ubm" not in text and "(done: " in text
    assert all(_mtimes(out / "feats" / "data")[p] == t for p, t in feats_before.items())
    res = json.loads((out / "results.json").read_text())
    assert list(res["systems"]) == ["diag-8"]
    m = res["systems"]["diag-8"]
    assert m["n_speakers"] == res["data"]["speakers"] == 3 and m["n_tests"] == res["data"]["test"]
    assert 0 <= m["accuracy"] <= 1 and 0 <= m["eer"] <= 1
    assert not list(out.rglob("*.partial*"))
    # a second run redoes nothing and keeps the measured time
    before = _mtimes(system)
    text = _run("fsdd", ["--quick", "--data-root", fsdd_root.parent, "--out", out], monkeypatch, capsys)
    assert "$ gmmspeech" not in text.split("== stage 1")[1].replace("$ gmmspeech features", "")
    assert _mtimes(system) == before
    assert json.loads((out / "results.json").read_text())["systems"]["diag-8"]["seconds"] == m["seconds"] > 0
    # --stage re-enters a stage: scores and evaluation are redone from the models
    import shutil

    (system / "scores.tsv").unlink()
    shutil.rmtree(system / "eval")
    text = _run("fsdd", ["--quick", "--data-root", fsdd_root.parent, "--out", out, "--stage", "5"],
                monkeypatch, capsys)
    assert "== stage 4" not in text and "== stage 5: diag-8: normalise" in text
    assert (system / "ubm.npz").stat().st_mtime_ns == ubm_t
    assert (system / "eval" / "results.json").is_file()
    # the normalised system is the reported one, the raw scores beside it
    res = json.loads((out / "results.json").read_text())
    assert set(res["systems"]["diag-8"]["raw"]) >= {"accuracy", "eer"}


@pytest.mark.parametrize("name,corpus", [("librispeech", "librispeech"), ("dspspeech20", "dspspeech20"),
                                         ("speechocean762", "speechocean762")])
def test_quick_recipe_end_to_end(name, corpus, tmp_path, monkeypatch, capsys):
    """Every corpus recipe's --quick run goes through all its stages (fsdd, commonvoice and
    digits have their own tests)."""
    from conftest import _dataset

    root = _dataset(corpus).parent
    out = tmp_path / name
    text = _run(name, ["--quick", "--data-root", root, "--out", out], monkeypatch, capsys)
    for n in range(7):  # stage 7, the report, is written after every system (no stage line)
        assert f"== stage {n}" in text
    res = json.loads((out / "results.json").read_text())
    assert res["quick"] is True and list(res["systems"]) == ["diag-8"]
    m = res["systems"]["diag-8"]
    # 3 speakers, at most 2 test files each (a LibriSpeech test speaker may have only one)
    assert m["n_speakers"] == res["data"]["speakers"] == 3 and m["n_tests"] == res["data"]["test"]
    assert 3 <= m["n_tests"] <= 6
    assert 0 <= m["accuracy"] <= 1 and 0 <= m["eer"] <= 1 and set(m["raw"]) >= {"accuracy", "eer"}
    report = (out / "report.md").read_text()
    assert "(quick run)" in report and "diag-8" in report and "EER" in report
    assert (out / "exp" / "diag-8" / "eval" / "det.png").is_file()
    # one store, every distinct file extracted once
    index = (out / "feats" / "index.tsv").read_text().splitlines()
    all_rows = (out / "data" / "all.csv").read_text().splitlines()
    assert len(index) == len(all_rows)
    assert not list(out.rglob("*.partial*"))


def test_digits_recipe_against_sklearn_killed_and_resumed(tmp_path, fsdd_root, monkeypatch, capsys):
    """recipes/digits/run.py --quick: per-digit GMMs (train-classes / classify) beside
    scikit-learn's GaussianMixture on the same features; killed once the first fold is in the
    report, re-run: that fold is not redone."""
    pytest.importorskip("sklearn")
    out = tmp_path / "digits"
    cmd = [sys.executable, str(ROOT / "recipes" / "digits" / "run.py"), "--quick",
           "--data-root", str(fsdd_root.parent), "--out", str(out)]

    def first_fold_reported():
        try:
            res = json.loads((out / "results.json").read_text())
        except (OSError, ValueError):
            return False
        return any(s.get("folds") for s in res.get("systems", {}).values())

    _kill_when(cmd, first_fold_reported)
    assert first_fold_reported()
    first = out / "exp" / "diag-4" / "george"
    before = _mtimes(first)
    import gmmspeech.features.streaming as streaming

    extracted = []
    real = streaming.extract_to_file
    monkeypatch.setattr(streaming, "extract_to_file", lambda path, *a, **k: extracted.append(path) or real(path, *a, **k))
    text = _run("digits", ["--quick", "--data-root", fsdd_root.parent, "--out", out], monkeypatch, capsys)
    assert _mtimes(first) == before  # the finished fold was not redone
    assert "$ gmmspeech train-classes" not in text.split("held-out jackson")[0]
    res = json.loads((out / "results.json").read_text())
    s = res["systems"]["diag-4"]
    assert [f["speaker"] for f in s["folds"]] == ["george", "jackson"]
    # 4 recordings per digit of each of 6 speakers; a fold tests the 40 of one speaker
    assert len((out / "data" / "all.csv").read_text().splitlines()) == 1 + 240
    assert [f["n_test"] for f in s["folds"]] == [40, 40] and s["n_test"] == 80
    cm = np.asarray(s["confusion_matrix"])
    assert cm.shape == (10, 10) and cm.sum() == 80
    assert np.trace(cm) / cm.sum() == pytest.approx(s["accuracy"])
    # recompute the pooled accuracy from the predictions the commands wrote
    correct = 0
    for spk in ("george", "jackson"):
        rows = (out / "exp" / "diag-4" / spk / "classify" / "predictions.tsv").read_text().splitlines()[1:]
        correct += sum(r.split("\t")[1] == r.split("\t")[3] for r in rows)
        assert len(rows) == 40
    assert s["accuracy"] == pytest.approx(correct / 80)
    assert s["accuracy"] > 0.4  # chance is 0.1
    # the independent reference: same features and settings, close results
    assert abs(s["accuracy"] - s["accuracy_sklearn"]) <= 0.15 and s["agreement_with_sklearn"] >= 0.7
    report = (out / "report.md").read_text()
    assert "scikit-learn" in report and "CC BY-SA 4.0" in report and "george" in report
    assert (out / s["confusion_png"]).is_file()
    # features extracted once, into one store (stage 1, before the kill): the re-run's
    # train-classes and classify of the second fold read them from there
    assert len((out / "feats" / "index.tsv").read_text().splitlines()) == 1 + 240
    assert extracted == [] and "$ gmmspeech classify" in text
    assert not list(out.rglob("*.partial*"))


def test_words_recipe_quick_fsdd_with_hmmlearn_and_resume(tmp_path, fsdd_root, monkeypatch, capsys):
    """recipes/words/run.py --quick --corpus fsdd: inner folds, leave one speaker out with GMM-HMM,
    per-class GMM and hmmlearn's GMMHMM per fold (its failed word models reported, never a crash);
    run again, every finished stage is kept and the results are the same."""
    import importlib.util

    out = tmp_path / "words"
    argv = ["--quick", "--corpus", "fsdd", "--data-root", fsdd_root.parent, "--out", out]
    text = _run("words", argv, monkeypatch, capsys)
    for n in (0, 1, 4, 5, 6):
        assert f"== stage {n}" in text
    res = json.loads((out / "results.json").read_text())
    fsdd = res["fsdd"]
    want = {"gmm-hmm", "gmm-hmm-si", "gmm"}
    has_hmmlearn = importlib.util.find_spec("hmmlearn") is not None
    if has_hmmlearn:
        want.add("hmmlearn")
    assert set(fsdd["systems"]) == want
    assert len(fsdd["folds"]) == 2 and all(f["n_test"] == 20 for f in fsdd["folds"])
    for name in want:
        assert 0.0 <= fsdd["systems"][name]["accuracy"] <= 1.0
    n_all = sum(f["n_test"] for f in fsdd["folds"])
    assert sum(map(sum, fsdd["confusion_matrix"])) == n_all
    if has_hmmlearn:  # per fold: accuracy and the failed word models (a list, maybe empty)
        for f in fsdd["folds"]:
            assert 0.0 <= f["hmmlearn"] <= 1.0 and isinstance(f["hmmlearn_failed_classes"], list)
        # the pooled accuracy is the folds' weighted mean
        pooled = sum(f["hmmlearn"] * f["n_test"] for f in fsdd["folds"]) / n_all
        assert abs(fsdd["systems"]["hmmlearn"]["accuracy"] - pooled) < 1e-12
    report = (out / "report.md").read_text()
    assert "FSDD digits: leave one speaker out" in report and "hmmlearn (failed word models)" in report
    # the front ends offered to FSDD: the energy VAD at the preset's -30 dB and at -40 dB, whose
    # stores keep at least as many frames of every file (more of some)
    assert json.loads((out / "conf" / "fsdd-sp1.json").read_text())["vad_threshold_db"] == -30.0
    assert json.loads((out / "conf" / "fsdd-mfcc-vad40-sp1.json").read_text())["vad_threshold_db"] == -40.0
    from gmmspeech.corpus.store import FeatureStore

    s30, s40 = FeatureStore(out / "feats" / "fsdd-sp1"), FeatureStore(out / "feats" / "fsdd-mfcc-vad40-sp1")
    n30 = np.array([len(s30.load(i)) for i in s30.ids()])
    n40 = np.array([len(s40.load(i)) for i in s30.ids()])
    assert np.all(n40 >= n30) and np.any(n40 > n30)
    # stage 4: every adaptation x front-end set, every inner pair, with the CMVN of the (absent)
    # development split's default; stage 5: each fold's setting is its best inner one
    inner = json.loads((out / "exp" / "fsdd" / "inner.json").read_text())
    sets = ["mfcc", "mfcc-vad40", "mfcc+mfcc-vad40"]
    assert inner["normalisation"] == "speaker"
    assert inner["front_end_sets"] == [s.split("+") for s in sets]
    adapts = {k.split("/")[1] for k in inner["pairs"]}
    assert {k.split("/", 2)[2] for k in inner["pairs"]} == set(sets) and len(inner["pairs"]) == 3 * len(adapts)
    assert all(len(v) == 3 for v in inner["pairs"].values())  # the three pairs of the three speakers
    for f in fsdd["folds"]:
        chosen = f"speaker/{f['adaptation']}/{'+'.join(f['front_ends'])}"
        assert f["inner_accuracy"][chosen] == max(f["inner_accuracy"].values())
        s = f["test_speaker"]
        partners = [p for p in inner["pairs"][chosen] if s in p.split("+")]
        assert len(partners) == 2  # its inner accuracy: its two partners, never itself
        mean = np.mean([inner["pairs"][chosen][p][v] for p in partners for v in p.split("+") if v != s])
        assert abs(f["inner_accuracy"][chosen] - mean) < 1e-12
        alone = {k for k in f if k.startswith("gmm-hmm-") and k != "gmm-hmm-si"}
        assert alone == ({f"gmm-hmm-{fe}" for fe in f["front_ends"]} if len(f["front_ends"]) > 1 else set())
    again = _run("words", argv, monkeypatch, capsys)
    assert "(done: exp/fsdd/inner.json)" in again and "(done: exp/fsdd/results.json)" in again
    assert "inner, " not in again and "fold george" not in again
    assert json.loads((out / "results.json").read_text())["fsdd"] == fsdd


def test_words_recipe_quick_dspspeech20_front_ends_by_cross_validation(tmp_path, datasets_root, monkeypatch, capsys):
    """recipes/words/run.py --quick --corpus dspspeech20: stage 2 compares the front-end sets
    (MFCC; MFCC + MFCC-with-Kaldi-pitch summed) by 3-fold cross-validation over the training
    speakers, stage 3 decodes the test speakers with the chosen set and reports each front end
    alone; a re-run keeps front_ends.json."""
    pytest.importorskip("kaldi_native_fbank")
    if not (datasets_root / "dspspeech20").is_dir():
        pytest.skip(f"dspspeech20 not found in {datasets_root}")
    out = tmp_path / "words"
    argv = ["--quick", "--corpus", "dspspeech20", "--no-hmmlearn", "--data-root", datasets_root, "--out", out]
    text = _run("words", argv, monkeypatch, capsys)
    assert "front ends by cross-validation" in text
    conf = json.loads((out / "conf" / "dspspeech20-mfcc-pitch-sp1.json").read_text())
    assert conf["pitch"] == "kaldi"
    base = json.loads((out / "conf" / "dspspeech20-sp1.json").read_text())
    assert base["pitch"] == "none"
    fe = json.loads((out / "exp" / "dspspeech20" / "front_ends.json").read_text())
    assert [s["front_ends"] for s in fe["sets"]] == [["mfcc"], ["mfcc", "mfcc-pitch"]]
    train = {x.split("-")[0] for x in (out / "data" / "dspspeech20_train.csv").read_text().split()[1:]}
    held = [set(f["held_out"]) for f in fe["folds"]]
    assert len(held) == 3 and set().union(*held) == train and sum(map(len, held)) == len(train)  # a partition
    for s in fe["sets"]:  # a set's accuracy pools the folds' recordings
        name = "+".join(s["front_ends"])
        pooled = sum(f["accuracy"][name] * f["recordings"] for f in fe["folds"]) / sum(f["recordings"] for f in fe["folds"])
        assert abs(s["accuracy"] - pooled) < 1e-12
    best = max(fe["sets"], key=lambda s: (s["accuracy"], -len(s["front_ends"])))  # ties: fewer front ends
    assert fe["chosen"] == best["front_ends"]
    dev = json.loads((out / "exp" / "dspspeech20" / "dev.json").read_text())["chosen"]
    assert (fe["states"], fe["mix"], fe["normalisation"], fe["adaptation"]) == (
        dev["states"], dev["mix"], dev["normalisation"], dev["adaptation"])
    dsp = json.loads((out / "results.json").read_text())["dspspeech20"]
    assert dsp["front_ends"] == fe["chosen"] and dsp["systems"]["gmm-hmm"]["front_ends"] == fe["chosen"]
    alone = {f"gmm-hmm-{f}" for f in fe["chosen"]} if len(fe["chosen"]) > 1 else set()
    first = {"gmm-hmm-si"} if dsp["adaptation"] != "none" else set()
    assert set(dsp["systems"]) == {"gmm-hmm", "gmm"} | first | alone
    assert sum(map(sum, dsp["confusion_matrix"])) == dsp["n_test"]
    again = _run("words", argv, monkeypatch, capsys)
    assert "(done: exp/dspspeech20/front_ends.json)" in again and "front ends, fold" not in again
