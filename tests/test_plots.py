"""Figures are written as real PNG files and drawn with the Agg canvas."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from gmmspeech import plots

PNG = b"\x89PNG\r\n\x1a\n"


def _is_png(path):
    with open(path, "rb") as fh:
        return fh.read(8) == PNG


class _Model:
    covariance_type = "diag"
    weights_ = np.array([0.4, 0.6])
    means_ = np.array([[0.0, 0.0], [3.0, 1.0]])
    covariances_ = np.array([[1.0, 0.5], [0.3, 2.0]])


def test_all_plots_write_png(tmp_path):
    r = np.random.default_rng(0)
    tar, non = r.normal(2, 1, 200), r.normal(0, 1, 2000)
    assert _is_png(plots.det_plot((tar, non), path=tmp_path / "det.png"))
    assert _is_png(plots.det_plot({"a": (tar, non), "b": (tar + 1, non)}, path=tmp_path / "d2.png"))
    assert _is_png(plots.score_histogram(tar, non, path=tmp_path / "h.png"))
    assert _is_png(plots.confusion_plot(np.array([[3, 1], [0, 4]]), ["x", "y"], path=tmp_path / "c.png"))
    assert _is_png(plots.em_trace_plot([-3.0, -2.5, -2.4], path=tmp_path / "em.png"))
    X = r.normal(size=(300, 2))
    assert _is_png(plots.density_plot(X, _Model(), path=tmp_path / "dens2.png"))
    assert _is_png(plots.density_plot(X[:, 0], _Model(), dims=0, path=tmp_path / "dens1.png"))


def test_draw_into_axes_and_no_pyplot_state():
    from matplotlib.figure import Figure

    fig = Figure()
    ax = fig.add_subplot(1, 1, 1)
    out = plots.score_histogram([1.0, 2.0], [0.0, 0.5], ax=ax)
    assert out is ax and len(ax.patches) > 0


def test_confusion_plot_readable_rows_and_labelled_colour_bar():
    from matplotlib.figure import Figure

    fig = Figure()
    ax = fig.add_subplot(1, 1, 1)
    plots.confusion_plot(np.array([[3, 1], [0, 4]]), ["x", "y"], ax=ax)
    img = ax.images[0].get_array()
    np.testing.assert_allclose(img, [[0.75, 0.25], [0.0, 1.0]])  # rows normalised
    assert [t.get_text() for t in ax.get_yticklabels()] == ["x", "y"]
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("predicted", "true")
    bar = [a for a in fig.axes if a is not ax]
    assert len(bar) == 1 and bar[0].get_ylabel() == "share of the row's tests"
    fig = Figure()
    ax = fig.add_subplot(1, 1, 1)
    plots.confusion_plot(np.array([[3, 1], [0, 4]]), normalize=False, ax=ax)
    assert [a for a in fig.axes if a is not ax][0].get_ylabel() == "tests"


def test_needs_a_target():
    with pytest.raises(ValueError, match="path= .* or ax="):
        plots.em_trace_plot([1.0])


def test_missing_matplotlib_message(monkeypatch):
    for name in list(sys.modules):
        if name.startswith("matplotlib"):
            monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(ImportError, match=r"gmmspeech\[plot\]"):
        plots.em_trace_plot([1.0], path="unused.png")
