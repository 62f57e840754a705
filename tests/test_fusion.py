"""Non-negative score fusion and the held-out check that drops a system which does not help.

References: the objective written out in numpy and minimised by scipy.optimize (SLSQP, a
different solver from the library's L-BFGS-B); scikit-learn's LogisticRegression where the
constraint is inactive or reduces the fusion to one system; hand-computed identification
accuracy; the pipeline's GMM-UBM scores when the fusion drops the i-vector system.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy.optimize import minimize
from scipy.special import expit

from gmmspeech.backend.calibration import (
    LogisticCalibration,
    ScoreFusion,
    _id_accuracy,
    fusion_check,
)


def _trials(seed, n=4000, p_target=0.25):
    rng = np.random.default_rng(seed)
    t = rng.random(n) < p_target
    y = np.where(t, 1.0, -1.0)
    good = 1.5 * y + rng.normal(size=n)
    return rng, t, y, good


def _reference_fit(X, t, prior, C):
    """The prior-weighted logistic objective written out (scikit-learn's, scaled features)
    and minimised with w >= 0 by SLSQP; returns (coef, intercept) in the original units."""
    scale = X.std(axis=0)
    Xs = X / scale
    y = np.where(t, 1.0, -1.0)
    sw = np.where(t, prior / t.sum(), (1 - prior) / (~t).sum()) * t.size

    def obj(theta):
        w, b = theta[:-1], theta[-1]
        m = y * (Xs @ w + b)
        return 0.5 * w @ w + C * np.sum(sw * np.logaddexp(0.0, -m))

    def grad(theta):
        w, b = theta[:-1], theta[-1]
        m = y * (Xs @ w + b)
        r = -C * sw * y * expit(-m)
        return np.concatenate([w + Xs.T @ r, [r.sum()]])

    d = X.shape[1]
    res = minimize(obj, np.zeros(d + 1), jac=grad, method="SLSQP",
                   bounds=[(0, None)] * d + [(None, None)], options={"ftol": 1e-14, "maxiter": 1000})
    logit = np.log(prior) - np.log1p(-prior)
    return res.x[:-1] / scale, res.x[-1] - logit


@pytest.mark.parametrize("prior", [0.5, 0.1])
def test_nonnegative_fusion_matches_scipy_on_the_same_objective(prior):
    rng, t, y, good = _trials(1)
    # a second system that is informative but anti-correlated with the first one's errors:
    # the unconstrained fusion gives it a negative weight
    noise = good - 1.5 * y
    bad = 0.3 * y - 0.9 * noise + 0.5 * rng.normal(size=t.size)
    X = np.stack([good, bad, rng.normal(size=t.size)], axis=1)
    free = ScoreFusion(prior=prior, C=10.0, non_negative=False).fit(X, t)
    assert free.coef_.min() < 0  # the constraint matters here
    fu = ScoreFusion(prior=prior, C=10.0).fit(X, t)
    ref_w, ref_b = _reference_fit(X, t, prior, 10.0)
    assert np.all(fu.coef_ >= 0)
    np.testing.assert_allclose(fu.coef_, ref_w, rtol=1e-3, atol=1e-4)
    assert fu.intercept_ == pytest.approx(ref_b, abs=1e-3)


def test_nonnegative_fusion_on_the_bound_is_the_other_system_calibrated():
    rng, t, y, good = _trials(2)
    harmful = -0.8 * y + rng.normal(size=t.size)  # higher score = non-target
    fu = ScoreFusion().fit(np.stack([good, harmful], 1), t)
    assert fu.coef_[1] == 0.0
    cal = LogisticCalibration().fit(good, t)  # scikit-learn's LogisticRegression, one column
    assert fu.coef_[0] == pytest.approx(cal.coef_[0], rel=1e-4)
    assert fu.intercept_ == pytest.approx(cal.intercept_, abs=1e-4)


def test_nonnegative_fusion_equals_logistic_regression_when_the_constraint_is_inactive():
    rng, t, y, good = _trials(3)
    other = 0.8 * y + rng.normal(size=t.size)  # independent, informative
    X = np.stack([good, other], 1)
    fu = ScoreFusion(prior=0.3).fit(X, t)
    free = ScoreFusion(prior=0.3, non_negative=False).fit(X, t)  # scikit-learn's solver
    assert free.coef_.min() > 0
    np.testing.assert_allclose(fu.coef_, free.coef_, rtol=1e-4)
    assert fu.intercept_ == pytest.approx(free.intercept_, abs=1e-4)
    # non-negativity is a parameter: LogisticCalibration keeps scikit-learn's free fit by default
    assert LogisticCalibration().get_params()["non_negative"] is False
    assert ScoreFusion().get_params()["non_negative"] is True


def test_id_accuracy_by_hand():
    # three tests x two models; test 0's best is its target, test 1's best is not, test 2 has no target
    s = np.array([3.0, 1.0, 0.5, 2.0, 4.0, 4.5])
    t = np.array([True, False, True, False, False, False])
    tests = np.array([0, 0, 1, 1, 2, 2])
    assert _id_accuracy(s, t, tests) == 0.5


def test_fusion_check_drops_a_system_that_does_not_help_and_keeps_one_that_does():
    rng, t, y, good = _trials(4, n=3000)
    groups = np.arange(t.size) % 10
    tests = np.arange(t.size) // 3
    useless = rng.normal(size=t.size)
    chk = fusion_check(np.stack([good, useless], 1), t, groups, tests=tests)
    assert not chk["keep"]
    assert chk["cllr"]["fusion"] >= 0.98 * chk["cllr"]["base"]
    helpful = 1.2 * y + rng.normal(size=t.size)
    chk = fusion_check(np.stack([good, helpful], 1), t, groups, tests=tests)
    assert chk["keep"] and chk["cllr"]["fusion"] < 0.8 * chk["cllr"]["base"]
    assert chk["eer"]["fusion"] < chk["eer"]["base"]
    # the held-out LLRs are those of fusions trained without the held-out group: by hand
    # for one group
    from sklearn.model_selection import GroupKFold

    tr, te = next(GroupKFold(n_splits=5).split(good, t, groups))
    X = np.stack([good, helpful], 1)
    llr = ScoreFusion().fit(X[tr], t[tr]).transform(X[te])
    assert np.all(np.isfinite(llr))
    with pytest.raises(ValueError, match="at least 2 groups"):
        fusion_check(X, t, np.zeros(t.size))


_SMALL = dict(n_components=8, max_iter=4, relevance_factor=4.0, score_mode="exact", top_c=None,
              progress=False, verbose=False)


def test_fusion_that_drops_the_ivector_system_gives_exactly_the_gmm_ubm_scores(corpus, tmp_path):  # noqa: F811
    from gmmspeech.speaker.pipeline import run_speaker_id

    kw = dict(_SMALL, features_dir=tmp_path / "feats")
    args = (corpus / "bg.csv", corpus / "enroll.csv", corpus / "test.csv")
    gmm = run_speaker_id(*args, tmp_path / "gmm", **kw)
    # a held-out Cllr gain of 100 % is impossible: the check must drop the i-vector system
    fus = run_speaker_id(*args, tmp_path / "fus", system="fusion", **kw,
                         ivector_options={"n_iter": 3, "fusion_min_gain": 1.0})
    f = fus["fusion"]
    assert f["kept"] == ["gmm-ubm"] and f["weights"] == [1.0, 0.0]
    assert f["n_trials"] > f["n_target_trials"] > 0 and "trained_on" in f
    _assert_same_as_gmm_ubm(tmp_path, gmm, fus)


def test_fusion_with_single_recording_speakers_is_the_gmm_ubm_system(corpus, tmp_path):  # noqa: F811
    """Every enrolled speaker's enrolment is two segments of ONE file: no held-out test can
    come from another recording, so there are no held-out trials and the output is exactly
    the GMM-UBM system's."""
    from gmmspeech.speaker.pipeline import run_speaker_id

    lines = ["id,path,label,start,end"]
    for line in (corpus / "enroll.csv").read_text().splitlines()[1:]:
        utt, path, label = line.split(",")[:3]
        if utt.endswith("_e0"):
            lines += [f"{utt}a,{corpus / path},{label},0.0,0.6", f"{utt}b,{corpus / path},{label},0.6,1.2"]
    enroll = tmp_path / "enroll_one_file.csv"
    enroll.write_text("\n".join(lines) + "\n")
    kw = dict(_SMALL, features_dir=tmp_path / "feats")
    args = (corpus / "bg.csv", enroll, corpus / "test.csv")
    gmm = run_speaker_id(*args, tmp_path / "gmm", **kw)
    fus = run_speaker_id(*args, tmp_path / "fus", system="fusion", **kw, ivector_options={"n_iter": 3})
    f = fus["fusion"]
    assert f["kept"] == ["gmm-ubm"] and f["weights"] == [1.0, 0.0] and f["n_trials"] == 0
    assert "a recording its model was not enrolled from" in f["reason"]
    _assert_same_as_gmm_ubm(tmp_path, gmm, fus)


def _assert_same_as_gmm_ubm(tmp_path, gmm, fus):
    from gmmspeech.speaker.pipeline import read_scores

    _i, _l, m_g, s_g = read_scores(tmp_path / "gmm" / "scores.tsv")
    _i, _l, m_f, s_f = read_scores(tmp_path / "fus" / "scores.tsv")
    assert m_g == m_f
    np.testing.assert_array_equal(s_f, s_g)
    for key in ("accuracy", "eer", "min_dcf_sre08", "min_dcf_sre10"):
        assert fus[key] == gmm[key]
    assert fus["components"]["gmm-ubm"]["eer"] == gmm["eer"]
    saved = json.loads((tmp_path / "fus" / "results.json").read_text())
    assert saved["system"] == "fusion" and saved["fusion"]["kept"] == ["gmm-ubm"]


from test_cli_speaker import corpus  # noqa: E402,F401  (the module-scoped corpus fixture)


# --------------------------------------------------------------------------- the check's rule
def test_fusion_check_rule_on_hand_computable_trials():
    """System 0 says nothing (the same scores, +1 and -1 alternating, for targets and
    non-targets): calibrated, its LLR is 0 and its Cllr exactly 1 bit. A second system that
    separates the trials perfectly must be kept (Cllr -> 0); a second system that is a copy
    of system 0 must be rejected (the fusion's Cllr is the same 1 bit: no 2 % gain)."""
    n = 400
    t = np.zeros(n, bool)
    t[::4] = True  # 100 targets, 300 non-targets
    base = np.where((np.arange(n) // 4) % 2 == 0, 1.0, -1.0)  # +1 and -1 in both classes, equally
    assert base[t].mean() == 0 and base[~t].mean() == 0
    groups = np.arange(n) % 5
    tests = np.arange(n) // 4  # each test: one target trial, three non-target trials
    separating = np.where(t, 1.0, -1.0)
    keep = fusion_check(np.stack([base, separating], 1), t, groups, tests=tests)
    assert keep["cllr"]["base"] == pytest.approx(1.0, abs=1e-6)
    assert keep["accuracy"]["fusion"] == 1.0
    assert keep["cllr"]["fusion"] < 0.01 and keep["keep"]
    reject = fusion_check(np.stack([base, base], 1), t, groups, tests=tests)
    assert reject["cllr"]["base"] == pytest.approx(1.0, abs=1e-6)
    assert reject["cllr"]["fusion"] == pytest.approx(1.0, abs=1e-6)
    assert not reject["keep"]


class _Store:
    def __init__(self, frames):
        self.frames = frames

    def load(self, utt_id):
        return self.frames[utt_id]


def _row(i, path, label):
    from types import SimpleNamespace

    return SimpleNamespace(id=i, path=path, label=label)


def test_heldout_trials_never_test_on_a_recording_their_model_enrols_from():
    """Speaker a: four recordings -> the first two (by id) enrol, the other two test (with
    ``split="alternate"``: the first and third enrol, the second and fourth test). Speaker
    b: two rows that are segments of ONE file -> one recording -> no held-out trials (its
    test would come from the recording it enrols from), unless ``same_recording``: then its
    first row's first 60 % of frames enrol and the rest is cut into segments."""
    from gmmspeech.speaker.pipeline import _pseudo_protocol

    frames = {f"a{j}": np.full((50, 2), j, float) for j in range(4)}
    frames |= {"b0": np.arange(120.0)[:, None].repeat(2, 1), "b1": np.ones((40, 2))}
    rows = [_row("a3", "a3.wav", "a"), _row("b1", "b.flac", "b"), _row("a0", "a0.wav", "a"),
            _row("a2", "a2.wav", "a"), _row("b0", "b.flac", "b"), _row("a1", "a1.wav", "a")]
    enr, tst = _pseudo_protocol(_Store(frames), rows, segment_frames=30)
    assert [(lab, rows[i].id, whole) for lab, _x, i, whole in enr] == [("a", "a0", True), ("a", "a1", True)]
    assert [(lab, rows[i].id, whole) for lab, _x, i, whole in tst] == [("a", "a2", True), ("a", "a3", True)]
    np.testing.assert_array_equal(tst[0][1], frames["a2"])
    enr, tst = _pseudo_protocol(_Store(frames), rows, segment_frames=30, split="alternate")
    assert [rows[i].id for _l, _x, i, _w in enr] == ["a0", "a2"]
    assert [rows[i].id for _l, _x, i, _w in tst] == ["a1", "a3"]
    with pytest.raises(ValueError, match="fusion_split='thirds'"):
        _pseudo_protocol(_Store(frames), rows, split="thirds")
    enr, tst = _pseudo_protocol(_Store(frames), rows, segment_frames=30, same_recording=True)
    b_enr = [it for it in enr if it[0] == "b"]
    b_tst = [it for it in tst if it[0] == "b"]
    assert len(b_enr) == 1 and rows[b_enr[0][2]].id == "b0" and not b_enr[0][3]
    np.testing.assert_array_equal(b_enr[0][1], frames["b0"][:72])
    # 48 frames left: a 30-frame test and the last 18 (at least half a segment)
    assert [len(it[1]) for it in b_tst] == [30, 18]
    np.testing.assert_array_equal(b_tst[0][1], frames["b0"][72:102])


# ----------------------------------------------------------------------------- degenerate scores
def _offset_trials(offset, n=20000, seed=3):
    """Equal-variance Gaussian scores: targets N(offset + 1, 1), non-targets N(offset, 1). The
    true LLR is ``s - offset - 0.5`` (slope 1, zero at the midpoint)."""
    rng = np.random.default_rng(seed)
    t = np.arange(n) % 2 == 0
    return offset + t + rng.normal(size=n), t


@pytest.mark.parametrize("est", [LogisticCalibration(), LogisticCalibration(non_negative=True)])
def test_calibration_of_scores_with_a_large_offset_finds_the_closed_form_llr(est):
    # scores 1e8 +- 1: the solve on uncentred (only scaled) scores stopped at slope ~1e-16
    s, t = _offset_trials(1e8)
    est.fit(s, t)
    assert est.coef_[0] == pytest.approx(1.0, abs=0.05)
    assert est.transform(np.array([1e8 + 0.5]))[0] == pytest.approx(0.0, abs=0.05)
    assert est.transform(np.array([1e8 + 2.5]))[0] == pytest.approx(2.0, abs=0.15)


def test_calibration_of_huge_but_finite_scores_is_finite_and_informative():
    # +-1e300: the standard deviation overflowed (inf scale, slope 0, Cllr 1) with a warning
    import warnings

    from gmmspeech.backend.calibration import _standardise, cllr

    s, t = _offset_trials(0.0)
    x = np.where(t, 1e300, -1e300) * (1.0 - 0.05 * np.minimum(np.abs(s), 1.0))
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        llr = LogisticCalibration().fit(x, t).transform(x)
        # at 1.7e308 (scikit-learn's own finiteness check then warns on its sum), centring
        # before scaling overflowed X - centre: the standardisation alone stays finite
        few = np.arange(t.size) % 10 == 0  # 10 % at +1.7e308, the rest near -1.7e308: centre -1.4e308
        z, centre, scale = _standardise(np.where(few, 1.7e308, -1.7e308 * (1.0 - 0.01 * np.abs(s) / 5))[:, None])
    assert np.all(np.isfinite(llr))
    assert cllr(llr, t) < 0.01
    assert np.all(np.isfinite(z)) and np.isfinite(centre).all() and np.isfinite(scale).all()
    np.testing.assert_allclose([z.mean(), z.std()], [0.0, 1.0], atol=1e-9)


def test_calibration_of_constant_huge_scores_is_the_prior_only():
    # constant 1e300: dividing by the 1e-12 floor of the spread overflowed to inf
    # ("Input X contains infinity"); constant scores carry no evidence: llr = 0 at any prior
    t = np.arange(40) % 4 == 0
    for prior in (0.5, 0.1):
        cal = LogisticCalibration(prior=prior).fit(np.full(40, 1e300), t)
        np.testing.assert_allclose(cal.transform(np.array([1e300, 0.0])), 0.0, atol=1e-9)


def test_cllr_rejects_nan_and_mismatched_labels():
    from gmmspeech.backend.calibration import cllr

    with pytest.raises(ValueError, match="NaN"):
        cllr([np.nan, 1.0, -1.0], [True, False, False])
    with pytest.raises(ValueError, match="shape"):
        cllr([0.5, 1.0, -1.0], [True, False])
    # +-inf are legitimate LLRs (certainty): right side costs 0, wrong side inf
    assert cllr([np.inf, -np.inf], [True, False]) == 0.0
