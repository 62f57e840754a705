"""Model files: a :class:`~gmmspeech.mixture.gmm.GMM` saved as ``.npz`` plus JSON metadata.

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
from typing import Any

import numpy as np

from gmmspeech.atomic import atomic_write
from gmmspeech.errors import ModelFileError

__all__ = ["save", "load", "load_metadata", "model_info", "save_arrays", "load_arrays", "FORMAT",
           "FORMAT_VERSION"]

FORMAT = "gmmspeech-gmm"
FORMAT_VERSION = 1
_META = "__meta__"
_INIT_PREFIX = "init__"
_REQUIRED = ("weights", "means", "covariances")
_COV_NDIM = {"full": 3, "tied": 2, "diag": 2, "spherical": 1}
_FITTED_SCALARS = ("converged_", "n_iter_", "n_features_in_", "n_reseeded_")
# largest uncompressed archive accepted (guards against zip bombs in hostile files)
_MAX_BYTES = 8 << 30
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

    if not isinstance(model, GMM):
        raise TypeError(f"save expects a fitted GMM, got {type(model).__name__}")
    if not hasattr(model, "means_") or not hasattr(model, "covariances_"):
        raise ValueError(f"This {type(model).__name__} instance is not fitted yet; nothing to save")
    if metadata is None:
        metadata = {}
    if not isinstance(metadata, dict):
        raise TypeError(f"metadata must be a dict, got {type(metadata).__name__}")
    try:
        user = json.loads(json.dumps(metadata, default=_json_default))
    except (TypeError, ValueError) as exc:
        raise TypeError(f"metadata must be JSON-serialisable ({exc})") from None

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
    for name, a in arrays.items():
        if a.dtype.kind not in "biuf":
            raise TypeError(f"{name} has dtype {a.dtype}; only numeric arrays are saved")
    meta["checksum"] = _checksum(arrays, meta)
    blob = json.dumps(meta, sort_keys=True).encode("utf-8")
    arrays[_META] = np.frombuffer(blob, dtype=np.uint8)

    out = atomic_write(path, lambda fh: np.savez(fh, **arrays))
    return out


def _read(path: str | os.PathLike, fmt: str = FORMAT,
          required: tuple[str, ...] = _REQUIRED) -> tuple[str, dict[str, np.ndarray], dict[str, Any]]:
    """Read and verify a model file: ``(path, arrays, meta)``; ModelFileError otherwise.

    ``fmt`` is the expected metadata ``format`` and ``required`` the arrays it must hold."""
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


def load(path: str | os.PathLike):
    """Load a model saved by :func:`save`.

    Returns
    -------
    GMM
        Fitted, with the saved constructor parameters, ``weights_``, ``means_`` and
        ``covariances_`` bit-for-bit as saved, precisions recomputed, the fit trace
        (``history_``, ``lower_bound_``, ``converged_``, ``n_iter_``) and the saved
        ``metadata`` dict as ``metadata_``.

    Raises
    ------
    ModelFileError
        Missing, truncated, corrupt or tampered file, a pickle, object arrays, another
        format version, missing or inconsistent arrays; nothing is ever unpickled.
    """
    from gmmspeech.mixture.gmm import GMM

    p, arrays, meta = _read(path)
    ct = meta.get("covariance_type")
    if ct not in _COV_NDIM:
        raise ModelFileError(p, f"unknown covariance_type {ct!r}")
    w = arrays["weights"].astype(np.float64, copy=False)
    means = arrays["means"].astype(np.float64, copy=False)
    cov = arrays["covariances"].astype(np.float64, copy=False)
    if means.ndim != 2 or w.shape != (means.shape[0],) or cov.ndim != _COV_NDIM[ct]:
        raise ModelFileError(p, f"inconsistent array shapes: weights {w.shape}, means {means.shape}, "
                                f"{ct} covariances {cov.shape}")
    k, d = means.shape
    if (meta.get("n_components"), meta.get("n_features")) != (k, d):
        raise ModelFileError(p, "metadata dims do not match the arrays")
    params_json = meta.get("params") or {}
    if not isinstance(params_json, dict):
        raise ModelFileError(p, "metadata 'params' is not a dict")
    valid = set(GMM._get_param_names())
    try:
        params = {name: _param_from_json(v, arrays) for name, v in params_json.items()
                  if name in valid and name not in ("n_components", "covariance_type")}
        model = GMM.from_params(w, means, cov, covariance_type=ct, **params)
    except (ValueError, TypeError, KeyError) as exc:
        raise ModelFileError(p, f"invalid model parameters ({exc})") from None
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
    p, arrays, meta = _read(path, _kind_format(kind), tuple(required))
    info = meta.get("info")
    if not isinstance(info, dict):
        raise ModelFileError(p, "metadata 'info' is not a dict")
    return arrays, info
