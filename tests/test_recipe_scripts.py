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

RECIPES = ["librispeech", "fsdd", "dspspeech20", "speechocean762", "commonvoice"]


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
    assert list(res["systems"]) == ["diag-8", "full-4"]
    # 8 speakers with >= 4 clips (the 1-clip one left out): 2 background speakers, 6 enrolled
    # (--quick keeps 4) on half of their clips (speaker 0 has 5: 3 enrolment, 2 test)
    d = res["data"]
    assert d["speakers"] == 4 and d["test"] == 4 * 2
    assert d["background"] in (8, 9) and d["enroll"] in (8, 9) and d["background"] + d["enroll"] <= 17
    for m in res["systems"].values():
        assert m["n_speakers"] == res["data"]["speakers"] and m["n_tests"] == res["data"]["test"]
        assert 0 <= m["accuracy"] <= 1
    report = (out / "report.md").read_text()
    assert "diag-8" in report and "EER" in report and "(quick run)" in report
    # every clip was decoded from MP3 once, into one store
    index = (out / "feats" / "index.tsv").read_text().splitlines()
    assert len(index) - 1 == sum(res["data"][k] for k in ("background", "enroll", "test"))


def _mtimes(folder):
    return {p: p.stat().st_mtime_ns for p in folder.rglob("*") if p.is_file()}


def test_fsdd_recipe_killed_midway_resumes_without_redoing(tmp_path, fsdd_root, monkeypatch, capsys):
    out = tmp_path / "fsdd"
    cmd = [sys.executable, str(ROOT / "recipes" / "fsdd" / "run.py"), "--quick",
           "--data-root", str(fsdd_root.parent), "--out", str(out)]
    env = dict(os.environ, GMMSPEECH_PROGRESS="off")
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    first = out / "exp" / "diag-8"
    try:
        # kill it once the first system is finished and reported, while the second runs
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline and proc.poll() is None:
            if (out / "results.json").is_file() and "diag-8" in (out / "results.json").read_text():
                break
            time.sleep(0.2)
        killed = proc.poll() is None
        if killed:
            proc.send_signal(signal.SIGKILL)
        proc.wait(60)
    finally:
        if proc.poll() is None:
            proc.kill()
    res = json.loads((out / "results.json").read_text())
    assert "diag-8" in res["systems"]  # what finished before the kill is kept
    before = _mtimes(first)
    feats_before = _mtimes(out / "feats" / "data")
    text = _run("fsdd", ["--quick", "--data-root", fsdd_root.parent, "--out", out], monkeypatch, capsys)
    assert _mtimes(first) == before  # the finished system was not redone
    assert _mtimes(out / "feats" / "data") .keys() >= feats_before.keys()
    assert all(_mtimes(out / "feats" / "data")[p] == t for p, t in feats_before.items())
    assert "$ gmmspeech train-ubm" not in text.split("full-4")[0]  # diag-8's UBM not trained again
    assert "(done: " in text
    res = json.loads((out / "results.json").read_text())
    assert list(res["systems"]) == ["diag-8", "full-4"]
    assert res["systems"]["diag-8"]["seconds"] > 0  # the measured time of the first run is kept
    assert not list(out.rglob("*.partial*"))
    # --stage re-enters a stage: scores and evaluation of the systems are redone from the models
    for sysname in ("diag-8", "full-4"):
        for f in ("scores.tsv",):
            (out / "exp" / sysname / f).unlink()
        import shutil

        shutil.rmtree(out / "exp" / sysname / "eval")
    ubm_t = (out / "exp" / "full-4" / "ubm.npz").stat().st_mtime_ns
    text = _run("fsdd", ["--quick", "--data-root", fsdd_root.parent, "--out", out, "--stage", "5"],
                monkeypatch, capsys)
    assert "== stage 4" not in text and "== stage 5: diag-8: normalise" in text
    assert (out / "exp" / "full-4" / "ubm.npz").stat().st_mtime_ns == ubm_t
    assert (out / "exp" / "full-4" / "eval" / "results.json").is_file()
    # the normalised system is the reported one, the raw scores beside it
    res = json.loads((out / "results.json").read_text())
    assert set(res["systems"]["full-4"]["raw"]) >= {"accuracy", "eer"}
