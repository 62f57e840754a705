"""Score normalisation against explicit per-trial computations."""

from __future__ import annotations

import statistics

import numpy as np
import pytest

from gmmspeech.speaker import norm


@pytest.fixture
def mats():
    r = np.random.default_rng(3)
    return r.normal(size=(4, 3)), r.normal(size=(6, 3)), r.normal(size=(4, 5)), r.normal(size=(6, 5))


def test_znorm_tnorm_hand(mats):
    s, imp, coh, _ = mats
    z = norm.znorm(s, imp)
    t = norm.tnorm(s, coh)
    for i in range(4):
        for j in range(3):
            col = imp[:, j].tolist()
            assert z[i, j] == pytest.approx((s[i, j] - statistics.mean(col)) / statistics.stdev(col))
            row = coh[i].tolist()
            assert t[i, j] == pytest.approx((s[i, j] - statistics.mean(row)) / statistics.stdev(row))


def test_snorm_is_mean_and_adaptive(mats):
    s, imp, coh, _ = mats
    sn = norm.snorm(s, imp, coh, top_n=3)
    i, j = 1, 2
    ztop = sorted(imp[:, j].tolist())[-3:]
    ttop = sorted(coh[i].tolist())[-3:]
    ref = 0.5 * ((s[i, j] - statistics.mean(ztop)) / statistics.stdev(ztop)
                 + (s[i, j] - statistics.mean(ttop)) / statistics.stdev(ttop))
    assert sn[i, j] == pytest.approx(ref)


def test_ztnorm_hand(mats):
    s, imp, coh, cimp = mats
    out = norm.ztnorm(s, imp, coh, cimp)
    i, j = 2, 0
    zs = (s[i, j] - imp[:, j].mean()) / imp[:, j].std(ddof=1)
    zc = [(coh[i, c] - cimp[:, c].mean()) / cimp[:, c].std(ddof=1) for c in range(5)]
    assert out[i, j] == pytest.approx((zs - statistics.mean(zc)) / statistics.stdev(zc))


def test_errors(mats):
    s, imp, coh, _ = mats
    with pytest.raises(ValueError, match="impostor_scores has 2 model columns"):
        norm.znorm(s, imp[:, :2])
    with pytest.raises(ValueError, match="cohort_scores has 3 utterance rows"):
        norm.tnorm(s, coh[:3])
    with pytest.raises(ValueError, match="top_n"):
        norm.tnorm(s, coh, top_n=1)
    with pytest.raises(ValueError, match="NaN"):
        norm.tnorm(s * np.nan, coh)


# --------------------------------------------------------------------------- cohort exclusion
def test_tnorm_leave_one_out_hand_computed():
    """Enrolled models as their own cohort: the claimed model never normalises itself."""
    s = np.array([[3.0, 1.0, 0.0, -1.0],
                  [0.5, 2.5, 1.5, -0.5]])
    out = norm.tnorm(s, s, exclude_cohort=np.eye(4, dtype=bool))
    # test 0 claimed by model 0: cohort {1, 0, -1} -> mean 0, stdev 1 -> (3 - 0) / 1
    assert out[0, 0] == pytest.approx(3.0)
    # test 0 claimed by model 1: cohort {3, 0, -1} -> mean 2/3, stdev sqrt(13/3)
    assert out[0, 1] == pytest.approx((1.0 - 2 / 3) / np.sqrt(13 / 3))
    # test 1 claimed by model 3: cohort {0.5, 2.5, 1.5} -> mean 1.5, stdev 1
    assert out[1, 3] == pytest.approx(-2.0)
    for i in range(2):
        for j in range(4):
            row = [s[i, c] for c in range(4) if c != j]
            assert out[i, j] == pytest.approx((s[i, j] - statistics.mean(row)) / statistics.stdev(row))
    # without exclusion the target's own high score sits in its cohort
    assert norm.tnorm(s, s)[0, 0] < out[0, 0]


def test_same_label_mask_and_background_cohort_exclusion():
    """A background cohort sharing a speaker with a model leaves that speaker out."""
    r = np.random.default_rng(5)
    s = r.normal(size=(3, 2))
    coh = r.normal(size=(3, 4))
    model_labels, cohort_labels = ["a", "b"], ["x", "a", "y", "z"]
    ex = norm.same_label(model_labels, cohort_labels)
    assert ex.tolist() == [[False, True, False, False], [False, False, False, False]]
    out = norm.tnorm(s, coh, exclude_cohort=ex)
    for i in range(3):
        a_row = [coh[i, 0], coh[i, 2], coh[i, 3]]
        assert out[i, 0] == pytest.approx((s[i, 0] - statistics.mean(a_row)) / statistics.stdev(a_row))
        b_row = coh[i].tolist()
        assert out[i, 1] == pytest.approx((s[i, 1] - statistics.mean(b_row)) / statistics.stdev(b_row))


def test_znorm_excludes_the_models_own_impostor_utterances_and_adaptive():
    r = np.random.default_rng(6)
    s, imp = r.normal(size=(2, 3)), r.normal(size=(6, 3))
    imp_labels, model_labels = ["a", "a", "b", "c", "c", "d"], ["a", "b", "e"]
    ex = norm.same_label(imp_labels, model_labels)
    out = norm.znorm(s, imp, exclude_impostors=ex, top_n=3)
    for j, lab in enumerate(model_labels):
        col = sorted(imp[k, j] for k in range(6) if imp_labels[k] != lab)[-3:]
        for i in range(2):
            assert out[i, j] == pytest.approx((s[i, j] - statistics.mean(col)) / statistics.stdev(col))


def test_adaptive_tnorm_with_exclusion_and_snorm():
    r = np.random.default_rng(7)
    s = r.normal(size=(3, 4))
    imp = r.normal(size=(5, 4))
    ex = np.eye(4, dtype=bool)
    t = norm.tnorm(s, s, top_n=2, exclude_cohort=ex)
    sn = norm.snorm(s, imp, s, top_n=2, exclude_cohort=ex)
    for i in range(3):
        for j in range(4):
            top = sorted(s[i, c] for c in range(4) if c != j)[-2:]
            tref = (s[i, j] - statistics.mean(top)) / statistics.stdev(top)
            assert t[i, j] == pytest.approx(tref)
            ztop = sorted(imp[:, j].tolist())[-2:]
            zref = (s[i, j] - statistics.mean(ztop)) / statistics.stdev(ztop)
            assert sn[i, j] == pytest.approx(0.5 * (zref + tref))


def test_exclusion_errors():
    s = np.zeros((2, 2)) + np.arange(2)
    with pytest.raises(ValueError, match="exclude_cohort must have shape"):
        norm.tnorm(s, s, exclude_cohort=np.eye(3, dtype=bool))
    with pytest.raises(ValueError, match="at least 2"):
        norm.tnorm(s, s, exclude_cohort=np.eye(2, dtype=bool))  # one cohort model left


def test_pipeline_tnorm_never_uses_the_claimed_model():
    """normalise_scores: enrolled cohort is leave-one-out; background cohort by label."""
    from gmmspeech.speaker.pipeline import normalise_scores

    s = np.array([[3.0, 1.0, 0.0, -1.0]])
    out = normalise_scores(s, "tnorm", model_labels=list("abcd"), norm_cohort="enrolled")
    assert out[0, 0] == pytest.approx(3.0)
    coh = np.array([[9.0, 1.0, -1.0]])  # cohort model "a" is the claimed speaker of column 0
    out = normalise_scores(s, "tnorm", model_labels=list("abcd"), cohort_scores=coh,
                           cohort_labels=["a", "x", "y"], norm_cohort="background")
    assert out[0, 0] == pytest.approx(3.0 / np.sqrt(2.0))  # cohort {1, -1}
    assert out[0, 1] == pytest.approx((1.0 - 3.0) / np.std([9.0, 1.0, -1.0], ddof=1))
    both = normalise_scores(s, "tnorm", model_labels=list("abcd"), cohort_scores=coh,
                            cohort_labels=["a", "x", "y"], norm_cohort="both")
    row = [1.0, 0.0, -1.0, 1.0, -1.0]  # b, c, d and x, y (never a itself)
    assert both[0, 0] == pytest.approx((3.0 - statistics.mean(row)) / statistics.stdev(row))
    with pytest.raises(ValueError, match="needs cohort_scores"):
        normalise_scores(s, "tnorm", model_labels=list("abcd"), norm_cohort="background")
