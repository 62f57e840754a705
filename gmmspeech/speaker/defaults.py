"""The defaults of the GMM-UBM speaker system, in one place.

``gmmspeech speaker-id``, the step-by-step commands (``train-ubm``, ``enroll``,
``score``), :func:`gmmspeech.speaker.pipeline.run_speaker_id` and the recipes all read
their defaults from :data:`SPEAKER_DEFAULTS`. They were chosen by ``bench/dev_search.py``
on the **development** splits of the four shared corpora (``data_manifests/<corpus>/dev``:
LibriSpeech, FSDD, DSPSpeech-20 and speechocean762), by a coordinate search maximising
the mean over corpora of (identification accuracy - EER), and are reported on the
separate test splits in the README. Nothing here was tuned on a test split.

:data:`CLASSIC_SETTINGS` are the defaults before that search (the textbook Reynolds
2000 system: ``speech`` features with utterance CMVN and energy VAD, 256 components on
background data, relevance 16, top-5 scoring, no normalisation), kept as the named
setting ``--protocol classic`` for comparisons.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

__all__ = ["SPEAKER_DEFAULTS", "CLASSIC_SETTINGS", "PROTOCOL_PRESETS", "NORM_COHORTS",
           "speaker_defaults", "protocol_settings", "speaker_feature_config", "resolve_score_mode"]

#: Where the T-norm cohort models come from: models MAP-adapted from the UBM on the
#: background manifest (one per background label), the other enrolled models (never the
#: claimed one), or both.
NORM_COHORTS = ("background", "enrolled", "both")

#: Keyword arguments of :func:`~gmmspeech.speaker.pipeline.run_speaker_id`; the single
#: source of the speaker system's defaults (see the module docstring for how they were
#: chosen). ``feature_overrides`` are applied to ``preset``.
SPEAKER_DEFAULTS: dict[str, Any] = dict(
    preset="speech",
    feature_overrides={"cmvn": "none", "vad": False, "n_mfcc": 24},
    n_components=256,
    covariance_type="diag",
    max_iter=10,
    ubm_init="split",
    ubm_on_enroll=True,
    relevance_factor=4.0,
    adapt="mw",
    top_c=5,
    score_mode="topc",
    norm=None,
    norm_cohort="background",
    norm_top_n=None,
)

#: The defaults before the development-protocol search (for comparisons; ``--protocol classic``).
CLASSIC_SETTINGS: dict[str, Any] = dict(
    preset="speech",
    feature_overrides={},
    n_components=256,
    covariance_type="diag",
    max_iter=10,
    ubm_init="split",
    ubm_on_enroll=False,
    relevance_factor=16.0,
    adapt="m",
    top_c=5,
    score_mode="topc",
    norm=None,
    norm_cohort="background",
    norm_top_n=None,
)


#: Named settings (keyword arguments of
#: :func:`~gmmspeech.speaker.pipeline.run_speaker_id`). ``classic``: the
#: defaults before the development-protocol search (:data:`CLASSIC_SETTINGS`, the
#: textbook system). ``librispeech``: settings first tuned on the LibriSpeech protocol
#: (no CMVN, no VAD, 24 cepstra, 128 components on background + enrolment data, relevance
#: 4, exact scoring, T-norm over the other enrolled models). Neither is needed: the
#: defaults (:data:`SPEAKER_DEFAULTS`) were chosen on the dev splits of all four corpora.
PROTOCOL_PRESETS: dict[str, dict[str, Any]] = {
    "classic": CLASSIC_SETTINGS,
    "librispeech": dict(
        preset="speech",
        feature_overrides={"cmvn": "none", "vad": False, "n_mfcc": 24},
        n_components=128,
        ubm_on_enroll=True,
        relevance_factor=4.0,
        adapt="m",
        top_c=None,
        score_mode="exact",
        norm="tnorm",
        norm_cohort="enrolled",
    ),
}


def speaker_defaults() -> dict[str, Any]:
    """A deep copy of :data:`SPEAKER_DEFAULTS` (safe to modify)."""
    return copy.deepcopy(SPEAKER_DEFAULTS)


def resolve_score_mode(score_mode, top_c, covariance_type):
    """The scoring mode and C actually used: ``score_mode``, or top-C when ``top_c`` is
    set, else exact; top-C is the diagonal-covariance speed-up, so other models score
    exactly. Returns ``(mode, top_c)``."""
    mode = score_mode or ("topc" if top_c else "exact")
    if mode == "topc" and covariance_type != "diag":
        return "exact", None
    return mode, top_c


def protocol_settings(name: str) -> dict[str, Any]:
    """A deep copy of :data:`PROTOCOL_PRESETS` ``[name]``."""
    if name not in PROTOCOL_PRESETS:
        raise ValueError(f"protocol {name!r} is not one of {', '.join(map(repr, PROTOCOL_PRESETS))}")
    return copy.deepcopy(PROTOCOL_PRESETS[name])


def speaker_feature_config(preset: str | None = None, overrides: Mapping[str, Any] | None = None):
    """The feature configuration of the speaker system.

    Parameters
    ----------
    preset : str or None
        Feature preset. None: the speaker defaults (``SPEAKER_DEFAULTS["preset"]`` with
        ``SPEAKER_DEFAULTS["feature_overrides"]``); a named preset is used as it is.
    overrides : mapping or None
        Changes applied with ``FeatureConfig.replace`` (on top of the default overrides
        when ``preset`` is None).
    """
    from gmmspeech.features.config import FeatureConfig

    changes = dict(overrides or {})
    if preset is None:
        changes = {**SPEAKER_DEFAULTS["feature_overrides"], **changes}
    cfg = FeatureConfig.preset(preset or SPEAKER_DEFAULTS["preset"])
    return cfg.replace(**changes) if changes else cfg
