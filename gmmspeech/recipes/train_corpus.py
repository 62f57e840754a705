"""Batch UBM training over a manifest: feature store, progress, checkpoints and resume.

Features of every manifest row are extracted once into a feature store (rows already
there are skipped, so an interrupted extraction resumes where it stopped; unreadable
files are listed in ``errors.tsv`` and left out). The UBM is then trained by streaming
EM over the store with a checkpoint after every iteration; running the recipe again
with the same settings continues from the last checkpoint. The result is
``OUT/ubm.npz`` (a gmmspeech model file with the feature configuration and the training
settings in its metadata); the checkpoint is removed once it is written, and a run with the
same data and settings as a finished one reuses its model instead of training again.
"""

from __future__ import annotations

import hashlib
import time
from pathlib import Path

import numpy as np

from gmmspeech.errors import GMMSpeechError
from gmmspeech.recipes.report import Report, format_text_table


def run(*, out, manifest=None, data_root=None, store=None, n_components: int | None = None,
        covariance_type: str = "diag", max_iter: int | None = None, preset: str = "speech",
        resume: bool = True, max_files: int | None = None, quick: bool = False, seed: int = 0,
        n_jobs: int = 1, backend: str | None = None, scheduler: str | None = None,
        verbose: bool = True) -> dict:
    """Train a UBM over a manifest; writes ``ubm.npz``, ``report.md`` and ``results.json``.

    Parameters
    ----------
    out : path-like
        Output folder.
    manifest : path-like or None
        Training manifest (default ``data_manifests/librispeech/background.csv``).
    data_root : path-like or None
        Root of relative manifest paths (the shared datasets for the default manifest).
    store : path-like or None
        Feature store folder (default ``out/store``).
    n_components : int or None
        UBM components (default 256; 8 with ``quick``).
    covariance_type : {"diag", "full"}
    max_iter : int or None
        EM iterations after the splitting initialisation (default 10; 2 with ``quick``).
    preset : str
        Feature preset.
    resume : bool
        Continue from ``out/ubm.ckpt.npz`` when it exists (same data and settings), and
        reuse ``out/ubm.npz`` when a finished run trained it on the same data with the same
        settings.
    max_files : int or None
        Use only the first rows of the manifest (``quick``: 20).
    seed : int
        Seed of the initialisation and subsampling.
    n_jobs, backend, scheduler
        Parallel extraction and E-steps.
    verbose : bool
        Progress bars and a summary.
    """
    from gmmspeech import plots
    from gmmspeech.corpus.manifest import read_manifest
    from gmmspeech.corpus.store import FeatureStore
    from gmmspeech.features.config import FeatureConfig
    from gmmspeech.mixture import io as mio
    from gmmspeech.recipes._common import credit_datasets, default_manifest
    from gmmspeech.speaker.ubm import train_ubm

    t0 = time.perf_counter()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    if manifest is None:
        if data_root is None:
            raise FileNotFoundError("recipe train_corpus needs --manifest, or --data-root "
                                    "pointing at the shared datasets for the default "
                                    "LibriSpeech background manifest")
        manifest = default_manifest("librispeech", "background.csv")
    K = int(n_components or (8 if quick else 256))
    iters = int(max_iter or (2 if quick else 10))
    if covariance_type not in ("diag", "full"):
        raise ValueError(f"covariance_type must be 'diag' or 'full', got {covariance_type!r}")
    rows = read_manifest(manifest, data_root=data_root)
    cap = max_files or (20 if quick else None)
    if cap:
        rows = rows[:cap]
    config = FeatureConfig.preset(preset)
    fs = FeatureStore(Path(store) if store else out / "store")
    t1 = time.perf_counter()
    build = fs.build(rows, config=config, n_jobs=n_jobs, backend=backend, scheduler=scheduler,
                     progress=verbose)
    t_feat = time.perf_counter() - t1
    ids = [r.id for r in rows if r.id in fs]
    if not ids:
        raise ValueError(f"{manifest}: none of the {len(rows)} files gave features "
                         f"(see {build.errors_path})")
    n_frames = int(fs.total_frames(ids))
    ckpt = out / "ubm.ckpt.npz"
    training = {"ids_sha256": hashlib.sha256("\n".join(ids).encode()).hexdigest(),
                "n_frames": n_frames, "config_hash": config.config_hash(), "n_components": K,
                "covariance_type": covariance_type, "max_iter": iters, "seed": int(seed)}
    reused = False
    if resume and (out / "ubm.npz").is_file():
        try:
            done = mio.load(out / "ubm.npz")
            reused = (getattr(done, "metadata_", {}) or {}).get("training") == training
        except GMMSpeechError:
            reused = False  # unreadable: train again
    resumed = bool(resume and not reused and ckpt.is_file())
    t2 = time.perf_counter()
    if reused:
        ubm = done
        if verbose:
            print(f"train_corpus: {out / 'ubm.npz'} was trained on the same data with the same "
                  "settings: reused (--no-resume trains again)")
    else:
        arrays = ids if len(ids) == len(fs) else None
        source = fs if arrays is not None else [fs.load(i) for i in ids]
        ubm = train_ubm(source, K, covariance_type, max_iter=iters, init="split",
                        random_state=seed, n_jobs=n_jobs, backend=backend, scheduler=scheduler,
                        checkpoint=ckpt, resume=resume, restart=not resume,
                        progress=verbose)
        mio.save(ubm, out / "ubm.npz", metadata={
            "role": "ubm", "feature_config": config.to_dict(), "manifest": str(manifest),
            "n_files": len(ids), "n_frames": n_frames, "training": training})
        ckpt.unlink(missing_ok=True)  # the model is saved: the checkpoint has served
    t_train = time.perf_counter() - t2
    history = [float(v) for v in getattr(ubm, "history_", [])]

    results = {
        "recipe": "train_corpus", "quick": bool(quick), "manifest": str(manifest),
        "n_files": len(rows), "n_used": len(ids), "n_failed": len(build.failed),
        "n_extracted": build.n_done, "n_already_in_store": build.n_skipped,
        "n_frames": n_frames, "n_components": K, "covariance_type": covariance_type,
        "n_iter": int(getattr(ubm, "n_iter_", len(history))), "resumed": resumed,
        "reused_model": reused,
        "history": history, "final_avg_loglik": history[-1] if history else None,
        "min_weight": float(np.min(ubm.weights_)), "max_weight": float(np.max(ubm.weights_)),
        "seconds": {"features": t_feat, "training": t_train},
        "failed": [{"id": i, "path": p, "reason": why} for i, p, why in build.failed],
    }
    rep = Report(out, "UBM training over a corpus")
    rep.text(
        f"Manifest `{manifest}`: {len(rows)} files, {len(ids)} in the feature store "
        f"(`{fs.root}`; {build.n_done} extracted now, {build.n_skipped} already there, "
        f"{len(build.failed)} unusable, listed in `errors.tsv`), {n_frames} frames of "
        f"{config.n_features}-dim `{config.name}` features. A {K}-component "
        f"{covariance_type}-covariance UBM by binary splitting and {iters} streaming EM "
        f"iterations, checkpointed to `{ckpt.name}` after every iteration (removed once "
        "`ubm.npz` was written)"
        + (" (this run resumed from a checkpoint)" if resumed else "")
        + (" (this run reused the model of an earlier, finished run with the same data and "
           "settings)" if reused else "") + ". Model: `ubm.npz`."
    )
    rep.table(["files", "frames", "components", "covariance", "EM iterations",
               "final log-lik / frame", "features (s)", "training (s)"],
              [[len(ids), n_frames, K, covariance_type, results["n_iter"],
                history[-1] if history else float("nan"), t_feat, t_train]], floatfmt=".4g")
    if build.failed:
        rep.heading("Unusable files", 3)
        rep.table(["id", "reason"], [[i, why] for i, _, why in build.failed[:50]])
    if history:
        plots.em_trace_plot(history, path=out / "ubm_trace.png",
                            title="UBM: average log-likelihood per frame")
        rep.add_image("ubm_trace.png", "Average log-likelihood per frame at each EM iteration "
                      "(measured in that iteration's E-step); it must not decrease.")
    fig, ax = rep.figure("ubm_weights.png", "Component weights, sorted: a long flat tail "
                         "means well-used components, near-zero weights mean wasted ones")
    ax.semilogy(np.sort(np.asarray(ubm.weights_))[::-1], ".-")
    ax.axhline(1.0 / K, color="0.5", ls=":", lw=0.8)
    ax.set_xlabel("component (sorted)")
    ax.set_ylabel("weight")
    ax.grid(True, color="0.9")
    sample = np.concatenate([np.asarray(fs.load(i)) for i in ids[: min(len(ids), 40)]])
    if sample.shape[1] >= 3:
        from gmmspeech.mixture.gmm import GMM

        dims = [1, 2]
        cov = np.asarray(ubm.covariances_)
        marginal = GMM.from_params(
            ubm.weights_, np.asarray(ubm.means_)[:, dims],
            cov[:, dims] if covariance_type == "diag" else cov[:, dims][:, :, dims],
            covariance_type=covariance_type)
        lo = np.percentile(sample[:, dims], 0.5, axis=0)
        hi = np.percentile(sample[:, dims], 99.5, axis=0)
        gx, gy = np.meshgrid(np.linspace(lo[0], hi[0], 120), np.linspace(lo[1], hi[1], 120))
        dens = np.exp(marginal.score_samples(np.column_stack([gx.ravel(), gy.ravel()])))
        fig, axes = rep.figure("ubm_density.png", "Left: frames projected on cepstra c1 and c2 "
                               "(2-D histogram). Right: the UBM's density over the same two "
                               "coefficients (its marginal). The two should look alike.",
                               ncols=2, figsize=(10, 4.2))
        axes[0].hist2d(sample[:, 1], sample[:, 2], bins=80, range=[[lo[0], hi[0]], [lo[1], hi[1]]],
                       cmap="viridis", density=True)
        axes[1].pcolormesh(gx, gy, dens.reshape(gx.shape), cmap="viridis", shading="auto")
        for ax, t in zip(axes, ("frames", "UBM marginal density")):
            ax.set_xlabel("c1")
            ax.set_ylabel("c2")
            ax.set_title(t)
    credit_datasets(rep, [r.path for r in rows])
    results["seconds"]["total"] = time.perf_counter() - t0
    report = rep.write(results)
    if verbose:
        print(format_text_table(["files", "failed", "frames", "components", "iterations",
                                 "log-lik/frame", "model"],
                                [[len(ids), len(build.failed), n_frames, K, results["n_iter"],
                                  f"{history[-1]:.4f}" if history else "n/a",
                                  str(out / "ubm.npz")]]))
        print(f"report: {report}")
    return results
