"""The speaker commands end to end: a tiny synthetic corpus, and LibriSpeech when present."""

from __future__ import annotations

import csv
import json
import os

import numpy as np
import pytest
from conftest import speechlike

from gmmspeech.cli import main

F0 = {"ann": 95.0, "bob": 130.0, "cid": 175.0, "dan": 230.0}
BACKGROUND_F0 = (85.0, 110.0, 150.0, 200.0, 260.0)


def _write_manifest(path, rows):
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["id", "path", "label"])
        w.writerows(rows)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    import soundfile as sf

    root = tmp_path_factory.mktemp("corpus")
    bg, enr, tst = [], [], []

    def wav(name, f0, seed, seconds=1.2):
        y = speechlike(seconds=seconds, f0=f0 * (1 + 0.02 * np.sin(seed)), seed=seed)
        sf.write(root / name, y, 16000)
        return name

    for i, f0 in enumerate(BACKGROUND_F0):
        for j in range(2):
            bg.append((f"bg{i}_{j}", wav(f"bg{i}_{j}.wav", f0, 100 + 10 * i + j), f"bg{i}"))
    for spk, f0 in F0.items():
        for j in range(2):
            enr.append((f"{spk}_e{j}", wav(f"{spk}_e{j}.wav", f0, 200 + j + int(f0)), spk))
            tst.append((f"{spk}_t{j}", wav(f"{spk}_t{j}.wav", f0, 300 + j + int(f0), 0.8), spk))
    (root / "broken.wav").write_bytes(b"RIFF....not a wav file")
    tst.append(("broken", "broken.wav", "ann"))
    _write_manifest(root / "bg.csv", bg)
    _write_manifest(root / "enroll.csv", enr)
    _write_manifest(root / "test.csv", tst)
    return root


def test_speaker_id_end_to_end(corpus, tmp_path, capsys):
    out = tmp_path / "run"
    rc = main(["speaker-id", "--background", str(corpus / "bg.csv"), "--enroll", str(corpus / "enroll.csv"),
               "--test", str(corpus / "test.csv"), "--out", str(out), "--components", "8",
               "--iterations", "4", "--relevance", "4", "--top-c", "3", "--quiet"])
    err = capsys.readouterr().err
    assert rc == 1  # one bad file, reported, the rest done
    assert "broken.wav" in err
    res = json.loads((out / "results.json").read_text())
    for key in ("accuracy", "eer", "min_dcf_sre08", "min_dcf_sre10", "n_speakers", "n_tests"):
        assert key in res
    assert res["n_speakers"] == 4 and res["n_tests"] == 8
    assert [b["id"] for b in res["bad_files"]] == ["broken"]
    assert res["accuracy"] >= 0.75
    assert res["eer"] <= 0.25
    lines = (out / "scores.tsv").read_text().splitlines()
    assert lines[0].split("\t")[:3] == ["test_id", "model", "score"] and len(lines) == 1 + 8 * 4
    assert (out / "det.png").read_bytes()[:4] == b"\x89PNG"
    assert (out / "ubm.npz").is_file() and len(os.listdir(out / "models")) == 4
    from gmmspeech.threads import default_threads

    # the thread count the run used: in results.json (its log is quiet here; see below)
    assert res["threads"] == default_threads() and res["jobs"] == 1


def test_threads_option_is_used_logged_and_recorded(corpus, tmp_path, capsys):
    base = ["speaker-id", "--background", str(corpus / "bg.csv"), "--enroll", str(corpus / "enroll.csv"),
            "--test", str(corpus / "enroll.csv"), "--components", "4", "--iterations", "2"]
    assert main(base + ["--out", str(tmp_path / "one"), "--threads", "1"]) == 0
    err = capsys.readouterr().err
    assert "gmmspeech speaker-id: threads: 1 (--threads, affinity" in err
    assert json.loads((tmp_path / "one" / "results.json").read_text())["threads"] == 1
    from gmmspeech.threads import default_threads

    assert default_threads() >= 1
    assert main(base + ["--out", str(tmp_path / "zero"), "--threads", "0"]) == 2
    assert "--threads must be >= 1, got 0" in capsys.readouterr().err


def test_step_by_step_commands(corpus, tmp_path, capsys):
    ubm = tmp_path / "ubm.npz"
    ck = tmp_path / "ck.npz"
    # the speech preset as it is (utterance CMVN, VAD), saved in the UBM for enroll and score
    assert main(["train-ubm", str(corpus / "bg.csv"), "--out", str(ubm), "-k", "8", "--iterations", "2",
                 "--checkpoint", str(ck), "--preset", "speech", "--quiet"]) == 0
    assert main(["train-ubm", str(corpus / "bg.csv"), "--out", str(ubm), "-k", "8", "--iterations", "4",
                 "--checkpoint", str(ck), "--resume", "--preset", "speech", "--quiet"]) == 0
    assert main(["enroll", "--ubm", str(ubm), "--manifest", str(corpus / "enroll.csv"),
                 "--out", str(tmp_path / "models"), "--relevance", "4", "--quiet"]) == 0
    rc = main(["score", "--ubm", str(ubm), "--models", str(tmp_path / "models"), "--manifest",
               str(corpus / "test.csv"), "--out", str(tmp_path / "scores.tsv"), "--mode", "exact", "--quiet"])
    assert rc == 1 and "broken" in capsys.readouterr().err
    assert main(["evaluate", str(tmp_path / "scores.tsv"), "--out", str(tmp_path / "eval")]) == 0
    res = json.loads((tmp_path / "eval" / "results.json").read_text())
    assert res["n_tests"] == 8 and res["accuracy"] >= 0.75
    assert (tmp_path / "eval" / "det.png").is_file()
    # the same run through the pipeline function gives the same exact scores
    from gmmspeech.speaker.pipeline import read_scores

    ids, labels, models, s = read_scores(tmp_path / "scores.tsv")
    assert s.shape == (8, 4) and sorted(models) == sorted(F0)


def test_clear_errors(tmp_path, capsys):
    rc = main(["train-ubm", str(tmp_path / "missing.csv"), "--out", str(tmp_path / "u.npz")])
    assert rc == 2 and "missing.csv" in capsys.readouterr().err
    bad = tmp_path / "bad.tsv"
    bad.write_text("test_id\tmodel\tscore\ttest_label\nu1\tm1\tabc\tm1\n")
    rc = main(["evaluate", str(bad), "--out", str(tmp_path / "e")])
    assert rc == 2 and "line 2" in capsys.readouterr().err
    rc = main(["enroll", "--ubm", str(tmp_path / "nope.npz"), "--manifest", str(bad), "--out", str(tmp_path)])
    assert rc == 2 and "nope.npz" in capsys.readouterr().err


@pytest.mark.slow
@pytest.mark.data
def test_librispeech_small(librispeech_root, tmp_path):
    """20 LibriSpeech speakers (protocol of data_manifests/librispeech), small UBM."""
    from gmmspeech.corpus.manifest import read_manifest, write_manifest
    from gmmspeech.speaker.pipeline import run_speaker_id

    here = os.path.join(os.path.dirname(__file__), "..", "data_manifests", "librispeech")
    if not os.path.isfile(os.path.join(here, "enroll.csv")):
        pytest.skip("data_manifests/librispeech not present")
    data_root = librispeech_root.parent
    enr = read_manifest(os.path.join(here, "enroll.csv"), data_root=data_root)
    keep = sorted({r.label for r in enr})[:20]
    tst = [r for r in read_manifest(os.path.join(here, "test.csv"), data_root=data_root) if r.label in keep]
    bg = read_manifest(os.path.join(here, "background.csv"), data_root=data_root)[::3]
    write_manifest([r for r in enr if r.label in keep], tmp_path / "e.csv")
    write_manifest(tst, tmp_path / "t.csv")
    write_manifest(bg, tmp_path / "b.csv")
    res = run_speaker_id(tmp_path / "b.csv", tmp_path / "e.csv", tmp_path / "t.csv", tmp_path / "out",
                         n_components=32, max_iter=4, ubm_on_enroll=True, relevance_factor=8.0,
                         progress=False, verbose=False)
    assert res["n_speakers"] == 20 and res["n_tests"] == len(tst)
    assert res["accuracy"] >= 0.85
    assert res["eer"] <= 0.15


def test_step_by_step_equals_speaker_id_with_the_defaults(corpus, tmp_path):
    """train-ubm (background + enrolment) / enroll / score --background give speaker-id's scores."""
    from gmmspeech.speaker.pipeline import read_scores

    small = ["-k", "8", "--iterations", "3"]
    run = tmp_path / "run"
    main(["speaker-id", "--background", str(corpus / "bg.csv"), "--enroll", str(corpus / "enroll.csv"),
          "--test", str(corpus / "test.csv"), "--out", str(run), "--quiet", *small])
    ubm = tmp_path / "ubm.npz"
    assert main(["train-ubm", str(corpus / "bg.csv"), str(corpus / "enroll.csv"), "--out", str(ubm),
                 "--quiet", *small]) == 0
    assert main(["enroll", "--ubm", str(ubm), "--manifest", str(corpus / "enroll.csv"),
                 "--out", str(tmp_path / "models"), "--quiet"]) == 0
    main(["score", "--ubm", str(ubm), "--models", str(tmp_path / "models"), "--manifest",
          str(corpus / "test.csv"), "--background", str(corpus / "bg.csv"),
          "--out", str(tmp_path / "scores.tsv"), "--quiet"])
    ids_a, _, models_a, a = read_scores(run / "scores.tsv")
    ids_b, _, models_b, b = read_scores(tmp_path / "scores.tsv")
    assert ids_a == ids_b and models_a == models_b
    np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6)
    res = json.loads((run / "results.json").read_text())
    from gmmspeech.speaker.defaults import SPEAKER_DEFAULTS

    assert res["settings"]["norm"] == (SPEAKER_DEFAULTS["norm"] or "none")
    assert res["settings"]["feature_config"]["n_mfcc"] == SPEAKER_DEFAULTS["feature_overrides"].get("n_mfcc", 20)


def test_score_without_background_says_it_does_not_normalise(corpus, tmp_path, capsys):
    from gmmspeech.speaker.defaults import SPEAKER_DEFAULTS

    ubm = tmp_path / "ubm.npz"
    assert main(["train-ubm", str(corpus / "bg.csv"), "--out", str(ubm), "-k", "4", "--iterations", "2",
                 "--quiet"]) == 0
    assert main(["enroll", "--ubm", str(ubm), "--manifest", str(corpus / "enroll.csv"),
                 "--out", str(tmp_path / "models"), "--quiet"]) == 0
    capsys.readouterr()
    args = ["score", "--ubm", str(ubm), "--models", str(tmp_path / "models"), "--manifest",
            str(corpus / "test.csv"), "--out", str(tmp_path / "s.tsv"), "--quiet"]
    main(args)
    err = capsys.readouterr().err
    if SPEAKER_DEFAULTS["norm"]:
        assert "not normalised" in err and "--background" in err
    assert main(args + ["--norm", "znorm"]) == 2
    assert "--background" in capsys.readouterr().err
    # T-norm over the other enrolled models needs no background
    assert main(args + ["--norm", "tnorm", "--norm-cohort", "enrolled"]) == 1  # the broken file
    assert "tnorm" in capsys.readouterr().out


def test_verification_of_a_single_enrolled_speaker(corpus, tmp_path, capsys):
    """One enrolled speaker: the background cohort still normalises; the enrolled one cannot."""
    rows = list(csv.reader(open(corpus / "enroll.csv")))
    one = tmp_path / "one.csv"
    _write_manifest(one, [[r[0], str(corpus / r[1]), r[2]] for r in rows[1:] if r[2] == "ann"])
    base = ["speaker-id", "--background", str(corpus / "bg.csv"), "--enroll", str(one),
            "--test", str(corpus / "test.csv"), "-k", "8", "--iterations", "3", "--quiet"]
    for norm in ("tnorm", "snorm", "znorm"):
        out = tmp_path / norm
        assert main(base + ["--out", str(out), "--norm", norm, "--norm-cohort", "background"]) == 1
        res = json.loads((out / "results.json").read_text())
        assert res["n_speakers"] == 1 and res["settings"]["norm"] == norm
        # every test row is a trial against the one model (the other speakers' are impostors)
        lines = [ln.split("\t") for ln in (out / "scores.tsv").read_text().splitlines()[1:]]
        assert len(lines) == 8 and {ln[1] for ln in lines} == {"ann"}
        assert all(np.isfinite(float(ln[2])) for ln in lines)
    capsys.readouterr()
    rc = main(base + ["--out", str(tmp_path / "bad"), "--norm", "tnorm", "--norm-cohort", "enrolled"])
    assert rc == 2 and "cohort" in capsys.readouterr().err


def test_train_ubm_help_states_the_feature_defaults_it_applies(capsys):
    """train-ubm starts from the speaker defaults (not the plain preset that `features`
    uses); its --help said "default: the preset's, 20" cepstra and CMVN while it trained on
    24 cepstra without CMVN. The help is checked against what the parsed defaults build."""
    from gmmspeech.cli import build_parser
    from gmmspeech.cli.cmd_speaker import _speaker_config_from_args
    from gmmspeech.features.config import FeatureConfig

    with pytest.raises(SystemExit):
        main(["train-ubm", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    args = build_parser().parse_args(["train-ubm", "x.csv", "--out", "u.npz"])
    cfg = _speaker_config_from_args(args)
    plain = FeatureConfig.preset("speech")
    assert (cfg.n_mfcc, cfg.cmvn, cfg.vad) != (plain.n_mfcc, plain.cmvn, plain.vad)
    assert f"cepstra per frame before deltas (default: {cfg.n_mfcc})" in text
    assert f"cepstral mean/variance normalisation (default: {cfg.cmvn})" in text
    assert f"cmvn={cfg.cmvn}, vad={cfg.vad}, n_mfcc={cfg.n_mfcc})" in text
    # `features` does start from the plain preset, as its --help says
    with pytest.raises(SystemExit):
        main(["features", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert f"(default: the preset's, {plain.n_mfcc})" in text
