"""gmmspeech: speech features and Gaussian mixture models.

Public names are imported lazily (PEP 562) so that ``gmmspeech --help`` and
``import gmmspeech`` stay fast: numpy, scipy and librosa load only when a name
that needs them is first used.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# public name -> (module, attribute or None for the module itself)
_LAZY: dict[str, tuple[str, str | None]] = {
    # errors (light)
    "GMMSpeechError": ("gmmspeech.errors", "GMMSpeechError"),
    "AudioError": ("gmmspeech.errors", "AudioError"),
    "ManifestError": ("gmmspeech.errors", "ManifestError"),
    "ModelFileError": ("gmmspeech.errors", "ModelFileError"),
    "FeatureError": ("gmmspeech.errors", "FeatureError"),
    # features
    "FeatureConfig": ("gmmspeech.features.config", "FeatureConfig"),
    "extract": ("gmmspeech.features.extract", "extract"),
    # mixture
    "GMM": ("gmmspeech.mixture.gmm", "GMM"),
    "GMMHMM": ("gmmspeech.mixture.hmm", "GMMHMM"),
    "SufficientStats": ("gmmspeech.mixture.stats", "SufficientStats"),
    "select_n_components": ("gmmspeech.mixture.select", "select_n_components"),
    "save": ("gmmspeech.mixture.io", "save"),
    "load": ("gmmspeech.mixture.io", "load"),
    # corpus
    "read_manifest": ("gmmspeech.corpus.manifest", "read_manifest"),
    "FeatureStore": ("gmmspeech.corpus.store", "FeatureStore"),
    # speaker
    "train_ubm": ("gmmspeech.speaker.ubm", "train_ubm"),
    "map_adapt": ("gmmspeech.speaker.map", "map_adapt"),
    "enroll": ("gmmspeech.speaker.map", "enroll"),
    "score": ("gmmspeech.speaker.scoring", "score"),
    "run_speaker_id": ("gmmspeech.speaker.pipeline", "run_speaker_id"),
    # submodules
    "audio": ("gmmspeech.audio", None),
    "features": ("gmmspeech.features", None),
    "mixture": ("gmmspeech.mixture", None),
    "corpus": ("gmmspeech.corpus", None),
    "speaker": ("gmmspeech.speaker", None),
    "metrics": ("gmmspeech.metrics", None),
    "parallel": ("gmmspeech.parallel", None),
    "plots": ("gmmspeech.plots", None),
}

__all__ = sorted(_LAZY) + ["__version__"]


def __getattr__(name: str) -> Any:
    try:
        module_name, attr = _LAZY[name]
    except KeyError:
        raise AttributeError(f"module 'gmmspeech' has no attribute {name!r}") from None
    module = importlib.import_module(module_name)
    value = module if attr is None else getattr(module, attr)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__


if TYPE_CHECKING:  # pragma: no cover
    from gmmspeech.corpus.manifest import read_manifest
    from gmmspeech.corpus.store import FeatureStore
    from gmmspeech.errors import (
        AudioError,
        FeatureError,
        GMMSpeechError,
        ManifestError,
        ModelFileError,
    )
    from gmmspeech.features.config import FeatureConfig
    from gmmspeech.features.extract import extract
    from gmmspeech.mixture.gmm import GMM
    from gmmspeech.mixture.hmm import GMMHMM
    from gmmspeech.mixture.io import load, save
    from gmmspeech.mixture.select import select_n_components
    from gmmspeech.mixture.stats import SufficientStats
    from gmmspeech.speaker.map import enroll, map_adapt
    from gmmspeech.speaker.pipeline import run_speaker_id
    from gmmspeech.speaker.scoring import score
    from gmmspeech.speaker.ubm import train_ubm
