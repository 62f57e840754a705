"""Recipes: end-to-end runs of the toolkit that write a report.

Each recipe is a module of this package with a ``run(*, out, data_root=None, quick=False,
seed=0, n_jobs=1, ...) -> dict`` function. ``run`` composes the toolkit (features,
mixtures, speaker modelling, metrics, plots), writes ``out/report.md`` with a results
table and PNG figures plus ``out/results.json`` (finite numbers only), and returns the
results dictionary. Recipes hold no maths of their own.

The registry below maps a recipe name to its module and a one-line description; modules
are imported only when a recipe is run, so listing recipes stays cheap. Corpus protocols
(speaker recognition on LibriSpeech, FSDD, DSPSpeech-20, speechocean762, Common Voice; FSDD
digits; isolated words on DSPSpeech-20 and FSDD) are step-by-step scripts of the source tree,
``recipes/<corpus>/run.py`` (built on :mod:`gmmspeech.cli.steps`); ``gmmspeech recipe NAME``
launches them too.
"""

from __future__ import annotations

import importlib
from types import ModuleType

# name -> (module, one-line description)
RECIPES: dict[str, tuple[str, str]] = {
    "demo": (
        "gmmspeech.recipes.demo",
        "speaker identification on a synthesised corpus (or LibriSpeech with --data-root)",
    ),
    "score_files": (
        "gmmspeech.recipes.score_files",
        "score every audio file of a folder or manifest against saved models (TSV)",
    ),
    "train_corpus": (
        "gmmspeech.recipes.train_corpus",
        "batch UBM training over a manifest with the feature store, progress and resume",
    ),
    "em_tutorial": (
        "gmmspeech.recipes.em_tutorial",
        "the textbook EM for Gaussian mixtures: heights (1-D) and Old Faithful (2-D)",
    ),
}


def names() -> list[str]:
    """Names of the available recipes."""
    return list(RECIPES)


def get(name: str) -> ModuleType:
    """Import and return the module of recipe ``name``.

    Raises
    ------
    ValueError
        When no recipe has that name (the message lists the valid names).
    """
    try:
        module, _ = RECIPES[name]
    except KeyError:
        raise ValueError(
            f"unknown recipe {name!r}; choose one of {', '.join(RECIPES)}"
        ) from None
    return importlib.import_module(module)


def run(name: str, **kwargs) -> dict:
    """Run recipe ``name`` with ``kwargs`` (see the recipe's ``run``) and return its results."""
    return get(name).run(**kwargs)
