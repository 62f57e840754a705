"""The i-vector system through the CLI: ``speaker-id --system ivector|fusion`` and the
step-by-step commands, on the tiny synthetic corpus of test_cli_speaker."""

from __future__ import annotations

import json

import numpy as np
import pytest
from test_cli_speaker import F0, corpus  # noqa: F401  (the module-scoped corpus fixture)

from gmmspeech.cli import main


def _run(corpus, out, system, *extra):  # noqa: F811
    return main(["speaker-id", "--background", str(corpus / "bg.csv"), "--enroll", str(corpus / "enroll.csv"),
                 "--test", str(corpus / "test.csv"), "--out", str(out), "--components", "8",
                 "--iterations", "4", "--relevance", "4", "--mode", "exact", "--system", system,
                 "--ivector-iterations", "4", "--features-dir", str(out.parent / "feats"), "--quiet", *extra])


@pytest.mark.parametrize("system", ["ivector", "fusion"])
def test_speaker_id_ivector_and_fusion(corpus, tmp_path, capsys, system):  # noqa: F811
    out = tmp_path / system
    # the classic features (utterance CMVN + VAD) on this toy corpus of 5 background speakers
    rc = _run(corpus, out, system, "--protocol", "classic")
    assert rc == 1 and "broken.wav" in capsys.readouterr().err  # the bad file is reported
    res = json.loads((out / "results.json").read_text())
    for key in ("accuracy", "eer", "min_dcf_sre08", "min_dcf_sre10", "n_speakers", "n_tests"):
        assert key in res
    assert res["system"] == system and res["n_speakers"] == 4 and res["n_tests"] == 8
    # 10 background recordings of 5 speakers train no useful PLDA: no accuracy claim for the
    # i-vector system here (the speechocean762 numbers in the README are the measure); the
    # fusion keeps the GMM-UBM system's decisions
    assert np.all(np.isfinite([res["eer"], res["min_dcf_sre08"]]))
    if system == "fusion":
        assert res["accuracy"] >= 0.75
    lines = (out / "scores.tsv").read_text().splitlines()
    assert len(lines) == 1 + 8 * 4
    assert (out / "ivector_extractor.npz").is_file() and (out / "ivector_backend.npz").is_file()
    if system == "fusion":
        f = res["fusion"]
        assert f["systems"] == ["gmm-ubm", "ivector"] and len(f["weights"]) == 2
        assert min(f["weights"]) >= 0 and f["kept"][0] == "gmm-ubm"  # a system can only add
        assert f["n_trials"] > f["n_target_trials"] > 0
        assert set(res["components"]) == {"gmm-ubm", "ivector"}
        # the fused scores are the calibrated weighted sum of the two systems' scores
        from gmmspeech.speaker.pipeline import read_scores

        _ids, _l, models, fused = read_scores(out / "scores.tsv")
        assert np.all(np.isfinite(fused))


def test_speaker_id_extractors_serve_extract_ivectors(corpus, tmp_path, capsys):  # noqa: F811
    """The extractor files of speaker-id carry the run's feature configuration (the UBM's), so
    extract-ivectors computes the same features: with the classic protocol's 60-dim features,
    not the 72-dim speaker defaults. A file without it (older runs) gets the defaults and a
    clear dimension error, not a traceback."""
    from gmmspeech.backend.extractor import load_extractor, save_extractor
    from gmmspeech.mixture import io as mio

    out = tmp_path / "iv"
    assert _run(corpus, out, "ivector", "--protocol", "classic") == 1  # the corpus' bad file
    ubm_meta = mio.load(out / "ubm.npz").metadata_
    for name in ("ivector_extractor.npz", "ivector_extractor.1.npz", "ivector_extractor.2.npz"):
        meta = load_extractor(out / name).metadata_
        assert meta["feature_config"] == ubm_meta["feature_config"], name
        assert meta["feature_config_hash"] == ubm_meta["feature_config_hash"], name
    capsys.readouterr()
    args = ["extract-ivectors", "--manifest", str(corpus / "enroll.csv"), "--features-dir", str(tmp_path / "f"),
            "--quiet"]
    assert main(args + ["--extractor", str(out / "ivector_extractor.npz"), "--out", str(tmp_path / "en.npz")]) == 0
    vecs, info = mio.load_arrays(tmp_path / "en.npz", "ivectors")
    ext = load_extractor(out / "ivector_extractor.npz")
    assert vecs["vectors"].shape == (len(info["ids"]), ext.rank_) and np.all(np.isfinite(vecs["vectors"]))
    bare = tmp_path / "bare.npz"
    save_extractor(ext, bare, metadata={"role": "ivector-extractor"})
    capsys.readouterr()
    assert main(args + ["--extractor", str(bare), "--out", str(tmp_path / "en2.npz")]) == 2
    err = capsys.readouterr().err
    assert "dimensions differ" in err and "72-dim" in err and "Traceback" not in err


def test_ivector_ubm_and_pooled_enrolment_options(corpus, tmp_path):  # noqa: F811
    from gmmspeech.backend.extractor import load_extractor

    out = tmp_path / "iv"
    rc = _run(corpus, out, "ivector", "--ivector-ubm-components", "4", "--enroll-ivectors", "pooled")
    assert rc == 1  # the corpus' one bad file
    res = json.loads((out / "results.json").read_text())
    iv = res["settings"]["ivector"]
    assert iv["ubm_components"] == 4 and iv["enroll_ivectors"] == "pooled"
    assert load_extractor(out / "ivector_extractor.npz").ubm_.n_components == 4  # its own UBM
    assert res["n_speakers"] == 4 and np.isfinite(res["eer"])


def test_uncertainty_count_and_domain_options(corpus, tmp_path):  # noqa: F811
    out = tmp_path / "unc"
    assert _run(corpus, out, "ivector") == 1  # the corpus' one bad file
    iv = json.loads((out / "results.json").read_text())["settings"]["ivector"]
    assert iv["uncertainty"] is True and iv["enroll_count"] == "vectors" and iv["domain_norm"] == "none"
    out2 = tmp_path / "plain"
    assert _run(corpus, out2, "ivector", "--no-ivector-uncertainty", "--enroll-count", "recordings",
                "--ivector-domain-norm", "mean") == 1
    iv = json.loads((out2 / "results.json").read_text())["settings"]["ivector"]
    assert iv["uncertainty"] is False and iv["enroll_count"] == "recordings" and iv["domain_norm"] == "mean"
    a = (out / "scores.tsv").read_text()
    assert a != (out2 / "scores.tsv").read_text()


def test_ivector_options_are_validated(corpus, tmp_path, capsys):  # noqa: F811
    rc = _run(corpus, tmp_path / "x", "ivector", "--lda-dim", "abc")
    assert rc == 2 and "'abc' is not a number" in capsys.readouterr().err
    # the rank: auto or an integer >= 1, the error names the flag, before any work
    for v, msg in (("abc", "must be an integer >= 1 or auto, got 'abc'"), ("40.5", "must be an integer >= 1 or auto, got '40.5'"),
                   ("0", "must be >= 1, got 0")):
        assert _run(corpus, tmp_path / "r", "ivector", "--ivector-rank", v) == 2
        assert f"--ivector-rank {msg}" in capsys.readouterr().err
        assert not (tmp_path / "r").exists()
        assert main(["train-ivector", str(corpus / "bg.csv"), "--ubm", str(tmp_path / "none.npz"), "--out",
                     str(tmp_path / "e.npz"), "--rank", v, "--quiet"]) == 2
        assert f"--rank {msg}" in capsys.readouterr().err


def test_step_by_step_ivector_commands(corpus, tmp_path, capsys):  # noqa: F811
    ubm = tmp_path / "ubm.npz"
    feats = tmp_path / "feats"
    assert main(["train-ubm", str(corpus / "bg.csv"), "--out", str(ubm), "-k", "8", "--iterations", "3",
                 "--quiet"]) == 0
    ext = tmp_path / "ext.npz"
    ck = tmp_path / "tv.ckpt.npz"
    base = ["train-ivector", str(corpus / "bg.csv"), "--ubm", str(ubm), "--out", str(ext), "--rank", "4",
            "--features-dir", str(feats / "bg"), "--checkpoint", str(ck), "--quiet"]
    assert main(base + ["--iterations", "2"]) == 0
    assert main(base + ["--iterations", "4", "--resume"]) == 0
    # resuming reaches the matrix of an uninterrupted run
    ext2 = tmp_path / "ext2.npz"
    assert main(["train-ivector", str(corpus / "bg.csv"), "--ubm", str(ubm), "--out", str(ext2),
                 "--rank", "4", "--iterations", "4", "--features-dir", str(feats / "bg"), "--quiet"]) == 0
    from gmmspeech.backend import load_extractor

    np.testing.assert_array_equal(load_extractor(ext).T_, load_extractor(ext2).T_)
    capsys.readouterr()
    for role, man in (("bg", "bg.csv"), ("enroll", "enroll.csv"), ("test", "test.csv")):
        rc = main(["extract-ivectors", "--extractor", str(ext), "--manifest", str(corpus / man),
                   "--out", str(tmp_path / f"{role}.iv.npz"), "--features-dir", str(feats / role), "--quiet"])
        assert rc == (1 if role == "test" else 0)
    assert "broken" in capsys.readouterr().err
    for scoring in ("plda", "cosine"):
        be = tmp_path / f"be-{scoring}.npz"
        assert main(["train-backend", str(tmp_path / "bg.iv.npz"), "--out", str(be), "--scoring", scoring]) == 0
        scores = tmp_path / f"scores-{scoring}.tsv"
        assert main(["score-ivectors", "--backend-model", str(be), "--enroll", str(tmp_path / "enroll.iv.npz"),
                     "--test", str(tmp_path / "test.iv.npz"), "--out", str(scores)]) == 0
        assert main(["evaluate", str(scores), "--out", str(tmp_path / f"eval-{scoring}")]) == 0
        res = json.loads((tmp_path / f"eval-{scoring}" / "results.json").read_text())
        assert res["n_tests"] == 8 and res["n_speakers"] == len(F0)
    # the back-end file reproduces the in-memory back-end's scores
    from gmmspeech.backend.scoring import SpeakerBackend, load_backend
    from gmmspeech.mixture import io as mio

    bg, info = mio.load_arrays(tmp_path / "bg.iv.npz", "ivectors")
    be = SpeakerBackend().fit(bg["vectors"], info["labels"])
    en, einfo = mio.load_arrays(tmp_path / "enroll.iv.npz", "ivectors")
    te, _ = mio.load_arrays(tmp_path / "test.iv.npz", "ivectors")
    a = be.score_trials(en["vectors"], einfo["labels"], te["vectors"])[1]
    b = load_backend(tmp_path / "be-plda.npz").score_trials(en["vectors"], einfo["labels"], te["vectors"])[1]
    np.testing.assert_allclose(b, a, rtol=1e-10, atol=1e-10)
    # posterior covariances for the uncertainty-propagating score
    capsys.readouterr()
    for role, man in (("enroll", "enroll.csv"), ("test", "test.csv")):
        main(["extract-ivectors", "--extractor", str(ext), "--manifest", str(corpus / man), "--covariances",
              "--out", str(tmp_path / f"{role}.ivc.npz"), "--features-dir", str(feats / role), "--quiet"])
    enc, _ = mio.load_arrays(tmp_path / "enroll.ivc.npz", "ivectors")
    tec, _ = mio.load_arrays(tmp_path / "test.ivc.npz", "ivectors")
    np.testing.assert_allclose(enc["vectors"], en["vectors"], rtol=1e-10, atol=1e-12)
    assert tec["covariances"].shape == (8, 4, 4)
    np.testing.assert_allclose(tec["covariances"], np.swapaxes(tec["covariances"], 1, 2), atol=1e-12)
    assert np.all(np.linalg.eigvalsh(tec["covariances"]) > 0)
    unc = tmp_path / "scores-unc.tsv"
    assert main(["score-ivectors", "--backend-model", str(tmp_path / "be-plda.npz"), "--uncertainty",
                 "--enroll", str(tmp_path / "enroll.ivc.npz"), "--test", str(tmp_path / "test.ivc.npz"),
                 "--out", str(unc)]) == 0
    from gmmspeech.speaker.pipeline import read_scores

    _ids, _tl, models, got = read_scores(unc)
    m_lab, want = be.score_trials(enc["vectors"], einfo["labels"], tec["vectors"],
                                  enroll_covariances=enc["covariances"], test_covariances=tec["covariances"])
    pos = [m_lab.index(m) for m in models]
    np.testing.assert_allclose(got, want[:, pos], rtol=1e-5, atol=1e-5)
    assert not np.allclose(want, a, rtol=1e-3)
    capsys.readouterr()
    assert main(["score-ivectors", "--backend-model", str(tmp_path / "be-plda.npz"), "--uncertainty",
                 "--enroll", str(tmp_path / "enroll.iv.npz"), "--test", str(tmp_path / "test.ivc.npz"),
                 "--out", str(tmp_path / "x.tsv")]) == 2
    err = capsys.readouterr().err
    assert "enroll.iv.npz" in err and "no posterior covariances" in err
