"""The embedded demo runs end to end, through the CLI, and is well above chance."""

from __future__ import annotations

import csv
import json
import math

import numpy as np
import pytest

from gmmspeech.cli import main


@pytest.fixture(scope="module")
def demo_out(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo") / "demo-out"
    rc = main(["demo", "--out", str(out), "--quick", "--quiet", "--seed", "3"])
    assert rc == 0
    return out


def test_demo_results_well_above_chance(demo_out):
    res = json.loads((demo_out / "results.json").read_text())
    assert res["corpus"] == "synthetic"
    n_models = res["system"]["n_models"]
    assert n_models == 10 and res["chance_accuracy"] == pytest.approx(0.1)
    # a real task: far above chance (10 %), EER well below 50 %
    assert res["accuracy"] >= 0.6
    assert 0.0 <= res["eer"] <= 0.2
    assert 0.0 <= res["system"]["min_dcf_sre08"] <= 1.0
    h = res["system"]["ubm_history"]
    assert len(h) == 10 and all(b >= a - 1e-6 for a, b in zip(h, h[1:]))
    assert "NaN" not in (demo_out / "results.json").read_text()


def test_demo_writes_corpus_manifests_models_and_report(demo_out):
    from gmmspeech.corpus.manifest import read_manifest
    from gmmspeech.mixture.io import load

    audio = sorted((demo_out / "audio").glob("*.wav"))
    bg = read_manifest(demo_out / "manifests" / "background.csv")
    en = read_manifest(demo_out / "manifests" / "enroll.csv")
    te = read_manifest(demo_out / "manifests" / "test.csv")
    assert len(audio) == len(bg) + len(en) + len(te) == 8 * 4 + 10 * 4
    assert {r.label for r in bg}.isdisjoint({r.label for r in en})
    assert {r.label for r in en} == {r.label for r in te}
    models = sorted((demo_out / "models").glob("*.npz"))
    assert len(models) == 10
    ubm = load(demo_out / "ubm.npz")
    spk = load(models[0])
    # MAP adapts only the means: weights and covariances are the UBM's
    np.testing.assert_array_equal(spk.weights_, ubm.weights_)
    np.testing.assert_array_equal(spk.covariances_, ubm.covariances_)
    assert spk.metadata_["feature_config"]["name"] == "speech"
    text = (demo_out / "report.md").read_text()
    for png in ("demo_det.png", "demo_scores.png", "demo_confusion.png", "demo_ubm.png"):
        assert f"({png})" in text and (demo_out / png).read_bytes()[:4] == b"\x89PNG"
    assert "Synthetic speakers" in text


def test_demo_scores_match_an_independent_llr(demo_out):
    """Recompute one test segment's scores from the saved models with GMM.score_samples."""
    from gmmspeech.corpus.manifest import read_manifest
    from gmmspeech.features import FeatureConfig, extract
    from gmmspeech.mixture.io import load
    from gmmspeech.recipes.score_files import run

    te = read_manifest(demo_out / "manifests" / "test.csv")[:3]
    out = demo_out.parent / "scored"
    res = run(out=out, models=demo_out / "models", input=demo_out / "manifests" / "test.csv",
              max_files=3, verbose=False)
    assert res["n_scored"] == 3 and res["llr"] is True
    with open(out / "scores.tsv") as fh:
        rows = list(csv.DictReader(fh, delimiter="\t"))
    ubm = load(demo_out / "ubm.npz")
    cfg = FeatureConfig.from_dict(ubm.metadata_["feature_config"])
    for r, row in zip(te, rows):
        X = extract(r.path, config=cfg).astype(np.float64)
        base = ubm.score_samples(X)
        for key, value in row.items():
            if key.startswith("score:"):
                model = load(demo_out / "models" / f"{key[6:]}.npz")
                llr = float(np.mean(model.score_samples(X) - base))
                assert float(value) == pytest.approx(llr, abs=2e-3)
        best = max((k for k in row if k.startswith("score:")), key=lambda k: float(row[k]))
        assert row["best_model"] == best[6:]
        assert math.isfinite(float(row["margin"])) and float(row["margin"]) >= 0


def test_demo_rejects_bad_sizes(tmp_path):
    from gmmspeech.recipes import demo

    with pytest.raises(ValueError, match="n_utterances"):
        demo.run(out=tmp_path, n_utterances=1, verbose=False)


def test_demo_librispeech(tmp_path, librispeech_root):
    res = main(["demo", "--data-root", str(librispeech_root.parent), "--out", str(tmp_path / "ls"),
                "--quick", "--quiet", "--speakers", "6", "--components", "8"])
    assert res == 0
    r = json.loads((tmp_path / "ls" / "results.json").read_text())
    assert r["corpus"] == "librispeech" and r["system"]["n_models"] == 6
    assert r["accuracy"] > 0.5  # chance is 1/6
    assert "LibriSpeech" in (tmp_path / "ls" / "report.md").read_text()


def test_demo_is_deterministic_for_a_seed(tmp_path):
    from gmmspeech.mixture.io import load
    from gmmspeech.recipes import demo

    kw = dict(quick=True, seed=11, n_speakers=3, n_utterances=2, n_components=4, verbose=False)
    a = demo.run(out=tmp_path / "a", **kw)
    b = demo.run(out=tmp_path / "b", **kw)
    assert a["accuracy"] == b["accuracy"] and a["eer"] == b["eer"]
    for m in ("ubm.npz", "models/spk00.npz", "models/spk02.npz"):
        np.testing.assert_array_equal(load(tmp_path / "a" / m).means_, load(tmp_path / "b" / m).means_)
    demo.run(out=tmp_path / "c", **{**kw, "seed": 12})
    assert not np.array_equal(load(tmp_path / "a" / "ubm.npz").means_,
                              load(tmp_path / "c" / "ubm.npz").means_)


def test_demo_help_states_the_components_used(demo_out, capsys):
    """`demo --help` once said 256 components where 128 were used: its numbers are the ones
    the demo takes."""
    import re

    from gmmspeech.recipes import demo
    from gmmspeech.speaker.defaults import PROTOCOL_PRESETS

    with pytest.raises(SystemExit):
        main(["demo", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    m = re.search(r"UBM components \(default (\d+) synthetic, (\d+) LibriSpeech; (\d+) with --quick\)", text)
    assert m, text
    assert int(m.group(1)) == demo.N_COMPONENTS
    assert int(m.group(2)) == PROTOCOL_PRESETS["librispeech"]["n_components"]
    assert int(m.group(3)) == demo.N_COMPONENTS_QUICK
    # and the quick demo did train that many
    assert json.loads((demo_out / "results.json").read_text())["system"]["ubm_components"] == int(m.group(3))

