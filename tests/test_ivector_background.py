"""The i-vector system's extra background (``speaker-id --ivector-background``) and
speed-perturbed background speakers (``--ivector-speed-perturb``): what goes into the TV
matrix and into the back-end, checked against the extractor and back-end fitted directly on
the data that should reach them; and the command end to end on a tiny synthetic corpus."""

from __future__ import annotations

import csv
import json
import warnings
from types import SimpleNamespace

import numpy as np
import pytest
from conftest import speechlike
from test_cli_speaker import corpus  # noqa: F401  (the module-scoped corpus fixture)

from gmmspeech.cli import main


def _rows(prefix, n_spk, n_rec):
    return [SimpleNamespace(id=f"{prefix}{s}_{r}", label=f"{prefix}{s}") for s in range(n_spk) for r in range(n_rec)]


def _frames(rng, rows, shift):
    # speaker-dependent offsets, so the labels mean something
    out = []
    for r in rows:
        spk = sum(map(ord, r.label)) % 7
        out.append(rng.normal(size=(120, 3)) + 0.4 * spk + shift)
    return out


@pytest.fixture(scope="module")
def toy():
    from gmmspeech import GMM

    rng = np.random.default_rng(0)
    rows = {"background": _rows("b", 3, 3), "enroll": _rows("e", 2, 2), "test": _rows("e", 2, 1)}
    rows["test"] = [SimpleNamespace(id=f"t{r.id}", label=r.label) for r in rows["test"]]
    stores = {role: _frames(rng, rs, 0.0) for role, rs in rows.items()}
    x_rows = _rows("x", 4, 2)
    x_frames = _frames(rng, x_rows, 0.3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a 4-component toy UBM; its convergence is not the point
        ubm = GMM(4, covariance_type="diag", random_state=0, max_iter=20).fit(np.concatenate(stores["background"]))
    return rows, stores, x_rows, x_frames, ubm


def _front(toy, out, opts, extra):
    from gmmspeech.speaker.pipeline import _ivector_front, ivector_settings

    rows, stores, _xr, _xf, ubm = toy
    return _ivector_front(ubm, stores, rows, str(out), ivector_settings(opts), 0,
                          dict(n_jobs=1, backend=None, scheduler=None), False, lambda m: None, extra=extra)


def _front_with_extra(toy, out, opts):
    """The toy front with its extra background (4 speakers, in the TV data) and what a
    back-end fitted directly needs: ``(front, X, y, pooled_stats, pooled_ivectors)`` with
    ``X``, ``y`` all labelled i-vectors (background, extra, enrolment) and the pooled
    enrolment statistics' ids and i-vectors (the speaker models)."""
    _rows_, _stores, x_rows, x_frames, _ubm = toy
    extra = [{"store": x_frames, "ids": [r.id for r in x_rows], "labels": [f"extra1:{r.label}" for r in x_rows],
              "tv": True}]
    front = _front(toy, out, opts, extra)
    iv, lab = front["ivectors"], front["labels"]
    X = np.concatenate([iv["background"], iv["extra"], iv["enroll"]])
    y = lab["background"] + lab["extra"] + lab["enroll"]
    pooled = front["stats"]["enroll"].pooled(lab["enroll"])
    return front, X, y, pooled, front["extractor"].transform(pooled)


def _pipeline_and_direct(front, X, y, pooled, X_m, opts, **backend):
    """For the i-vectors of :func:`_front_with_extra`: the pipeline's back-end result for
    ``opts`` and, as its reference, the scores of a ``SpeakerBackend(**backend)`` fitted
    directly on the labelled ``X``, ``y`` with the run's own background + enrolment
    i-vectors as its domain (the pooled enrolment models against the tests)."""
    from gmmspeech.backend.scoring import SpeakerBackend
    from gmmspeech.speaker import pipeline

    res = pipeline._ivector_backend_scores(front, None, pipeline.ivector_settings(opts), lambda m: None)
    iv = front["ivectors"]
    be = SpeakerBackend(**backend).fit(X, y, domain=np.concatenate([iv["background"], iv["enroll"]]))
    return res, be.score_trials(X_m, list(pooled.ids), iv["test"])[1]


@pytest.mark.parametrize("extra_tv", [True, False])
def test_extra_background_reaches_the_tv_matrix_and_the_backend(toy, tmp_path, extra_tv):
    from gmmspeech.backend.extractor import IVectorExtractor
    from gmmspeech.backend.scoring import SpeakerBackend
    from gmmspeech.backend.stats import BaumWelchStats, utterance_stats
    from gmmspeech.speaker import pipeline

    rows, stores, x_rows, x_frames, ubm = toy
    extra = [{"store": x_frames, "ids": [r.id for r in x_rows], "labels": [f"extra1:{r.label}" for r in x_rows],
              "tv": extra_tv}]
    opts = {"rank": 3, "n_iter": 3, "extra_background_tv": extra_tv}
    front = _front(toy, tmp_path, opts, extra)

    def stats(role):
        return utterance_stats(ubm, stores[role], ids=[r.id for r in rows[role]])

    s_x = utterance_stats(ubm, x_frames, ids=[r.id for r in x_rows])
    parts = [stats("background"), stats("enroll")] + ([s_x] if extra_tv else [])
    ref = IVectorExtractor(rank=3, n_iter=3, ubm=ubm, random_state=0).fit(BaumWelchStats.concat(parts))
    np.testing.assert_allclose(front["extractor"].T_, ref.T_, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(front["ivectors"]["extra"], ref.transform(s_x), rtol=1e-8, atol=1e-10)
    assert front["labels"]["extra"] == [f"extra1:{r.label}" for r in x_rows]
    # without the extra background in the TV data, the matrix is the one of no extra data
    plain = _front(toy, tmp_path, {"rank": 3, "n_iter": 3}, None)
    same_tv = np.allclose(front["extractor"].T_, plain["extractor"].T_, rtol=1e-10, atol=1e-12)
    assert same_tv is (not extra_tv)

    # the back-end: background + extra background + enrolment recordings, each with its class
    res = pipeline._ivector_backend_scores(front, None, pipeline.ivector_settings(opts), lambda m: None)
    iv, lab = front["ivectors"], front["labels"]
    X = np.concatenate([iv["background"], iv["extra"], iv["enroll"]])
    y = lab["background"] + lab["extra"] + lab["enroll"]
    assert len(set(y)) == 3 + 4 + 2
    be = SpeakerBackend().fit(X, y)
    pooled = front["stats"]["enroll"].pooled(lab["enroll"])
    X_m, C_m = front["extractor"].posterior(pooled)  # the default back-end propagates the uncertainty
    X_t, C_t = front["extractor"].posterior(front["stats"]["test"])
    m_lab, ref_scores = be.score_trials(X_m, list(pooled.ids), X_t, enroll_covariances=C_m, test_covariances=C_t)
    assert res["model_labels"] == m_lab
    np.testing.assert_allclose(res["scores"], ref_scores, rtol=1e-8, atol=1e-10)


def test_extra_background_classes_and_speed_copies(corpus, tmp_path):  # noqa: F811
    from gmmspeech.corpus.manifest import read_manifest
    from gmmspeech.features.extract import extract
    from gmmspeech.speaker.pipeline import (
        extra_background,
        ivector_settings,
        speaker_feature_config,
    )

    cfg = speaker_feature_config()
    bg = read_manifest(corpus / "bg.csv")
    opts = ivector_settings({"speed_perturb": (0.9, 1.1)})
    extra, bad = extra_background([("extra1", bg[:4], str(tmp_path / "x"), True),
                                   ("", bg[4:6], str(tmp_path / "b"), False)], config=cfg, opts=opts)
    assert not bad
    labels = [lab for e in extra for lab in e["labels"]]
    # the extra source as it is, then its two speeds; the own background: only its speeds
    assert [e["tv"] for e in extra] == [True, False, False, False, False]
    assert labels[:4] == [f"extra1:{r.label}" for r in bg[:4]]
    assert labels[4:8] == [f"extra1:{r.label}@speed0.9" for r in bg[:4]]
    assert labels[12:14] == [f"{r.label}@speed0.9" for r in bg[4:6]]
    assert labels[14:] == [f"{r.label}@speed1.1" for r in bg[4:6]]
    # the speed copies' features are the file's features at that speed (extracted directly)
    want = extract(bg[0].path, config=cfg.replace(speed=0.9))
    got = np.asarray(extra[1]["store"].load(bg[0].id))
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-4)
    n1 = np.asarray(extra[0]["store"].load(bg[0].id)).shape[0]
    assert abs(got.shape[0] - n1 / 0.9) <= 2  # 0.9 x speed: 1/0.9 times the frames
    with pytest.raises(ValueError, match="speed 1.0"):
        extra_background([("", bg[:1], str(tmp_path / "c"), False)], config=cfg,
                         opts=ivector_settings({"speed_perturb": (1.0,)}))


def _write_manifest(path, rows):
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["id", "path", "label"])
        w.writerows(rows)


def _speaker_id(corpus, out, *extra):  # noqa: F811
    return main(["speaker-id", "--background", str(corpus / "bg.csv"), "--enroll", str(corpus / "enroll.csv"),
                 "--test", str(corpus / "test.csv"), "--out", str(out), "--components", "8",
                 "--iterations", "4", "--relevance", "4", "--mode", "exact", "--system", "ivector",
                 "--ivector-iterations", "3", "--ivector-rank", "4", "--features-dir", str(out.parent / "feats"),
                 "--quiet", *extra])


def test_speaker_id_with_ivector_background_and_speed_perturbation(corpus, tmp_path, capsys):  # noqa: F811
    import soundfile as sf

    other = tmp_path / "other"
    other.mkdir()
    rows = []
    for s, f0 in enumerate((100.0, 140.0, 190.0)):
        for j in range(2):
            y = speechlike(seconds=1.0, f0=f0, seed=500 + 10 * s + j)
            sf.write(other / f"o{s}_{j}.wav", y, 16000)
            rows.append((f"o{s}_{j}", f"o{s}_{j}.wav", f"spk{s}"))
    _write_manifest(other / "other.csv", rows)
    out = tmp_path / "run"
    rc = _speaker_id(corpus, out, "--ivector-background", str(other / "other.csv"),
                     "--ivector-speed-perturb", "0.9", "1.1")
    err = capsys.readouterr().err
    assert rc == 1 and "broken.wav" in err  # the corpus' one bad test file
    res = json.loads((out / "results.json").read_text())
    assert res["settings"]["ivector_background"] == [str(other / "other.csv")]
    assert res["settings"]["ivector"]["speed_perturb"] == [0.9, 1.1]
    assert res["n_speakers"] == 4 and np.isfinite(res["eer"])
    # 5 background + 3 extra speakers, each also at two speeds, + the 4 enrolled ones
    assert "on 56 i-vectors of 28 speakers (background + extra background + enrolment)" in err
    # a test file in the extra background is refused before any training
    leak = tmp_path / "leak.csv"
    _write_manifest(leak, [("x", str(corpus / "ann_t0.wav"), "zed")])
    rc = _speaker_id(corpus, tmp_path / "run2", "--ivector-background", str(leak))
    err = capsys.readouterr().err
    assert rc == 2 and "leak.csv" in err and "ann_t0.wav" in err and "test manifest" in err
    assert not (tmp_path / "run2" / "ubm.npz").exists()


def test_enrolled_speakers_get_no_speed_perturbed_copies():
    from gmmspeech.speaker.pipeline import _not_enrolled

    bg = _rows("s", 3, 2)  # speakers s0, s1, s2
    enr = [SimpleNamespace(id="e", label="s1")]
    # s1 at another speed would be a class apart from the enrolled s1: no copy of it
    assert [r.id for r in _not_enrolled(bg, enr)] == ["s0_0", "s0_1", "s2_0", "s2_1"]
    assert _not_enrolled(bg, bg) == []  # FSDD: the background speakers are the enrolled ones
