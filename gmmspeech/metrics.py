"""Evaluation metrics for identification and verification scores.

Pure numpy (floor 1: imports nothing else of gmmspeech).

Verification metrics take two 1-D arrays: the scores of *target* trials (same speaker)
and of *non-target* trials (different speakers); higher scores mean "more likely the
same speaker". At a threshold ``t`` a trial is accepted when ``score >= t``, so

* ``P_miss(t)`` = fraction of target scores ``< t``,
* ``P_fa(t)``   = fraction of non-target scores ``>= t``.

EER
    Two definitions are offered (``method=``):

    ``"rocch"`` (default)
        The equal error rate of the ROC convex hull (Brümmer and de Villiers, BOSARIS
        toolkit): the operating points ``(P_fa, P_miss)`` of every threshold are
        replaced by their lower-left convex hull, and the EER is where the hull crosses
        ``P_miss = P_fa``. This is the error rate an optimally calibrated system could
        reach by randomising between two thresholds, and it does not depend on how
        ties or the step shape of the empirical curve are interpolated.
    ``"interp"``
        The crossing of the empirical (step) curve with ``P_miss = P_fa``, linearly
        interpolated between the two consecutive operating points that bracket it
        (what most ``sklearn.metrics.roc_curve`` recipes compute). Never below the
        ROCCH EER.

minDCF
    The normalised detection cost
    ``min_t [C_miss P_tar P_miss(t) + C_fa (1 - P_tar) P_fa(t)] / min(C_miss P_tar, C_fa (1 - P_tar))``
    over all thresholds (including accept-all and reject-all), with the NIST settings
    :data:`SRE08` (P_tar 0.01, C_miss 10, C_fa 1) and :data:`SRE10` (P_tar 0.001,
    C_miss 1, C_fa 1).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = [
    "DCFSetting",
    "SRE08",
    "SRE10",
    "accuracy",
    "identification_accuracy",
    "confusion_matrix",
    "split_scores",
    "error_rates",
    "det_curve",
    "rocch",
    "eer",
    "min_dcf",
    "evaluate_scores",
]


@dataclass(frozen=True)
class DCFSetting:
    """Costs and prior of a detection cost function."""

    p_target: float
    c_miss: float = 1.0
    c_fa: float = 1.0
    name: str = ""

    @property
    def default_cost(self) -> float:
        """Cost of the best trivial system (accept all or reject all)."""
        return min(self.c_miss * self.p_target, self.c_fa * (1.0 - self.p_target))


SRE08 = DCFSetting(p_target=0.01, c_miss=10.0, c_fa=1.0, name="SRE08")
SRE10 = DCFSetting(p_target=0.001, c_miss=1.0, c_fa=1.0, name="SRE10")


# --------------------------------------------------------------------------- helpers
def _as_scores(x: Any, name: str) -> np.ndarray:
    a = np.asarray(x, dtype=np.float64).ravel()
    if a.size == 0:
        raise ValueError(f"{name} is empty: need at least one score")
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{name} contains NaN or infinite scores")
    return a


def split_scores(scores: Any, is_target: Any) -> tuple[np.ndarray, np.ndarray]:
    """Split a score array by a boolean target mask into ``(targets, nontargets)``."""
    s = np.asarray(scores, dtype=np.float64)
    m = np.asarray(is_target, dtype=bool)
    if s.shape != m.shape:
        raise ValueError(f"scores has shape {s.shape} but is_target has shape {m.shape}")
    return s[m].ravel(), s[~m].ravel()


# --------------------------------------------------------------------------- identification
def accuracy(y_true: Any, y_pred: Any) -> float:
    """Fraction of predictions equal to the truth."""
    t = np.asarray(y_true)
    p = np.asarray(y_pred)
    if t.shape != p.shape:
        raise ValueError(f"y_true has shape {t.shape} but y_pred has shape {p.shape}")
    if t.size == 0:
        raise ValueError("y_true is empty")
    return float(np.mean(t == p))


def identification_accuracy(scores: Any, true_index: Any) -> float:
    """Closed-set identification accuracy of a (trials x models) score matrix.

    ``true_index[i]`` is the column of the right model for row ``i``; the decision is
    the arg-max of each row.
    """
    s = np.asarray(scores, dtype=np.float64)
    if s.ndim != 2:
        raise ValueError(f"scores must be 2-D (trials x models), got shape {s.shape}")
    return accuracy(np.asarray(true_index), np.argmax(s, axis=1))


def confusion_matrix(y_true: Any, y_pred: Any, *, labels: Any = None) -> np.ndarray:
    """Counts ``C[i, j]`` of items of true class ``labels[i]`` predicted as ``labels[j]``.

    ``labels`` defaults to the sorted union of both arrays (as in scikit-learn).
    """
    t = np.asarray(y_true)
    p = np.asarray(y_pred)
    if t.shape != p.shape:
        raise ValueError(f"y_true has shape {t.shape} but y_pred has shape {p.shape}")
    labs = np.unique(np.concatenate([t.ravel(), p.ravel()])) if labels is None else np.asarray(labels)
    index = {lab: i for i, lab in enumerate(labs.tolist())}
    n = len(labs)
    cm = np.zeros((n, n), dtype=np.int64)
    for a, b in zip(t.ravel().tolist(), p.ravel().tolist()):
        if a in index and b in index:
            cm[index[a], index[b]] += 1
    return cm


# --------------------------------------------------------------------------- verification
def error_rates(targets: Any, nontargets: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(p_miss, p_fa, thresholds)`` at every distinct threshold, thresholds ascending.

    The thresholds are the distinct scores followed by ``+inf`` (reject all), so the
    first point accepts everything (``p_miss = 0``) and the last rejects everything
    (``p_fa = 0``).
    """
    tar = np.sort(_as_scores(targets, "targets"))
    non = np.sort(_as_scores(nontargets, "nontargets"))
    thr = np.unique(np.concatenate([tar, non]))
    thr = np.append(thr, np.inf)
    p_miss = np.searchsorted(tar, thr, side="left") / tar.size
    p_fa = 1.0 - np.searchsorted(non, thr, side="left") / non.size
    return p_miss, p_fa, thr


def det_curve(targets: Any, nontargets: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(p_fa, p_miss, thresholds)`` of the DET curve, false-alarm rate decreasing.

    Plot ``scipy.stats.norm.ppf`` of both rates for the usual normal-deviate axes
    (:func:`gmmspeech.plots.det_plot` does this).
    """
    p_miss, p_fa, thr = error_rates(targets, nontargets)
    return p_fa, p_miss, thr


def rocch(targets: Any, nontargets: Any) -> tuple[np.ndarray, np.ndarray]:
    """Vertices ``(p_fa, p_miss)`` of the ROC convex hull, ``p_fa`` increasing.

    The lower-left convex hull of the operating points in the ``(P_fa, P_miss)`` plane,
    running from ``(0, 1)`` to ``(1, 0)``.
    """
    p_miss, p_fa, _ = error_rates(targets, nontargets)
    pts = np.unique(np.column_stack([p_fa, p_miss]), axis=0)
    pts = pts[np.lexsort((-pts[:, 1], pts[:, 0]))]  # p_fa increasing, then p_miss decreasing
    # lower convex hull (Andrew's monotone chain)
    hull: list[tuple[float, float]] = []
    for x, y in pts.tolist():
        while len(hull) >= 2:
            (x1, y1), (x2, y2) = hull[-2], hull[-1]
            if (x2 - x1) * (y - y1) - (y2 - y1) * (x - x1) <= 0.0:
                hull.pop()
            else:
                break
        hull.append((x, y))
    h = np.asarray(hull)
    return h[:, 0], h[:, 1]


def _crossing(x: np.ndarray, y: np.ndarray) -> float:
    """Where the polyline through ``(x, y)`` (x increasing, y decreasing) meets ``y = x``."""
    d = y - x  # decreasing along the polyline
    idx = np.flatnonzero(d <= 0.0)
    if idx.size == 0:  # cannot happen: the last point is (1, 0)
        return float(x[-1])
    j = int(idx[0])
    if j == 0 or d[j] == 0.0:
        return float(x[j]) if d[j] == 0.0 else float(0.5 * (x[j] + y[j]))
    i = j - 1
    # segment from (x[i], y[i]) with d > 0 to (x[j], y[j]) with d <= 0
    t = d[i] / (d[i] - d[j])
    return float(x[i] + t * (x[j] - x[i]))


def eer(targets: Any, nontargets: Any, *, method: str = "rocch") -> float:
    """Equal error rate (a fraction; at most 0.5 with ``"rocch"``).

    Parameters
    ----------
    targets, nontargets : array-like
        Scores of target and non-target trials.
    method : {"rocch", "interp"}
        ``"rocch"``: EER of the ROC convex hull (BOSARIS definition, default);
        ``"interp"``: linear interpolation of the empirical curve at its crossing with
        ``P_miss = P_fa``. See the module docstring.
    """
    if method == "rocch":
        x, y = rocch(targets, nontargets)
    elif method == "interp":
        p_miss, p_fa, _ = error_rates(targets, nontargets)
        x, y = p_fa[::-1], p_miss[::-1]  # p_fa increasing
    else:
        raise ValueError(f"method={method!r} is not supported; choose 'rocch' or 'interp'")
    return _crossing(np.asarray(x, float), np.asarray(y, float))


def min_dcf(
    targets: Any,
    nontargets: Any,
    *,
    p_target: float | None = None,
    c_miss: float | None = None,
    c_fa: float | None = None,
    setting: DCFSetting | str = SRE08,
    normalize: bool = True,
    return_threshold: bool = False,
):
    """Minimum detection cost over all thresholds (normalised by default).

    Parameters
    ----------
    targets, nontargets : array-like
        Scores of target and non-target trials.
    p_target, c_miss, c_fa : float, optional
        Override the prior and costs of ``setting``.
    setting : DCFSetting or {"sre08", "sre10"}
        Default :data:`SRE08` (P_tar 0.01, C_miss 10, C_fa 1).
    normalize : bool
        Divide by the cost of the best trivial system,
        ``min(C_miss P_tar, C_fa (1 - P_tar))``.
    return_threshold : bool
        Also return the threshold reaching the minimum.
    """
    if isinstance(setting, str):
        key = setting.lower()
        if key not in ("sre08", "sre10"):
            raise ValueError(f"setting={setting!r} is not supported; choose 'sre08' or 'sre10'")
        setting = SRE08 if key == "sre08" else SRE10
    pt = setting.p_target if p_target is None else float(p_target)
    cm = setting.c_miss if c_miss is None else float(c_miss)
    cf = setting.c_fa if c_fa is None else float(c_fa)
    if not 0.0 < pt < 1.0:
        raise ValueError(f"p_target must be in (0, 1), got {pt}")
    p_miss, p_fa, thr = error_rates(targets, nontargets)
    dcf = cm * pt * p_miss + cf * (1.0 - pt) * p_fa
    i = int(np.argmin(dcf))
    value = float(dcf[i])
    if normalize:
        value /= min(cm * pt, cf * (1.0 - pt))
    return (value, float(thr[i])) if return_threshold else value


# --------------------------------------------------------------------------- summary
def evaluate_scores(
    scores: Any,
    model_labels: Any,
    trial_labels: Any,
    *,
    eer_method: str = "rocch",
) -> dict[str, Any]:
    """All metrics of a closed-set (trials x models) score matrix.

    Every row is one test segment scored against every model: the arg-max gives the
    identification decision; each cell is a verification trial, a target trial when
    the model's label equals the segment's label.

    Returns
    -------
    dict
        ``accuracy``, ``eer``, ``min_dcf_sre08``, ``min_dcf_sre10``, ``n_models``,
        ``n_trials``, ``n_target``, ``n_nontarget``, ``n_tests``.
    """
    s = np.asarray(scores, dtype=np.float64)
    models = np.asarray(model_labels).astype(str)
    trials = np.asarray(trial_labels).astype(str)
    if s.ndim != 2 or s.shape != (trials.size, models.size):
        raise ValueError(
            f"scores has shape {s.shape}; expected ({trials.size} trials, {models.size} models)"
        )
    mask = trials[:, None] == models[None, :]
    pred = models[np.argmax(s, axis=1)]
    tar, non = split_scores(s, mask)
    out: dict[str, Any] = {
        "accuracy": accuracy(trials, pred),
        "n_models": int(models.size),
        "n_tests": int(trials.size),
        "n_trials": int(s.size),
        "n_target": int(tar.size),
        "n_nontarget": int(non.size),
    }
    if tar.size and non.size:
        out["eer"] = eer(tar, non, method=eer_method)
        out["min_dcf_sre08"] = min_dcf(tar, non, setting=SRE08)
        out["min_dcf_sre10"] = min_dcf(tar, non, setting=SRE10)
    else:
        out["eer"] = out["min_dcf_sre08"] = out["min_dcf_sre10"] = None
    return out
