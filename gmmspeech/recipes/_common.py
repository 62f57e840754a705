"""Small helpers shared by the recipes: where the data and the protocol manifests are."""

from __future__ import annotations

import os
from pathlib import Path


def manifests_root() -> Path:
    """The ``data_manifests`` folder of the source tree (or of the current directory).

    Raises
    ------
    FileNotFoundError
        When neither exists (e.g. an installed wheel run outside the repository).
    """
    candidates = [Path(__file__).resolve().parents[2] / "data_manifests",
                  Path.cwd() / "data_manifests"]
    for c in candidates:
        if c.is_dir():
            return c
    raise FileNotFoundError(
        "data_manifests/ not found (looked in " + ", ".join(map(str, candidates))
        + "); run from the gmmspeech source tree or pass the manifest explicitly"
    )


def default_manifest(dataset: str, name: str) -> Path:
    """``data_manifests/<dataset>/<name>``, checked to exist."""
    path = manifests_root() / dataset / name
    if not path.is_file():
        raise FileNotFoundError(f"protocol manifest {path} not found")
    return path


def require_data_root(data_root: str | os.PathLike | None, dataset: str, recipe: str) -> Path:
    """The data root as a Path, checked to hold ``dataset``.

    Raises
    ------
    FileNotFoundError
        With a message naming the recipe, the option and the folder that is missing.
    """
    if data_root is None:
        raise FileNotFoundError(
            f"recipe {recipe} needs --data-root pointing at the shared datasets "
            f"(the folder holding {dataset}/, e.g. ../shared/datasets)"
        )
    root = Path(data_root)
    if not (root / dataset).is_dir():
        raise FileNotFoundError(
            f"recipe {recipe}: {root / dataset} not found; --data-root must be the folder "
            f"holding {dataset}/"
        )
    return root


def credit_datasets(rep, paths) -> None:
    """Credit, in report ``rep``, the shared corpora that any of ``paths`` lies in."""
    marks = {"librispeech": "/librispeech/", "fsdd": "/fsdd/", "old-faithful": "/old-faithful/"}
    seen = set()
    for p in paths:
        s = "/" + str(p).replace(os.sep, "/").lower()
        for key, mark in marks.items():
            if key not in seen and mark in s:
                seen.add(key)
                rep.credit(key)
