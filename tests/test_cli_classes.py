"""train-classes / classify end to end on a tiny synthesised corpus of three 'words'
(harmonic spectra with word-specific formants, speakers differing in pitch)."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from gmmspeech.cli import main

pytest.importorskip("sklearn")
WORDS = {"ah": (700.0, 1200.0), "ee": (300.0, 2300.0), "oo": (350.0, 800.0)}
SPEAKERS = {"s0": 100.0, "s1": 140.0, "s2": 190.0, "s3": 120.0}


def _word(formants, f0, seed, sr=16000, seconds=0.5):
    r = np.random.default_rng(seed)
    t = np.arange(int(sr * seconds)) / sr
    f0t = f0 * (1 + 0.03 * np.sin(2 * np.pi * 3 * t + r.uniform(0, 6)))
    phase = 2 * np.pi * np.cumsum(f0t) / sr
    y = np.zeros_like(t)
    for h in range(1, int(5000 // f0)):
        f = h * f0
        amp = sum(np.exp(-((f - F) / 120.0) ** 2) for F in formants) + 0.02
        y += amp * np.sin(h * phase + r.uniform(0, 2 * np.pi))
    y *= np.hanning(t.size) ** 0.3
    y += 0.005 * r.standard_normal(t.size)
    return (0.3 * y / np.abs(y).max()).astype(np.float32)


def _manifest(path, rows, extra_header=()):
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["id", "path", "label", *extra_header])
        w.writerows(rows)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    import soundfile as sf

    root = tmp_path_factory.mktemp("words")
    train, test = [], []
    for si, (spk, f0) in enumerate(SPEAKERS.items()):
        for wi, (word, formants) in enumerate(WORDS.items()):
            for take in range(3):
                name = f"{spk}_{word}_{take}.wav"
                sf.write(root / name, _word(formants, f0 * (1 + 0.02 * take), 100 * si + 10 * wi + take),
                         16000)
                (test if spk == "s3" else train).append((name[:-4], name, word))
    (root / "broken.wav").write_bytes(b"RIFF....not audio")
    test.append(("broken", "broken.wav", "ah"))
    _manifest(root / "train.csv", train)
    _manifest(root / "test.csv", test)
    _manifest(root / "unlabelled.csv", [(i, p, "") for i, p, _ in test[:4]])
    return root


def _read_tsv(path):
    with open(path, newline="") as fh:
        return list(csv.reader(fh, delimiter="\t"))


def test_train_classes_and_classify(corpus, tmp_path, capsys):
    models = tmp_path / "models"
    feats = tmp_path / "feats"
    rc = main(["train-classes", str(corpus / "train.csv"), "--out", str(models), "-k", "2",
               "--features-dir", str(feats), "--quiet"])
    assert rc == 0, capsys.readouterr().err
    doc = json.loads((models / "classes.json").read_text())
    assert doc["classes"] == sorted(WORDS)
    assert doc["metadata"]["feature_config"]["name"] == "speech"
    assert sorted(p.name for p in models.glob("*.npz")) == ["ah.npz", "ee.npz", "oo.npz"]

    out = tmp_path / "out"
    rc = main(["classify", "--models", str(models), "--manifest", str(corpus / "test.csv"),
               "--out", str(out), "--features-dir", str(feats), "--quiet"])
    err = capsys.readouterr().err
    assert rc == 1 and "broken.wav" in err  # the bad file is reported, the rest classified
    rows = _read_tsv(out / "predictions.tsv")
    assert rows[0] == ["id", "predicted", "score", "label"]
    assert len(rows) == 1 + 9
    body = rows[1:]
    assert all(r[1] in WORDS and r[3] in WORDS for r in body)
    assert all(np.isfinite(float(r[2])) for r in body)
    res = json.loads((out / "results.json").read_text())
    correct = sum(r[1] == r[3] for r in body)
    assert res["n_tests"] == 9 and res["n_correct"] == correct
    assert res["accuracy"] == pytest.approx(correct / 9)
    assert res["accuracy"] >= 8 / 9  # unseen speaker, clearly different formants
    assert set(res["per_class_recall"]) == set(WORDS)
    assert res["n_bad_files"] == 1 and res["bad_files"][0]["id"] == "broken"
    assert np.asarray(res["confusion_matrix"]).sum() == 9
    assert (out / "confusion.png").stat().st_size > 1000
    # the score column is the predicted class's average log-likelihood in scores.tsv
    scores = _read_tsv(out / "scores.tsv")
    assert scores[0] == ["id", "n_frames"] + sorted(WORDS)
    for p, s in zip(body, scores[1:]):
        vals = dict(zip(scores[0][2:], map(float, s[2:])))
        assert float(p[2]) == pytest.approx(vals[p[1]])
        assert p[1] == max(vals, key=vals.get)  # equal priors: the best model wins

    # unlabelled manifest: predictions only
    out2 = tmp_path / "out2"
    rc = main(["classify", "--models", str(models), "--manifest", str(corpus / "unlabelled.csv"),
               "--out", str(out2), "--features-dir", str(feats), "--quiet"])
    assert rc == 0
    assert not (out2 / "results.json").exists()
    assert all(r[3] == "" for r in _read_tsv(out2 / "predictions.tsv")[1:])


def test_train_classes_map_from_ubm_uses_its_feature_config(corpus, tmp_path, capsys):
    feats = tmp_path / "feats"
    ubm = tmp_path / "ubm.npz"
    assert main(["train-ubm", str(corpus / "train.csv"), "--out", str(ubm), "-k", "4",
                 "--iterations", "3", "--preset", "speech", "--features-dir", str(feats),
                 "--quiet"]) == 0
    models = tmp_path / "models"
    assert main(["train-classes", str(corpus / "train.csv"), "--out", str(models), "--ubm", str(ubm),
                 "--relevance", "4", "--features-dir", str(feats), "--quiet"]) == 0
    doc = json.loads((models / "classes.json").read_text())
    assert doc["adapted_from_ubm"] is True
    from gmmspeech.mixture.io import load

    u = load(ubm)
    m = load(models / "ee.npz")
    np.testing.assert_array_equal(m.covariances_, u.covariances_)  # means-only MAP
    out = tmp_path / "out"
    rc = main(["classify", "--models", str(models), "--manifest", str(corpus / "test.csv"),
               "--out", str(out), "--features-dir", str(feats), "--quiet"])
    assert rc == 1
    assert json.loads((out / "results.json").read_text())["n_tests"] == 9


def test_train_classes_reg_covar(corpus, tmp_path, capsys):
    models = tmp_path / "models"
    assert main(["train-classes", str(corpus / "train.csv"), "--out", str(models), "-k", "2",
                 "--reg-covar", "0.5", "--quiet"]) == 0
    doc = json.loads((models / "classes.json").read_text())
    assert doc["params"]["reg_covar"] == 0.5
    assert doc["metadata"]["fit_seconds"] > 0
    from gmmspeech.mixture.io import load

    # every variance is at least the regularisation added to it (a centred, CMVN'd frame set
    # has variances near 1, so without it most would be smaller than 1.5)
    cov = load(models / "ah.npz").covariances_
    assert cov.min() >= 0.5
    capsys.readouterr()
    assert main(["train-classes", str(corpus / "train.csv"), "--out", str(tmp_path / "m2"),
                 "--reg-covar", "-1", "--quiet"]) == 2
    assert "--reg-covar must be >= 0, got -1" in capsys.readouterr().err


def test_train_classes_errors(corpus, tmp_path, capsys):
    rc = main(["train-classes", str(corpus / "unlabelled.csv"), "--out", str(tmp_path / "m"),
               "--quiet"])
    assert rc == 2
    assert "has no label" in capsys.readouterr().err
    rc = main(["classify", "--models", str(tmp_path / "nowhere"), "--manifest",
               str(corpus / "test.csv"), "--out", str(tmp_path / "o"), "--quiet"])
    assert rc == 2
    assert "nowhere" in capsys.readouterr().err
    rc = main(["train-classes", str(corpus / "train.csv"), "--out", str(tmp_path / "m"),
               "--model", "nope", "--quiet"])
    assert rc == 2
    assert "model='nope'" in capsys.readouterr().err


def test_train_classes_hmm_and_classify(corpus, tmp_path, capsys):
    from gmmspeech.corpus.store import FeatureStore
    from gmmspeech.features.config import FeatureConfig
    from gmmspeech.mixture.hmm import GMMHMM, WORD_HMM_FEATURES
    from gmmspeech.mixture.io import load

    models = tmp_path / "models"
    feats = tmp_path / "feats"
    rc = main(["train-classes", str(corpus / "train.csv"), "--out", str(models), "--model", "hmm",
               "--states", "3", "--mix", "2", "--features-dir", str(feats), "--quiet"])
    assert rc == 0, capsys.readouterr().err
    doc = json.loads((models / "classes.json").read_text())
    assert doc["model"] == "hmm" and doc["classes"] == sorted(WORDS)
    assert doc["params"]["model_params"] == {"n_states": 3, "n_mix": 2}
    cfg = doc["metadata"]["feature_config"]
    assert all(cfg[k] == v for k, v in WORD_HMM_FEATURES.items())  # the word-model front end
    hmms = {w: load(models / f"{w}.npz") for w in WORDS}
    dims = 3 * cfg["n_mfcc"]  # log-energy in place of c0, deltas, delta-deltas
    for m in hmms.values():
        assert isinstance(m, GMMHMM) and m.means_.shape == (3, 2, dims)
        assert np.all(np.tril(m.transmat_, -1) == 0)  # left to right

    out = tmp_path / "out"
    rc = main(["classify", "--models", str(models), "--manifest", str(corpus / "test.csv"),
               "--out", str(out), "--features-dir", str(feats), "--quiet"])
    err = capsys.readouterr().err
    assert rc == 1 and "broken.wav" in err
    body = _read_tsv(out / "predictions.tsv")[1:]
    assert len(body) == 9
    res = json.loads((out / "results.json").read_text())
    assert res["n_tests"] == 9 and res["n_correct"] == sum(r[1] == r[3] for r in body)
    assert res["accuracy"] >= 8 / 9
    assert np.asarray(res["confusion_matrix"]).sum() == 9
    assert (out / "confusion.png").stat().st_size > 1000
    # every score is the class GMM-HMM's forward log-likelihood per frame of the stored features
    store = FeatureStore(feats / FeatureConfig.from_dict(cfg).config_hash())
    scores = _read_tsv(out / "scores.tsv")
    for s in scores[1:]:
        x = np.asarray(store.load(s[0], mmap=False))
        assert int(s[1]) == x.shape[0]
        for w, v in zip(scores[0][2:], s[2:]):
            assert float(v) == pytest.approx(hmms[w].score_sequences([x])[0] / x.shape[0], rel=1e-9)


def test_classify_reports_a_malformed_hmm_model_file(corpus, tmp_path, capsys):
    models = tmp_path / "models"
    feats = tmp_path / "feats"
    assert main(["train-classes", str(corpus / "train.csv"), "--out", str(models), "--model", "hmm",
                 "--states", "2", "--mix", "1", "--features-dir", str(feats), "--quiet"]) == 0
    good = (models / "ee.npz").read_bytes()

    def classify_error():
        rc = main(["classify", "--models", str(models), "--manifest", str(corpus / "test.csv"),
                   "--out", str(tmp_path / "out"), "--features-dir", str(feats), "--quiet"])
        err = capsys.readouterr().err
        assert rc == 2, err
        return err

    (models / "ee.npz").write_bytes(good[: len(good) // 2])  # truncated
    assert "ee.npz" in classify_error()
    (models / "ee.npz").unlink()  # missing
    assert "ee.npz" in classify_error()
    # a GMM file in place of a word model
    gmms = tmp_path / "gmms"
    assert main(["train-classes", str(corpus / "train.csv"), "--out", str(gmms), "-k", "1",
                 "--features-dir", str(feats), "--quiet"]) == 0
    (models / "ee.npz").write_bytes((gmms / "ee.npz").read_bytes())
    err = classify_error()
    assert "ee.npz" in err and "holds a GMM" in err
    (models / "ee.npz").write_bytes(good)
    assert main(["classify", "--models", str(models), "--manifest", str(corpus / "test.csv"),
                 "--out", str(tmp_path / "out"), "--features-dir", str(feats), "--quiet"]) == 1


def test_train_classes_hmm_option_errors(corpus, tmp_path, capsys):
    def err(*argv):
        rc = main(["train-classes", str(corpus / "train.csv"), "--out", str(tmp_path / "m"),
                   "--quiet", *argv])
        assert rc == 2
        return capsys.readouterr().err

    assert "--mix" in err("--model", "hmm", "-k", "4")
    assert "--states applies to --model hmm only" in err("--states", "4")
    assert "n_states" in err("--model", "hmm", "--states", "0")
    assert not (tmp_path / "m").exists()  # nothing extracted or written
