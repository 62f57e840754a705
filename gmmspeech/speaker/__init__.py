"""GMM-UBM speaker recognition: UBM training, MAP enrolment, scoring, normalisation.

Modules: :mod:`~gmmspeech.speaker.ubm` (:func:`train_ubm`), :mod:`~gmmspeech.speaker.map`
(:func:`map_adapt`, :func:`enroll`), :mod:`~gmmspeech.speaker.scoring` (:func:`score`:
exact, top-C and linear modes), :mod:`~gmmspeech.speaker.norm` (Z/T/ZT/S-norm) and
:mod:`~gmmspeech.speaker.pipeline` (:func:`run_speaker_id`, the whole recipe). Names are
imported lazily so that importing the package stays cheap.
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "train_ubm": "gmmspeech.speaker.ubm",
    "map_adapt": "gmmspeech.speaker.map",
    "enroll": "gmmspeech.speaker.map",
    "score": "gmmspeech.speaker.scoring",
    "znorm": "gmmspeech.speaker.norm",
    "tnorm": "gmmspeech.speaker.norm",
    "ztnorm": "gmmspeech.speaker.norm",
    "snorm": "gmmspeech.speaker.norm",
    "run_speaker_id": "gmmspeech.speaker.pipeline",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    try:
        module = _LAZY[name]
    except KeyError:
        raise AttributeError(f"module 'gmmspeech.speaker' has no attribute {name!r}") from None
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
