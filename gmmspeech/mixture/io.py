"""Model files: a :class:`~gmmspeech.mixture.gmm.GMM` (or a
:class:`~gmmspeech.mixture.hmm.GMMHMM`) saved as ``.npz`` plus JSON metadata.

Format (version 1)
------------------
An uncompressed NumPy ``.npz`` archive (a zip file of ``.npy`` members) holding only
numeric arrays:

* ``weights`` (K,), ``means`` (K, D), ``covariances`` (shape by covariance type) -- float64;
* ``history`` (iterations,) and ``lower_bound`` () -- the fit trace;
* ``init__<name>`` -- array-valued constructor parameters (``means_init``, ...), if any;
* ``__meta__`` -- UTF-8 JSON as ``uint8``: ``format``, ``format_version``,
  ``covariance_type``, ``n_components``, ``n_features``, ``dtype`` (compute dtype),
  ``gmmspeech_version``, ``params`` (constructor parameters), ``fitted`` (``converged_``,
  ``n_iter_``, ...), ``metadata`` (the caller's dict) and ``checksum``.

A GMM-HMM file (``format`` ``gmmspeech-hmm``, version 1) has the same structure with the
arrays ``startprob`` (S,), ``transmat`` (S, S), ``weights`` (S, M), ``means`` (S, M, D),
``covariances`` (S, M, D) or (S, M, D, D), ``var_floor`` (D,), ``history``,
``history_n_mix`` and ``lower_bound``; its metadata holds ``n_states``, ``n_mix``,
``n_features`` and ``covariance_type``. On loading, the probabilities must be finite,
non-negative, rows summing to 1, the transitions left-to-right within ``max_jump``, and the
covariances positive definite.

The checksum is SHA-256 over every array (name, dtype, shape and bytes, in name order)
followed by the canonical JSON of the metadata without the checksum, so any change to
the parameters or metadata is detected. Files are read with ``allow_pickle=False``:
nothing in a model file is ever executed. Writes are atomic (temporary file in the same
folder, then :func:`os.replace`). Every problem on reading raises
:class:`gmmspeech.errors.ModelFileError` naming the file.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import zipfile
import zlib
from typing import Any

import numpy as np

from gmmspeech.atomic import atomic_write
from gmmspeech.errors import ModelFileError

__all__ = ["save", "load", "load_metadata", "model_info", "fingerprint", "check_parameters",
           "save_arrays", "load_arrays", "FORMAT", "FORMAT_VERSION", "HMM_FORMAT"]

FORMAT = "gmmspeech-gmm"
FORMAT_VERSION = 1
HMM_FORMAT = "gmmspeech-hmm"
_FORMATS = (FORMAT, HMM_FORMAT)
_HMM_REQUIRED = ("startprob", "transmat", "weights", "means", "covariances", "var_floor")
_HMM_FITTED = ("converged_", "n_iter_", "n_viterbi_iter_", "n_reseeded_")
_META = "__meta__"
_INIT_PREFIX = "init__"
_REQUIRED = ("weights", "means", "covariances")
_COV_NDIM = {"full": 3, "tied": 2, "diag": 2, "spherical": 1}
_FITTED_SCALARS = ("converged_", "n_iter_", "n_features_in_", "n_reseeded_")
_ZIP_MAGIC = b"PK\x03\x04"


def _checksum(arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> str:
    h = hashlib.sha256()
    for name in sorted(arrays):
        a = np.ascontiguousarray(arrays[name])
        h.update(name.encode("utf-8") + b"\0")
        h.update(a.dtype.str.encode("ascii") + b"\0")
        h.update(repr(tuple(int(s) for s in a.shape)).encode("ascii") + b"\0")
        h.update(a.tobytes())
    body = {k: v for k, v in meta.items() if k != "checksum"}
    h.update(json.dumps(body, sort_keys=True, separators=(",", ":")).encode("utf-8"))
    return h.hexdigest()


def fingerprint(model: Any) -> str:
    """A 32-hex-digit fingerprint of a fitted GMM's parameters.

    SHA-256 over the covariance type and the weights, means and covariances (as float64,
    with their shapes); metadata and fit trace are not included, so a model and the same
    model saved and loaded again have the same fingerprint. MAP-adapted models record
    their UBM's (``ubm_fingerprint_``, saved as ``metadata["ubm_fingerprint"]``) so that
    scoring against another UBM is caught even when the shapes agree.
    """
    h = hashlib.sha256(str(getattr(model, "covariance_type", "")).encode("utf-8") + b"\0")
    for name in ("weights_", "means_", "covariances_"):
        a = np.ascontiguousarray(np.asarray(getattr(model, name), dtype=np.float64))
        h.update(repr(a.shape).encode("ascii") + b"\0")
        h.update(a.tobytes())
    return h.hexdigest()[:32]


def _json_default(v: Any) -> Any:
    """numpy scalars and arrays in user metadata become plain JSON values."""
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, np.ndarray) and v.dtype.kind in "biuf":
        return v.tolist()
    raise TypeError(f"Object of type {type(v).__name__} is not JSON serializable")


def _or_empty(v: Any) -> Any:
    return [] if v is None else v


def _json_param(name: str, value: Any, arrays: dict[str, np.ndarray]) -> Any:
    """A constructor parameter as JSON (arrays go to the archive, dtypes by name)."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        v = float(value)
        return v if math.isfinite(v) else {"__float__": repr(v)}
    if name == "dtype" or isinstance(value, (type, np.dtype)):
        try:
            return {"__dtype__": np.dtype(value).name}
        except TypeError:
            return None
    if isinstance(value, (np.ndarray, list, tuple)):
        a = np.asarray(value)
        if a.dtype.kind in "biuf":
            arrays[_INIT_PREFIX + name] = a
            return {"__array__": _INIT_PREFIX + name}
    # random generators and anything else that has no faithful JSON form
    return None


def _param_from_json(value: Any, arrays: dict[str, np.ndarray]) -> Any:
    if isinstance(value, dict):
        if "__dtype__" in value:
            return np.dtype(value["__dtype__"]).type
        if "__array__" in value:
            return arrays[value["__array__"]]
        if "__float__" in value:
            return float(value["__float__"])
    return value


def save(model: Any, path: str | os.PathLike, *, metadata: dict[str, Any] | None = None) -> str:
    """Save a fitted :class:`~gmmspeech.mixture.gmm.GMM` to ``path`` (``.npz``, no pickle).

    Parameters
    ----------
    model : GMM
        A fitted model (any covariance type).
    path : path-like
        Output file, written atomically; the name is used as given (conventionally
        ``.npz``).
    metadata : dict or None
        Extra JSON-serialisable information (speaker label, feature config hash, ...),
        returned by :func:`load_metadata` and as ``model.metadata_`` after :func:`load`.

    Returns
    -------
    str
        The path written.

    Raises
    ------
    TypeError
        ``model`` is not a GMM, or ``metadata`` is not a JSON-serialisable dict.
    ValueError
        The model is not fitted.
    """
    from gmmspeech import __version__
    from gmmspeech.mixture.gmm import GMM

    is_hmm = type(model).__name__ == "GMMHMM" and type(model).__module__ == "gmmspeech.mixture.hmm"
    if not isinstance(model, GMM) and not is_hmm:
        raise TypeError(f"save expects a fitted GMM or GMMHMM, got {type(model).__name__}")
    if not hasattr(model, "means_") or not hasattr(model, "covariances_"):
        raise ValueError(f"This {type(model).__name__} instance is not fitted yet; nothing to save")
    user = _user_metadata(metadata)
    if is_hmm:
        return _save_hmm(model, path, user, __version__)
    ubm_fp = getattr(model, "ubm_fingerprint_", None)
    if ubm_fp is not None and "ubm_fingerprint" not in user:
        user["ubm_fingerprint"] = str(ubm_fp)

    arrays: dict[str, np.ndarray] = {
        "weights": np.asarray(model.weights_),
        "means": np.asarray(model.means_),
        "covariances": np.asarray(model.covariances_),
        "history": np.asarray(_or_empty(getattr(model, "history_", None)), dtype=np.float64).ravel(),
        "lower_bound": np.asarray(getattr(model, "lower_bound_", -np.inf), dtype=np.float64),
    }
    params: dict[str, Any] = {}
    for name, value in model.get_params().items():
        params[name] = _json_param(name, value, arrays)
    fitted = {}
    for name in _FITTED_SCALARS:
        if hasattr(model, name):
            v = getattr(model, name)
            fitted[name] = bool(v) if isinstance(v, (bool, np.bool_)) else int(v)
    k, d = arrays["means"].shape
    meta = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "gmmspeech_version": __version__,
        "model": type(model).__name__,
        "covariance_type": str(model.covariance_type),
        "n_components": int(k),
        "n_features": int(d),
        "dtype": np.dtype(getattr(model, "dtype", np.float64)).name,
        "params": params,
        "fitted": fitted,
        "metadata": user,
    }
    return _write(path, arrays, meta)


def _user_metadata(metadata: Any) -> dict[str, Any]:
    if metadata is None:
        metadata = {}
    if not isinstance(metadata, dict):
        raise TypeError(f"metadata must be a dict, got {type(metadata).__name__}")
    try:
        return json.loads(json.dumps(metadata, default=_json_default))
    except (TypeError, ValueError) as exc:
        raise TypeError(f"metadata must be JSON-serialisable ({exc})") from None


def _write(path, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> str:
    """Checksum ``meta`` over ``arrays``, embed it and write the archive atomically."""
    for name, a in arrays.items():
        if a.dtype.kind not in "biuf":
            raise TypeError(f"{name} has dtype {a.dtype}; only numeric arrays are saved")
    meta["checksum"] = _checksum(arrays, meta)
    blob = json.dumps(meta, sort_keys=True).encode("utf-8")
    arrays[_META] = np.frombuffer(blob, dtype=np.uint8)
    return atomic_write(path, lambda fh: np.savez(fh, **arrays))


def _save_hmm(model: Any, path, user: dict[str, Any], version: str) -> str:
    arrays: dict[str, np.ndarray] = {
        "startprob": np.asarray(model.startprob_, dtype=np.float64),
        "transmat": np.asarray(model.transmat_, dtype=np.float64),
        "weights": np.asarray(model.weights_, dtype=np.float64),
        "means": np.asarray(model.means_, dtype=np.float64),
        "covariances": np.asarray(model.covariances_, dtype=np.float64),
        "var_floor": np.asarray(model.var_floor_, dtype=np.float64),
        "history": np.asarray(_or_empty(getattr(model, "history_", None)), dtype=np.float64).ravel(),
        "history_n_mix": np.asarray(_or_empty(getattr(model, "history_n_mix_", None)), dtype=np.int64).ravel(),
        "lower_bound": np.asarray(getattr(model, "lower_bound_", -np.inf), dtype=np.float64),
    }
    params = {name: _json_param(name, value, arrays) for name, value in model.get_params().items()}
    fitted: dict[str, Any] = {}
    for name in _HMM_FITTED:
        if hasattr(model, name):
            v = getattr(model, name)
            fitted[name] = bool(v) if isinstance(v, (bool, np.bool_)) else int(v)
    fitted["unused_states_"] = [int(j) for j in getattr(model, "unused_states_", [])]
    s, m, d = arrays["means"].shape
    meta = {
        "format": HMM_FORMAT,
        "format_version": FORMAT_VERSION,
        "gmmspeech_version": version,
        "model": "GMMHMM",
        "covariance_type": str(model.covariance_type),
        "n_states": int(s),
        "n_mix": int(m),
        "n_features": int(d),
        "dtype": np.dtype(getattr(model, "dtype", np.float64)).name,
        "params": params,
        "fitted": fitted,
        "metadata": user,
    }
    return _write(path, arrays, meta)


def _load_hmm(p: str, arrays: dict[str, np.ndarray], meta: dict[str, Any]):
    """A GMMHMM from verified arrays and metadata (every value checked; ModelFileError)."""
    from gmmspeech.mixture.hmm import GMMHMM, HMM_COVARIANCE_TYPES

    missing = [n for n in _HMM_REQUIRED if n not in arrays]
    if missing:
        raise ModelFileError(p, f"missing array{'s' if len(missing) > 1 else ''} {', '.join(missing)}")
    ct = meta.get("covariance_type")
    if ct not in HMM_COVARIANCE_TYPES:
        raise ModelFileError(p, f"unknown covariance_type {ct!r} for a GMM-HMM")
    a = {n: arrays[n].astype(np.float64, copy=False) for n in _HMM_REQUIRED}
    means = a["means"]
    if means.ndim != 3:
        raise ModelFileError(p, f"means must be 3-D (states, mixtures, features), got shape {means.shape}")
    s, m, d = means.shape
    dims = (meta.get("n_states"), meta.get("n_mix"), meta.get("n_features"))
    if dims != (s, m, d):
        raise ModelFileError(p, f"metadata dims {dims} do not match the arrays {(s, m, d)}")
    if a["var_floor"].shape != (d,) or not np.all(np.isfinite(a["var_floor"])) or np.any(a["var_floor"] <= 0):
        raise ModelFileError(p, "var_floor must hold one positive finite value per feature")
    params_json = meta.get("params") or {}
    if not isinstance(params_json, dict):
        raise ModelFileError(p, "metadata 'params' is not a dict")
    valid = set(GMMHMM().get_params())
    try:
        params = {name: _param_from_json(v, arrays) for name, v in params_json.items()
                  if name in valid and name not in ("n_states", "n_mix", "covariance_type")}
        model = GMMHMM.from_params(a["startprob"], a["transmat"], a["weights"], means, a["covariances"],
                                   covariance_type=ct, **params)
    except (ValueError, TypeError, KeyError) as exc:
        raise ModelFileError(p, f"invalid model parameters ({exc})") from None
    # exactly the saved values (from_params renormalises the probabilities)
    model.startprob_, model.transmat_, model.weights_ = a["startprob"], a["transmat"], a["weights"]
    model.var_floor_ = a["var_floor"]
    model.history_ = [float(v) for v in np.ravel(arrays.get("history", np.zeros(0)))]
    model.history_n_mix_ = [int(v) for v in np.ravel(arrays.get("history_n_mix", np.zeros(0, dtype=np.int64)))]
    lb = np.ravel(arrays.get("lower_bound", np.zeros(0)))
    model.lower_bound_ = float(lb[0]) if lb.size else -np.inf
    fitted = meta.get("fitted") or {}
    if not isinstance(fitted, dict):
        raise ModelFileError(p, "metadata 'fitted' is not a dict")
    for name in _HMM_FITTED:
        if name in fitted:
            v = fitted[name]
            if not isinstance(v, (bool, int)):
                raise ModelFileError(p, f"fitted.{name} must be a number, got {v!r}")
            setattr(model, name, bool(v) if name == "converged_" else int(v))
    unused = fitted.get("unused_states_", [])
    if not isinstance(unused, list) or not all(isinstance(j, int) and 0 <= j < s for j in unused):
        raise ModelFileError(p, f"fitted.unused_states_ must list states in [0, {s}), got {unused!r}")
    model.unused_states_ = list(unused)
    model.metadata_ = dict(meta.get("metadata") or {})
    return model


# --------------------------------------------------------------------------- reading
# Nothing in a file is trusted: the zip directory is read before anything is
# decompressed, the metadata is checked against a schema before any array is read, every
# member's declared size must be what the metadata's shapes imply, and every value is
# checked before a model is built.

#: most members a model file can have (6 arrays + 3 initial-parameter arrays)
_MAX_MEMBERS = 16
#: largest metadata member (JSON)
_MAX_META_BYTES = 16 << 20
#: largest model accepted (uncompressed bytes of all arrays); also bounds load's memory
_MAX_BYTES = 256 << 20
_MAX_COMPONENTS = 1 << 20
_MAX_FEATURES = 1 << 16
_MAX_HISTORY = 1_000_000
_MAX_NPY_HEADER = 4096
_MAX_DIRECTORY = 1 << 20
_MAX_INT = 2**31 - 1
#: parameter ranges relative to the data scale S = max(|means|, sqrt(variances)):
#: |means| <= _MAX_SCALE, variances (eigenvalues) >= max(_MIN_VAR, _MIN_VAR_RATIO * S^2)
#: (normal floats whose precisions stay finite, also in float32 scoring)
_MAX_SCALE = 1e12
_MIN_VAR = 1e-30
_MIN_VAR_RATIO = 1e-18
_FLOAT_DTYPES = ("<f8", "<f4")
_MEMBER_DTYPES = {"weights": _FLOAT_DTYPES, "means": _FLOAT_DTYPES,
                  "covariances": _FLOAT_DTYPES, "history": _FLOAT_DTYPES,
                  "lower_bound": _FLOAT_DTYPES, _META: ("|u1",),
                  # GMM-HMM members
                  "startprob": _FLOAT_DTYPES, "transmat": _FLOAT_DTYPES, "var_floor": _FLOAT_DTYPES,
                  "history_n_mix": ("<i8", "<i4")}
_INIT_DTYPES = ("<f8", "<f4", "<i8", "<i4")
_INIT_NAMES = ("weights_init", "means_init", "precisions_init")
_COV_TYPES = tuple(_COV_NDIM)
_HEX = set("0123456789abcdef")

# schema of a saved feature configuration (metadata["feature_config"]): type and range of
# every field whose value sizes an allocation or a loop when the features are rebuilt
_FC_INT = {"sample_rate": (1000, 384_000), "n_mels": (1, 1024), "n_mfcc": (1, 1024),
           "deltas": (0, 4), "delta_width": (1, 201), "vad_context": (0, 10_000),
           "dither_seed": (-(2**63), 2**63 - 1)}
_FC_OPT_INT = {"win_length": (1, 65_536), "hop_length": (1, 65_536), "n_fft": (1, 65_536),
               "cmvn_window": (1, 1_000_000)}
_FC_REAL = {"frame_length": (1e-4, 1.0), "frame_shift": (1e-4, 1.0), "sample_scale": (None, None),
            "dither": (0.0, None), "preemphasis": (0.0, 1.0), "power": (0.0, 10.0),
            "fmin": (0.0, 192_000.0), "log_floor": (0.0, None), "lifter": (0.0, 1e6),
            "vad_threshold_db": (None, None), "vad_proportion": (0.0, 1.0)}
_FC_OPT_REAL = {"fmax": (0.0, 192_000.0), "top_db": (0.0, None)}
_FC_BOOL = ("center", "remove_dc", "periodic_window", "use_energy", "raw_energy", "vad",
            "cmvn_norm_vars", "cmvn_center")
_FC_STR = ("name", "pad_mode", "window", "mel_scale", "mel_norm", "mel_bank", "log_type",
           "delta_mode", "vad_reference", "cmvn")
_MAX_FFT = 65_536
_ZIP_ERRORS = (zipfile.BadZipFile, OSError, EOFError, zlib.error, NotImplementedError)


class _Fail(Exception):
    """Internal: a schema violation ``(field, reason)``, turned into ModelFileError."""

    def __init__(self, field: str | None, reason: str):
        super().__init__(field, reason)
        self.field = field
        self.reason = reason


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_real(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _short(v: Any) -> str:
    r = repr(v)
    return r if len(r) <= 60 else r[:57] + "..."


def _want_int(v: Any, field: str, lo: int, hi: int) -> int:
    if not _is_int(v):
        raise _Fail(field, f"must be an integer, got {_short(v)} ({type(v).__name__})")
    if not lo <= v <= hi:
        raise _Fail(field, f"must be an integer in [{lo}, {hi}], got {_short(v)}")
    return v


def _want_real(v: Any, field: str, lo: float | None = None, hi: float | None = None) -> float:
    if not _is_real(v) or not math.isfinite(v):
        raise _Fail(field, f"must be a finite number, got {_short(v)}")
    if (lo is not None and v < lo) or (hi is not None and v > hi):
        rng = f"[{'-inf' if lo is None else lo:g}, {'inf' if hi is None else hi:g}]"
        raise _Fail(field, f"must be in {rng}, got {_short(v)}")
    return float(v)


def _want_str(v: Any, field: str, max_len: int = 4096) -> str:
    if not isinstance(v, str):
        raise _Fail(field, f"must be a string, got {_short(v)} ({type(v).__name__})")
    if len(v) > max_len:
        raise _Fail(field, f"string of {len(v)} characters (at most {max_len})")
    return v


def _want_dict(v: Any, field: str) -> dict:
    if not isinstance(v, dict):
        raise _Fail(field, f"must be a dict (JSON object), got {_short(v)} ({type(v).__name__})")
    return v


def _want_scalar(v: Any, field: str) -> None:
    if v is None or isinstance(v, bool) or (_is_int(v) and abs(v) < 2**64):
        return
    if isinstance(v, float):
        return
    if isinstance(v, str):
        _want_str(v, field)
        return
    raise _Fail(field, f"must be a JSON scalar, got {_short(v)} ({type(v).__name__})")


def _check_feature_config(fc: Any, field: str) -> None:
    fc = _want_dict(fc, field)
    for key, value in fc.items():
        f = f"{field}.{key}"
        if key in _FC_INT:
            _want_int(value, f, *_FC_INT[key])
        elif key in _FC_OPT_INT:
            if value is not None:
                _want_int(value, f, *_FC_OPT_INT[key])
        elif key in _FC_REAL:
            _want_real(value, f, *_FC_REAL[key])
        elif key in _FC_OPT_REAL:
            if value is not None:
                _want_real(value, f, *_FC_OPT_REAL[key])
        elif key in _FC_BOOL:
            if not isinstance(value, bool):
                raise _Fail(f, f"must be true or false, got {_short(value)}")
        elif key in _FC_STR:
            _want_str(value, f, 64)
        elif isinstance(value, list):  # a field of a newer configuration: plain values only
            if len(value) > 1024:
                raise _Fail(f, f"list of {len(value)} values (at most 1024)")
            for i, v in enumerate(value):
                _want_scalar(v, f"{f}[{i}]")
        else:
            _want_scalar(value, f)
    if "sample_rate" not in fc:
        raise _Fail(f"{field}.sample_rate", "missing")
    sr = fc["sample_rate"]
    if fc.get("n_mfcc") is not None and fc.get("n_mels") is not None and fc["n_mfcc"] > fc["n_mels"]:
        raise _Fail(f"{field}.n_mfcc", f"{fc['n_mfcc']} cepstra from {fc['n_mels']} mel bands")
    win = fc.get("win_length") or fc.get("n_fft")
    if win is None and fc.get("frame_length") is not None:
        win = fc["frame_length"] * sr
    if win is not None and win > _MAX_FFT:
        raise _Fail(f"{field}.frame_length", f"a {win:.0f}-sample window (at most {_MAX_FFT})")


def _check_user_metadata(md: Any) -> None:
    md = _want_dict(md, "metadata")
    for key in ("label", "role", "source", "feature_config_hash"):
        if key in md:
            _want_str(md[key], f"metadata.{key}")
    if "ubm_fingerprint" in md:
        fp = _want_str(md["ubm_fingerprint"], "metadata.ubm_fingerprint", 128)
        if not fp or set(fp) - _HEX:
            raise _Fail("metadata.ubm_fingerprint", f"must be a hex string, got {_short(fp)}")
    if "feature_config" in md:
        _check_feature_config(md["feature_config"], "metadata.feature_config")
    if "ubm_training" in md:
        st = _want_dict(md["ubm_training"], "metadata.ubm_training")
        if "iteration" in st:
            _want_int(st["iteration"], "metadata.ubm_training.iteration", 0, _MAX_INT)
        if "seed" in st:
            _want_int(st["seed"], "metadata.ubm_training.seed", 0, 2**64 - 1)
        if "history" in st:
            h = st["history"]
            if not isinstance(h, list) or len(h) > _MAX_HISTORY:
                raise _Fail("metadata.ubm_training.history", "must be a list of numbers")
            for i, v in enumerate(h):
                _want_real(v, f"metadata.ubm_training.history[{i}]")


# constructor parameters of GMM: (kind, lo, hi); kinds "int", "int?" (or None), "real",
# "real?" (or None); "inf" allowed where a tolerance may be infinite
_PARAM_SCHEMA = {
    "n_components": ("int", 1, _MAX_COMPONENTS), "max_iter": ("int", 1, _MAX_INT),
    "n_init": ("int", 1, _MAX_INT), "chunk_size": ("int", 1, _MAX_INT),
    "verbose": ("int", 0, _MAX_INT), "verbose_interval": ("int", 1, _MAX_INT),
    "split_iter": ("int", 0, _MAX_INT), "kmeans_iter": ("int", 0, _MAX_INT),
    "n_jobs": ("int?", -_MAX_INT, _MAX_INT), "n_threads": ("int?", 1, _MAX_INT),
    "random_state": ("int?", 0, 2**64 - 1),
    "tol": ("real", 0.0, None), "param_tol": ("real?", 0.0, None),
    "reg_covar": ("real", 0.0, None), "var_floor_rel": ("real", 0.0, None),
    "covariance_type": ("str", None, None), "init_params": ("str", None, None),
    "backend": ("str?", None, None),
}


def _check_param(name: str, value: Any, meta: dict) -> None:
    field = f"params.{name}"
    kind = _PARAM_SCHEMA.get(name)
    if kind is not None:
        k, lo, hi = kind
        if value is None and k.endswith("?"):
            return
        k = k.rstrip("?")
        if k == "int":
            _want_int(value, field, lo, hi)
        elif k == "real":
            if isinstance(value, dict) and value == {"__float__": "inf"}:
                return
            _want_real(value, field, lo, hi)
        else:
            _want_str(value, field, 64)
        return
    if value is None or isinstance(value, (bool, str)):
        if isinstance(value, str):
            _want_str(value, field, 256)
        return
    if _is_int(value):
        if abs(value) >= 2**64:
            raise _Fail(field, f"integer out of range: {_short(value)}")
        return
    if isinstance(value, float):
        if math.isnan(value):
            raise _Fail(field, "is NaN")
        return
    if isinstance(value, dict) and len(value) == 1:
        (tag, v), = value.items()
        if tag == "__dtype__":
            if v not in ("float32", "float64"):
                raise _Fail(field, f"dtype must be float32 or float64, got {_short(v)}")
            return
        if tag == "__array__":
            if name not in _INIT_NAMES or v != _INIT_PREFIX + name:
                raise _Fail(field, f"unexpected array reference {_short(v)}")
            return
        if tag == "__float__":
            if not isinstance(v, str) or v.strip().lower() not in ("inf", "-inf", "+inf"):
                raise _Fail(field, f"must be a number, got {_short(v)}")
            return
    raise _Fail(field, f"unsupported value {_short(value)}")


def _check_meta(meta: Any) -> tuple[str, int, int]:
    """The metadata's schema; returns ``(covariance_type, K, D)``."""
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise _Fail(None, f"not a gmmspeech model file (metadata 'format' is not {FORMAT!r})")
    version = meta.get("format_version")
    if version != FORMAT_VERSION or not _is_int(version):
        raise _Fail("format_version", f"format version {_short(version)} is not supported "
                                      f"(this gmmspeech reads version {FORMAT_VERSION})")
    ct = meta.get("covariance_type")
    if ct not in _COV_TYPES:
        raise _Fail("covariance_type", f"unknown covariance_type {_short(ct)}")
    k = _want_int(meta.get("n_components"), "n_components", 1, _MAX_COMPONENTS)
    d = _want_int(meta.get("n_features"), "n_features", 1, _MAX_FEATURES)
    if meta.get("dtype") not in ("float32", "float64"):
        raise _Fail("dtype", f"must be 'float32' or 'float64', got {_short(meta.get('dtype'))}")
    for key in ("gmmspeech_version", "model"):
        if key in meta:
            _want_str(meta[key], key, 64)
    cs = meta.get("checksum")
    if not isinstance(cs, str) or len(cs) != 64 or set(cs) - _HEX:
        raise _Fail("checksum", "missing or not a SHA-256 hex digest")
    params = _want_dict(meta.get("params", {}), "params")
    for name, value in params.items():
        _check_param(name, value, meta)
    if params.get("n_components", k) != k:
        raise _Fail("params.n_components", f"{_short(params['n_components'])} but the model has {k}")
    if params.get("covariance_type", ct) != ct:
        raise _Fail("params.covariance_type", f"{_short(params['covariance_type'])} but the "
                                              f"model is {ct!r}")
    fitted = _want_dict(meta.get("fitted", {}), "fitted")
    for name, value in fitted.items():
        f = f"fitted.{name}"
        if name == "converged_":
            if not isinstance(value, bool):
                raise _Fail(f, f"must be true or false, got {_short(value)}")
        elif name == "n_features_in_":
            if _want_int(value, f, 1, _MAX_FEATURES) != d:
                raise _Fail(f, f"{value} but the model has {d} features")
        elif name in _FITTED_SCALARS:
            _want_int(value, f, 0, _MAX_INT)
        else:
            _want_scalar(value, f)
    _check_user_metadata(meta.get("metadata", {}))
    return ct, k, d


def _cov_shape(ct: str, k: int, d: int) -> tuple[int, ...]:
    return {"full": (k, d, d), "tied": (d, d), "diag": (k, d), "spherical": (k,)}[ct]


def _expected_shapes(ct: str, k: int, d: int) -> dict[str, tuple[int, ...] | None]:
    """Shape of every member the metadata allows (None: 1-D of bounded length)."""
    cov = _cov_shape(ct, k, d)
    prec_init = cov
    return {"weights": (k,), "means": (k, d), "covariances": cov, "history": None,
            "lower_bound": (), "init__weights_init": (k,), "init__means_init": (k, d),
            "init__precisions_init": prec_init}


def _eocd_entries(p: str, fh) -> int:
    """Member count from the zip's end-of-central-directory record (nothing decompressed)."""
    import struct

    size = fh.seek(0, os.SEEK_END)
    tail_len = min(size, 22 + 65_535)
    fh.seek(size - tail_len)
    tail = fh.read(tail_len)
    pos = tail.rfind(b"PK\x05\x06")
    if pos < 0 or pos + 22 > len(tail):
        raise _Fail(None, "truncated or corrupt archive (no zip directory)")
    _, _, _, n_here, n_total, cd_size, _cd_off, _ = struct.unpack("<4sHHHHIIH", tail[pos:pos + 22])
    n = max(n_here, n_total)
    if cd_size != 0xFFFFFFFF and cd_size > _MAX_DIRECTORY:
        raise _Fail(None, f"zip directory of {cd_size} bytes; a gmmspeech model's is at most "
                          f"{_MAX_DIRECTORY} (far more members than a model has)")
    if n == 0xFFFF or cd_size == 0xFFFFFFFF:  # zip64: the count is in the zip64 record
        loc = pos - 20
        if loc < 0 or tail[loc:loc + 4] != b"PK\x06\x07":
            raise _Fail(None, "truncated or corrupt archive (bad zip64 directory)")
        (off64,) = struct.unpack("<Q", tail[loc + 8:loc + 16])
        if off64 > size - 56:
            raise _Fail(None, "truncated or corrupt archive (bad zip64 directory)")
        fh.seek(off64)
        rec = fh.read(56)
        if rec[:4] != b"PK\x06\x06":
            raise _Fail(None, "truncated or corrupt archive (bad zip64 directory)")
        n = max(struct.unpack("<QQ", rec[24:40]))
    return n


def _read_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo, name: str, dtypes: tuple[str, ...],
                 shape: tuple[int, ...] | None) -> np.ndarray:
    """One ``.npy`` member: magic, header (dtype whitelist, expected shape), exact size."""
    with zf.open(info) as fp:
        magic = fp.read(8)
        if len(magic) < 8 or magic[:6] != b"\x93NUMPY":
            raise _Fail(name, "not a NumPy array (no .npy magic)")
        version = (magic[6], magic[7])
        fp_hdr = _Prefixed(magic, fp)
        try:
            np.lib.format.read_magic(fp_hdr)
            if version == (1, 0):
                shp, fortran, dt = np.lib.format.read_array_header_1_0(
                    fp_hdr, max_header_size=_MAX_NPY_HEADER)
            elif version == (2, 0):
                shp, fortran, dt = np.lib.format.read_array_header_2_0(
                    fp_hdr, max_header_size=_MAX_NPY_HEADER)
            else:
                raise _Fail(name, f".npy format version {version} is not supported")
        except _Fail:
            raise
        except Exception as exc:  # noqa: BLE001 - numpy's header parser raises many kinds
            raise _Fail(name, f"corrupt .npy header ({type(exc).__name__}: {exc})") from None
        if dt.str not in dtypes:
            if dt.hasobject:
                raise _Fail(name, "holds object arrays (pickled data); refused")
            raise _Fail(name, f"has dtype {dt.str!r}; only numeric arrays of "
                              f"{', '.join(dtypes)} are allowed")
        shp = tuple(int(s) for s in shp)
        if shape is not None and shp != shape:
            raise _Fail(name, f"has shape {shp}, the metadata implies {shape}")
        if shape is None and (len(shp) != 1 or shp[0] > _MAX_HISTORY):
            raise _Fail(name, f"has shape {shp}; expected a 1-D array of at most {_MAX_HISTORY}")
        nbytes = math.prod(shp) * dt.itemsize
        header_len = fp_hdr.consumed
        if info.file_size != header_len + nbytes:
            raise _Fail(name, f"declares {info.file_size} bytes, its header implies "
                              f"{header_len + nbytes}")
        buf = bytearray(nbytes)
        view = memoryview(buf)
        got = 0
        while got < nbytes:
            chunk = fp.read(min(nbytes - got, 1 << 24))
            if not chunk:
                raise _Fail(name, f"truncated ({got} of {nbytes} bytes)")
            view[got:got + len(chunk)] = chunk
            got += len(chunk)
        if fp.read(1):  # also makes zipfile verify the CRC
            raise _Fail(name, "trailing data after the array")
    arr = np.frombuffer(buf, dtype=dt)
    return arr.reshape(shp, order="F" if fortran else "C")


class _Prefixed:
    """A read-only stream: ``prefix`` then ``fp``, counting the bytes consumed."""

    def __init__(self, prefix: bytes, fp):
        self._prefix = prefix
        self._fp = fp
        self.consumed = 0

    def read(self, n: int = -1) -> bytes:
        out = b""
        if self._prefix:
            out, self._prefix = self._prefix[:n], self._prefix[n:]
            n -= len(out)
        if n > 0:
            out += self._fp.read(n)
        self.consumed += len(out)
        return out


def _check_values(ct: str, arrays: dict[str, np.ndarray]) -> None:
    """Finite parameters in ranges the scoring and training arithmetic can carry."""
    w = arrays["weights"].astype(np.float64)
    ok = np.isfinite(w) & (w >= np.finfo(np.float64).tiny)
    if not ok.all():
        raise _Fail("weights", f"must be positive normal floats, got {w[~ok][0]!r}")
    if not abs(float(w.sum()) - 1.0) <= 1e-6:
        raise _Fail("weights", f"must sum to 1, sum to {float(w.sum())!r}")
    mu = arrays["means"].astype(np.float64)
    if not np.all(np.isfinite(mu)):
        raise _Fail("means", "contain NaN or infinity")
    big = float(np.abs(mu).max())
    if big > _MAX_SCALE:
        raise _Fail("means", f"largest |mean| {big:.3g} exceeds {_MAX_SCALE:g}")
    cov = arrays["covariances"].astype(np.float64)
    if not np.all(np.isfinite(cov)):
        raise _Fail("covariances", "contain NaN or infinity")
    if ct in ("diag", "spherical"):
        var = cov
    else:
        mats = cov.reshape(-1, cov.shape[-1], cov.shape[-1])
        scale = max(float(np.abs(mats).max()), np.finfo(np.float64).tiny)
        if float(np.abs(mats - mats.transpose(0, 2, 1)).max()) > 1e-10 * scale:
            raise _Fail("covariances", "not symmetric")
        var = np.linalg.eigvalsh(mats)
    vmax = float(var.max())
    vmin = float(var.min())
    if vmax > _MAX_SCALE**2:
        raise _Fail("covariances", f"largest variance {vmax:.3g} exceeds {_MAX_SCALE ** 2:g}")
    if not vmin > 0:
        if ct in ("diag", "spherical"):
            raise _Fail("covariances", f"variances must be positive, got {vmin:.3g}")
        raise _Fail("covariances", f"not positive definite (smallest eigenvalue {vmin:.3g})")
    s2 = max(big * big, vmax)
    floor = max(_MIN_VAR, _MIN_VAR_RATIO * s2)
    if not vmin >= floor:
        what = "variance" if ct in ("diag", "spherical") else "eigenvalue"
        raise _Fail("covariances", f"smallest {what} {vmin:.3g} is below {floor:.3g} (at least "
                                   f"{_MIN_VAR:g} and {_MIN_VAR_RATIO:g} x the squared data scale "
                                   f"{s2:.3g}); the model would give non-finite scores")
    for name in ("history", "lower_bound"):
        if name in arrays:
            a = arrays[name]
            if np.any(np.isnan(a)) or np.any(np.isposinf(a)) or (name == "history" and not np.all(np.isfinite(a))):
                raise _Fail(name, "contains NaN or infinity")
    for name, a in arrays.items():
        if name.startswith(_INIT_PREFIX) and not np.all(np.isfinite(a)):
            raise _Fail(name, "contains NaN or infinity")


def check_parameters(model: Any, name: str = "model") -> None:
    """Check a fitted GMM's parameters as :func:`load` checks a file's.

    Weights positive normal floats summing to 1; means finite with ``|mean| <= 1e12``;
    variances (eigenvalues) normal floats of at least ``max(1e-30, 1e-18 S^2)``, ``S`` the
    data scale. Raises :class:`ModelFileError` naming ``model.path_`` (a model loaded from
    a file) and the field, or ``ValueError`` naming ``name`` and the field.
    """
    ct = getattr(model, "covariance_type", "diag")
    try:
        arrays = {"weights": np.asarray(model.weights_), "means": np.asarray(model.means_),
                  "covariances": np.asarray(model.covariances_)}
        if ct not in _COV_NDIM:
            raise _Fail("covariance_type", f"unknown covariance_type {ct!r}")
        k, d = arrays["means"].shape
        for key, shape in (("weights", (k,)), ("covariances", _cov_shape(ct, k, d))):
            if arrays[key].shape != shape:
                raise _Fail(key, f"has shape {arrays[key].shape}, expected {shape}")
        _check_values(ct, arrays)
    except _Fail as exc:
        path = getattr(model, "path_", None)
        if path:
            raise ModelFileError(path, exc.reason, exc.field) from None
        raise ValueError(f"{name}: {exc.field}: {exc.reason}") from None


def _read(path: str | os.PathLike) -> tuple[str, dict[str, np.ndarray], dict[str, Any]]:
    """Read and verify a model file: ``(path, arrays, meta)``; ModelFileError otherwise."""
    p = os.fspath(path)
    try:
        return (p, *_read_checked(p))
    except _Fail as exc:
        raise ModelFileError(p, exc.reason, exc.field) from None


def _read_checked(p: str) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    if not os.path.exists(p):
        raise _Fail(None, "no such file")
    if not os.path.isfile(p):
        raise _Fail(None, "not a regular file")
    try:
        fh = open(p, "rb")  # noqa: SIM115 - closed below
    except OSError as exc:
        raise _Fail(None, f"unreadable ({exc.strerror or exc})") from None
    with fh:
        head = fh.read(4)
        if head[:1] == b"\x80":
            raise _Fail(None, "is a Python pickle, not a gmmspeech model file; pickles are "
                              "never loaded (they can run code)")
        if head != _ZIP_MAGIC:
            raise _Fail(None, "not a gmmspeech model file (not an .npz archive)")
        n_members = _eocd_entries(p, fh)
        if n_members > _MAX_MEMBERS:
            raise _Fail(None, f"archive has {n_members} members; a gmmspeech model has at "
                              f"most {_MAX_MEMBERS}")
        try:
            zf = zipfile.ZipFile(fh)
        except (zipfile.BadZipFile, OSError, EOFError, ValueError, NotImplementedError) as exc:
            raise _Fail(None, f"truncated or corrupt archive ({exc})") from None
        with zf:
            return _read_archive(zf)


def _read_archive(zf: zipfile.ZipFile) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    infos = zf.infolist()
    if len(infos) > _MAX_MEMBERS:
        raise _Fail(None, f"archive has {len(infos)} members; a gmmspeech model has at most "
                          f"{_MAX_MEMBERS}")
    names = [i.filename for i in infos]
    if len(names) != len(set(names)):
        raise _Fail(None, "corrupt archive (duplicate members)")
    members: dict[str, zipfile.ZipInfo] = {}
    for info in infos:
        if not info.filename.endswith(".npy") or "/" in info.filename:
            raise _Fail(None, f"unexpected member {info.filename!r} in the archive")
        if info.flag_bits & 0x1:
            raise _Fail(info.filename[:-4], "encrypted archive member")
        if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            raise _Fail(info.filename[:-4], f"unsupported compression method {info.compress_type}")
        members[info.filename[:-4]] = info
    if _META not in members:
        raise _Fail(None, "no metadata (__meta__): not a gmmspeech model file")
    mi = members[_META]
    if mi.file_size > _MAX_META_BYTES + _MAX_NPY_HEADER:
        raise _Fail(_META, f"metadata of {mi.file_size} bytes (at most {_MAX_META_BYTES})")
    try:
        raw = _read_member(zf, mi, _META, _MEMBER_DTYPES[_META], (_meta_len(zf, mi),))
    except _ZIP_ERRORS as exc:
        raise _Fail(_META, f"truncated or corrupt ({type(exc).__name__}: {exc})") from None
    try:
        meta = json.loads(raw.tobytes().decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise _Fail(_META, f"metadata is not valid JSON ({str(exc)[:200]})") from None
    if isinstance(meta, dict) and meta.get("format") == HMM_FORMAT:
        ct, shapes, required, what = _check_hmm_meta(meta)
    else:
        ct, k, d = _check_meta(meta)
        shapes, required, what = _expected_shapes(ct, k, d), _REQUIRED, f"{k} x {d} ({ct})"
    missing = [n for n in required if n not in members]
    if missing:
        raise _Fail(None, f"missing array{'s' if len(missing) > 1 else ''} {', '.join(missing)}")
    budget = 0
    for name in members:
        if name == _META:
            continue
        if name not in shapes:
            raise _Fail(name, "unexpected array in a gmmspeech model file")
        shp = shapes[name]
        n = _MAX_HISTORY if shp is None else math.prod(shp)
        budget += _MAX_NPY_HEADER + 8 * n
    declared = sum(i.file_size for n, i in members.items() if n != _META)
    if declared > min(budget, _MAX_BYTES):
        raise _Fail(None, f"archive declares {declared} uncompressed bytes; a model of "
                          f"{what} needs at most {min(budget, _MAX_BYTES)} "
                          "(zip bomb or corrupt directory); nothing was decompressed")
    arrays: dict[str, np.ndarray] = {}
    for name, info in members.items():
        if name == _META:
            continue
        dtypes = _INIT_DTYPES if name.startswith(_INIT_PREFIX) else _MEMBER_DTYPES[name]
        try:
            arrays[name] = _read_member(zf, info, name, dtypes, shapes[name])
        except _ZIP_ERRORS as exc:
            raise _Fail(name, f"truncated or corrupt ({type(exc).__name__}: {exc})") from None
    for name, value in (meta.get("params") or {}).items():
        if isinstance(value, dict) and "__array__" in value and value["__array__"] not in arrays:
            raise _Fail(f"params.{name}", f"refers to a missing array {value['__array__']!r}")
    try:
        expected = _checksum(arrays, meta)
    except (TypeError, ValueError) as exc:
        raise _Fail(None, f"metadata cannot be verified ({exc})") from None
    if meta.get("checksum") != expected:
        raise _Fail("checksum", "checksum mismatch: the file was modified or damaged")
    if meta.get("format") == HMM_FORMAT:
        _check_hmm_values(ct, arrays)
    else:
        _check_values(ct, arrays)
    return arrays, meta


def _check_hmm_meta(meta: dict) -> tuple[str, dict, tuple[str, ...], str]:
    """The schema of a GMM-HMM file's metadata: ``(covariance_type, shapes, required, what)``."""
    from gmmspeech.mixture.hmm import HMM_COVARIANCE_TYPES

    version = meta.get("format_version")
    if version != FORMAT_VERSION or not _is_int(version):
        raise _Fail("format_version", f"format version {_short(version)} is not supported "
                                      f"(this gmmspeech reads version {FORMAT_VERSION})")
    ct = meta.get("covariance_type")
    if ct not in HMM_COVARIANCE_TYPES:
        raise _Fail("covariance_type", f"unknown covariance_type {_short(ct)} for a GMM-HMM")
    s = _want_int(meta.get("n_states"), "n_states", 1, 4096)
    m = _want_int(meta.get("n_mix"), "n_mix", 1, 4096)
    d = _want_int(meta.get("n_features"), "n_features", 1, _MAX_FEATURES)
    if s * m > _MAX_COMPONENTS:
        raise _Fail("n_mix", f"{s} states x {m} mixtures is more than {_MAX_COMPONENTS} Gaussians")
    if meta.get("dtype") not in ("float32", "float64"):
        raise _Fail("dtype", f"must be 'float32' or 'float64', got {_short(meta.get('dtype'))}")
    for key in ("gmmspeech_version", "model"):
        if key in meta:
            _want_str(meta[key], key, 64)
    cs = meta.get("checksum")
    if not isinstance(cs, str) or len(cs) != 64 or set(cs) - _HEX:
        raise _Fail("checksum", "missing or not a SHA-256 hex digest")
    for name, value in _want_dict(meta.get("params", {}), "params").items():
        _check_param(name, value, meta)
    for name, value in _want_dict(meta.get("fitted", {}), "fitted").items():
        f = f"fitted.{name}"
        if name == "converged_":
            if not isinstance(value, bool):
                raise _Fail(f, f"must be true or false, got {_short(value)}")
        elif name == "unused_states_":
            if not isinstance(value, list) or len(value) > s or not all(
                    _is_int(j) and 0 <= j < s for j in value):
                raise _Fail(f, f"must list states in [0, {s}), got {_short(value)}")
        else:
            _want_int(value, f, 0, _MAX_INT)
    _check_user_metadata(meta.get("metadata", {}))
    cov = (s, m, d) if ct == "diag" else (s, m, d, d)
    shapes = {"startprob": (s,), "transmat": (s, s), "weights": (s, m), "means": (s, m, d),
              "covariances": cov, "var_floor": (d,), "history": None, "history_n_mix": None,
              "lower_bound": ()}
    return ct, shapes, _HMM_REQUIRED, f"GMM-HMM of {s} states x {m} mixtures x {d} ({ct})"


def _check_hmm_values(ct: str, arrays: dict[str, np.ndarray]) -> None:
    """Probabilities in [0, 1] summing to 1 per row, finite means, positive finite variances."""
    for name in ("startprob", "transmat", "weights"):
        a = arrays[name].astype(np.float64)
        if not np.all(np.isfinite(a)) or np.any(a < 0) or np.any(a > 1):
            raise _Fail(name, "probabilities must be finite and in [0, 1]")
        if not np.allclose(a.sum(axis=-1), 1.0, rtol=0, atol=1e-6):
            raise _Fail(name, "probabilities must sum to 1")
    means = arrays["means"].astype(np.float64)
    if not np.all(np.isfinite(means)) or np.any(np.abs(means) > _MAX_SCALE):
        raise _Fail("means", f"must be finite with |mean| <= {_MAX_SCALE:g}")
    cov = arrays["covariances"].astype(np.float64)
    var = cov if ct == "diag" else np.linalg.eigvalsh(0.5 * (cov + np.swapaxes(cov, -1, -2)))
    if not np.all(np.isfinite(cov)) or np.any(var < _MIN_VAR):
        raise _Fail("covariances", f"variances must be finite and at least {_MIN_VAR:g}")
    vf = arrays["var_floor"].astype(np.float64)
    if not np.all(np.isfinite(vf)) or np.any(vf <= 0):
        raise _Fail("var_floor", "must hold one positive finite value per feature")


def _meta_len(zf: zipfile.ZipFile, info: zipfile.ZipInfo) -> int:
    """Length of the metadata byte string, from its .npy header (bounded)."""
    with zf.open(info) as fp:
        magic = fp.read(8)
        if len(magic) < 8 or magic[:6] != b"\x93NUMPY":
            raise _Fail(_META, "not a NumPy array (no .npy magic)")
        pre = _Prefixed(magic, fp)
        try:
            np.lib.format.read_magic(pre)
            reader = {(1, 0): np.lib.format.read_array_header_1_0,
                      (2, 0): np.lib.format.read_array_header_2_0}.get((magic[6], magic[7]))
            if reader is None:
                raise _Fail(_META, f".npy format version {(magic[6], magic[7])} is not supported")
            shp, _f, dt = reader(pre, max_header_size=_MAX_NPY_HEADER)
        except _Fail:
            raise
        except Exception as exc:  # noqa: BLE001 - numpy's header parser raises many kinds
            raise _Fail(_META, f"corrupt .npy header ({type(exc).__name__}: {exc})") from None
    if dt.hasobject:
        raise _Fail(_META, "holds object arrays (pickled data); refused")
    if len(shp) != 1 or not _is_int(shp[0]) or dt.str != "|u1":
        raise _Fail(_META, "metadata (__meta__) is not a byte string")
    if shp[0] > _MAX_META_BYTES:
        raise _Fail(_META, f"metadata of {shp[0]} bytes (at most {_MAX_META_BYTES})")
    return int(shp[0])


def load(path: str | os.PathLike):
    """Load a model saved by :func:`save`.

    Nothing in the file is trusted: the zip directory is checked before anything is
    decompressed (at most 16 members, declared sizes within what the metadata's shapes
    imply and at most 256 MiB), every ``.npy`` member's magic, header, dtype (float32 /
    float64) and shape, the metadata against a schema (types and ranges of every field,
    including a saved feature configuration: sample rate 1-384 kHz, at most 1024 mel bands
    and cepstra, ...), the checksum, and the parameters' values: weights positive and
    summing to 1, means finite with ``|mean| <= 1e12``, variances (eigenvalues for full and
    tied covariances) normal floats of at least ``max(1e-30, 1e-18 S^2)`` with ``S`` the
    data scale (largest ``|mean|`` or standard deviation).

    Returns
    -------
    GMM or GMMHMM
        Fitted, with the saved constructor parameters, ``weights_``, ``means_`` and
        ``covariances_`` bit-for-bit as saved, precisions recomputed, the fit trace
        (``history_``, ``lower_bound_``, ``converged_``, ``n_iter_``), the saved
        ``metadata`` dict as ``metadata_``, ``ubm_fingerprint_`` (the fingerprint of the
        UBM a MAP-adapted model came from, or None) and ``path_``.

    Raises
    ------
    ModelFileError
        Missing, truncated, corrupt, oversized or tampered file, a pickle, object arrays,
        another format version, a metadata field of the wrong type or out of range,
        missing, inconsistent or out-of-range arrays; ``.field`` names the part at fault.
        Nothing is ever unpickled.
    """
    from gmmspeech.mixture.gmm import GMM

    p, arrays, meta = _read(path)
    if meta["format"] == HMM_FORMAT:
        return _load_hmm(p, arrays, meta)
    ct = meta["covariance_type"]
    w = arrays["weights"].astype(np.float64, copy=False)
    means = arrays["means"].astype(np.float64, copy=False)
    cov = arrays["covariances"].astype(np.float64, copy=False)
    params_json = meta.get("params") or {}
    valid = set(GMM._get_param_names())
    try:
        params = {name: _param_from_json(v, arrays) for name, v in params_json.items()
                  if name in valid and name not in ("n_components", "covariance_type")}
        model = GMM.from_params(w, means, cov, covariance_type=ct, **params)
    except (ValueError, TypeError, KeyError, OverflowError, np.linalg.LinAlgError) as exc:
        raise ModelFileError(p, f"invalid model parameters ({exc})", "params") from None
    for name in ("precisions_", "precisions_cholesky_"):
        if not np.all(np.isfinite(getattr(model, name))):
            raise ModelFileError(p, "not finite (covariances too close to singular)", name)
    # exactly the saved values (from_params renormalises the weights)
    model.weights_ = arrays["weights"]
    model.means_ = arrays["means"]
    model.covariances_ = arrays["covariances"]
    hist = arrays.get("history", np.zeros(0))
    model.history_ = [float(v) for v in np.ravel(hist)]
    if "lower_bound" in arrays:
        model.lower_bound_ = float(np.ravel(arrays["lower_bound"])[0]) if arrays["lower_bound"].size else -np.inf
    fitted = meta.get("fitted") or {}
    for name in _FITTED_SCALARS:
        if name in fitted:
            v = fitted[name]
            setattr(model, name, bool(v) if name == "converged_" else int(v))
    model.metadata_ = dict(meta.get("metadata") or {})
    model.ubm_fingerprint_ = model.metadata_.get("ubm_fingerprint")
    model.path_ = p
    return model


def load_metadata(path: str | os.PathLike) -> dict[str, Any]:
    """The ``metadata`` dict given to :func:`save` (the file is fully verified)."""
    _p, _arrays, meta = _read(path)
    return dict(meta.get("metadata") or {})


def model_info(path: str | os.PathLike) -> dict[str, Any]:
    """All metadata of a model file (format, dims, parameters, fit trace, checksum, ...)."""
    _p, _arrays, meta = _read(path)
    return meta


# --------------------------------------------------------------------------- other model kinds
_KIND_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789-")


def _kind_format(kind: str) -> str:
    if not isinstance(kind, str) or not kind or not set(kind) <= _KIND_CHARS or kind == "gmm":
        raise ValueError(f"model kind {kind!r} must be a lower-case name such as 'plda' (not 'gmm')")
    return f"gmmspeech-{kind}"


#: most members of a :func:`save_arrays` file
_MAX_ARRAY_MEMBERS = 64


def _read_arrays_file(path: str | os.PathLike, fmt: str,
                      required: tuple[str, ...]) -> tuple[str, dict[str, np.ndarray], dict[str, Any]]:
    """Read and verify a :func:`save_arrays` file: ``(path, arrays, meta)``; ModelFileError
    otherwise. ``fmt`` is the expected metadata ``format`` and ``required`` the arrays it
    must hold. The zip directory is read first (member count, declared sizes) and nothing
    is unpickled."""
    p = os.fspath(path)
    if not os.path.exists(p):
        raise ModelFileError(p, "no such file")
    if not os.path.isfile(p):
        raise ModelFileError(p, "not a regular file")
    try:
        with open(p, "rb") as fh:
            head = fh.read(4)
    except OSError as exc:
        raise ModelFileError(p, f"unreadable ({exc.strerror or exc})") from None
    if head[:1] == b"\x80":
        raise ModelFileError(p, "is a Python pickle, not a gmmspeech model file; pickles are "
                                "never loaded (they can run code)")
    if head != _ZIP_MAGIC:
        raise ModelFileError(p, "not a gmmspeech model file (not an .npz archive)")
    try:
        with zipfile.ZipFile(p) as zf:
            infos = zf.infolist()
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as exc:
        raise ModelFileError(p, f"truncated or corrupt archive ({exc})") from None
    names = [i.filename for i in infos]
    if len(names) > _MAX_ARRAY_MEMBERS:
        raise ModelFileError(p, f"archive has {len(names)} members; at most {_MAX_ARRAY_MEMBERS}")
    if len(names) != len(set(names)):
        raise ModelFileError(p, "corrupt archive (duplicate members)")
    if sum(i.file_size for i in infos) > _MAX_BYTES:
        raise ModelFileError(p, "archive too large to be a gmmspeech model")
    bad = [n for n in names if not n.endswith(".npy")]
    if bad:
        raise ModelFileError(p, f"unexpected member {bad[0]!r} in the archive")
    arrays: dict[str, np.ndarray] = {}
    try:
        with np.load(p, allow_pickle=False) as z:
            for name in z.files:
                arrays[name] = z[name]
    except ValueError as exc:
        if "pickle" in str(exc).lower():
            raise ModelFileError(p, "holds object arrays (pickled data); refused") from None
        raise ModelFileError(p, f"corrupt array data ({exc})") from None
    except (KeyboardInterrupt, SystemExit):
        raise
    except (Exception, MemoryError) as exc:  # zlib, zipfile, struct, header parsing, ...
        raise ModelFileError(p, f"truncated or corrupt archive ({type(exc).__name__}: {exc})") from None
    if _META not in arrays:
        raise ModelFileError(p, "no metadata (__meta__): not a gmmspeech model file")
    raw = arrays.pop(_META)
    if raw.dtype != np.uint8 or raw.ndim != 1:
        raise ModelFileError(p, "metadata (__meta__) is not a byte string")
    try:
        meta = json.loads(raw.tobytes().decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise ModelFileError(p, f"metadata is not valid JSON ({exc})") from None
    if not isinstance(meta, dict) or meta.get("format") != fmt:
        found = meta.get("format") if isinstance(meta, dict) else None
        raise ModelFileError(p, f"not a gmmspeech model file of the kind expected (metadata "
                                f"'format' is {found!r}, expected {fmt!r})")
    version = meta.get("format_version")
    if version != FORMAT_VERSION:
        raise ModelFileError(p, f"format version {version!r} is not supported (this gmmspeech "
                                f"reads version {FORMAT_VERSION})")
    missing = [n for n in required if n not in arrays]
    if missing:
        raise ModelFileError(p, f"missing array{'s' if len(missing) > 1 else ''} {', '.join(missing)}")
    for name, a in arrays.items():
        if a.dtype.kind not in "biuf":
            raise ModelFileError(p, f"array {name!r} has dtype {a.dtype}; only numeric arrays are allowed")
    try:
        expected = _checksum(arrays, meta)
    except (TypeError, ValueError) as exc:
        raise ModelFileError(p, f"metadata cannot be verified ({exc})") from None
    if meta.get("checksum") != expected:
        raise ModelFileError(p, "checksum mismatch: the file was modified or damaged")
    return p, arrays, meta


def save_arrays(path: str | os.PathLike, kind: str, arrays: dict[str, Any],
                info: dict[str, Any] | None = None) -> str:
    """Save a model of another kind (i-vector extractor, PLDA, ...) in the same safe format.

    ``arrays`` (name -> numeric array) and ``info`` (a JSON-serialisable dict) are written
    as an ``.npz`` with metadata ``format = "gmmspeech-<kind>"``, the format version and a
    SHA-256 checksum, atomically; :func:`load_arrays` verifies all of it.
    """
    from gmmspeech import __version__

    fmt = _kind_format(kind)
    out: dict[str, np.ndarray] = {}
    for name, a in arrays.items():
        if name == _META or not isinstance(name, str) or not name:
            raise ValueError(f"invalid array name {name!r}")
        arr = np.asarray(a)
        if arr.dtype.kind not in "biuf":
            raise TypeError(f"{name} has dtype {arr.dtype}; only numeric arrays are saved")
        out[name] = arr
    try:
        user = json.loads(json.dumps(info or {}, default=_json_default))
    except (TypeError, ValueError) as exc:
        raise TypeError(f"info must be JSON-serialisable ({exc})") from None
    meta = {"format": fmt, "format_version": FORMAT_VERSION, "gmmspeech_version": __version__,
            "info": user}
    meta["checksum"] = _checksum(out, meta)
    out[_META] = np.frombuffer(json.dumps(meta, sort_keys=True).encode("utf-8"), dtype=np.uint8)
    return atomic_write(path, lambda fh: np.savez(fh, **out))


def load_arrays(path: str | os.PathLike, kind: str,
                required: tuple[str, ...] = ()) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Read a file written by :func:`save_arrays` with the same ``kind``: ``(arrays, info)``.

    Raises :class:`~gmmspeech.errors.ModelFileError` naming the file for anything wrong
    (another kind, missing ``required`` arrays, a pickle, tampering, truncation, ...).
    """
    p, arrays, meta = _read_arrays_file(path, _kind_format(kind), tuple(required))
    info = meta.get("info")
    if not isinstance(info, dict):
        raise ModelFileError(p, "metadata 'info' is not a dict")
    return arrays, info
