"""MFCC front end: configuration presets, MFCC/deltas, VAD, normalisation, extraction.

Importing this package loads numpy only; librosa and scipy are imported by the
functions that use them. (The functions are bound here eagerly because the function
:func:`mfcc` shares its name with the submodule :mod:`gmmspeech.features.mfcc`.)
"""

from __future__ import annotations

from gmmspeech.features.config import PRESETS, FeatureConfig
from gmmspeech.features.extract import extract, postprocess
from gmmspeech.features.mfcc import (
    analysis_window,
    dct_matrix,
    deltas,
    kaldi_mel_filterbank,
    mel_filterbank,
    mfcc,
    mfcc_and_energy,
)
from gmmspeech.features.normalize import cmvn, feature_warping, sliding_cmvn
from gmmspeech.features.vad import energy_vad

__all__ = [
    "FeatureConfig",
    "PRESETS",
    "analysis_window",
    "cmvn",
    "dct_matrix",
    "deltas",
    "energy_vad",
    "extract",
    "feature_warping",
    "kaldi_mel_filterbank",
    "mel_filterbank",
    "mfcc",
    "mfcc_and_energy",
    "postprocess",
    "sliding_cmvn",
]
