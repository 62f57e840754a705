"""Gaussian mixture models: sufficient statistics, the EM estimator, model selection."""

from gmmspeech.mixture.gmm import GMM
from gmmspeech.mixture.select import select_n_components
from gmmspeech.mixture.stats import SufficientStats

__all__ = ["GMM", "SufficientStats", "select_n_components"]
