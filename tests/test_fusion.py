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


def test_fusion_that_drops_the_ivector_system_gives_exactly_the_gmm_ubm_scores(corpus, tmp_path):  # noqa: F811
    from gmmspeech.speaker.pipeline import read_scores, run_speaker_id

    kw = dict(n_components=8, max_iter=4, relevance_factor=4.0, score_mode="exact", top_c=None,
              features_dir=tmp_path / "feats", progress=False, verbose=False)
    args = (corpus / "bg.csv", corpus / "enroll.csv", corpus / "test.csv")
    gmm = run_speaker_id(*args, tmp_path / "gmm", **kw)
    # a held-out Cllr gain of 100 % is impossible: the check must drop the i-vector system
    fus = run_speaker_id(*args, tmp_path / "fus", system="fusion", **kw,
                         ivector_options={"n_iter": 3, "fusion_min_gain": 1.0})
    f = fus["fusion"]
    assert f["kept"] == ["gmm-ubm"] and f["weights"] == [1.0, 0.0]
    assert f["n_trials"] > f["n_target_trials"] > 0 and "trained_on" in f
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
