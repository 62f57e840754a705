"""i-vector back-ends: Baum-Welch statistics, total variability, LDA/WCCN/length
normalisation, PLDA, cosine scoring, calibration and fusion.

Floor 4 (beside ``speaker/``): works on statistics, vectors and scores; composes
``mixture/`` for the E-step and never reads audio itself.
"""

from gmmspeech.backend.calibration import LogisticCalibration, ScoreFusion, cllr, cosine_scores
from gmmspeech.backend.extractor import IVectorExtractor, load_extractor, save_extractor
from gmmspeech.backend.ivector import TVModel, extract, train_tv, tv_em_step
from gmmspeech.backend.plda import PLDA
from gmmspeech.backend.stats import BaumWelchStats, utterance_stats
from gmmspeech.backend.transforms import LDA, WCCN, LengthNorm

__all__ = [
    "BaumWelchStats",
    "utterance_stats",
    "TVModel",
    "train_tv",
    "tv_em_step",
    "extract",
    "IVectorExtractor",
    "save_extractor",
    "load_extractor",
    "LengthNorm",
    "LDA",
    "WCCN",
    "PLDA",
    "cosine_scores",
    "LogisticCalibration",
    "ScoreFusion",
    "cllr",
]
