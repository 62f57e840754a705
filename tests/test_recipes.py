"""Recipes run end to end on small data; reports and results.json are checked against
independent references (closed forms, scikit-learn, published values)."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from gmmspeech import recipes
from gmmspeech.recipes.report import Report, check_finite, format_table, write_results


def _finite_numbers(obj):
    if isinstance(obj, dict):
        for v in obj.values():
            yield from _finite_numbers(v)
    elif isinstance(obj, list):
        for v in obj:
            yield from _finite_numbers(v)
    elif isinstance(obj, (int, float)) and not isinstance(obj, bool):
        yield obj


def _load_results(out: Path) -> dict:
    text = (out / "results.json").read_text()
    assert "NaN" not in text and "Infinity" not in text
    res = json.loads(text)
    assert all(math.isfinite(v) for v in _finite_numbers(res))
    report = (out / "report.md").read_text()
    for name in [line.split("](", 1)[1].split(")", 1)[0] for line in report.splitlines()
                 if line.startswith("![")]:
        png = out / name
        assert png.is_file() and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name
    return res


# --------------------------------------------------------------------------- report
def test_results_json_rejects_non_finite_and_names_the_key(tmp_path):
    with pytest.raises(ValueError, match=r"results\.a\.b\[1\]"):
        write_results(tmp_path / "r.json", {"a": {"b": [1.0, float("nan")]}})
    with pytest.raises(ValueError, match="inf"):
        check_finite({"x": float("inf")})
    with pytest.raises(ValueError, match="JSON-able"):
        check_finite({"x": object()})
    path = write_results(tmp_path / "r.json", {"a": np.float32(0.5), "b": np.arange(3),
                                               "c": (1, 2), "d": None})
    assert json.loads(path.read_text()) == {"a": 0.5, "b": [0, 1, 2], "c": [1, 2], "d": None}


def test_markdown_table_and_report(tmp_path):
    table = format_table(["a", "b|c"], [[1, 0.123456], ["x|y", float("nan")]], floatfmt=".3f")
    lines = table.splitlines()
    assert lines[0] == "| a | b|c |"
    assert lines[2] == "| 1 | 0.123 |"
    assert lines[3] == "| x\\|y | n/a |"
    with pytest.raises(ValueError, match="cells"):
        format_table(["a"], [[1, 2]])
    rep = Report(tmp_path / "r", "Title")
    rep.table(["k", "v"], [["acc", 0.5]])
    fig, ax = rep.figure("f.png", "A figure")
    ax.plot([0, 1], [0, 1])
    rep.credit("fsdd", "fsdd", "librispeech")
    path = rep.write({"acc": 0.5})
    text = path.read_text()
    assert text.startswith("# Title")
    assert "![A figure](f.png)" in text
    assert text.count("CC BY-SA 4.0") == 1 and "CC BY 4.0" in text
    assert _load_results(tmp_path / "r") == {"acc": 0.5}
    with pytest.raises(ValueError, match=".png"):
        rep.figure("f.jpg", "bad")


def test_registry_names_and_unknown_recipe():
    assert set(recipes.names()) == {"demo", "speaker_id", "digits", "score_files",
                                    "train_corpus", "em_tutorial"}
    with pytest.raises(ValueError, match="unknown recipe 'nope'.*speaker_id"):
        recipes.get("nope")


def test_cli_lists_recipes_without_heavy_imports():
    code = ("import sys; from gmmspeech.cli import main; main(['recipe']); "
            "print([m for m in ('numpy', 'matplotlib', 'librosa') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "em_tutorial" in out.stdout and "speaker_id" in out.stdout
    assert out.stdout.strip().endswith("[]")


# --------------------------------------------------------------------------- em_tutorial
def test_em_trace_first_iteration_matches_the_textbook_formulas():
    from scipy.stats import norm

    from gmmspeech.recipes.em_tutorial import em_trace, generate_heights

    x, _ = generate_heights(200, seed=3)
    tr = em_trace(x[:, None], epsilon=1e-6, seed=3, max_iter=3)
    p0 = tr["params"][0]
    w, mu, var = p0["weights"], p0["means"][:, 0], p0["covariances"][:, 0, 0]
    # initialisation: equal weights, means at data points, the data's variance
    np.testing.assert_allclose(w, [0.5, 0.5])
    assert all(np.any(np.isclose(m, x)) for m in mu)
    np.testing.assert_allclose(var, np.var(x), rtol=1e-6)
    # one E-step and M-step by hand
    dens = w * norm.pdf(x[:, None], mu, np.sqrt(var))
    r = dens / dens.sum(axis=1, keepdims=True)
    nk = r.sum(axis=0)
    mu1 = (r * x[:, None]).sum(axis=0) / nk
    var1 = (r * (x[:, None] - mu1) ** 2).sum(axis=0) / nk
    p1 = tr["params"][1]
    np.testing.assert_allclose(p1["weights"], nk / x.size, rtol=1e-9)
    np.testing.assert_allclose(p1["means"][:, 0], mu1, rtol=1e-9)
    np.testing.assert_allclose(p1["covariances"][:, 0, 0], var1, rtol=1e-5)
    assert tr["loglik"][0] == pytest.approx(np.mean(np.log(dens.sum(axis=1))), rel=1e-9)
    assert tr["n_iter"] == 3 and not tr["converged"]


def test_em_tutorial_quick(tmp_path, datasets_root):
    from scipy.stats import norm

    out = tmp_path / "em"
    res = recipes.run("em_tutorial", out=out, data_root=datasets_root, quick=True, verbose=False)
    saved = _load_results(out)
    assert saved["heights"]["n_iter"] == res["heights"]["n_iter"]
    h = saved["heights"]
    assert h["converged"] and h["max_loglik_decrease"] <= 1e-9
    assert h["one_call_fit_gap"] <= 1e-9 and h["one_call_n_iter"] == h["n_iter"]
    assert 68.0 < h["fitted"]["means"][0] < 73.0 and 63.0 < h["fitted"]["means"][1] < 67.5
    assert sum(h["fitted"]["weights"]) == pytest.approx(1.0)
    # posteriors follow Bayes' rule with the fitted parameters (closed form with scipy)
    w, mu, sd = (np.asarray(h["fitted"][k]) for k in ("weights", "means", "sds"))
    for p in h["posterior"]:
        d = w * norm.pdf(p["height"], mu, sd)
        assert p["p_c1"] == pytest.approx(d[0] / d.sum(), abs=1e-6)
    assert [r["n_components"] for r in h["selection"]] == [1, 2, 3, 4]
    for r in h["selection"]:  # BIC/AIC definitions
        assert r["bic"] == pytest.approx(-2 * r["log_likelihood"] + r["n_parameters"] * math.log(300))
        assert r["aic"] == pytest.approx(-2 * r["log_likelihood"] + 2 * r["n_parameters"])
    assert h["best_k_bic"] == min(h["selection"], key=lambda r: r["bic"])["n_components"]
    assert 0.5 < h["cluster_agreement"] <= 1.0
    # Old Faithful: the published two-component fit (e.g. Bishop, PRML fig. 9.8 data)
    f = saved["faithful"]
    assert f["converged"] and f["max_loglik_decrease"] <= 1e-9
    np.testing.assert_allclose(f["weights"], [0.356, 0.644], atol=0.005)
    np.testing.assert_allclose(f["means"], [[2.036, 54.48], [4.290, 79.97]], atol=0.02)
    if "sklearn" in f:
        assert f["sklearn"]["max_mean_gap"] < 1e-2
        assert f["final_avg_loglik"] >= f["sklearn"]["avg_loglik"] - 1e-4
    text = (out / "report.md").read_text()
    assert "faithful_em.png" in text and "heights_em_trace.png" in text
    assert "Old Faithful" in text


def test_em_tutorial_without_faithful_skips_part_two(tmp_path):
    out = tmp_path / "em"
    res = recipes.run("em_tutorial", out=out, data_root=tmp_path, quick=True, n_heights=150,
                      k_max=2, verbose=False)
    assert "faithful" not in res and "not found" in res["faithful_skipped"]
    assert "Skipped" in (out / "report.md").read_text()
    with pytest.raises(ValueError, match="n_heights"):
        recipes.run("em_tutorial", out=out, n_heights=5, verbose=False)
