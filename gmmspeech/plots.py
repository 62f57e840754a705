"""Figures: DET curves, score histograms, confusion matrices, EM traces and mixture densities.

matplotlib is imported only when a function here is called, and figures are drawn
with the object-oriented API on an Agg canvas, so plotting never touches the global
pyplot backend (safe in scripts, servers and notebooks alike). Every function takes
either ``path=`` (writes a PNG and returns the path) or ``ax=`` (draws into an existing
matplotlib Axes and returns it). Install the extra with ``pip install 'gmmspeech[plot]'``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

__all__ = ["det_plot", "score_histogram", "confusion_plot", "em_trace_plot", "density_plot"]


def _figure(figsize=(5.0, 5.0)):
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as exc:
        raise ImportError(
            "plotting needs matplotlib: install it with pip install 'gmmspeech[plot]'"
        ) from exc
    fig = Figure(figsize=figsize, dpi=100)
    FigureCanvasAgg(fig)
    return fig


def _target(ax, path, figsize):
    if ax is None and path is None:
        raise ValueError("give path= (to write a PNG) or ax= (to draw into an Axes)")
    if ax is not None:
        return None, ax
    fig = _figure(figsize)
    return fig, fig.add_subplot(1, 1, 1)


def _finish(fig, ax, path):
    if fig is None:
        return ax
    fig.tight_layout()
    path = os.fspath(path)
    parent = os.path.dirname(os.path.abspath(path))
    os.makedirs(parent, exist_ok=True)
    fig.savefig(path, format="png")
    return path


_DET_TICKS = [0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.4]


def det_plot(
    systems: Mapping[str, tuple[Any, Any]] | tuple[Any, Any],
    *,
    path: str | os.PathLike | None = None,
    ax=None,
    title: str | None = "DET curve",
    mark_eer: bool = True,
):
    """Detection error trade-off curves on normal-deviate axes.

    Parameters
    ----------
    systems : (targets, nontargets) or mapping label -> (targets, nontargets)
        Scores of target and non-target trials, one pair per system.
    path : path-like, optional
        Write a PNG here.
    ax : matplotlib Axes, optional
        Draw into this Axes instead.
    title : str or None
    mark_eer : bool
        Mark each curve's (ROCCH) equal error rate.
    """
    from scipy.stats import norm

    from gmmspeech import metrics

    if not isinstance(systems, Mapping):
        systems = {"system": systems}
    fig, ax = _target(ax, path, (5.5, 5.5))
    eps = 1e-4
    lo, hi = norm.ppf(eps * 5), norm.ppf(0.5)
    for label, (tar, non) in systems.items():
        p_fa, p_miss, _ = metrics.det_curve(tar, non)
        x = norm.ppf(np.clip(p_fa, eps, 1 - eps))
        y = norm.ppf(np.clip(p_miss, eps, 1 - eps))
        e = metrics.eer(tar, non)
        line = ax.plot(x, y, lw=1.5, label=f"{label} (EER {100 * e:.2f}%)")[0]
        if mark_eer and e > 0:
            pe = norm.ppf(np.clip(e, eps, 1 - eps))
            ax.plot([pe], [pe], "o", color=line.get_color(), ms=4)
        lo = min(lo, float(np.min(x[np.isfinite(x)])) if x.size else lo)
    ticks = [t for t in _DET_TICKS if norm.ppf(t) >= lo - 1e-9] or _DET_TICKS
    pos = norm.ppf(ticks)
    ax.set_xticks(pos)
    ax.set_yticks(pos)
    labels = [f"{100 * t:g}" for t in ticks]
    ax.set_xticklabels(labels)
    ax.set_yticklabels(labels)
    ax.set_xlim(pos[0], hi)
    ax.set_ylim(pos[0], hi)
    ax.plot([pos[0], hi], [pos[0], hi], ":", color="0.6", lw=0.8)
    ax.set_xlabel("False alarm rate (%)")
    ax.set_ylabel("Miss rate (%)")
    ax.grid(True, color="0.9")
    ax.legend(loc="upper right", fontsize=8)
    if title:
        ax.set_title(title)
    return _finish(fig, ax, path)


def score_histogram(
    targets: Any,
    nontargets: Any,
    *,
    path: str | os.PathLike | None = None,
    ax=None,
    bins: int = 60,
    title: str | None = "Score distributions",
):
    """Normalised histograms of target and non-target scores."""
    tar = np.asarray(targets, dtype=float).ravel()
    non = np.asarray(nontargets, dtype=float).ravel()
    fig, ax = _target(ax, path, (6.0, 4.0))
    both = np.concatenate([tar, non])
    edges = np.histogram_bin_edges(both, bins=bins) if both.size else bins
    ax.hist(non, bins=edges, density=True, alpha=0.55, label=f"non-target ({non.size})")
    ax.hist(tar, bins=edges, density=True, alpha=0.55, label=f"target ({tar.size})")
    ax.set_xlabel("score")
    ax.set_ylabel("density")
    ax.legend(fontsize=8)
    if title:
        ax.set_title(title)
    return _finish(fig, ax, path)


def confusion_plot(
    cm: Any,
    labels: Sequence[str] | None = None,
    *,
    path: str | os.PathLike | None = None,
    ax=None,
    normalize: bool = True,
    title: str | None = "Confusion matrix",
):
    """Image of a confusion matrix (rows: truth, columns: decision), rows normalised."""
    c = np.asarray(cm, dtype=float)
    if c.ndim != 2 or c.shape[0] != c.shape[1]:
        raise ValueError(f"cm must be a square matrix, got shape {c.shape}")
    if normalize:
        c = c / np.maximum(c.sum(axis=1, keepdims=True), 1.0)
    n = c.shape[0]
    fig, ax = _target(ax, path, (min(12.0, 2.5 + 0.3 * n),) * 2)
    im = ax.imshow(c, cmap="Blues", vmin=0.0, vmax=1.0 if normalize else None)
    if labels is not None and n <= 40:
        ax.set_xticks(range(n))
        ax.set_yticks(range(n))
        ax.set_xticklabels([str(x) for x in labels], rotation=90, fontsize=7)
        ax.set_yticklabels([str(x) for x in labels], fontsize=7)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    bar = ax.figure.colorbar(im, ax=ax, fraction=0.046)
    bar.set_label("share of the row's tests" if normalize else "tests")
    if title:
        ax.set_title(title)
    return _finish(fig, ax, path)


def em_trace_plot(
    history: Any,
    *,
    path: str | os.PathLike | None = None,
    ax=None,
    title: str | None = "EM: average log-likelihood per frame",
):
    """The average log-likelihood per EM iteration (e.g. ``GMM.history_``)."""
    h = np.asarray(history, dtype=float).ravel()
    fig, ax = _target(ax, path, (5.5, 3.8))
    ax.plot(np.arange(1, h.size + 1), h, "o-", ms=3)
    ax.set_xlabel("iteration")
    ax.set_ylabel("log-likelihood / frame")
    ax.grid(True, color="0.9")
    if title:
        ax.set_title(title)
    return _finish(fig, ax, path)


def _mixture_params(model) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Weights, means and full covariances of any fitted GMM-like object."""
    w = np.asarray(model.weights_, dtype=float)
    mu = np.asarray(model.means_, dtype=float)
    k, d = mu.shape
    cov = np.asarray(model.covariances_, dtype=float)
    kind = getattr(model, "covariance_type", "full")
    if kind == "full":
        full = cov
    elif kind == "tied":
        full = np.broadcast_to(cov, (k, d, d))
    elif kind == "diag":
        full = np.stack([np.diag(c) for c in cov])
    elif kind == "spherical":
        full = np.stack([np.eye(d) * c for c in cov])
    else:
        raise ValueError(f"unknown covariance_type {kind!r}")
    return w, mu, full


def density_plot(
    X: Any,
    model,
    *,
    dims: tuple[int, int] | int = (0, 1),
    path: str | os.PathLike | None = None,
    ax=None,
    bins: int = 50,
    title: str | None = "Mixture density",
):
    """Data and a fitted mixture: a histogram with the density in 1-D (``dims`` an int
    or 1-D data), else a scatter with 1- and 2-sigma ellipses of each component over
    two chosen dimensions."""
    from scipy.stats import norm

    x = np.asarray(X, dtype=float)
    if x.ndim == 1:
        x = x[:, None]
    w, mu, cov = _mixture_params(model)
    fig, ax = _target(ax, path, (6.0, 4.5))
    if isinstance(dims, int) or x.shape[1] == 1:
        j = dims if isinstance(dims, int) else 0
        ax.hist(x[:, j], bins=bins, density=True, color="0.8", label="data")
        grid = np.linspace(x[:, j].min(), x[:, j].max(), 400)
        total = np.zeros_like(grid)
        for k in range(w.size):
            pk = w[k] * norm.pdf(grid, mu[k, j], np.sqrt(cov[k, j, j]))
            total += pk
            ax.plot(grid, pk, "--", lw=0.8)
        ax.plot(grid, total, "k-", lw=1.5, label="mixture")
        ax.set_xlabel(f"dimension {j}")
        ax.set_ylabel("density")
        ax.legend(fontsize=8)
    else:
        from matplotlib.patches import Ellipse

        a, b = dims
        ax.scatter(x[:, a], x[:, b], s=3, color="0.5", alpha=0.4)
        for k in range(w.size):
            c2 = cov[k][np.ix_([a, b], [a, b])]
            vals, vecs = np.linalg.eigh(c2)
            angle = float(np.degrees(np.arctan2(vecs[1, 1], vecs[0, 1])))
            for nsig in (1.0, 2.0):
                width, height = 2 * nsig * np.sqrt(np.maximum(vals[::-1], 0))
                ax.add_patch(Ellipse((mu[k, a], mu[k, b]), width, height, angle=angle,
                                     fill=False, lw=1.0, alpha=0.4 + 0.6 * w[k] / w.max()))
            ax.plot([mu[k, a]], [mu[k, b]], "k+")
        ax.set_xlabel(f"dimension {a}")
        ax.set_ylabel(f"dimension {b}")
    if title:
        ax.set_title(title)
    return _finish(fig, ax, path)
