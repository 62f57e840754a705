"""Descriptions of feature stores whose features a model derived (GMM posteriorgrams).

A :class:`~gmmspeech.corpus.store.FeatureStore` records the configuration that made its
features; for a posteriorgram store that is a :class:`PosteriorgramConfig`: the front end
(a :class:`~gmmspeech.features.FeatureConfig` as a dict), the UBM file and its checksum,
and the posterior options. It has what the store needs (``to_dict``, ``from_dict``,
``config_hash``, ``n_features``); the computation lives in :mod:`gmmspeech.speaker.gmmfeatures`.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from typing import Any

__all__ = ["PosteriorgramConfig", "DERIVED_KINDS"]


@dataclass(frozen=True)
class PosteriorgramConfig:
    """Per-frame UBM posteriors of the features ``features`` describes.

    Attributes
    ----------
    features : dict
        The front end (``FeatureConfig.to_dict()``).
    ubm_path : str
        The UBM model file (absolute path).
    ubm_checksum : str
        Its checksum (a changed UBM is another configuration).
    n_components : int
        Columns of the posteriorgram.
    top_c : int or None
        Keep the C largest posteriors of each frame (renormalised), zeros elsewhere;
        None: all (dense).
    log : bool
        Natural-log posteriors, floored at ``log(floor)``.
    floor : float
        Floor of the log posteriors.
    """

    features: dict
    ubm_path: str
    ubm_checksum: str
    n_components: int
    top_c: int | None = None
    log: bool = False
    floor: float = 1e-10
    kind: str = "posteriorgram"

    def __post_init__(self) -> None:
        if self.kind != "posteriorgram":
            raise ValueError(f"PosteriorgramConfig.kind must be 'posteriorgram', got {self.kind!r}")
        if isinstance(self.n_components, bool) or not isinstance(self.n_components, int) or self.n_components < 1:
            raise ValueError(f"PosteriorgramConfig.n_components must be a positive integer, got {self.n_components!r}")
        if self.top_c is not None and (isinstance(self.top_c, bool) or not isinstance(self.top_c, int)
                                       or not 1 <= self.top_c <= self.n_components):
            raise ValueError(f"PosteriorgramConfig.top_c must be in 1 .. {self.n_components} or None, "
                             f"got {self.top_c!r}")
        if not (0.0 < float(self.floor) < 1.0):
            raise ValueError(f"PosteriorgramConfig.floor must be in (0, 1), got {self.floor!r}")

    @property
    def n_features(self) -> int:
        return self.n_components

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> PosteriorgramConfig:
        if not isinstance(d, dict):
            raise ValueError(f"PosteriorgramConfig.from_dict needs a dict, got {type(d).__name__}")
        return cls(**d)

    def config_hash(self) -> str:
        """16 hex characters over everything but the UBM's path (its checksum counts)."""
        d = self.to_dict()
        d.pop("ubm_path")
        text = json.dumps(d, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


#: ``store.json`` ``config["kind"]`` -> the class describing such a store.
DERIVED_KINDS = {"posteriorgram": PosteriorgramConfig}
