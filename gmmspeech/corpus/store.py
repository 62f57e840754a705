"""The feature store: one ``.npy`` feature matrix per manifest row, plus an index.

Layout of a store folder ``DIR``::

    DIR/store.json            format version, the FeatureConfig (JSON) and its hash
    DIR/index.tsv             id, label, frames, dims, config_hash, file, path, start, end,
                              native_rate (the audio file's own sampling rate)
    DIR/errors.tsv            id, path, reason: the files the last build could not use
    DIR/data/ab/<name>.npy    float32 (frames, dims) features of one row
    DIR/data/ab/<name>.json   the same row's metadata (the index can be rebuilt from these)
    DIR/.lock                 lock file (fcntl.flock) guarding store.json and the indexes

File names are derived from the id (unsafe characters replaced) plus a hash of the id,
so any id (with ``/``, spaces, non-ASCII, differing only in case, ...) maps to a distinct,
safe name; ``ab`` is the first two hex digits of that hash, which keeps folders small
for large corpora.

Safety rules:

* Every file is written to a temporary name in its final folder and renamed into place
  (:func:`os.replace`), so a killed run never leaves a partial ``.npy`` that is later
  read; a ``.npy`` counts only once its ``.json`` sidecar (written after it) exists.
* ``store.json`` and ``index.tsv`` are read, merged and replaced under an exclusive
  :func:`fcntl.flock` lock, so several builds may run on one store at the same time
  (they may duplicate work, never corrupt the store).
* A store holds features of exactly one configuration: building with another one raises
  :class:`StoreError` (use a new folder).

Extraction runs through :func:`gmmspeech.parallel.parallel_map`: each task gets a path
and returns a small tuple; the worker writes the array into the store itself, so with
``backend="dask"`` the store folder must be on a file system the workers share.
"""

from __future__ import annotations

import csv
import errno
import hashlib
import io
import json
import os
import re
import socket
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from gmmspeech.atomic import atomic_write, atomic_write_text
from gmmspeech.audio import DEFAULT_MAX_DURATION
from gmmspeech.errors import GMMSpeechError

__all__ = ["FeatureStore", "BuildReport", "StoreError", "StoreWriteError", "Entry", "file_name",
           "upsampling_note"]

STORE_FORMAT = "gmmspeech-feature-store"
STORE_VERSION = 1
INDEX_COLUMNS = ("id", "label", "frames", "dims", "config_hash", "file", "path", "start", "end",
                 "native_rate")
_REQUIRED_COLUMNS = INDEX_COLUMNS[:9]  # stores written before native_rate was recorded
ERROR_COLUMNS = ("id", "path", "reason")
_TMP_MARK = ".tmp-"
_HOST = socket.gethostname()


class StoreError(GMMSpeechError, ValueError):
    """A feature store folder is unusable (other configuration, corrupt metadata, ...)."""

    def __init__(self, root: str | os.PathLike, reason: str):
        self.path = os.fspath(root)
        self.reason = reason
        super().__init__(f"feature store {self.path}: {reason}")

    def __reduce__(self):
        return (type(self), (self.path, self.reason))


@dataclass(frozen=True)
class Entry:
    """One index line: an utterance whose features are in the store."""

    id: str
    label: str
    frames: int
    dims: int
    config_hash: str
    file: str  # relative to the store root, '/'-separated
    path: str
    start: float | None = None
    end: float | None = None
    native_rate: int | None = None  # the audio's own rate (None: not recorded)

    def to_cells(self) -> list[str]:
        return [self.id, self.label, str(self.frames), str(self.dims), self.config_hash, self.file,
                self.path, _fmt(self.start), _fmt(self.end),
                "" if self.native_rate is None else str(self.native_rate)]

    @classmethod
    def from_mapping(cls, m: dict[str, Any]) -> Entry:
        return cls(
            id=str(m["id"]), label=str(m.get("label") or ""), frames=int(m["frames"]),
            dims=int(m["dims"]), config_hash=str(m["config_hash"]), file=str(m["file"]),
            path=str(m.get("path") or ""), start=_num(m.get("start")), end=_num(m.get("end")),
            native_rate=None if m.get("native_rate") in (None, "") else int(m["native_rate"]),
        )

    def same_source(self, path: str, start: float | None, end: float | None) -> bool:
        return self.path == path and self.start == start and self.end == end


@dataclass
class BuildReport:
    """What :meth:`FeatureStore.build` did.

    Attributes
    ----------
    n_total : int
        Rows asked for.
    n_done : int
        Rows extracted by this build.
    n_skipped : int
        Rows already in the store with the same configuration and source (not redone).
    failed : list of (id, path, reason)
        Rows that could not be used; also written to ``errors_path``.
    errors_path : str or None
        The ``errors.tsv`` file of the store.
    """

    n_total: int
    n_done: int
    n_skipped: int
    failed: list[tuple[str, str, str]] = field(default_factory=list)
    errors_path: str | None = None
    native_rates: dict[str, int] = field(default_factory=dict)
    sample_rate: int | None = None

    @property
    def upsampled(self) -> dict[int, int]:
        """``{native rate: number of files}`` of the files extracted by this build whose
        own rate is below the configuration's (they were upsampled)."""
        out: dict[int, int] = {}
        if self.sample_rate:
            for r in self.native_rates.values():
                if r < self.sample_rate:
                    out[r] = out.get(r, 0) + 1
        return dict(sorted(out.items()))

    @property
    def n_failed(self) -> int:
        return len(self.failed)

    @property
    def ok(self) -> bool:
        """True when every row is in the store."""
        return not self.failed

    def summary(self) -> str:
        """One line: ``"3 of 120 files failed, see DIR/errors.tsv"`` or the counts."""
        if self.failed:
            return f"{self.n_failed} of {self.n_total} files failed, see {self.errors_path}"
        return (f"{self.n_total} files in the store ({self.n_done} extracted, "
                f"{self.n_skipped} already done)")


def _fmt(t: float | None) -> str:
    return "" if t is None else repr(float(t))


def _num(v: Any) -> float | None:
    if v is None or v == "":
        return None
    return float(v)


def file_name(utt_id: str) -> str:
    """The store-relative file stem (``data/ab/<safe>-<hash>``) for an id."""
    digest = hashlib.sha1(utt_id.encode("utf-8", "surrogatepass")).hexdigest()
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", utt_id)[:80].strip("._-") or "utt"
    return f"data/{digest[:2]}/{safe}-{digest[:12]}"


def _tmp_name(final: str) -> str:
    return f"{final}{_TMP_MARK}{_HOST}-{os.getpid()}-{uuid.uuid4().hex[:8]}"


def _atomic_write_bytes(final: str, write: Callable[[Any], None]) -> None:
    # temporary names carry _TMP_MARK, host and pid, so leftovers of dead writers are found
    atomic_write(final, write, tmp_path=_tmp_name(final), sync=False)


def _atomic_write_text(final: str, text: str, *, sync: bool = False) -> None:
    atomic_write_text(final, text, tmp_path=_tmp_name(final), sync=sync)


#: Write errors that stop a build: every later file would fail the same way.
_STORE_FATAL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EFBIG})


def _unlink_quietly(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


def _failure_reason(exc: BaseException) -> str:
    if isinstance(exc, MemoryError):
        reason = f"out of memory while reading or extracting ({exc or 'MemoryError'})"
    else:
        reason = getattr(exc, "reason", None) or str(exc) or type(exc).__name__
    return " ".join(str(reason).split())


def _extract_task(task: tuple) -> tuple:
    """Worker: extract one row, write ``.npy`` then its ``.json`` sidecar.

    Returns ``(id, status, frames, dims, reason, native_rate, nbytes)``: small, whatever
    the array size. ``status`` is ``"ok"``, ``"bad"`` (the file cannot be used: any
    exception while reading or extracting it, MemoryError included) or ``"store"`` (the
    store cannot be written: disk full, quota, read-only; ``reason`` names the path).
    """
    root, stem, rid, label, path, start, end, config, chash, extractor, max_duration = task
    final = os.path.join(root, *stem.split("/"))
    npy = final + ".npy"
    tmp = _tmp_name(npy)
    native = None
    nbytes = 0
    try:
        os.makedirs(os.path.dirname(final), exist_ok=True)
        try:
            if extractor is None:
                from gmmspeech.features.streaming import extract_to_file

                info = extract_to_file(path, tmp, config=config, start=start, end=end,
                                       max_duration=max_duration)
                frames, dims, native = info.frames, info.dims, info.native_rate
            else:
                feats = np.asarray(extractor(path, config=config, start=start, end=end))
                if feats.ndim != 2:
                    raise ValueError(f"extractor returned a {feats.ndim}-D array, expected (frames, dims)")
                if feats.shape[0] == 0 or feats.shape[1] == 0:
                    raise ValueError(f"no feature frames (shape {feats.shape})")
                feats = np.ascontiguousarray(feats, dtype=np.float32)
                if not np.isfinite(feats).all():
                    raise ValueError("non-finite feature values")
                frames, dims = feats.shape
            want = getattr(config, "n_features", None)
            if want is not None and dims != want:
                raise ValueError(f"{dims} feature dims where the configuration gives {want}")
            if extractor is None:
                os.replace(tmp, npy)
            else:
                _atomic_write_bytes(npy, lambda fh: np.save(fh, feats, allow_pickle=False))
        except OSError as exc:
            if exc.errno in _STORE_FATAL_ERRNOS:
                raise
            _unlink_quietly(tmp)
            return rid, "bad", 0, 0, _failure_reason(exc), None, 0
        except (KeyboardInterrupt, SystemExit):
            _unlink_quietly(tmp)
            raise
        except Exception as exc:  # noqa: BLE001 - a bad file must not stop the batch: report it
            _unlink_quietly(tmp)
            return rid, "bad", 0, 0, _failure_reason(exc), None, 0
        nbytes = os.path.getsize(npy)
        meta = {"id": rid, "label": label, "frames": int(frames), "dims": int(dims),
                "config_hash": chash, "file": stem + ".npy", "path": path, "start": start,
                "end": end, "native_rate": native}
        try:
            _atomic_write_text(final + ".json", json.dumps(meta, ensure_ascii=False))
        except BaseException:
            _unlink_quietly(npy)  # an array without its sidecar does not count: remove it
            raise
    except OSError as exc:
        _unlink_quietly(tmp)
        where = exc.filename if getattr(exc, "filename", None) else npy
        return (rid, "store", 0, 0, f"{exc.strerror or exc} writing {where}", None, nbytes)
    return rid, "ok", int(frames), int(dims), "", native, nbytes


class StoreWriteError(StoreError):
    """The store could not be written (disk full, quota, read-only file system). What was
    stored before is intact and a re-run resumes."""


def _as_config(config: Any):
    if config is None or isinstance(config, str):
        from gmmspeech.features.config import FeatureConfig

        return FeatureConfig.preset(config or "speech")
    if isinstance(config, dict):
        from gmmspeech.features.config import FeatureConfig

        return FeatureConfig.from_dict(config)
    return config


class FeatureStore:
    """Features of a corpus on disk: one float32 ``(frames, dims)`` ``.npy`` per utterance.

    Parameters
    ----------
    root : path-like
        The store folder (created by :meth:`build`).

    Examples
    --------
    >>> from gmmspeech.corpus import read_manifest, FeatureStore   # doctest: +SKIP
    >>> rows = read_manifest("data_manifests/fsdd/speaker_train.csv",
    ...                      data_root="../shared/datasets")       # doctest: +SKIP
    >>> store = FeatureStore("feats/fsdd")                          # doctest: +SKIP
    >>> report = store.build(rows, config="speech", n_jobs=2)       # doctest: +SKIP
    >>> X = store.load(rows[0].id)                                  # doctest: +SKIP
    """

    def __init__(self, root: str | os.PathLike):
        self.root = os.path.abspath(os.path.expanduser(os.fspath(root)))
        self._meta: dict[str, Any] | None = None
        self._entries: dict[str, Entry] | None = None
        #: The :class:`BuildReport` of this object's last :meth:`build` (None before).
        self.last_report: BuildReport | None = None

    # ------------------------------------------------------------------ paths
    @property
    def meta_path(self) -> str:
        return os.path.join(self.root, "store.json")

    @property
    def index_path(self) -> str:
        return os.path.join(self.root, "index.tsv")

    @property
    def errors_path(self) -> str:
        return os.path.join(self.root, "errors.tsv")

    @property
    def lock_path(self) -> str:
        return os.path.join(self.root, ".lock")

    def __repr__(self) -> str:
        n = len(self) if self.exists() else 0
        return f"FeatureStore({self.root!r}, n={n})"

    def exists(self) -> bool:
        """True when the folder holds a store (``store.json``)."""
        return os.path.isfile(self.meta_path)

    # ------------------------------------------------------------------ locking
    @contextmanager
    def _lock(self) -> Iterator[None]:
        os.makedirs(self.root, exist_ok=True)
        try:
            import fcntl
        except ImportError:  # pragma: no cover - non-POSIX
            yield
            return
        with open(self.lock_path, "a+") as fh:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh.fileno(), fcntl.LOCK_UN)

    # ------------------------------------------------------------------ metadata
    def _read_meta(self) -> dict[str, Any] | None:
        try:
            with open(self.meta_path, encoding="utf-8") as fh:
                meta = json.load(fh)
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            raise StoreError(self.root, f"store.json is unreadable ({exc})") from None
        if not isinstance(meta, dict) or meta.get("format") != STORE_FORMAT:
            raise StoreError(self.root, "store.json is not a gmmspeech feature store description")
        if meta.get("version") != STORE_VERSION:
            raise StoreError(self.root, f"store format version {meta.get('version')!r} is not "
                                        f"supported (this gmmspeech reads version {STORE_VERSION})")
        return meta

    def _meta_or_none(self) -> dict[str, Any] | None:
        if self._meta is None:
            self._meta = self._read_meta()
        return self._meta

    @property
    def config(self):
        """The :class:`~gmmspeech.features.FeatureConfig` of the store (None before a build);
        for a store of model-derived features (``config["kind"]``, e.g. posteriorgrams) the
        matching class of :mod:`gmmspeech.corpus.derived`."""
        meta = self._meta_or_none()
        if meta is None:
            return None
        kind = meta["config"].get("kind") if isinstance(meta["config"], dict) else None
        if kind is not None:
            from gmmspeech.corpus.derived import DERIVED_KINDS

            if kind not in DERIVED_KINDS:
                raise StoreError(self.root, f"unknown kind of derived features {kind!r} in store.json")
            return DERIVED_KINDS[kind].from_dict(meta["config"])
        from gmmspeech.features.config import FeatureConfig

        return FeatureConfig.from_dict(meta["config"])

    @property
    def config_hash(self) -> str | None:
        """Hash of the store's configuration (None before a build)."""
        meta = self._meta_or_none()
        return None if meta is None else meta["config_hash"]

    @property
    def dims(self) -> int | None:
        """Feature dimension (None while the store is empty)."""
        for e in self._index().values():
            return e.dims
        return None

    # ------------------------------------------------------------------ index
    def _read_index_file(self) -> dict[str, Entry] | None:
        try:
            fh = open(self.index_path, encoding="utf-8", newline="")
        except FileNotFoundError:
            return None
        entries: dict[str, Entry] = {}
        with fh:
            reader = csv.reader(fh, dialect="excel-tab")
            header = next(reader, None)
            if header is None:
                return entries
            if tuple(header[: len(_REQUIRED_COLUMNS)]) != _REQUIRED_COLUMNS:
                raise StoreError(self.root, f"index.tsv has an unexpected header {header!r}")
            for cells in reader:
                if not cells:
                    continue
                try:
                    e = Entry.from_mapping(dict(zip(header, cells)))
                except (KeyError, ValueError) as exc:
                    raise StoreError(self.root, f"index.tsv line {reader.line_num} is corrupt ({exc})") from None
                entries[e.id] = e
        return entries

    def _write_index_file(self, entries: dict[str, Entry]) -> None:
        buf = io.StringIO()
        w = csv.writer(buf, dialect="excel-tab", lineterminator="\n")
        w.writerow(INDEX_COLUMNS)
        for e in entries.values():
            w.writerow(e.to_cells())
        _atomic_write_text(self.index_path, buf.getvalue(), sync=True)

    def _scan_sidecars(self) -> dict[str, Entry]:
        entries: dict[str, Entry] = {}
        data = os.path.join(self.root, "data")
        if not os.path.isdir(data):
            return entries
        for sub in sorted(os.listdir(data)):
            folder = os.path.join(data, sub)
            if not os.path.isdir(folder):
                continue
            for name in sorted(os.listdir(folder)):
                if not name.endswith(".json") or _TMP_MARK in name:
                    continue
                e = self._read_sidecar(os.path.join(folder, name))
                if e is not None and os.path.isfile(os.path.join(self.root, e.file)):
                    entries[e.id] = e
        return entries

    @staticmethod
    def _read_sidecar(path: str) -> Entry | None:
        try:
            with open(path, encoding="utf-8") as fh:
                return Entry.from_mapping(json.load(fh))
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def _index(self) -> dict[str, Entry]:
        if self._entries is None:
            entries = self._read_index_file()
            if entries is None:
                entries = self._scan_sidecars() if self.exists() else {}
            self._entries = entries
        return self._entries

    def refresh(self) -> FeatureStore:
        """Forget cached metadata (re-read ``store.json`` and ``index.tsv`` on next use)."""
        self._meta = None
        self._entries = None
        return self

    def rebuild_index(self) -> int:
        """Rebuild ``index.tsv`` from the per-file sidecars; returns the number of entries.

        Use after a crash or if ``index.tsv`` was lost; only complete files (``.npy`` and
        its ``.json``) with the store's configuration hash are listed.
        """
        with self._lock():
            meta = self._read_meta()
            if meta is None:
                raise StoreError(self.root, "no store.json: not a feature store")
            entries = {k: e for k, e in self._scan_sidecars().items()
                       if e.config_hash == meta["config_hash"]}
            self._write_index_file(entries)
        self.refresh()
        return len(entries)

    def _entry(self, utt_id: str) -> Entry:
        try:
            return self._index()[utt_id]
        except KeyError:
            raise KeyError(f"id {utt_id!r} is not in the feature store {self.root}") from None

    # ------------------------------------------------------------------ reading
    def ids(self) -> list[str]:
        """Ids in the store, in index order."""
        return list(self._index())

    def labels(self) -> dict[str, str]:
        """``{id: label}`` for every id in the store."""
        return {k: e.label for k, e in self._index().items()}

    def label(self, utt_id: str) -> str:
        """The label of one id."""
        return self._entry(utt_id).label

    def entry(self, utt_id: str) -> Entry:
        """The index entry (frames, dims, file, source path and segment) of one id."""
        return self._entry(utt_id)

    def file(self, utt_id: str) -> str:
        """Absolute path of the ``.npy`` of one id (pass this to workers, not arrays)."""
        return os.path.join(self.root, *self._entry(utt_id).file.split("/"))

    def n_frames(self, utt_id: str) -> int:
        """Number of feature frames of one id (from the index, no file read)."""
        return self._entry(utt_id).frames

    def total_frames(self, ids: Iterable[str] | None = None) -> int:
        """Sum of frames over ``ids`` (default: all)."""
        index = self._index()
        if ids is None:
            return sum(e.frames for e in index.values())
        return sum(self._entry(i).frames for i in ids)

    def load(self, utt_id: str, mmap: bool = True) -> np.ndarray:
        """Features of one id, float32 ``(frames, dims)``.

        With ``mmap=True`` the array is memory-mapped read-only (cheap; pages are read on
        use); ``mmap=False`` reads it into memory.
        """
        e = self._entry(utt_id)
        path = self.file(utt_id)
        try:
            arr = np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)
        except FileNotFoundError:
            raise StoreError(self.root, f"{e.file} (id {utt_id!r}) is listed in the index but missing; "
                                        "rebuild the store") from None
        except ValueError as exc:
            raise StoreError(self.root, f"{e.file} (id {utt_id!r}) is corrupt ({exc})") from None
        if arr.shape != (e.frames, e.dims) or arr.dtype != np.float32:
            raise StoreError(self.root, f"{e.file} (id {utt_id!r}) holds {arr.dtype}{arr.shape}, "
                                        f"the index says float32({e.frames}, {e.dims})")
        return arr

    def iter_arrays(self, ids: Iterable[str] | None = None, *, mmap: bool = True) -> Iterator[np.ndarray]:
        """Yield the feature arrays of ``ids`` (default: all, in index order)."""
        for i in self.ids() if ids is None else ids:
            yield self.load(i, mmap=mmap)

    def iter_items(self, ids: Iterable[str] | None = None, *,
                   mmap: bool = True) -> Iterator[tuple[str, str, np.ndarray]]:
        """Yield ``(id, label, array)`` for ``ids`` (default: all, in index order)."""
        for i in self.ids() if ids is None else ids:
            yield i, self.label(i), self.load(i, mmap=mmap)

    def iter_chunks(self, chunk_frames: int, ids: Iterable[str] | None = None, *,
                    dtype: Any = np.float32) -> Iterator[np.ndarray]:
        """Stream the frames of ``ids`` (default: all) as ``(chunk_frames, dims)`` blocks.

        Utterances are concatenated in order and cut into consecutive blocks of exactly
        ``chunk_frames`` rows (the last block holds the rest), so memory stays bounded
        by one block whatever the corpus size. Each block is a new array (safe to keep).
        """
        chunk_frames = int(chunk_frames)
        if chunk_frames < 1:
            raise ValueError(f"chunk_frames must be >= 1, got {chunk_frames}")
        buf: np.ndarray | None = None
        fill = 0
        for arr in self.iter_arrays(ids):
            if buf is None:
                buf = np.empty((chunk_frames, arr.shape[1]), dtype=dtype)
            elif arr.shape[1] != buf.shape[1]:
                raise StoreError(self.root, f"feature dimension changes from {buf.shape[1]} to {arr.shape[1]}")
            pos = 0
            while pos < arr.shape[0]:
                take = min(chunk_frames - fill, arr.shape[0] - pos)
                buf[fill:fill + take] = arr[pos:pos + take]
                fill += take
                pos += take
                if fill == chunk_frames:
                    yield buf
                    buf = np.empty_like(buf)
                    fill = 0
        if buf is not None and fill:
            yield buf[:fill].copy()

    def errors(self) -> list[tuple[str, str, str]]:
        """The ``(id, path, reason)`` rows of ``errors.tsv`` (the last build's failures)."""
        try:
            with open(self.errors_path, encoding="utf-8", newline="") as fh:
                rows = list(csv.reader(fh, dialect="excel-tab"))
        except FileNotFoundError:
            return []
        return [tuple(r[:3]) for r in rows[1:] if len(r) >= 3]

    def subset(self, ids: Iterable[str]) -> FeatureStore:
        """A read-only view of this store holding only ``ids`` (in that order), e.g. to
        train a UBM on the rows of one manifest of a store shared by several.

        Raises
        ------
        KeyError
            An id is not in the store.
        """
        return _StoreView(self.root, list(ids))

    def __contains__(self, utt_id: object) -> bool:
        return isinstance(utt_id, str) and utt_id in self._index()

    def __len__(self) -> int:
        return len(self._index())

    def __iter__(self) -> Iterator[str]:
        return iter(self.ids())

    # ------------------------------------------------------------------ building
    def _init_meta(self, config: Any, chash: str) -> dict[str, Any]:
        """Under the lock: create ``store.json`` or check it holds the same config."""
        meta = self._read_meta()
        if meta is None:
            if os.path.isfile(self.index_path):
                raise StoreError(self.root, "index.tsv exists but store.json is missing; "
                                            "use a new folder")
            meta = {"format": STORE_FORMAT, "version": STORE_VERSION, "config_hash": chash,
                    "config": config.to_dict(), "n_features": int(config.n_features)}
            _atomic_write_text(self.meta_path, json.dumps(meta, indent=2, sort_keys=True) + "\n",
                               sync=True)
        elif meta["config_hash"] != chash:
            raise StoreError(
                self.root,
                f"built with another feature configuration (hash {meta['config_hash']}, asked "
                f"{chash}); a store holds one configuration: give a new folder for this one",
            )
        return meta

    def _remove_stale_tmp(self) -> None:
        """Under the lock: delete temporary files left by dead processes on this host."""
        pat = re.compile(re.escape(_TMP_MARK) + re.escape(_HOST) + r"-(\d+)-[0-9a-f]{8}")
        for folder, _dirs, files in os.walk(self.root):
            for name in files:
                m = pat.search(name)
                if m is None:
                    continue
                pid = int(m.group(1))
                if pid == os.getpid() or _pid_alive(pid):
                    continue
                try:
                    os.unlink(os.path.join(folder, name))
                except FileNotFoundError:
                    pass

    def build(
        self,
        rows: Iterable[Any],
        *,
        config: Any,
        n_jobs: int | None = 1,
        backend: str | None = None,
        scheduler: str | None = None,
        progress: bool = True,
        extractor: Callable[..., np.ndarray] | None = None,
        max_duration: float | None = DEFAULT_MAX_DURATION,
    ) -> BuildReport:
        """Extract the features of ``rows`` into the store, skipping what is already done.

        Parameters
        ----------
        rows : iterable of Row
            Manifest rows (``id``, ``path``, ``label``, ``start``, ``end``).
        config : FeatureConfig or str
            The feature configuration, or a preset name ("speech", "kaldi", "librosa").
        n_jobs, backend, scheduler : see :func:`gmmspeech.parallel.parallel_map`
        progress : bool
            Show a tqdm progress bar.
        extractor : callable or None
            ``extractor(path, *, config, start, end) -> (frames, dims)`` array; default
            :func:`gmmspeech.features.streaming.extract_to_file` (block by block, memory
            bounded; equal to :func:`gmmspeech.features.extract`). Must be picklable
            (module level) for process or Dask backends.
        max_duration : float or None
            Longest accepted file or segment in seconds (default 4 hours; longer ones are
            reported as bad files; ``None``: no limit).

        Returns
        -------
        BuildReport
            Counts, and the failed rows (also written to ``errors.tsv``).

        Raises
        ------
        StoreError
            The store holds features of another configuration.
        StoreWriteError
            The disk is full (or the store read-only): the build stops; what was stored is
            intact, no temporary file is left, and a re-run resumes.
        ValueError
            Duplicate ids among ``rows``.

        Notes
        -----
        A row is skipped when the store has its ``.npy`` and metadata with the same
        configuration hash, source path and segment; a changed label only updates the
        index. Bad files do not stop the build: any exception while reading or
        extracting one (MemoryError included) is recorded in ``errors.tsv``. The index
        and ``errors.tsv`` are written even when the build is interrupted.
        """
        from gmmspeech.parallel import parallel_imap

        config = _as_config(config)
        chash = config.config_hash()
        rows = list(rows)
        seen: set[str] = set()
        for r in rows:
            if r.id in seen:
                raise ValueError(f"duplicate id {r.id!r} in rows")
            seen.add(r.id)
        with self._lock():
            self._meta = self._init_meta(config, chash)
            self._remove_stale_tmp()
            index = self._read_index_file() or {}

        updates: dict[str, Entry] = {}
        tasks: list[tuple] = []
        n_skipped = 0
        for r in rows:
            path = os.fspath(r.path)
            start, end = r.start, r.end
            label = r.label or ""
            stem = file_name(r.id)
            e = index.get(r.id)
            if e is None or not (e.config_hash == chash and e.same_source(path, start, end)
                                 and os.path.isfile(os.path.join(self.root, e.file))):
                e = self._read_sidecar(os.path.join(self.root, stem + ".json"))
                if e is not None and not (e.config_hash == chash and e.same_source(path, start, end)
                                          and os.path.isfile(os.path.join(self.root, e.file))):
                    e = None
                elif e is not None:
                    updates[r.id] = e
            if e is None:
                tasks.append((self.root, stem, r.id, label, path, start, end, config, chash, extractor,
                              max_duration))
                continue
            n_skipped += 1
            if e.label != label:
                e = Entry(**{**e.__dict__, "label": label})
                updates[r.id] = e
                side = os.path.join(self.root, stem + ".json")
                if os.path.isfile(side):
                    _atomic_write_text(side, json.dumps(e.__dict__, ensure_ascii=False))

        results = parallel_imap(_extract_task, tasks, n_jobs=n_jobs, backend=backend,
                                scheduler=scheduler, progress=progress and bool(tasks),
                                desc="features", unit="files") if tasks else iter(())
        failed: list[tuple[str, str, str]] = []
        n_done = 0
        bytes_done = 0
        fatal: tuple[str, int] | None = None
        try:
            for task, (rid, status, frames, dims, reason, native, nbytes) in zip(tasks, results):
                _root, stem, _rid, label, path, start, end = task[:7]
                if status == "ok":
                    n_done += 1
                    bytes_done += nbytes
                    updates[rid] = Entry(rid, label, frames, dims, chash, stem + ".npy", path,
                                         start, end, native)
                elif status == "bad":
                    failed.append((rid, path, reason))
                else:  # the store cannot be written: stop, keep what is done
                    fatal = (reason, nbytes)
                    break
        finally:
            close = getattr(results, "close", None)
            if close is not None:
                close()  # stops the remaining tasks (interrupt, or a fatal write error)
            index_error = self._finish_build(rows, updates, failed, chash)
        report = BuildReport(len(rows), n_done, n_skipped, failed, self.errors_path)
        report.native_rates = {rid: e.native_rate for rid, e in updates.items()
                               if e.native_rate is not None}
        report.sample_rate = getattr(config, "sample_rate", None)
        self.last_report = report
        if fatal is not None:
            reason, nbytes = fatal
            done = f"{n_done} of {len(tasks)} files ({bytes_done / 1e6:.1f} MB)"
            kept = ("the index could not be rewritten either, but every finished file has its "
                    "sidecar" if index_error else f"{len(self._entries or {})} files listed")
            raise StoreWriteError(
                self.root,
                f"{reason} after {done} of this run were stored; the store is intact ({kept}, "
                "no partial or temporary file left) and a re-run resumes where this one stopped")
        return report

    def _finish_build(self, rows, updates: dict[str, Entry], failed, chash: str) -> OSError | None:
        """Write ``index.tsv`` and ``errors.tsv`` (also after an interrupt); returns the
        write error when the disk is full (the previous index then stays in place)."""
        try:
            with self._lock():
                current = self._read_index_file()
                if current is None:  # first build, or the index was lost: start from the sidecars
                    current = {k: e for k, e in self._scan_sidecars().items()
                               if e.config_hash == chash and k not in updates}
                for r in rows:  # new ids enter the index in manifest order
                    if r.id in updates:
                        current[r.id] = updates[r.id]
                self._write_index_file(current)
                buf = io.StringIO()
                w = csv.writer(buf, dialect="excel-tab", lineterminator="\n")
                w.writerow(ERROR_COLUMNS)
                w.writerows(failed)
                _atomic_write_text(self.errors_path, buf.getvalue())
        except OSError as exc:
            if exc.errno not in _STORE_FATAL_ERRNOS:
                raise
            self.refresh()
            return exc
        self._entries = current
        return None


class _StoreView(FeatureStore):
    """:meth:`FeatureStore.subset`: the same files, an index restricted to some ids."""

    def __init__(self, root: str | os.PathLike, ids: list[str]):
        super().__init__(root)
        self._only = list(dict.fromkeys(ids))
        self._index()  # missing ids fail here, not at first use

    def _index(self) -> dict[str, Entry]:
        if self._entries is None:
            full = FeatureStore._index(self)
            missing = [i for i in self._only if i not in full]
            if missing:
                self._entries = None
                raise KeyError(f"{len(missing)} id(s) are not in the feature store {self.root} "
                               f"(first: {missing[0]!r})")
            self._entries = {i: full[i] for i in self._only}
        return self._entries

    def build(self, *args: Any, **kwargs: Any) -> BuildReport:
        raise TypeError("a subset of a feature store is read-only; build the store itself "
                        f"(FeatureStore({self.root!r}))")

    def __repr__(self) -> str:
        return f"FeatureStore({self.root!r}, subset of {len(self._only)})"


def upsampling_note(upsampled: dict[int, int], n_total: int, rate: int | None) -> str | None:
    """One line saying how many files were upsampled to the analysis rate, or None."""
    if not upsampled or not rate:
        return None
    n = sum(upsampled.values())
    natives = ", ".join(f"{r} Hz" for r in upsampled)
    low = max(upsampled)
    return (f"note: {n} of {n_total} files were upsampled to {rate} Hz (native {natives}): their "
            f"features hold nothing above {low // 2} Hz; to analyse them at their own rate use "
            f"--sample-rate {low}")


_TMP_DIR_PREFIX = "gmmspeech-features-"


@contextmanager
def temporary_store_dir(parent: str | None = None) -> Iterator[str]:
    """A temporary folder for a feature store, removed on exit.

    Its name carries the host and process id, so folders left by killed runs (SIGKILL,
    a power cut) are recognised and removed by the next run on this host.
    """
    import shutil
    import tempfile

    parent = tempfile.gettempdir() if parent is None else parent
    remove_stale_store_dirs(parent)
    path = tempfile.mkdtemp(prefix=f"{_TMP_DIR_PREFIX}{_HOST}-{os.getpid()}-", dir=parent)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def remove_stale_store_dirs(parent: str) -> list[str]:
    """Remove the temporary store folders of dead processes of this host in ``parent``."""
    import shutil

    pat = re.compile(re.escape(_TMP_DIR_PREFIX + _HOST) + r"-(\d+)-")
    removed = []
    try:
        names = os.listdir(parent)
    except OSError:
        return removed
    for name in names:
        m = pat.match(name)
        if m is None or _pid_alive(int(m.group(1))):
            continue
        shutil.rmtree(os.path.join(parent, name), ignore_errors=True)
        removed.append(name)
    return removed


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except OSError:
        return False
    return True


def build_store(rows: Sequence[Any], root: str | os.PathLike, **kwargs: Any) -> BuildReport:
    """Shorthand for ``FeatureStore(root).build(rows, **kwargs)``."""
    return FeatureStore(root).build(rows, **kwargs)
