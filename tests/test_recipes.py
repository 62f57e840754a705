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
from gmmspeech.mixture.gmm import ConvergenceWarning
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
    assert lines[0] == "| a | b\\|c |"  # a pipe inside a cell must not split it
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
    from gmmspeech.threads import default_threads

    # the thread count the run used is recorded beside the recipe's numbers (issue 15)
    assert _load_results(tmp_path / "r") == {"acc": 0.5, "threads": default_threads()}
    with pytest.raises(ValueError, match=".png"):
        rep.figure("f.jpg", "bad")


def test_registry_names_and_unknown_recipe():
    assert set(recipes.names()) == {"demo", "score_files", "train_corpus", "em_tutorial"}
    with pytest.raises(ValueError, match="unknown recipe 'nope'.*score_files"):
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
    import warnings

    from scipy.stats import norm

    out = tmp_path / "em"
    with warnings.catch_warnings():  # a fit stopped at its cap is a table column, not a warning
        warnings.simplefilter("error", ConvergenceWarning)
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
    assert all(isinstance(r["converged"], bool) and r["n_iter"] >= 1 for r in h["selection"])
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


def test_em_tutorial_figures_plain_ticks_and_matching_colours(tmp_path, datasets_root, monkeypatch):
    """The figures as a reader sees them: the EM traces' iteration axis has plain ticks
    (0, 1, 10, ...; no symlog minor ticks), and in the Old Faithful panels the points at the
    centre of the blue ellipses are blue, those at the centre of the red ones red, the colour
    bar labelled."""
    from matplotlib.colors import to_rgba

    from gmmspeech.recipes.report import Report

    figures = {}
    real = Report.add_figure

    def keep(self, fig, filename, caption):
        figures[filename] = fig
        return real(self, fig, filename, caption)

    monkeypatch.setattr(Report, "add_figure", keep)
    recipes.run("em_tutorial", out=tmp_path / "em", data_root=datasets_root, quick=True, verbose=False)
    trace = figures["heights_em_trace.png"]
    for ax in trace.axes:
        labels = [t.get_text() for t in ax.get_xticklabels()]
        assert labels and all(lab in {"0", "1", "10", "100", "1000"} for lab in labels), labels
        assert not ax.xaxis.get_minorticklocs().size
    fig = figures["faithful_em.png"]
    panels = [ax for ax in fig.axes if ax.patches]  # the mixture panels (not the colour bar)
    assert len(panels) >= 2 and "final" in panels[-1].get_title()
    for ax in panels:
        edges = {tuple(np.round(p.get_edgecolor(), 3)) for p in ax.patches}
        assert edges == {tuple(np.round(to_rgba(c), 3)) for c in ("tab:blue", "tab:red")}
    # at convergence the two clusters are apart: the point nearest each ellipse's centre has
    # that ellipse's colour (early panels may colour both centres alike: responsibilities ~0.5)
    ax = panels[-1]
    pts = ax.collections[0]
    xy, colours = pts.get_offsets(), pts.get_facecolors()
    assert len(colours) == len(xy) > 200
    for patch in ax.patches:
        c = colours[np.argmin(np.sum((xy - np.asarray(patch.center)) ** 2, axis=1))]
        if np.allclose(patch.get_edgecolor(), to_rgba("tab:blue")):
            assert c[2] > c[0] + 0.2, c  # blue
        else:
            assert c[0] > c[2] + 0.2, c  # red
    bar = [ax for ax in fig.axes if ax.get_ylabel().startswith("p(")]
    assert bar and "blue" in bar[0].get_ylabel()


def test_em_tutorial_without_faithful_skips_part_two(tmp_path):
    out = tmp_path / "em"
    res = recipes.run("em_tutorial", out=out, data_root=tmp_path, quick=True, n_heights=150,
                      k_max=2, verbose=False)
    assert "faithful" not in res and "not found" in res["faithful_skipped"]
    assert "Skipped" in (out / "report.md").read_text()
    with pytest.raises(ValueError, match="n_heights"):
        recipes.run("em_tutorial", out=out, n_heights=5, verbose=False)


# --------------------------------------------------------------------------- synthetic helpers
@pytest.fixture(scope="module")
def synth_wavs(tmp_path_factory):
    """Nine synthetic utterances of three speakers as 16 kHz WAV files, plus two bad files."""
    import soundfile as sf

    from gmmspeech.synth import synth_corpus

    root = tmp_path_factory.mktemp("wavs")
    _, utts = synth_corpus(3, 3, seed=5, duration=1.2, snr_db=30.0)
    for u in utts:
        (root / u.speaker).mkdir(exist_ok=True)
        sf.write(root / u.speaker / f"{u.id}.wav", u.y, u.sr)
    (root / "broken.wav").write_bytes(b"RIFF....WAVEfmt nonsense")
    sf.write(root / "silence.wav", np.zeros(16000, dtype=np.float32), 16000)
    return root, utts


# --------------------------------------------------------------------------- score_files
def test_score_files_folder_with_bad_files(tmp_path, synth_wavs):
    import csv

    from gmmspeech.features import FeatureConfig, extract
    from gmmspeech.mixture.gmm import GMM
    from gmmspeech.mixture.io import save

    root, utts = synth_wavs
    cfg = FeatureConfig.preset("speech")
    feats = {u.id: extract(root / u.speaker / f"{u.id}.wav", config=cfg) for u in utts}
    models = tmp_path / "models"
    models.mkdir()
    fitted = {}
    for spk in ("spk00", "spk01", "spk02"):
        X = np.concatenate([feats[u.id] for u in utts if u.speaker == spk])
        fitted[spk] = GMM(2, random_state=0, reg_covar=1e-3).fit(X)
        save(fitted[spk], models / f"{spk}.npz", metadata={"label": spk})
    out = tmp_path / "scored"
    res = recipes.run("score_files", out=out, models=models, input=root, verbose=False)
    saved = _load_results(out)
    assert saved["n_files"] == 11 and saved["n_scored"] == 9 and saved["n_failed"] == 2
    assert saved["llr"] is False  # no UBM: plain average log-likelihoods
    reasons = {Path(f["path"]).name: f["reason"] for f in res["failed"]}
    assert set(reasons) == {"broken.wav", "silence.wav"}
    bad = (out / "bad_files.tsv").read_text()
    assert "broken.wav" in bad and "silence.wav" in bad
    with open(out / "scores.tsv") as fh:
        rows = list(csv.DictReader(fh, delimiter="\t"))
    assert len(rows) == 9
    for row in rows:
        u = next(u for u in utts if row["id"].endswith(f"{u.id}.wav"))
        X = feats[u.id].astype(np.float64)
        for spk, g in fitted.items():  # independent: the GMM's own average log-likelihood
            assert float(row[f"score:{spk}"]) == pytest.approx(g.score(X), abs=2e-3)
        assert row["best_model"] == max(fitted, key=lambda s: float(row[f"score:{s}"]))
    assert saved["ubm"] is None
    # with a background model the report and results say which file it was
    ubm_path = tmp_path / "bg.npz"
    save(GMM(2, random_state=0, reg_covar=1e-3).fit(np.concatenate(list(feats.values()))),
         ubm_path, metadata={"role": "ubm"})
    out2 = tmp_path / "scored-llr"
    recipes.run("score_files", out=out2, models=models, input=root, ubm=ubm_path, verbose=False)
    assert _load_results(out2)["llr"] is True
    assert _load_results(out2)["ubm"] == str(ubm_path)
    assert f"log-likelihood ratios to the UBM `{ubm_path}`" in (out2 / "report.md").read_text()
    with pytest.raises(FileNotFoundError, match="no such"):
        recipes.run("score_files", out=out, models=models, input=tmp_path / "nope", verbose=False)
    with pytest.raises(FileNotFoundError, match="--models"):
        recipes.run("score_files", out=out, models=tmp_path / "nope", input=root, verbose=False)


# --------------------------------------------------------------------------- train_corpus
def test_train_corpus_reports_bad_files_and_resumes(tmp_path, synth_wavs):
    from gmmspeech.corpus.manifest import Row, write_manifest
    from gmmspeech.mixture.io import load

    root, utts = synth_wavs
    rows = [Row(u.id, str(root / u.speaker / f"{u.id}.wav"), u.speaker, None, None, None)
            for u in utts]
    rows.append(Row("broken", str(root / "broken.wav"), "x", None, None, None))
    manifest = tmp_path / "train.csv"
    write_manifest(rows, manifest)
    out = tmp_path / "ubm"
    kw = dict(out=out, manifest=manifest, n_components=4, max_iter=3, verbose=False, seed=1)
    res = recipes.run("train_corpus", **kw)
    saved = _load_results(out)
    assert saved["n_used"] == 9 and saved["n_failed"] == 1 and not saved["resumed"]
    assert saved["failed"][0]["id"] == "broken"
    h = saved["history"]
    assert len(h) == 3 and all(b >= a - 1e-9 for a, b in zip(h, h[1:]))
    ubm = load(out / "ubm.npz")
    assert ubm.n_components == 4 and ubm.weights_.sum() == pytest.approx(1.0)
    assert ubm.metadata_["role"] == "ubm"
    # the final model explains the training frames at least as well as the last E-step
    from gmmspeech.corpus.store import FeatureStore

    store = FeatureStore(out / "store")
    X = np.concatenate([store.load(i) for i in store.ids()]).astype(np.float64)
    assert X.shape[0] == saved["n_frames"]
    assert ubm.score(X) >= h[-1] - 1e-4
    # the checkpoint served its purpose once ubm.npz was written
    assert not (out / "ubm.ckpt.npz").exists()
    # second run: nothing re-extracted, the finished model reused, not trained again
    again = recipes.run("train_corpus", **kw)
    assert again["reused_model"] and not again["resumed"]
    assert again["n_extracted"] == 0 and again["n_already_in_store"] == 9
    np.testing.assert_allclose(load(out / "ubm.npz").means_, ubm.means_)
    assert again["history"] == h
    # other settings: trained again (one more iteration), not reused
    third = recipes.run("train_corpus", **{**kw, "max_iter": 4})
    assert not third["reused_model"] and len(third["history"]) == 4
    assert res["n_components"] == 4


# --------------------------------------------------------------------------- shared datasets
def test_digits_launcher_runs_the_script(tmp_path, fsdd_root, capsys):
    """`gmmspeech recipe digits` (formerly in the package) launches recipes/digits/run.py."""
    from gmmspeech.cli import main

    out = tmp_path / "digits"
    assert main(["recipe", "digits", "--quick", "--data-root", str(fsdd_root.parent),
                 "--out", str(out), "--stop-stage", "0"]) == 0
    assert "== stage 0: data" in capsys.readouterr().out
    assert len((out / "data" / "george" / "test.csv").read_text().splitlines()) == 1 + 40
    assert not (out / "feats").exists()


def test_speaker_id_name_launches_the_corpus_recipes(tmp_path, fsdd_root, capsys):
    """`gmmspeech recipe speaker_id` (the former in-package recipe) runs recipes/fsdd/run.py and
    recipes/librispeech/run.py; here only their data stage."""
    from gmmspeech.cli import main

    out = tmp_path / "spk"
    assert main(["recipe", "speaker_id", "--protocol", "fsdd", "--data-root", str(fsdd_root.parent),
                 "--out", str(out), "--stop-stage", "0"]) == 0
    assert "== stage 0: data" in capsys.readouterr().out
    rows = (out / "fsdd" / "data" / "test.csv").read_text().splitlines()
    assert rows[0] == "id,path,label" and len(rows) == 1 + 300  # the FSDD test protocol
    assert not (out / "fsdd" / "feats").exists()  # --stop-stage 0


def test_speaker_id_needs_the_datasets(tmp_path, capsys):
    from gmmspeech.cli import main

    rc = main(["recipe", "speaker_id", "--data-root", str(tmp_path), "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert rc == 2 and "--data-root must be the folder holding librispeech/" in err
    assert "holding fsdd/" in err


# --------------------------------------------------------------------------- CLI wiring
def test_every_recipe_cli_option_is_a_run_parameter():
    """Each `gmmspeech recipe NAME` parser maps onto that recipe's run() signature."""
    import argparse
    import inspect

    from gmmspeech.cli import build_parser, cmd_recipes

    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    rsub = next(a for a in sub.choices["recipe"]._actions
                if isinstance(a, argparse._SubParsersAction))
    required = {"score_files": ["--models", "m", "--input", "i"]}
    for name in recipes.names():
        args = parser.parse_args(["recipe", name, *required.get(name, [])])
        assert args.func is cmd_recipes._run
        params = inspect.signature(recipes.get(name).run).parameters
        options = {k for k in vars(args) if k not in cmd_recipes._NOT_OPTIONS} | {"verbose"}
        if "jobs" in vars(args):
            options.add("n_jobs")
        assert options <= set(params), (name, sorted(options - set(params)))
        assert name in rsub.choices
    demo = parser.parse_args(["demo"])
    assert demo.out == "demo-out" and demo.recipe == "demo"


def test_recipe_folders_have_readme_and_run_script():
    root = Path(__file__).resolve().parents[1] / "recipes"
    for name in recipes.names():
        run_sh = root / name / "run.sh"
        assert (root / name / "README.md").is_file() and run_sh.is_file()
        text = run_sh.read_text()
        assert text.startswith("#!/bin/sh") and run_sh.stat().st_mode & 0o111
        assert (f"recipe {name} " in text) or (name == "demo" and '" demo ' in text)
