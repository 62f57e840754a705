"""bench/ivector_dev.py's seed bookkeeping: which random starts the ``--seeds N`` runs use, and
the ``seed_summary`` figures (spread over runs, metrics of the run-averaged scores), against
hand computations. The dev-split numbers in the README come from these two functions."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from gmmspeech.speaker.pipeline import AUTO_TV_SEEDS

BENCH = Path(__file__).resolve().parents[1] / "bench" / "ivector_dev.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("ivector_dev_bench", BENCH)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_single_start_runs_are_one_matrix_each_from_starts_0_to_n(bench):
    runs = bench._seed_runs({"rank": 40}, 4)
    assert [r["_seed"] for r in runs] == [0, 1, 2, 3]
    assert all(r["tv_seeds"] == 1 and r["rank"] == 40 for r in runs)


@pytest.mark.parametrize("tv_seeds, m", [(3, 3), (5, 5), ("auto", AUTO_TV_SEEDS)])
def test_ensemble_runs_never_share_a_start(bench, tv_seeds, m):
    runs = bench._seed_runs({"tv_seeds": tv_seeds}, 4)
    starts = [set(range(r["_seed"], r["_seed"] + m)) for r in runs]  # run k: matrices k m .. k m + m - 1
    assert set.union(*starts) == set(range(4 * m))
    assert sum(len(s) for s in starts) == 4 * m  # disjoint
    assert all(r["tv_seeds"] == tv_seeds for r in runs)


def _result(scores, seed, iv, fus, gmm):
    return {"options": {"_seed": seed}, "_scores": scores, "gmm-ubm": gmm,
            "ivector": {"accuracy": iv[0], "eer": iv[1]}, "fusion": {"accuracy": fus[0], "eer": fus[1]}}


def test_seed_summary_against_hand_computation(bench):
    models = ["a", "b"]
    tests = ["a", "a", "b", "b"]
    # each run misidentifies one test (accuracy 0.75, targets and non-targets overlap); the mean
    # of the two matrices separates every target (1.5, 1, 2, 2) from every non-target (0.5,
    # 0.5, 0, 0): accuracy 1, EER 0
    m1 = np.array([[0.0, 1.0], [2.0, 0.0], [0.0, 2.0], [0.0, 2.0]])
    m2 = np.array([[3.0, 0.0], [0.0, 1.0], [0.0, 2.0], [0.0, 2.0]])
    gmm = {"accuracy": 1.0, "eer": 0.0}
    results = [_result(m1, 0, (0.50, 0.30), (0.90, 0.10), gmm),
               _result(m2, 1, (0.70, 0.20), (1.00, 0.05), gmm),
               _result((m1 + m2) / 2, 2, (0.60, 0.40), (0.95, 0.00), gmm)]
    split = SimpleNamespace(name="toy dev", model_labels=models, test_labels=tests)
    out = bench.Split.seed_summary(split, {"tv_seeds": 1}, results)

    assert out["seeds"] == [0, 1, 2] and out["split"] == "toy dev" and out["gmm-ubm"] is gmm
    assert out["ivector_accuracy_mean"] == pytest.approx(0.6)
    assert out["ivector_accuracy_sd"] == pytest.approx(0.1)  # sample sd of 0.5, 0.7, 0.6
    assert out["ivector_eer_range"] == [0.2, 0.4]
    assert out["fusion_eer_sd"] == pytest.approx(0.05)  # sample sd of 0.10, 0.05, 0.00
    assert out["fusion_accuracy_range"] == [0.9, 1.0]
    assert out["ivector_seed_average"]["accuracy"] == 1.0
    assert out["ivector_seed_average"]["eer"] == 0.0
    # one run alone: the summary's metrics are of the scores, not of the runs' figures
    alone = bench.Split.seed_summary(split, {}, results[:1])
    assert alone["ivector_seed_average"]["accuracy"] == 0.75
    assert alone["ivector_seed_average"]["eer"] > 0.0


def test_one_run_has_zero_spread(bench):
    gmm = {"accuracy": 1.0, "eer": 0.0}
    s = np.eye(2)
    out = bench.Split.seed_summary(SimpleNamespace(name="x", model_labels=["a", "b"], test_labels=["a", "b"]),
                                   {}, [_result(s, 0, (1.0, 0.0), (1.0, 0.0), gmm)])
    assert out["ivector_accuracy_sd"] == 0.0 and out["ivector_seed_average"]["accuracy"] == 1.0
