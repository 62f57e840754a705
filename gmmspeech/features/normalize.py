"""Feature normalisation over frames-first (n_frames, n_dims) arrays.

* :func:`cmvn` - utterance mean (and variance) normalisation.
* :func:`speaker_cmvn` - mean (and variance) normalisation over all utterances of a speaker
  (Kaldi's per-speaker ``compute-cmvn-stats --spk2utt``).
* :func:`sliding_cmvn` - Kaldi ``apply-cmvn-sliding`` semantics.
* :func:`feature_warping` - Pelecanos & Sridharan (2001) short-term Gaussianisation.

Statistics are accumulated in float64; the output keeps the input's floating dtype
(integer input gives float64).
"""

from __future__ import annotations

import numpy as np

from gmmspeech._lazy import lazy_kernel

__all__ = ["cmvn", "speaker_cmvn", "sliding_cmvn", "feature_warping", "sliding_window_bounds", "sliding_cmvn_rows",
           "feature_warping_rows"]

_VAR_FLOOR = 1e-10  # as Kaldi's sliding CMVN


def _check_features(X: np.ndarray, name: str = "X") -> np.ndarray:
    X = np.asarray(X)
    if X.ndim != 2:
        raise ValueError(f"{name} must be 2-D (n_frames, n_dims), got shape {X.shape}")
    if X.shape[0] == 0:
        raise ValueError(f"{name} has no frames")
    if not np.issubdtype(X.dtype, np.floating):
        X = X.astype(np.float64)
    return X


def _check_window(window, name: str = "window") -> int:
    if isinstance(window, bool) or not isinstance(window, (int, np.integer)) or window < 1:
        raise ValueError(f"{name} must be a positive integer number of frames, got {window!r}")
    return int(window)


def cmvn(X: np.ndarray, *, norm_vars: bool = True, var_floor: float = _VAR_FLOOR) -> np.ndarray:
    """Utterance cepstral mean (and variance) normalisation.

    Parameters
    ----------
    X : np.ndarray, shape (n_frames, n_dims)
    norm_vars : bool, default True
        Also scale every dimension to unit variance (population variance, floored at
        ``var_floor`` so constant dimensions stay finite and become 0).

    Returns
    -------
    np.ndarray, same shape and floating dtype as ``X``.
    """
    X = _check_features(X)
    out = X.astype(np.float64)
    out -= out.mean(axis=0)
    if norm_vars:
        var = np.square(out).mean(axis=0)
        out /= np.sqrt(np.maximum(var, var_floor))
    return out.astype(X.dtype, copy=False)


def speaker_cmvn(utterances, speakers, *, norm_vars: bool = True,
                 var_floor: float = _VAR_FLOOR) -> list[np.ndarray]:
    """Mean (and variance) normalisation with the statistics of every speaker's utterances.

    For short utterances (isolated words, digits) the mean of one utterance depends on the
    word spoken; the statistics of all of a speaker's utterances remove the speaker and
    channel without removing the word (Kaldi normalises per speaker for that reason). At
    test time it needs only the test speaker's unlabelled utterances.

    Parameters
    ----------
    utterances : sequence of np.ndarray, each (n_frames, n_dims)
    speakers : sequence
        The speaker (any hashable) of every utterance.
    norm_vars, var_floor
        As :func:`cmvn`.

    Returns
    -------
    list of np.ndarray
        The normalised utterances, in order, each of its input's floating dtype.
    """
    utts = [_check_features(x, f"utterances[{i}]") for i, x in enumerate(utterances)]
    speakers = list(speakers)
    if len(speakers) != len(utts):
        raise ValueError(f"speakers has {len(speakers)} entries for {len(utts)} utterances")
    if len({x.shape[1] for x in utts}) > 1:
        raise ValueError("utterances have different numbers of dimensions")
    out: list[np.ndarray] = [None] * len(utts)  # type: ignore[list-item]
    groups: dict = {}
    for i, s in enumerate(speakers):
        groups.setdefault(s, []).append(i)
    for idx in groups.values():
        n = sum(utts[i].shape[0] for i in idx)
        mean = sum(utts[i].sum(axis=0, dtype=np.float64) for i in idx) / n
        scale = 1.0
        if norm_vars:
            var = sum(np.square(utts[i] - mean).sum(axis=0) for i in idx) / n
            scale = 1.0 / np.sqrt(np.maximum(var, var_floor))
        for i in idx:
            out[i] = ((utts[i].astype(np.float64) - mean) * scale).astype(utts[i].dtype, copy=False)
    return out


def sliding_window_bounds(
    n_frames: int, window: int, *, center: bool = True, min_window: int = 100
) -> tuple[np.ndarray, np.ndarray]:
    """Per-frame [start, end) of Kaldi's sliding CMVN window.

    Centred: ``window`` frames around the frame, shifted inward at the edges so it stays
    ``min(window, n_frames)`` long. Not centred: the ``window`` frames up to and including
    the frame, extended forward to ``min_window`` frames at the start of the utterance.
    """
    t = np.arange(n_frames)
    if center:
        start = t - window // 2
        end = start + window
    else:
        start = t - window
        end = t + 1
    shift = np.minimum(start, 0)
    end = end - shift
    start = start - shift
    if not center:
        end = np.where(end > t, np.maximum(t + 1, min_window), end)
    over = np.maximum(end - n_frames, 0)
    start = np.maximum(start - over, 0)
    end = end - over
    return start, end


def sliding_cmvn(
    X: np.ndarray,
    *,
    window: int = 300,
    center: bool = True,
    norm_vars: bool = False,
    min_window: int = 100,
) -> np.ndarray:
    """Sliding-window CMVN with Kaldi's ``apply-cmvn-sliding`` semantics.

    The defaults are those of Kaldi's speaker-recognition recipes
    (``--cmn-window=300 --center=true``; the binary's own defaults are 600 and false).
    Each frame has the mean of its window subtracted (and, with ``norm_vars``, is divided
    by the window's standard deviation; a one-frame window gives 0). See
    :func:`sliding_window_bounds` for the window placement.

    Parameters
    ----------
    X : np.ndarray, shape (n_frames, n_dims)
    window : int, default 300
        Window length in frames (Kaldi ``--cmn-window``).
    center : bool, default True
        Centre the window on the frame (Kaldi ``--center``).
    norm_vars : bool, default False
        Also normalise the variance (Kaldi ``--norm-vars``).
    min_window : int, default 100
        Kaldi ``--min-cmn-window``, used only when not centred.

    Returns
    -------
    np.ndarray, same shape and floating dtype as ``X``.
    """
    X = _check_features(X)
    window = _check_window(window)
    min_window = _check_window(min_window, "min_window")
    n = X.shape[0]
    start, end = sliding_window_bounds(n, window, center=center, min_window=min_window)
    X64 = X.astype(np.float64)
    out = sliding_cmvn_rows(X64, 0, 0, start, end, norm_vars=norm_vars,
                            ref=X64.mean(axis=0) if norm_vars else None)
    return out.astype(X.dtype, copy=False)


def sliding_cmvn_rows(
    X64: np.ndarray, lo: int, t0: int, start: np.ndarray, end: np.ndarray, *,
    norm_vars: bool, ref: np.ndarray | None = None,
) -> np.ndarray:
    """Sliding CMVN of frames ``t0 .. t0 + len(start)`` from the rows their windows need.

    ``X64`` (float64) holds the utterance's frames ``lo .. lo + len(X64)``, which must
    cover every window ``[start[i], end[i])`` (absolute frame numbers, from
    :func:`sliding_window_bounds` of the whole utterance). ``ref`` (with ``norm_vars``;
    e.g. the utterance mean) shifts the running sums of squares for conditioning.
    Block-by-block extraction calls this block by block; :func:`sliding_cmvn` once.
    """
    m = start.shape[0]
    s_rel, e_rel = start - lo, end - lo
    count = (end - start).astype(np.float64)[:, None]
    csum = np.zeros((X64.shape[0] + 1, X64.shape[1]))
    np.cumsum(X64, axis=0, out=csum[1:])
    mean = (csum[e_rel] - csum[s_rel]) / count
    out = X64[t0 - lo : t0 - lo + m] - mean
    if norm_vars:
        ref = X64.mean(axis=0) if ref is None else ref
        c2 = np.zeros_like(csum)
        np.cumsum(np.square(X64 - ref), axis=0, out=c2[1:])
        var = (c2[e_rel] - c2[s_rel]) / count - np.square(mean - ref)
        out *= 1.0 / np.sqrt(np.maximum(var, _VAR_FLOOR))
        out[(end - start) == 1] = 0.0
    return out


_WARP_ITEM_WORK = 1 << 22


def feature_warping(X: np.ndarray, *, window: int = 301, n_threads: int | None = None) -> np.ndarray:
    """Feature warping (Pelecanos & Sridharan, 2001).

    Within a sliding window of ``window`` frames centred on each frame (shifted inward at
    the utterance edges; the whole utterance when it is shorter), each dimension's value
    is replaced by the standard-normal quantile of its rank:
    ``norm.ppf((R - 0.5) / N)`` where ``R`` is the 1-based rank of the value among the
    ``N`` window values (ties take their average rank).

    Parameters
    ----------
    X : np.ndarray, shape (n_frames, n_dims)
    window : int, default 301
        Window length in frames (about 3 s at 10 ms).
    n_threads : int, optional
        Threads over blocks of frames (None: :func:`gmmspeech.threads.default_threads`).

    Returns
    -------
    np.ndarray, same shape and floating dtype as ``X``.
    """
    X = _check_features(X)
    window = _check_window(window)
    n = X.shape[0]
    N = min(window, n)
    start, _ = sliding_window_bounds(n, N, center=True)
    return feature_warping_rows(X, 0, 0, start, N, n_threads=n_threads).astype(X.dtype, copy=False)


def feature_warping_rows(X: np.ndarray, lo: int, t0: int, start: np.ndarray, N: int,
                         n_threads: int | None = None) -> np.ndarray:
    """Warped values (float64) of frames ``t0 .. t0 + len(start)`` from the rows their
    windows ``[start[i], start[i] + N)`` need; ``X`` holds frames ``lo .. lo + len(X)``
    (see :func:`sliding_cmvn_rows`). Blocks of frames run on ``n_threads`` threads
    (:func:`gmmspeech.threads.map_items`)."""
    from scipy.special import ndtri

    X = np.ascontiguousarray(X)
    m, d = start.shape[0], X.shape[1]
    s_rel = np.ascontiguousarray(start - lo, dtype=np.int64)
    r0 = t0 - lo
    kernel = _warp_kernel()
    if kernel is not None:
        from gmmspeech.threads import map_items

        twice_rank = np.empty((m, d), dtype=np.int64)
        step = max(1, _WARP_ITEM_WORK // max(1, N * d))  # frames per item: ~4M comparisons

        def run(a):
            b = min(a + step, m)
            kernel(X, r0 + a, s_rel[a:b], N, twice_rank[a:b])

        map_items(run, range(0, m, step), n_threads=n_threads)
        rank = 0.5 * twice_rank
    else:
        # rank by counting: one vectorised comparison of every frame against the k-th
        # frame of its own window, for k = 0 .. N-1 (O(n d N) work, O(n d) memory)
        Xt = X[r0 : r0 + m]
        less = np.zeros((m, d), dtype=np.int32)
        equal = np.zeros((m, d), dtype=np.int32)
        scratch = np.empty((m, d), dtype=bool)
        for k in range(N):
            other = X[s_rel + k]
            np.less(other, Xt, out=scratch)
            less += scratch
            np.equal(other, Xt, out=scratch)
            equal += scratch
        rank = less + 0.5 * (equal + 1)  # average 1-based rank among ties (self counts once)
    return ndtri((rank - 0.5) / N)




@lazy_kernel
def _warp_kernel():
    """Numba kernel for the window ranks of :func:`feature_warping` (or None).

    Writes ``2 * rank`` (``2 * #less + #equal + 1``, an integer) for every frame and
    dimension; about 10x faster than the numpy counting loop.
    """
    try:
        import numba
    except ImportError:  # pragma: no cover - numba comes with librosa
        return None

    @numba.njit(cache=True, nogil=True)
    def kernel(X, r0, start, N, out):  # pragma: no cover - compiled
        d = X.shape[1]
        for t in range(start.shape[0]):
            s = start[t]
            for j in range(d):
                x = X[r0 + t, j]
                acc = 1
                for k in range(s, s + N):
                    v = X[k, j]
                    if v < x:
                        acc += 2
                    elif v == x:
                        acc += 1
                out[t, j] = acc

    return kernel
