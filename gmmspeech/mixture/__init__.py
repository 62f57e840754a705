"""Gaussian mixture models: sufficient statistics, the EM estimator, model selection,
GMM-HMMs (from :mod:`gmmspeech.mixture.hmm`) and (from :mod:`gmmspeech.mixture.io`) model files."""

from gmmspeech.mixture.gmm import GMM
from gmmspeech.mixture.select import select_n_components
from gmmspeech.mixture.stats import SufficientStats

__all__ = ["GMM", "GMMHMM", "SufficientStats", "select_n_components", "save", "load"]


def __getattr__(name):
    # save/load live in io.py; imported on first use
    if name in ("save", "load"):
        from gmmspeech.mixture import io

        return getattr(io, name)
    if name == "GMMHMM":  # imports scikit-learn: only on first use
        from gmmspeech.mixture.hmm import GMMHMM

        return GMMHMM
    raise AttributeError(f"module 'gmmspeech.mixture' has no attribute {name!r}")
