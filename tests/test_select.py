"""select_n_components: BIC/AIC pick the true number of components on generated data."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from gmmspeech import GMM, select_n_components


def _three_clusters(seed=0, n=300):
    rng = np.random.default_rng(seed)
    centers = np.array([[0.0, 0.0], [7.0, 0.0], [0.0, 7.0]])
    return np.vstack([rng.normal(c, 1.0, size=(n, 2)) for c in centers])


@pytest.mark.parametrize("criterion", ["bic", "aic"])
@pytest.mark.parametrize("covariance_type", ["diag", "full"])
def test_criterion_picks_the_true_k(criterion, covariance_type):
    X = _three_clusters()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        best, table = select_n_components(X, [1, 2, 3, 4, 5], criterion=criterion,
                                          covariance_type=covariance_type, random_state=0, n_init=2)
    assert isinstance(best, GMM) and best.n_components == 3
    assert [row["n_components"] for row in table] == [1, 2, 3, 4, 5]
    scores = [row[criterion] for row in table]
    assert int(np.argmin(scores)) == 2
    for row in table:
        assert set(row) == {"n_components", "bic", "aic", "log_likelihood", "n_parameters",
                            "converged", "n_iter"}
        # the criteria follow from the log-likelihood and the parameter count
        n = len(X)
        assert row["bic"] == pytest.approx(-2 * row["log_likelihood"] + row["n_parameters"] * np.log(n))
        assert row["aic"] == pytest.approx(-2 * row["log_likelihood"] + 2 * row["n_parameters"])
    # free parameters: K-1 weights, K*D means, covariances
    per_cov = 2 if covariance_type == "diag" else 3
    assert [r["n_parameters"] for r in table] == [k - 1 + 2 * k + per_cov * k for k in range(1, 6)]


def test_rows_say_which_fits_stopped_at_the_cap():
    """``converged``/``n_iter`` of each row are those of the same fit made directly."""
    X = _three_clusters(seed=1, n=100)
    kw = dict(covariance_type="full", random_state=0, tol=1e-8)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _, capped = select_n_components(X, [1, 3, 5], max_iter=3, **kw)
        _, free = select_n_components(X, [1, 3, 5], max_iter=500, **kw)
        for row in capped + free:
            direct = GMM(n_components=row["n_components"], max_iter=3 if row in capped else 500,
                         **kw).fit(X)
            assert (row["converged"], row["n_iter"]) == (bool(direct.converged_), direct.n_iter_)
    assert [(r["converged"], r["n_iter"]) for r in capped[1:]] == [(False, 3), (False, 3)]
    assert all(r["converged"] for r in free)


def test_bad_arguments():
    X = _three_clusters(n=20)
    with pytest.raises(ValueError, match="Invalid value for 'criterion'"):
        select_n_components(X, [1, 2], criterion="dic")
    with pytest.raises(ValueError, match="empty"):
        select_n_components(X, [])
    with pytest.raises(ValueError, match="positive"):
        select_n_components(X, [0, 1])
