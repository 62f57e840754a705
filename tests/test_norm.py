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
