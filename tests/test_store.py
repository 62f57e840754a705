"""FeatureStore: build, skip on re-run, failures, safe names, crash safety, concurrency.

These tests plug a tiny extractor in (a "source" file holds the number of frames), so
they check the store's bookkeeping independently of the MFCC front end; the end-to-end
runs with the real front end are in test_cli_features.py.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from gmmspeech.corpus.manifest import Row
from gmmspeech.corpus.store import BuildReport, FeatureStore, StoreError, file_name
from gmmspeech.errors import AudioError

DIMS = 3


@dataclass(frozen=True)
class FakeConfig:
    """Stands in for FeatureConfig: what the store needs (hash, dict, dims)."""

    scale: float = 1.0
    n_features: int = DIMS

    def config_hash(self) -> str:
        return f"{int(self.scale * 1000):016x}"

    def to_dict(self) -> dict:
        return {"scale": self.scale}


def expected(n: int, seed: int, scale: float = 1.0, start: float | None = None) -> np.ndarray:
    """Independent reference of what fake_extract returns."""
    base = np.arange(n * DIMS, dtype=np.float64).reshape(n, DIMS) + 1000 * seed
    return (scale * (base + (start or 0.0))).astype(np.float32)


def fake_extract(path, *, config, start=None, end=None):
    """Source file text: "<frames> <seed>" or "bad <reason>". Logs every call."""
    with open(os.path.join(os.path.dirname(path), "calls.log"), "a") as fh:
        fh.write(f"{os.path.basename(path)}\n")
    text = Path(path).read_text().split()
    if text[0] == "bad":
        raise AudioError(path, " ".join(text[1:]))
    if text[0] == "crash":
        raise RuntimeError("decoder exploded")
    if text[0] == "nan":
        return np.full((4, DIMS), np.nan, dtype=np.float32)
    if text[0] == "slow":
        time.sleep(0.02)
        text = text[1:]
    n, seed = int(text[0]), int(text[1])
    return expected(n, seed, config.scale, start)


def calls(folder: Path) -> list[str]:
    log = folder / "calls.log"
    return log.read_text().split() if log.exists() else []


@pytest.fixture
def corpus(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    rows = []
    for i, n in enumerate([5, 12, 1, 30, 7]):
        p = src / f"u{i}.txt"
        p.write_text(f"{n} {i}")
        rows.append(Row(f"utt{i}", str(p), f"spk{i % 2}"))
    return src, rows


def build(store, rows, **kw):
    kw.setdefault("config", FakeConfig())
    kw.setdefault("progress", False)
    return store.build(rows, extractor=fake_extract, **kw)


def test_build_load_and_index(tmp_path, corpus):
    src, rows = corpus
    store = FeatureStore(tmp_path / "store")
    report = build(store, rows)
    assert isinstance(report, BuildReport)
    assert (report.n_total, report.n_done, report.n_skipped, report.failed) == (5, 5, 0, [])
    assert report.ok and "5 files in the store (5 extracted, 0 already done)" == report.summary()
    assert len(store) == 5 and "utt3" in store and "nope" not in store and 3 not in store
    assert store.ids() == [f"utt{i}" for i in range(5)]
    assert store.labels() == {f"utt{i}": f"spk{i % 2}" for i in range(5)}
    sizes = [5, 12, 1, 30, 7]
    for i, n in enumerate(sizes):
        x = store.load(f"utt{i}")
        assert isinstance(x, np.memmap) and x.dtype == np.float32
        np.testing.assert_array_equal(x, expected(n, i))
        y = store.load(f"utt{i}", mmap=False)
        assert not isinstance(y, np.memmap)
        np.testing.assert_array_equal(y, expected(n, i))
        assert store.n_frames(f"utt{i}") == n
    assert store.total_frames() == sum(sizes)
    assert store.total_frames(["utt1", "utt4"]) == 19
    assert store.dims == DIMS
    assert store.config_hash == FakeConfig().config_hash()
    meta = json.loads((tmp_path / "store" / "store.json").read_text())
    assert meta["config"] == {"scale": 1.0} and meta["n_features"] == DIMS
    # index.tsv: id, label, frames, config hash per row
    lines = (tmp_path / "store" / "index.tsv").read_text().splitlines()
    assert lines[0].split("\t")[:5] == ["id", "label", "frames", "dims", "config_hash"]
    assert lines[4].split("\t")[:5] == ["utt3", "spk1", "30", "3", FakeConfig().config_hash()]
    assert (tmp_path / "store" / "errors.tsv").read_text() == "id\tpath\treason\n"
    with pytest.raises(KeyError, match="'nope' is not in the feature store"):
        store.load("nope")
    # a fresh object reads everything back from disk
    again = FeatureStore(tmp_path / "store")
    assert again.labels() == store.labels() and again.total_frames() == sum(sizes)


def test_iterators_and_chunks(tmp_path, corpus):
    _src, rows = corpus
    store = FeatureStore(tmp_path / "store")
    build(store, rows)
    sizes = [5, 12, 1, 30, 7]
    ref = np.concatenate([expected(n, i) for i, n in enumerate(sizes)])
    got = list(store.iter_arrays())
    assert [a.shape[0] for a in got] == sizes
    assert [i for i, _lab, _x in store.iter_items(["utt4", "utt0"])] == ["utt4", "utt0"]
    for chunk in (1, 4, 7, 55, 100):
        blocks = list(store.iter_chunks(chunk))
        assert all(b.shape == (chunk, DIMS) for b in blocks[:-1])
        assert 1 <= blocks[-1].shape[0] <= chunk
        np.testing.assert_array_equal(np.concatenate(blocks), ref)
    blocks = list(store.iter_chunks(4, ids=["utt2", "utt0"], dtype=np.float64))
    assert blocks[0].dtype == np.float64
    np.testing.assert_array_equal(np.concatenate(blocks), np.concatenate([expected(1, 2), expected(5, 0)]))
    kept = list(store.iter_chunks(3))  # blocks must be independent arrays
    np.testing.assert_array_equal(np.concatenate(kept), ref)
    assert list(store.iter_chunks(3, ids=[])) == []
    with pytest.raises(ValueError, match="chunk_frames"):
        next(store.iter_chunks(0))


def test_rerun_skips_everything(tmp_path, corpus):
    src, rows = corpus
    store = FeatureStore(tmp_path / "store")
    build(store, rows[:3])
    assert len(calls(src)) == 3
    mtimes = {i: os.stat(store.file(i)).st_mtime_ns for i in store.ids()}
    report = build(FeatureStore(tmp_path / "store"), rows)
    assert (report.n_done, report.n_skipped) == (2, 3)
    assert sorted(calls(src)) == sorted(f"u{i}.txt" for i in [0, 1, 2, 3, 4])
    report = build(FeatureStore(tmp_path / "store"), rows)
    assert (report.n_done, report.n_skipped, report.n_failed) == (0, 5, 0)
    assert len(calls(src)) == 5  # no extraction at all
    assert {i: os.stat(store.file(i)).st_mtime_ns for i in mtimes} == mtimes


def test_label_change_updates_index_without_extraction(tmp_path, corpus):
    src, rows = corpus
    build(FeatureStore(tmp_path / "s"), rows)
    relabelled = [Row(r.id, r.path, "digit" + r.id[-1]) for r in rows]
    store = FeatureStore(tmp_path / "s")
    report = build(store, relabelled)
    assert report.n_skipped == 5 and len(calls(src)) == 5
    assert store.labels()["utt3"] == "digit3"
    assert FeatureStore(tmp_path / "s").labels()["utt3"] == "digit3"
    os.unlink(tmp_path / "s" / "index.tsv")  # sidecars carry the new label too
    assert FeatureStore(tmp_path / "s").labels()["utt3"] == "digit3"


def test_changed_source_or_segment_is_redone(tmp_path, corpus):
    src, rows = corpus
    store = FeatureStore(tmp_path / "s")
    build(store, rows)
    moved = list(rows)
    moved[1] = Row("utt1", rows[1].path, "spk1", 0.5, None)
    report = build(store, moved)
    assert (report.n_done, report.n_skipped) == (1, 4)
    np.testing.assert_array_equal(store.load("utt1"), expected(12, 1, start=0.5))


def test_other_config_refuses_to_mix(tmp_path, corpus):
    _src, rows = corpus
    build(FeatureStore(tmp_path / "s"), rows)
    with pytest.raises(StoreError, match="another feature configuration.*new folder") as ei:
        build(FeatureStore(tmp_path / "s"), rows, config=FakeConfig(scale=2.0))
    assert str(tmp_path / "s") in str(ei.value)
    report = build(FeatureStore(tmp_path / "s2"), rows, config=FakeConfig(scale=2.0))
    assert report.n_done == 5
    np.testing.assert_array_equal(FeatureStore(tmp_path / "s2").load("utt1"), expected(12, 1, 2.0))


def test_bad_files_are_reported_and_good_ones_done(tmp_path, corpus):
    src, rows = corpus
    bad = []
    for name, text in [("b1", "bad empty file (0 bytes)"), ("b2", "crash"), ("b3", "nan")]:
        p = src / f"{name}.txt"
        p.write_text(text)
        bad.append(Row(name, str(p), "x"))
    store = FeatureStore(tmp_path / "s")
    report = build(store, rows[:2] + bad + rows[2:])
    assert (report.n_total, report.n_done, report.n_failed) == (8, 5, 3)
    assert report.summary() == f"3 of 8 files failed, see {tmp_path / 's' / 'errors.tsv'}"
    assert sorted(store.ids()) == [f"utt{i}" for i in range(5)]
    reasons = {rid: reason for rid, _p, reason in store.errors()}
    assert reasons == {"b1": "empty file (0 bytes)", "b2": "decoder exploded",
                       "b3": "non-finite feature values"}
    lines = (tmp_path / "s" / "errors.tsv").read_text().splitlines()
    assert lines[0] == "id\tpath\treason"
    assert lines[1] == f"b1\t{src / 'b1.txt'}\tempty file (0 bytes)"
    # the next run retries only the failed ones; once fixed, errors.tsv is emptied
    (src / "b1.txt").write_text("4 9")
    (src / "b2.txt").write_text("2 8")
    (src / "b3.txt").write_text("3 7")
    n_before = len(calls(src))
    report = build(store, rows + bad)
    assert (report.n_done, report.n_skipped, report.n_failed) == (3, 5, 0)
    assert len(calls(src)) == n_before + 3
    assert store.errors() == []
    np.testing.assert_array_equal(store.load("b1"), expected(4, 9))


@pytest.mark.parametrize("n_jobs, backend", [(2, "threading"), (1, "sequential")])
def test_parallel_build(tmp_path, corpus, n_jobs, backend):
    _src, rows = corpus
    store = FeatureStore(tmp_path / "s")
    report = build(store, rows, n_jobs=n_jobs, backend=backend)
    assert report.n_done == 5
    np.testing.assert_array_equal(store.load("utt3"), expected(30, 3))


def test_unsafe_ids_get_distinct_safe_names(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    ids = ["a/b", "../../escape", "A", "a", "with space", "tab\there", "ünïcødé", "x" * 500, ".", "-",
           "a_b", "a b"]
    rows = []
    for i, rid in enumerate(ids):
        p = src / f"{i}.txt"
        p.write_text(f"{i + 1} {i}")
        rows.append(Row(rid, str(p), "l"))
    store = FeatureStore(tmp_path / "s")
    assert build(store, rows).n_done == len(ids)
    names = [file_name(i) for i in ids]
    assert len({n.lower() for n in names}) == len(ids)  # distinct even on case-insensitive disks
    for i, rid in enumerate(ids):
        f = Path(store.file(rid))
        assert f.resolve().is_relative_to((tmp_path / "s" / "data").resolve())
        assert len(f.name) < 120 and all(c.isalnum() or c in "._-" for c in f.name)
        np.testing.assert_array_equal(store.load(rid), expected(i + 1, i))
    again = FeatureStore(tmp_path / "s")
    assert again.ids() == ids  # the TSV index round-trips ids with tabs etc.
    os.unlink(tmp_path / "s" / "index.tsv")
    assert sorted(FeatureStore(tmp_path / "s").ids()) == sorted(ids)


def _dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def test_killed_run_leaves_nothing_that_is_read(tmp_path, corpus):
    src, rows = corpus
    store = FeatureStore(tmp_path / "s")
    build(store, rows)
    # simulate a run killed while writing utt2 (partial temp file of a dead process) and
    # after writing utt4's .npy but before its sidecar and the index
    import socket

    stem2 = tmp_path / "s" / file_name("utt2")
    partial = Path(f"{stem2}.npy.tmp-{socket.gethostname()}-{_dead_pid()}-abcdef12")
    partial.write_bytes(b"\x93NUMPY garbage")
    stem4 = tmp_path / "s" / file_name("utt4")
    os.unlink(f"{stem4}.json")
    Path(f"{stem4}.npy").write_bytes(b"\x93NUMPY truncated")
    os.unlink(tmp_path / "s" / "index.tsv")
    store = FeatureStore(tmp_path / "s")
    assert "utt4" not in store and "utt2" in store  # a .npy without its sidecar does not count
    n = len(calls(src))
    report = build(store, rows)
    assert (report.n_done, report.n_skipped) == (1, 4)
    assert calls(src)[n:] == ["u4.txt"]
    assert not partial.exists()
    np.testing.assert_array_equal(store.load("utt4"), expected(7, 4))
    assert FeatureStore(tmp_path / "s").rebuild_index() == 5


def test_corrupt_files_raise_store_errors(tmp_path, corpus):
    _src, rows = corpus
    store = FeatureStore(tmp_path / "s")
    build(store, rows)
    Path(store.file("utt1")).write_bytes(b"not numpy")
    with pytest.raises(StoreError, match="corrupt"):
        store.load("utt1")
    np.save(store.file("utt2"), np.zeros((9, DIMS), np.float32))
    with pytest.raises(StoreError, match=r"index says float32\(1, 3\)"):
        store.load("utt2")
    os.unlink(store.file("utt3"))
    with pytest.raises(StoreError, match="missing"):
        store.load("utt3")
    (tmp_path / "s" / "store.json").write_text('{"format": "gmmspeech-feature-store", "version": 99}')
    with pytest.raises(StoreError, match="version 99"):
        build(FeatureStore(tmp_path / "s"), rows)
    (tmp_path / "s" / "store.json").write_text("{not json")
    with pytest.raises(StoreError, match="store.json is unreadable"):
        FeatureStore(tmp_path / "s").config_hash  # noqa: B018


def test_duplicate_ids_rejected(tmp_path, corpus):
    _src, rows = corpus
    with pytest.raises(ValueError, match="duplicate id 'utt0'"):
        build(FeatureStore(tmp_path / "s"), rows + rows[:1])


def _concurrent_worker(root: str, rows: list, start_evt) -> None:
    start_evt.wait()
    report = FeatureStore(root).build(rows, config=FakeConfig(), extractor=fake_extract, progress=False)
    assert report.n_failed == 0


def test_two_builds_at_once_do_not_corrupt_the_store(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    rows = []
    for i in range(40):
        p = src / f"c{i}.txt"
        p.write_text(f"slow {i % 7 + 1} {i}")
        rows.append(Row(f"c{i}", str(p), f"s{i % 3}"))
    root = str(tmp_path / "s")
    ctx = multiprocessing.get_context("fork")
    evt = ctx.Event()
    # overlapping halves, in different orders
    procs = [ctx.Process(target=_concurrent_worker, args=(root, rows[:30], evt)),
             ctx.Process(target=_concurrent_worker, args=(root, rows[10:][::-1], evt))]
    for p in procs:
        p.start()
    evt.set()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    store = FeatureStore(root)
    assert sorted(store.ids()) == sorted(r.id for r in rows)
    for i in range(40):
        np.testing.assert_array_equal(store.load(f"c{i}"), expected(i % 7 + 1, i))
    leftovers = [f for f in Path(root).rglob("*") if ".tmp-" in f.name]
    assert leftovers == []
    report = FeatureStore(root).build(rows, config=FakeConfig(), extractor=fake_extract, progress=False)
    assert report.n_skipped == 40


def test_store_error_pickles_and_wrong_dims_fail(tmp_path):
    import pickle

    err = pickle.loads(pickle.dumps(StoreError("/x/store", "broken")))
    assert type(err) is StoreError and (err.path, err.reason) == ("/x/store", "broken")
    assert str(err) == "feature store /x/store: broken"
    src = tmp_path / "src"
    src.mkdir()
    (src / "a.txt").write_text("4 0")
    report = build(FeatureStore(tmp_path / "s"), [Row("a", str(src / "a.txt"), "x")],
                   config=FakeConfig(n_features=5))
    assert report.failed == [("a", str(src / "a.txt"), "3 feature dims where the configuration gives 5")]
