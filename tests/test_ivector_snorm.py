"""S-norm of the i-vector system's scores when the PLDA scores propagate the i-vectors'
posterior covariances (``speaker-id --ivector-norm snorm`` with the default
``--ivector-uncertainty``): the pipeline's normalised scores against the S-norm written out
here in numpy from trials scored one by one with the extractor's own posterior
covariances (the background speakers as cohort models, the background recordings as
impostor tests)."""

from __future__ import annotations

import numpy as np
import pytest
from test_ivector_background import _front, toy  # noqa: F401  (the module-scoped toy fixture)
from test_ivector_uncertainty import direct_backend_and_models


def _snorm_reference(raw, impostor, cohort):
    """0.5 [(s - mu_model) / sd_model + (s - mu_test) / sd_test], unbiased standard deviations;
    ``impostor``: (background recordings, models), ``cohort``: (tests, background speakers)."""
    mu_m, sd_m = impostor.mean(axis=0), impostor.std(axis=0, ddof=1)
    mu_t, sd_t = cohort.mean(axis=1), cohort.std(axis=1, ddof=1)
    out = np.empty_like(raw)
    for t in range(raw.shape[0]):
        for m in range(raw.shape[1]):
            out[t, m] = 0.5 * ((raw[t, m] - mu_m[m]) / sd_m[m] + (raw[t, m] - mu_t[t]) / sd_t[t])
    return out


@pytest.mark.parametrize("enroll_ivectors", ["pooled", "mean"])
def test_snorm_scores_propagate_the_posterior_covariances(toy, tmp_path, enroll_ivectors):  # noqa: F811
    from gmmspeech.speaker import pipeline

    opts = {"rank": 3, "n_iter": 3, "uncertainty": True, "norm": "snorm", "enroll_ivectors": enroll_ivectors}
    front = _front(toy, tmp_path, opts, None)
    res = pipeline._ivector_backend_scores(front, None, pipeline.ivector_settings(opts), lambda m: None)
    ext, st, lab = front["extractor"], front["stats"], front["labels"]
    be, X_m, y_m, C_m = direct_backend_and_models(front, enroll_ivectors)
    X_t, C_t = ext.posterior(st["test"])
    X_b, C_b = ext.posterior(st["background"])
    y_b = lab["background"]
    models = sorted(set(y_m))
    assert res["model_labels"] == models
    speakers = sorted(set(y_b))
    assert len(speakers) == 3 and not set(speakers) & set(models)  # a real background cohort

    def trial(X_e, C_e, x, c):  # one model (its vectors) against one test vector
        _l, s = be.score_trials(X_e, ["m"] * len(X_e), x[None], enroll_covariances=C_e, test_covariances=c[None])
        return float(s[0, 0])

    def model(labels, X, C, name):
        idx = [i for i, v in enumerate(labels) if v == name]
        return X[idx], C[idx]

    raw = np.array([[trial(*model(y_m, X_m, C_m, m), X_t[t], C_t[t]) for m in models] for t in range(len(X_t))])
    impostor = np.array([[trial(*model(y_m, X_m, C_m, m), X_b[r], C_b[r]) for m in models]
                         for r in range(len(X_b))])
    cohort = np.array([[trial(*model(y_b, X_b, C_b, s), X_t[t], C_t[t]) for s in speakers]
                       for t in range(len(X_t))])
    np.testing.assert_allclose(res["scores"], _snorm_reference(raw, impostor, cohort), rtol=1e-8, atol=1e-10)
    # the covariances reach the cohort and impostor scores too: not the plain S-norm
    plain = pipeline._ivector_backend_scores(front, None, pipeline.ivector_settings({**opts, "uncertainty": False}),
                                             lambda m: None)
    assert not np.allclose(res["scores"], plain["scores"], rtol=1e-3)
