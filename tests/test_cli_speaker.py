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


def test_step_by_step_commands(corpus, tmp_path, capsys):
    ubm = tmp_path / "ubm.npz"
    ck = tmp_path / "ck.npz"
    assert main(["train-ubm", str(corpus / "bg.csv"), "--out", str(ubm), "-k", "8", "--iterations", "2",
                 "--checkpoint", str(ck), "--quiet"]) == 0
    assert main(["train-ubm", str(corpus / "bg.csv"), "--out", str(ubm), "-k", "8", "--iterations", "4",
                 "--checkpoint", str(ck), "--resume", "--quiet"]) == 0
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


def test_protocol_preset_and_overrides():
    """--protocol librispeech gives the tuned settings; explicit options win."""
    from gmmspeech.cli import build_parser
    from gmmspeech.cli.cmd_speaker import speaker_id_settings
    from gmmspeech.speaker.pipeline import protocol_settings

    base = ["speaker-id", "--background", "b.csv", "--enroll", "e.csv", "--test", "t.csv", "--out", "o"]
    parser = build_parser()
    s = speaker_id_settings(parser.parse_args(base + ["--protocol", "librispeech"]))
    assert s["feature_overrides"] == {"cmvn": "none", "vad": False, "n_mfcc": 24}
    assert (s["n_components"], s["relevance_factor"], s["ubm_on_enroll"]) == (128, 4.0, True)
    assert (s["top_c"], s["score_mode"], s["norm"]) == (None, "exact", "tnorm")
    s = speaker_id_settings(parser.parse_args(
        base + ["--protocol", "librispeech", "-k", "64", "--top-c", "3", "--norm", "none", "--n-mfcc", "20"]))
    assert s["n_components"] == 64 and s["relevance_factor"] == 4.0
    assert (s["top_c"], s["score_mode"], s["norm"]) == (3, None, None)
    assert s["feature_overrides"] == {"cmvn": "none", "vad": False, "n_mfcc": 20}
    # without --protocol: the plain defaults, as before
    s = speaker_id_settings(parser.parse_args(base + ["--cmvn", "none", "--no-vad"]))
    assert s["feature_overrides"] == {"cmvn": "none", "vad": False}
    assert (s["n_components"], s["relevance_factor"], s["ubm_on_enroll"], s["top_c"], s["norm"]) == (
        256, 16.0, False, 5, None)
    # the preset is a copy: changing it leaves the table intact
    protocol_settings("librispeech")["feature_overrides"]["n_mfcc"] = 99
    assert protocol_settings("librispeech")["feature_overrides"]["n_mfcc"] == 24
    with pytest.raises(ValueError, match="not one of"):
        protocol_settings("timit")
