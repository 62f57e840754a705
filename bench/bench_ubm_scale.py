"""Out-of-core UBM training: time and memory against corpus size.

For each size (default 1, 3 and 10 million frames of 39-dimensional float32 features, in
1000-frame utterances) this benchmark

1. writes a feature store through the real :class:`gmmspeech.corpus.FeatureStore` format,
   using its ``build(..., extractor=...)`` hook with an extractor that returns synthetic
   features (drawn from a random 64-component mixture, seeded by the utterance id) instead
   of reading audio: the files, sidecars and index are exactly those of a real build;
2. trains a 256-component diagonal UBM for a few EM iterations with
   :func:`gmmspeech.train_ubm` **in a fresh subprocess**, and reads that subprocess's
   peak resident memory from the kernel (``os.wait4`` rusage ``ru_maxrss``), together with
   the peaks of its anonymous and file-backed parts sampled from ``/proc/self/status``.

It prints seconds per EM iteration (wall and CPU time, best of the iterations), seconds per
iteration per million frames (the ratio against the smallest size shows whether time grows
linearly with frames) and peak RSS, for the whole run and for the EM iterations alone,
against the size of the data on disk. Targets: s/iter per million frames constant within
~25 %; peak RSS < 2 GB at 10 M frames, although the data is 1.56 GB. On a shared machine
the CPU-time column is the reliable one (wall time includes waiting for the cores).

Memory-mapped reads count in RSS only while mapped (``ru_maxrss`` includes touched
file-backed pages): the trainer maps one utterance at a time and drops it after its
E-step, so the file-backed part of RSS stays at the size of the loaded libraries, not of
the corpus. The anonymous and file-backed peaks are printed separately to show this.

Usage::

    python bench/bench_ubm_scale.py                      # 1, 3, 10 M frames
    python bench/bench_ubm_scale.py --sizes 0.2,0.5      # quick check
    python bench/bench_ubm_scale.py --workdir /big/tmp --keep

Everything is written under a temporary folder (``--workdir``) that is deleted afterwards
unless ``--keep``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import zlib

import numpy as np

DIMS = 39
SOURCE_COMPONENTS = 64
SOURCE_SEED = 1234


# ----------------------------------------------------------------------------- store


def _source_mixture(dims: int = DIMS):
    rng = np.random.default_rng(SOURCE_SEED)
    means = rng.normal(0.0, 3.0, (SOURCE_COMPONENTS, dims))
    stds = rng.uniform(0.5, 1.5, (SOURCE_COMPONENTS, dims))
    weights = rng.dirichlet(np.full(SOURCE_COMPONENTS, 2.0))
    return weights, means, stds


_SOURCE = None


def synthetic_features(path: str, *, config, start, end) -> np.ndarray:
    """Extractor for :meth:`FeatureStore.build`: ``path`` is ``synthetic:<frames>:<id>``.

    Returns float32 ``(frames, config.n_features)`` features drawn from a fixed random
    64-component diagonal mixture, seeded by the id, so a given store is reproducible.
    """
    global _SOURCE
    _, frames, uid = path.split(":", 2)
    dims = int(config.n_features)
    if _SOURCE is None or _SOURCE[1].shape[1] != dims:
        _SOURCE = _source_mixture(dims)
    weights, means, stds = _SOURCE
    rng = np.random.default_rng(zlib.crc32(uid.encode()))
    n = int(frames)
    comp = rng.choice(len(weights), size=n, p=weights)
    x = rng.standard_normal((n, dims), dtype=np.float32)
    x *= stds[comp].astype(np.float32)
    x += means[comp].astype(np.float32)
    return x


def write_store(root: str, n_frames: int, frames_per_file: int = 1000) -> dict:
    """Write a feature store of ``n_frames`` synthetic frames; returns counts and timing."""
    from gmmspeech.corpus.manifest import Row
    from gmmspeech.corpus.store import FeatureStore
    from gmmspeech.features.config import FeatureConfig

    n_files = max(1, int(round(n_frames / frames_per_file)))
    rows = [Row(f"utt{i:07d}", f"synthetic:{frames_per_file}:utt{i:07d}", f"spk{i % 500:03d}")
            for i in range(n_files)]
    # the usual 13 MFCC (c0 replaced by log energy) + deltas + delta-deltas = 39 dims
    config = FeatureConfig.preset("speech").replace(n_mfcc=DIMS // 3)
    if config.n_features != DIMS:
        raise RuntimeError(f"expected a {DIMS}-dim configuration, got {config.n_features}")
    t0 = time.perf_counter()
    report = FeatureStore(root).build(rows, config=config, n_jobs=1, progress=False,
                                      extractor=synthetic_features)
    seconds = time.perf_counter() - t0
    if report.failed:
        raise RuntimeError(f"store build failed for {report.n_failed} rows: {report.failed[:3]}")
    store = FeatureStore(root)
    return {"files": len(store), "frames": store.total_frames(), "dims": store.dims,
            "seconds": seconds, "bytes": _du(root)}


def _du(root: str) -> int:
    total = 0
    for folder, _dirs, files in os.walk(root):
        for name in files:
            total += os.path.getsize(os.path.join(folder, name))
    return total


# ----------------------------------------------------------------------------- child


def _status_kb(fields=("RssAnon", "RssFile", "VmRSS")) -> dict:
    out = {}
    with open("/proc/self/status") as fh:
        for line in fh:
            key, _, rest = line.partition(":")
            if key in fields:
                out[key] = int(rest.split()[0])
    return out


class _PeakSampler(threading.Thread):
    """Samples /proc/self/status every 20 ms and keeps the peak of each field."""

    def __init__(self):
        super().__init__(daemon=True)
        self.peak: dict[str, int] = {}
        self.em: dict[str, int] | None = None  # set when the EM iterations start
        self._halt = threading.Event()

    def run(self):
        while not self._halt.is_set():
            try:
                for k, v in _status_kb().items():
                    self.peak[k] = max(self.peak.get(k, 0), v)
                    if self.em is not None:
                        self.em[k] = max(self.em.get(k, 0), v)
            except OSError:
                return
            self._halt.wait(0.02)

    def stop(self):
        self._halt.set()
        self.join()


def _child_train(args) -> None:
    """Runs in a fresh interpreter: train, print one JSON line with the timings.

    The time of each pass over the corpus is measured by wrapping
    :func:`gmmspeech.parallel.parallel_map` (which :func:`train_ubm` imports at call time):
    one call of the reservoir task, then one call of the E-step task per EM iteration.
    The peak memory of the EM iterations alone is sampled too.
    """
    from threadpoolctl import threadpool_limits

    import gmmspeech
    import gmmspeech.parallel as gp
    from gmmspeech.corpus.store import FeatureStore

    store = FeatureStore(args.store)
    n = store.total_frames()
    base = _status_kb()
    sampler = _PeakSampler()
    passes: list[tuple[str, float]] = []
    em_peak: dict[str, int] = {}
    original = gp.parallel_map

    def timed_map(func, items, **kw):
        name = getattr(func, "__name__", str(func))
        if name == "_estep_task" and not em_peak:
            # the reservoir and the initialisation are over: start the EM-only peak
            em_peak.update(_status_kb())
            sampler.em = em_peak
        t, c = time.perf_counter(), time.process_time()
        out = original(func, items, **kw)
        passes.append((name, time.perf_counter() - t, time.process_time() - c))
        return out

    gp.parallel_map = timed_map
    sampler.start()
    limits = threadpool_limits(limits=args.blas_threads) if args.blas_threads else None
    t0 = time.perf_counter()
    ubm = gmmspeech.train_ubm(store, args.components, "diag", max_iter=args.iters,
                              init=args.init, reservoir_size=args.reservoir, random_state=0,
                              n_jobs=args.jobs)
    total = time.perf_counter() - t0
    if limits is not None:
        limits.unregister()
    sampler.stop()
    gp.parallel_map = original
    estep = [s for name, s, _ in passes if name == "_estep_task"]
    estep_cpu = [c for name, _, c in passes if name == "_estep_task"]
    reservoir = sum(s for name, s, _ in passes if name == "_reservoir_task")
    print(json.dumps({
        "frames": n, "total": total, "n_iter": len(estep),
        "iteration_seconds": estep, "iteration_cpu_seconds": estep_cpu,
        "reservoir_seconds": reservoir,
        "init_seconds": total - reservoir - sum(estep),
        "peak_kb": sampler.peak, "em_peak_kb": em_peak, "base_kb": base,
        "finite": bool(np.all(np.isfinite(ubm.means_)) and np.all(np.isfinite(ubm.covariances_))),
        "history": [float(h) for h in getattr(ubm, "history_", [])],
    }), flush=True)


def _run_child(cmd: list[str]) -> tuple[dict, int]:
    """Run a child, return (its JSON line, its own peak RSS in kB from wait4)."""
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    out = proc.stdout.read()
    proc.stdout.close()
    _pid, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise RuntimeError(f"child {cmd[2:]} failed with exit code {proc.returncode}")
    line = [ln for ln in out.splitlines() if ln.startswith("{")][-1]
    return json.loads(line), int(usage.ru_maxrss)


# ----------------------------------------------------------------------------- main


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", default="1,3,10", help="millions of frames, comma separated (default 1,3,10)")
    p.add_argument("--components", type=int, default=256)
    p.add_argument("--iters", type=int, default=3, help="EM iterations (default 3)")
    p.add_argument("--frames-per-file", type=int, default=1000)
    p.add_argument("--init", default="split", help="train_ubm init (default split)")
    p.add_argument("--reservoir", type=int, default=200_000,
                   help="train_ubm reservoir_size: frames for the initialisation (default 200000)")
    p.add_argument("--jobs", type=int, default=1)
    p.add_argument("--blas-threads", type=int, default=1,
                   help="BLAS threads in the training process (default 1: the per-worker setting)")
    p.add_argument("--workdir", default=None, help="where to write the stores (default: a temp dir)")
    p.add_argument("--keep", action="store_true", help="keep the stores")
    # internal: child mode
    p.add_argument("--child-train", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--child-write", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--store", help=argparse.SUPPRESS)
    p.add_argument("--frames", type=int, help=argparse.SUPPRESS)
    args = p.parse_args(argv)

    if args.child_train:
        _child_train(args)
        return 0
    if args.child_write:
        print(json.dumps(write_store(args.store, args.frames, args.frames_per_file)), flush=True)
        return 0

    sizes = [float(s) for s in args.sizes.split(",") if s.strip()]
    top = tempfile.mkdtemp(prefix="gmmspeech-bench-ubm-", dir=args.workdir)
    me = [sys.executable, os.path.abspath(__file__)]
    common = ["--components", str(args.components), "--init", args.init, "--jobs", str(args.jobs),
              "--reservoir", str(args.reservoir),
              "--blas-threads", str(args.blas_threads), "--frames-per-file", str(args.frames_per_file)]
    print(f"UBM scale benchmark: K={args.components} diag, D={DIMS}, {args.iters} EM iterations, "
          f"{args.frames_per_file}-frame files, init={args.init} on {args.reservoir} frames, jobs={args.jobs}, "
          f"BLAS threads={args.blas_threads}; stores under {top}")
    results = []
    try:
        for size in sizes:
            n_frames = int(round(size * 1e6))
            root = os.path.join(top, f"store-{size:g}M")
            w, w_rss = _run_child(me + ["--child-write", "--store", root, "--frames", str(n_frames)] + common)
            print(f"  {size:g} M frames: wrote {w['files']} files, {w['bytes'] / 1e9:.2f} GB "
                  f"in {w['seconds']:.1f} s (writer peak RSS {w_rss / 1024:.0f} MB)", flush=True)
            res, rss = _run_child(me + ["--child-train", "--store", root, "--iters", str(args.iters)]
                                  + common)
            secs = res["iteration_seconds"]
            # best of the iterations: the least disturbed by other work on the machine (and
            # past any one-off JIT compilation in the first)
            s_iter = float(np.min(secs))
            cpu_iter = float(np.min(res["iteration_cpu_seconds"]))
            em = res["em_peak_kb"]
            print(f"    reservoir pass {res['reservoir_seconds']:.1f} s, init {res['init_seconds']:.1f} s, "
                  f"EM iterations {', '.join(f'{x:.1f}' for x in secs)} s (CPU "
                  f"{', '.join(f'{x:.1f}' for x in res['iteration_cpu_seconds'])} s); peak RSS {rss / 1024:.0f} MB "
                  f"(whole run), {em.get('VmRSS', 0) / 1024:.0f} MB during EM (anon "
                  f"{em.get('RssAnon', 0) / 1024:.0f} MB, file-backed {em.get('RssFile', 0) / 1024:.0f} MB); "
                  f"finite={res['finite']}", flush=True)
            results.append({"size": size, "frames": w["frames"], "bytes": w["bytes"],
                            "s_iter": s_iter, "s_iter_per_M": s_iter / (w["frames"] / 1e6),
                            "cpu_per_M": cpu_iter / (w["frames"] / 1e6),
                            "rss_mb": rss / 1024, "em_mb": em.get("VmRSS", 0) / 1024,
                            "anon_mb": res["peak_kb"].get("RssAnon", 0) / 1024,
                            "file_mb": res["peak_kb"].get("RssFile", 0) / 1024})
            if not args.keep:
                shutil.rmtree(root, ignore_errors=True)
    finally:
        if not args.keep:
            shutil.rmtree(top, ignore_errors=True)

    print()
    print(f"{'frames':>10} {'data GB':>8} {'s/iter':>8} {'s/iter/Mfr':>11} {'ratio':>6} "
          f"{'CPU s/iter/Mfr':>15} {'ratio':>6} "
          f"{'peak RSS MB':>12} {'EM RSS MB':>10} {'anon MB':>8} {'file MB':>8}")
    ref = results[0]["s_iter_per_M"] if results else 1.0
    cref = results[0]["cpu_per_M"] if results else 1.0
    for r in results:
        print(f"{r['frames']:>10,d} {r['bytes'] / 1e9:>8.2f} {r['s_iter']:>8.2f} {r['s_iter_per_M']:>11.2f} "
              f"{r['s_iter_per_M'] / ref:>6.2f} {r['cpu_per_M']:>15.2f} {r['cpu_per_M'] / cref:>6.2f} "
              f"{r['rss_mb']:>12.0f} {r['em_mb']:>10.0f} {r['anon_mb']:>8.0f} "
              f"{r['file_mb']:>8.0f}")
    if results:
        big = results[-1]
        lin = max(r["s_iter_per_M"] for r in results) / min(r["s_iter_per_M"] for r in results)
        clin = max(r["cpu_per_M"] for r in results) / min(r["cpu_per_M"] for r in results)
        print(f"linearity: s/iter per million frames varies by x{lin:.2f} across sizes (CPU time: "
              f"x{clin:.2f}; with --jobs > 1 the CPU is spent in the workers and only wall time counts) "
              f"(target <= 1.25)")
        print(f"memory at {big['frames'] / 1e6:g} M frames ({big['bytes'] / 1e9:.2f} GB of features): "
              f"peak RSS {big['rss_mb']:.0f} MB over the whole run, {big['em_mb']:.0f} MB during the EM "
              f"iterations (target < 2048 MB: {'met' if big['rss_mb'] < 2048 else 'NOT met'} for the whole "
              f"run, {'met' if big['em_mb'] < 2048 else 'NOT met'} for EM)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
