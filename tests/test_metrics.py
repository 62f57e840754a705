"""Metrics against hand cases and scikit-learn's ROC computations."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import confusion_matrix as sk_confusion_matrix
from sklearn.metrics import roc_curve

from gmmspeech import metrics


def _sk_rates(tar, non):
    y = np.r_[np.ones(len(tar)), np.zeros(len(non))]
    s = np.r_[tar, non]
    fpr, tpr, thr = roc_curve(y, s, drop_intermediate=False)
    return fpr, 1.0 - tpr


def _sk_eer_interp(tar, non):
    fpr, fnr = _sk_rates(tar, non)  # fpr increasing
    d = fnr - fpr
    j = np.flatnonzero(d <= 0)[0]
    if d[j] == 0:
        return fpr[j]
    i = j - 1
    t = d[i] / (d[i] - d[j])
    return fpr[i] + t * (fpr[j] - fpr[i])


def _sk_min_dcf(tar, non, pt, cm, cf):
    fpr, fnr = _sk_rates(tar, non)
    # roc_curve's first point is (fpr 0, fnr 1): reject all; its last point accepts all
    dcf = cm * pt * fnr + cf * (1 - pt) * fpr
    return dcf.min() / min(cm * pt, cf * (1 - pt))


def test_hand_cases_eer():
    assert metrics.eer([2.0, 3.0], [0.0, 1.0]) == 0.0
    assert metrics.eer([2.0, 3.0], [0.0, 1.0], method="interp") == 0.0
    # one target below one non-target out of 2 + 2: rates cross at 0.5 on the hull
    tar, non = [1.0, 3.0], [0.0, 2.0]
    # operating points (p_fa, p_miss): (1,0) (0.5,0) (0.5,0.5) (0,0.5) (0,1)
    assert metrics.eer(tar, non, method="interp") == pytest.approx(0.5)
    # hull: (0,1) -> (0,0.5) -> (0.5,0) -> (1,0): crossing at 0.25
    assert metrics.eer(tar, non) == pytest.approx(0.25)
    # completely inverted system: hull EER 0.5
    assert metrics.eer([0.0], [1.0]) == pytest.approx(0.5)


def test_rocch_vertices_hand_case():
    x, y = metrics.rocch([1.0, 3.0], [0.0, 2.0])
    np.testing.assert_allclose(np.c_[x, y], [[0, 1], [0, 0.5], [0.5, 0], [1, 0]])


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_eer_and_min_dcf_match_sklearn(seed):
    r = np.random.default_rng(seed)
    tar = r.normal(2.0, 1.0, 300)
    non = r.normal(0.0, 1.2, 3000)
    if seed == 2:  # ties
        tar, non = np.round(tar, 1), np.round(non, 1)
    assert metrics.eer(tar, non, method="interp") == pytest.approx(_sk_eer_interp(tar, non), abs=1e-12)
    e_hull = metrics.eer(tar, non)
    assert e_hull <= metrics.eer(tar, non, method="interp") + 1e-12
    assert abs(e_hull - _sk_eer_interp(tar, non)) < 0.02
    for st in (metrics.SRE08, metrics.SRE10):
        ref = _sk_min_dcf(tar, non, st.p_target, st.c_miss, st.c_fa)
        assert metrics.min_dcf(tar, non, setting=st) == pytest.approx(ref, rel=1e-12)


def test_min_dcf_hand_case_and_settings():
    # perfectly separated: cost 0; inverted: the trivial system's cost, normalised 1
    assert metrics.min_dcf([5.0], [0.0]) == 0.0
    assert metrics.min_dcf([0.0], [5.0]) == pytest.approx(1.0)
    assert metrics.min_dcf([0.0], [5.0], setting="sre10") == pytest.approx(1.0)
    # 1 target, 2 non-targets; threshold just above the target misses it
    tar, non = [1.0], [0.0, 2.0]
    # accept all: pfa 1 -> 0.99 ; t=1: pmiss 0, pfa .5 -> .495 ; t=2: pmiss 1, pfa .5 ; reject: .1
    v, thr = metrics.min_dcf(tar, non, setting=metrics.SRE08, normalize=False, return_threshold=True)
    assert v == pytest.approx(0.1) and thr == np.inf
    assert metrics.SRE08.p_target == 0.01 and metrics.SRE08.c_miss == 10
    assert metrics.SRE10.p_target == 0.001 and metrics.SRE10.c_miss == 1


def test_det_curve_endpoints():
    p_fa, p_miss, thr = metrics.det_curve([1.0, 2.0], [0.0, 1.5])
    assert p_fa[0] == 1.0 and p_miss[0] == 0.0
    assert p_fa[-1] == 0.0 and p_miss[-1] == 1.0
    assert np.all(np.diff(p_fa) <= 0) and np.all(np.diff(p_miss) >= 0)


def test_identification_and_confusion():
    y = ["a", "b", "b", "c"]
    p = ["a", "b", "c", "c"]
    assert metrics.accuracy(y, p) == 0.75
    np.testing.assert_array_equal(metrics.confusion_matrix(y, p), sk_confusion_matrix(y, p))
    s = np.array([[1.0, 0.0], [0.0, 1.0], [2.0, 1.0]])
    assert metrics.identification_accuracy(s, [0, 1, 1]) == pytest.approx(2 / 3)


def test_evaluate_scores_summary():
    s = np.array([[3.0, 0.0, 0.1], [0.0, 2.0, 0.5], [1.0, 0.2, 0.3]])
    out = metrics.evaluate_scores(s, ["a", "b", "c"], ["a", "b", "c"])
    assert out["accuracy"] == pytest.approx(2 / 3)
    assert out["n_target"] == 3 and out["n_nontarget"] == 6
    tar, non = np.diag(s), s[~np.eye(3, dtype=bool)]
    assert out["eer"] == pytest.approx(metrics.eer(tar, non))


def test_bad_input_messages():
    with pytest.raises(ValueError, match="targets is empty"):
        metrics.eer([], [1.0])
    with pytest.raises(ValueError, match="NaN"):
        metrics.eer([np.nan], [1.0])
    with pytest.raises(ValueError, match="method="):
        metrics.eer([1.0], [0.0], method="x")
    with pytest.raises(ValueError, match="shape"):
        metrics.evaluate_scores(np.zeros((2, 2)), ["a"], ["a", "b"])
