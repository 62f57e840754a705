"""Reliability under faults: a killed job loses no finished work and leaves nothing corrupt.

* ``gmmspeech train-ubm`` killed with SIGKILL at a seeded random point, then re-run with
  ``--resume``, ends with exactly the model of an uninterrupted run.
* ``gmmspeech features`` killed mid-run: the re-run does not redo finished files, and no
  partial ``.npy`` is ever read (every array the store lists loads whole).
* Two ``gmmspeech features`` processes building one store at once both succeed and leave a
  complete, consistent index whose arrays equal a single-process build.

The CLI runs as a subprocess (``python -m gmmspeech``), as a user or a scheduler runs it.
"""

from __future__ import annotations

import csv
import os
import random
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from conftest import speechlike

SR = 16000
N_FILES = 48
SECONDS = 2.0


def _env() -> dict:
    env = dict(os.environ)
    env.pop("GMMSPEECH_BACKEND", None)
    env.pop("GMMSPEECH_SCHEDULER", None)
    env.update(OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1",
               PYTHONWARNINGS="ignore")
    return env


def _cli(*args) -> list[str]:
    return [sys.executable, "-m", "gmmspeech", *map(str, args)]


def run_cli(*args, timeout: float = 180) -> subprocess.CompletedProcess:
    return subprocess.run(_cli(*args), env=_env(), capture_output=True, text=True, timeout=timeout)


def _default_sigint() -> None:
    """Ctrl-C as in a terminal: a suite started in the background (``nohup make test &``)
    passes SIGINT on as *ignored*, and Python then never raises KeyboardInterrupt."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def start_cli(*args) -> subprocess.Popen:
    return subprocess.Popen(_cli(*args), env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, preexec_fn=_default_sigint)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    """``N_FILES`` speech-like files of 4 'speakers' and their manifest; returns the manifest."""
    root = tmp_path_factory.mktemp("faults")
    audio = root / "audio"
    audio.mkdir()
    rows = []
    for i in range(N_FILES):
        spk = i % 4
        y = speechlike(sr=SR, seconds=SECONDS, f0=(100.0, 140.0, 190.0, 250.0)[spk] * (1 + 0.01 * i),
                       seed=i)
        t = np.arange(y.size) / SR
        y = (y * (0.5 + 0.5 * np.sin(2 * np.pi * 2.5 * t) ** 2)).astype(np.float32)
        path = audio / f"utt{i:03d}.wav"
        sf.write(path, y, SR, subtype="PCM_16")
        rows.append([f"utt{i:03d}", str(path), f"spk{spk}"])
    manifest = root / "all.csv"
    with open(manifest, "w", newline="") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(["id", "path", "label"])
        w.writerows(rows)
    return manifest


@pytest.fixture(scope="module")
def reference_store(corpus, tmp_path_factory):
    """A single-process, uninterrupted build through the library."""
    from gmmspeech.corpus.manifest import read_manifest
    from gmmspeech.corpus.store import FeatureStore

    store = FeatureStore(tmp_path_factory.mktemp("ref") / "store")
    report = store.build(read_manifest(corpus), config="speech", n_jobs=1, progress=False)
    assert report.ok and report.n_done == N_FILES
    return store


def _npy_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*.npy") if p.is_file())


def _finished(root: Path) -> dict[str, tuple[int, int]]:
    """``{npy path: (inode, mtime_ns)}`` of arrays whose sidecar exists (finished files)."""
    out = {}
    for p in _npy_files(root):
        if p.with_suffix(".json").is_file():
            st = p.stat()
            out[str(p)] = (st.st_ino, st.st_mtime_ns)
    return out


def _assert_store_equals(root: Path, reference) -> None:
    from gmmspeech.corpus.store import FeatureStore

    store = FeatureStore(root)
    assert sorted(store.ids()) == sorted(reference.ids())
    assert store.labels() == reference.labels()
    for uid in reference.ids():
        got = store.load(uid, mmap=False)
        assert got.shape == (store.n_frames(uid), store.dims)
        np.testing.assert_array_equal(got, reference.load(uid, mmap=False))
    # the index on disk lists every id exactly once, with the true shapes
    with open(root / "index.tsv", newline="", encoding="utf-8") as fh:
        lines = list(csv.DictReader(fh, dialect="excel-tab"))
    assert sorted(r["id"] for r in lines) == sorted(reference.ids())
    for r in lines:
        arr = np.load(root / r["file"], allow_pickle=False)
        assert arr.shape == (int(r["frames"]), int(r["dims"])) and arr.dtype == np.float32


# ---------------------------------------------------------------------------- features


def test_features_killed_midway_then_rerun(corpus, reference_store, tmp_path):
    out = tmp_path / "store"
    proc = start_cli("features", corpus, "--out", out, "--quiet")
    # kill once between a quarter and three quarters of the files are finished
    rng = random.Random(6)
    target = rng.randint(N_FILES // 4, 3 * N_FILES // 4)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if len(list(out.glob("data/*/*.json"))) >= target:
            break
        time.sleep(0.002)
    assert proc.poll() is None, "the run finished before it could be killed: make the corpus larger"
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    assert proc.returncode == -signal.SIGKILL

    done_before = _finished(out)
    assert 0 < len(done_before) < N_FILES
    # every array a reader can see is complete: a store opened now lists finished files
    # only, and each of them loads whole with the true shape
    from gmmspeech.corpus.store import FeatureStore

    partial = FeatureStore(out)
    assert 0 < len(partial) <= len(done_before)
    for uid in partial.ids():
        np.testing.assert_array_equal(partial.load(uid, mmap=False), reference_store.load(uid, mmap=False))
    # whatever .npy is on disk under its final name is a complete array (atomic rename)
    for p in _npy_files(out):
        arr = np.load(p, allow_pickle=False)
        assert arr.ndim == 2 and arr.shape[1] == reference_store.dims

    res = run_cli("features", corpus, "--out", out, "--quiet")
    assert res.returncode == 0, res.stderr
    assert "Traceback" not in res.stderr
    m = re.search(r"(\d+) extracted, (\d+) already done", res.stdout)
    assert m, res.stdout
    n_extracted, n_skipped = int(m.group(1)), int(m.group(2))
    assert n_skipped >= len(done_before) and n_extracted + n_skipped == N_FILES
    # finished files were not rewritten: same inode, same modification time
    after = _finished(out)
    for path, stamp in done_before.items():
        assert after[path] == stamp, f"{path} was redone"
    # no temporary file of the killed run is left behind
    leftovers = [p for p in out.rglob("*") if ".tmp-" in p.name]
    assert leftovers == []
    _assert_store_equals(out, reference_store)


def test_two_concurrent_feature_builds(corpus, reference_store, tmp_path):
    out = tmp_path / "store"
    procs = [start_cli("features", corpus, "--out", out, "--quiet") for _ in range(2)]
    results = [p.communicate(timeout=180) for p in procs]
    for p, (_stdout, stderr) in zip(procs, results):
        assert p.returncode == 0, stderr
        assert "Traceback" not in stderr
    _assert_store_equals(out, reference_store)
    # store.json is valid and there is exactly one file per id (no duplicates, no temps)
    import json

    meta = json.loads((out / "store.json").read_text())
    assert meta["config_hash"] == reference_store.config_hash
    assert len(_npy_files(out)) == N_FILES
    assert [p for p in out.rglob("*") if ".tmp-" in p.name] == []


# ---------------------------------------------------------------------------- train-ubm

UBM_K = 32
UBM_ITERS = 12


def synthetic_features(path, *, config, start, end):
    """Store extractor for the UBM tests: ``path`` is ``synth:<seed>:<frames>``."""
    _, seed, frames = path.split(":")
    r = np.random.default_rng(int(seed))
    centres = np.random.default_rng(99).normal(0, 4, (6, config.n_features))
    comp = r.integers(0, 6, int(frames))
    return (centres[comp] + r.standard_normal((int(frames), config.n_features))).astype(np.float32)


@pytest.fixture(scope="module")
def ubm_store(tmp_path_factory):
    """A store of 200 synthetic utterances x 600 frames x 60 dims (120k frames)."""
    from gmmspeech.corpus.manifest import Row
    from gmmspeech.corpus.store import FeatureStore
    from gmmspeech.features.config import FeatureConfig

    store = FeatureStore(tmp_path_factory.mktemp("ubm") / "store")
    rows = [Row(f"u{i:03d}", f"synth:{i}:600", f"s{i % 5}") for i in range(200)]
    config = FeatureConfig.preset("speech")
    report = store.build(rows, config=config, progress=False, extractor=synthetic_features)
    assert report.ok
    return store


def _train_args(store, out, ckpt, resume: bool) -> list:
    args = ["train-ubm", store, "--out", out, "--components", UBM_K, "--iterations", UBM_ITERS,
            "--init", "split", "--seed", 11, "--reservoir", 20000, "--checkpoint", ckpt, "--quiet"]
    return args + (["--resume"] if resume else [])


def _checkpoint_iteration(ckpt: Path) -> int | None:
    """The last finished EM iteration recorded in a checkpoint (None: no usable checkpoint)."""
    from gmmspeech.errors import ModelFileError
    from gmmspeech.mixture.io import load_metadata

    try:
        meta = load_metadata(ckpt)
    except (ModelFileError, FileNotFoundError):
        return None
    state = meta.get("metadata", meta).get("ubm_training")
    return None if state is None else int(state["iteration"])


def test_train_ubm_killed_then_resumed_matches_uninterrupted(ubm_store, tmp_path):
    from gmmspeech.mixture.io import load

    ref = run_cli(*_train_args(ubm_store.root, tmp_path / "ref.npz", tmp_path / "ref.ckpt.npz", False))
    assert ref.returncode == 0, ref.stderr
    reference = load(tmp_path / "ref.npz")
    assert len(reference.history_) == UBM_ITERS

    # the same run killed (SIGKILL) twice at seeded random points during EM, resumed each time:
    # the kill lands after a random iteration, a random fraction of the way into the next one
    ckpt, out = tmp_path / "run.ckpt.npz", tmp_path / "run.npz"
    rng = random.Random(2024)
    killed_at = []
    for attempt in range(2):
        after = rng.randint(1 + 4 * attempt, 3 + 4 * attempt)
        proc = start_cli(*_train_args(ubm_store.root, out, ckpt, attempt > 0))
        deadline = time.monotonic() + 120
        while proc.poll() is None and time.monotonic() < deadline:
            it = _checkpoint_iteration(ckpt)
            if it is not None and it >= after:
                break
            time.sleep(0.005)
        time.sleep(rng.uniform(0.0, 0.05))  # somewhere inside the next iteration
        assert proc.poll() is None, "training finished before the kill: make it longer"
        proc.send_signal(signal.SIGKILL)
        proc.communicate()
        assert proc.returncode == -signal.SIGKILL
        killed_at.append(_checkpoint_iteration(ckpt))
    assert all(it is not None and 0 < it < UBM_ITERS for it in killed_at), killed_at
    assert not out.exists()

    final = run_cli(*_train_args(ubm_store.root, out, ckpt, True))
    assert final.returncode == 0, final.stderr
    assert "Traceback" not in final.stderr
    got = load(out)
    np.testing.assert_array_equal(got.weights_, reference.weights_)
    np.testing.assert_array_equal(got.means_, reference.means_)
    np.testing.assert_array_equal(got.covariances_, reference.covariances_)
    np.testing.assert_array_equal(np.asarray(got.history_), np.asarray(reference.history_))


# ------------------------------------------------------------------------- out of core

_MEMORY_SCRIPT = """
import json, resource, sys
import numpy as np
from gmmspeech.corpus.store import FeatureStore
from gmmspeech.speaker.ubm import train_ubm
store = FeatureStore(sys.argv[1])
# warm up: imports and compiled kernels count in RSS too, and are not data
warm = np.random.default_rng(0).standard_normal((30000, 60)).astype(np.float32)
train_ubm([warm], 8, "diag", max_iter=1, init="kmeans", reservoir_size=20000, random_state=0,
          chunk_frames=20000)
del warm
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
ubm = train_ubm(store, 8, "diag", max_iter=1, init="kmeans", reservoir_size=20000, random_state=0,
                chunk_frames=20000)
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"before_kb": before, "after_kb": after, "finite": bool(np.isfinite(ubm.means_).all())}))
"""


def test_train_ubm_does_not_hold_the_corpus_in_memory(tmp_path):
    """Out of core: training on a store must not make the process hold the features.

    600 utterances x 1000 frames x 60 dims of float32 are 144 MB on disk. With a 20 000-frame
    reservoir and 20 000-frame chunks (4.8 MB each), the training process's peak RSS may grow
    by far less than the data (the reservoir is 4.8 MB, every pass works one chunk at a time).
    A trainer that gathers every frame (e.g. for the reservoir sample) grows by about twice
    the data size."""
    from gmmspeech.corpus.manifest import Row
    from gmmspeech.corpus.store import FeatureStore
    from gmmspeech.features.config import FeatureConfig

    store = FeatureStore(tmp_path / "store")
    rows = [Row(f"u{i:04d}", f"synth:{i}:1000", "s") for i in range(600)]
    assert store.build(rows, config=FeatureConfig.preset("speech"), progress=False,
                       extractor=synthetic_features).ok
    data_mb = 600 * 1000 * 60 * 4 / 2**20
    res = subprocess.run([sys.executable, "-c", _MEMORY_SCRIPT, str(store.root)], env=_env(),
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    import json

    out = json.loads(res.stdout.strip().splitlines()[-1])
    assert out["finite"]
    growth_mb = (out["after_kb"] - out["before_kb"]) / 1024
    assert growth_mb < 0.4 * data_mb, f"peak RSS grew by {growth_mb:.0f} MB for {data_mb:.0f} MB of data"


# ------------------------------------------------------------- per-file failures, interrupts, full disk


def _raising_extractor(path, *, config, start, end):
    """``path`` is ``ok:<seed>``, ``oom:<n>`` (MemoryError), ``err:<n>`` (RuntimeError) or
    ``stop:<n>`` (KeyboardInterrupt)."""
    kind, seed = path.split(":")
    if kind == "oom":
        raise MemoryError("Unable to allocate 256. GiB for an array with shape (68719476736,)")
    if kind == "err":
        raise RuntimeError("decoder exploded")
    if kind == "stop":
        raise KeyboardInterrupt
    return synthetic_features(f"synth:{seed}:50", config=config, start=start, end=end)


def _rows(spec):
    from gmmspeech.corpus.manifest import Row

    return [Row(f"r{i:02d}", p, "s") for i, p in enumerate(spec)]


def test_memory_error_is_a_bad_file_not_an_abort(tmp_path):
    from gmmspeech.corpus.store import FeatureStore

    rows = _rows(["ok:1", "oom:2", "ok:3", "err:4", "ok:5"])
    report = FeatureStore(tmp_path / "s").build(rows, config="speech", progress=False,
                                                extractor=_raising_extractor)
    assert report.n_done == 3
    failed = {rid: reason for rid, _, reason in report.failed}
    assert set(failed) == {"r01", "r03"}
    assert failed["r01"].startswith("out of memory") and "256. GiB" in failed["r01"]
    assert "decoder exploded" in failed["r03"]
    errors = (tmp_path / "s" / "errors.tsv").read_text()
    assert "r01" in errors and "out of memory" in errors


def test_interrupted_build_still_writes_index_and_errors(tmp_path):
    from gmmspeech.corpus.store import FeatureStore

    rows = _rows(["ok:1", "err:2", "ok:3", "stop:4", "ok:5"])
    store = FeatureStore(tmp_path / "s")
    with pytest.raises(KeyboardInterrupt):
        store.build(rows, config="speech", progress=False, extractor=_raising_extractor)
    fresh = FeatureStore(tmp_path / "s")
    assert fresh.ids() == ["r00", "r02"]  # index.tsv written with what finished
    assert [e[0] for e in fresh.errors()] == ["r01"]
    assert [p for p in (tmp_path / "s").rglob("*") if ".tmp-" in p.name] == []
    # the re-run does the rest and nothing twice
    rows[3] = rows[3].__class__(rows[3].id, "ok:4", "s")
    report = fresh.build(rows, config="speech", progress=False, extractor=_raising_extractor)
    assert (report.n_skipped, report.n_done, report.n_failed) == (2, 2, 1)


def _slow_corpus(tmp_path: Path, n: int) -> Path:
    """``n`` 4-second files, one bad one first; returns the manifest."""
    audio = tmp_path / "audio"
    audio.mkdir()
    rows = [["bad", str(audio / "bad.wav"), "s"]]
    (audio / "bad.wav").write_text("not audio")
    for i in range(n):
        y = speechlike(sr=SR, seconds=4.0, f0=120.0 + 5 * i, seed=i)
        sf.write(audio / f"u{i:02d}.wav", y, SR, subtype="PCM_16")
        rows.append([f"u{i:02d}", str(audio / f"u{i:02d}.wav"), "s"])
    manifest = tmp_path / "m.csv"
    with open(manifest, "w", newline="") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(["id", "path", "label"])
        w.writerows(rows)
    return manifest


def test_sigterm_writes_index_and_errors(tmp_path):
    manifest = _slow_corpus(tmp_path, 40)
    out = tmp_path / "store"
    proc = start_cli("features", manifest, "--out", out, "--quiet")
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and len(list(out.glob("data/*/*.json"))) < 3:
        time.sleep(0.01)
    assert proc.poll() is None, "finished before the signal: make the corpus larger"
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "interrupted" in err
    from gmmspeech.corpus.store import FeatureStore

    store = FeatureStore(out)
    done = len(list(out.glob("data/*/*.json")))
    assert 3 <= len(store) == done < 40  # the index lists every finished file
    assert [e[0] for e in store.errors()] == ["bad"]
    assert [p for p in out.rglob("*") if ".tmp-" in p.name or ".scratch" in p.name] == []


def test_full_disk_is_one_clear_line_and_the_store_resumes(tmp_path, monkeypatch, capsys):
    import errno

    from gmmspeech.cli import main
    from gmmspeech.corpus.store import FeatureStore
    from gmmspeech.features import streaming

    manifest = _slow_corpus(tmp_path, 6)
    out = tmp_path / "store"
    real_write = streaming._NpyWriter.write
    calls = {"n": 0}

    def write(self, rows):
        calls["n"] += 1
        if calls["n"] > 3:  # the 4th array: the disk is full halfway through it
            raise OSError(errno.ENOSPC, "No space left on device", self.path)
        return real_write(self, rows)

    monkeypatch.setattr(streaming._NpyWriter, "write", write)
    rc = main(["features", str(manifest), "--out", str(out), "--quiet"])
    err = capsys.readouterr().err.strip()
    assert rc == 2
    assert len(err.splitlines()) == 1, err
    assert err.startswith("gmmspeech features: error: feature store")
    assert "No space left on device writing" in err and str(out) in err
    assert "after 3 of 7 files" in err and "MB" in err  # how much this run wrote
    assert "intact" in err and "re-run resumes" in err
    assert [p for p in out.rglob("*") if ".tmp-" in p.name or ".scratch" in p.name] == []
    store = FeatureStore(out)
    assert sorted(store.ids()) == ["u00", "u01", "u02"]
    # space again: the re-run does the rest only
    monkeypatch.setattr(streaming._NpyWriter, "write", real_write)
    rc = main(["features", str(manifest), "--out", str(out), "--quiet"])
    assert rc == 1  # the one bad file
    assert sorted(FeatureStore(out).ids()) == [f"u{i:02d}" for i in range(6)]


def test_full_disk_on_a_small_tmpfs(tmp_path):
    """The real thing where a tmpfs can be mounted (root): a 256 KB file system."""
    import shutil

    mnt = tmp_path / "mnt"
    mnt.mkdir()
    if shutil.which("mount") is None or os.geteuid() != 0:
        pytest.skip("needs root and mount for a tmpfs")
    res = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mnt)],
                         capture_output=True, text=True)
    if res.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({res.stderr.strip()})")
    try:
        manifest = _slow_corpus(tmp_path, 8)  # 0.1 MB of features each
        res = run_cli("features", manifest, "--out", mnt / "store", "--quiet")
        assert res.returncode == 2, res.stderr
        lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
        assert len(lines) == 1 and "No space left on device" in lines[0], res.stderr
        assert "Traceback" not in res.stderr
        assert [p for p in mnt.rglob("*") if ".tmp-" in p.name or ".scratch" in p.name] == []
    finally:
        subprocess.run(["umount", str(mnt)], capture_output=True)


def test_stale_temporary_files_and_folders_are_removed(tmp_path):
    from gmmspeech.corpus import store as store_mod
    from gmmspeech.corpus.store import FeatureStore, temporary_store_dir

    dead = 2**22 + 12345  # above the default pid_max: no such process
    root = tmp_path / "s"
    (root / "data" / "ab").mkdir(parents=True)
    stale = root / "data" / "ab" / f"x.npy.tmp-{store_mod._HOST}-{dead}-0123abcd"
    stale.write_bytes(b"partial")
    scratch = root / "data" / "ab" / f"x.npy.tmp-{store_mod._HOST}-{dead}-0123abcd.frames.scratch"
    scratch.write_bytes(b"partial")
    FeatureStore(root).build(_rows(["ok:1"]), config="speech", progress=False,
                             extractor=_raising_extractor)
    assert not stale.exists() and not scratch.exists()
    # a killed run's temporary store folder goes on the next run
    left = tmp_path / f"gmmspeech-features-{store_mod._HOST}-{dead}-abc123"
    (left / "data").mkdir(parents=True)
    mine = tmp_path / f"gmmspeech-features-{store_mod._HOST}-{os.getpid()}-live"
    mine.mkdir()
    with temporary_store_dir(str(tmp_path)) as d:
        assert os.path.isdir(d)
        assert not left.exists() and mine.exists()
    assert not os.path.exists(d)
