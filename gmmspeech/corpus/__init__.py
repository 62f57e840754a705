"""Corpora: manifests (CSV file lists) and the on-disk feature store.

:mod:`gmmspeech.corpus.manifest` reads and writes manifests and converts Kaldi data
directories; :mod:`gmmspeech.corpus.store` holds :class:`FeatureStore`, one ``.npy``
feature matrix per manifest row plus an index. ``FeatureStore`` is imported lazily
(it needs numpy).
"""

from __future__ import annotations

from typing import Any

from gmmspeech.corpus.manifest import Row, from_kaldi, read_manifest, write_manifest

__all__ = ["Row", "read_manifest", "write_manifest", "from_kaldi", "FeatureStore", "BuildReport"]


def __getattr__(name: str) -> Any:
    if name in ("FeatureStore", "BuildReport"):
        from gmmspeech.corpus import store

        return getattr(store, name)
    raise AttributeError(f"module 'gmmspeech.corpus' has no attribute {name!r}")
