"""Front ends: configuration presets, MFCC / LFCC / log filter banks / PLP, RASTA, pitch,
deltas and shifted deltas, energy and GMM VAD, normalisation, extraction.

Importing this package loads numpy only; librosa and scipy are imported by the
functions that use them. (The functions are bound here eagerly because the function
:func:`mfcc` shares its name with the submodule :mod:`gmmspeech.features.mfcc`.)
"""

from __future__ import annotations

from gmmspeech.features.config import PRESETS, FeatureConfig
from gmmspeech.features.extract import extract, postprocess
from gmmspeech.features.fbank import fbank, fbank_and_energy
from gmmspeech.features.frontend import static_features
from gmmspeech.features.mfcc import (
    analysis_window,
    band_energies,
    bark_filterbank,
    dct_matrix,
    deltas,
    filterbank,
    kaldi_mel_filterbank,
    linear_filterbank,
    mel_filterbank,
    mfcc,
    mfcc_and_energy,
)
from gmmspeech.features.normalize import cmvn, feature_warping, sliding_cmvn, speaker_cmvn
from gmmspeech.features.pitch import pitch_features
from gmmspeech.features.plp import plp, plp_and_energy
from gmmspeech.features.rasta import rasta_filter
from gmmspeech.features.sdc import sdc
from gmmspeech.features.vad import energy_vad, gmm_vad

__all__ = [
    "FeatureConfig",
    "PRESETS",
    "analysis_window",
    "band_energies",
    "bark_filterbank",
    "cmvn",
    "dct_matrix",
    "deltas",
    "energy_vad",
    "extract",
    "fbank",
    "fbank_and_energy",
    "feature_warping",
    "filterbank",
    "gmm_vad",
    "kaldi_mel_filterbank",
    "linear_filterbank",
    "mel_filterbank",
    "mfcc",
    "mfcc_and_energy",
    "pitch_features",
    "plp",
    "plp_and_energy",
    "postprocess",
    "rasta_filter",
    "sdc",
    "sliding_cmvn",
    "speaker_cmvn",
    "static_features",
]
