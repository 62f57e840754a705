"""GMM-UBM speaker identification on LibriSpeech and FSDD, diagonal and full covariance.

Protocols (manifests in ``data_manifests/``, paths relative to the shared datasets):

``librispeech``
    UBM on ``background.csv`` (test-other, 10 speakers x 10 utterances); one model per
    ``train-clean-100`` speaker enrolled on the first 60 % of its file (``enroll.csv``,
    126 speakers); every 3-s segment of the remaining 40 % (``test.csv``) scored against
    every model. Closed-set identification among 126 speakers plus verification trials.
``fsdd``
    The six FSDD speakers: UBM and speaker models on ``speaker_train.csv`` (recordings
    5-49 of every digit), tests on ``speaker_test.csv`` (recordings 0-4); 8 kHz audio.

Each protocol runs a diagonal-covariance system and a full-covariance one (32
components), MAP adaptation of the means, average frame log-likelihood-ratio scoring.
FSDD: ``speech`` features, 256 diagonal components, relevance 16, UBM on the training
data. LibriSpeech: the tuned settings of
:data:`gmmspeech.speaker.pipeline.PROTOCOL_PRESETS` ``["librispeech"]`` (no CMVN, no
VAD, 24 cepstra, 128 diagonal components, UBM on background + enrolment data, relevance
4, exact scoring; the recipe reports raw scores, without the T-norm that
``gmmspeech speaker-id --protocol librispeech`` adds).
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from gmmspeech.recipes.report import Report, format_text_table

PROTOCOLS = ("librispeech", "fsdd")
_FILES = {"librispeech": ("background.csv", "enroll.csv", "test.csv"),
          "fsdd": ("speaker_train.csv", "speaker_train.csv", "speaker_test.csv")}


def limit_rows(rows, max_files: int | None):
    """At most ``max_files`` rows, taken round-robin over labels (so every label keeps
    some rows), in manifest order within a label."""
    if max_files is None or len(rows) <= max_files:
        return list(rows)
    by_label: dict[str, list] = {}
    for r in rows:
        by_label.setdefault(r.label, []).append(r)
    keep, i = [], 0
    while len(keep) < max_files:
        added = False
        for lst in by_label.values():
            if i < len(lst) and len(keep) < max_files:
                keep.append(lst[i])
                added = True
        if not added:
            break
        i += 1
    order = {id(r): n for n, r in enumerate(rows)}
    return sorted(keep, key=lambda r: order[id(r)])


def _protocol_rows(protocol: str, data_root: Path, quick: bool, max_files: int | None):
    from gmmspeech.corpus.manifest import read_manifest
    from gmmspeech.recipes._common import default_manifest

    names = _FILES[protocol]
    bg, en, te = (read_manifest(default_manifest(protocol, n), data_root=data_root) for n in names)
    if protocol == "librispeech":
        if quick or max_files:
            n = max_files or 12
            speakers = sorted({r.label for r in en})[:n]
            en = [r for r in en if r.label in speakers]
            te = [r for r in te if r.label in speakers]
            bg = limit_rows(bg, max_files or 20)
    else:
        if quick or max_files:
            en = bg = limit_rows(en, max_files or 120)
            te = limit_rows(te, max_files or 60)
    return bg, en, te


def run(*, out, data_root=None, quick: bool = False, seed: int = 0, n_jobs: int = 1,
        backend: str | None = None, scheduler: str | None = None,
        protocols: list[str] | None = None, covariance_types: list[str] | None = None,
        n_components: int | None = None, n_components_full: int | None = None,
        max_files: int | None = None, verbose: bool = True) -> dict:
    """Run the speaker-identification recipe; writes ``out/report.md`` and ``out/results.json``.

    Parameters
    ----------
    out : path-like
        Output folder (feature stores in ``out/features/<protocol>``).
    data_root : path-like
        The shared datasets folder.
    quick : bool
        Small run (a few speakers/files, small UBMs) for tests.
    seed : int
        Seed of the UBM training.
    n_jobs, backend, scheduler
        Parallelism.
    protocols : list of {"librispeech", "fsdd"} or None
        Default both; a protocol whose data is missing under ``data_root`` is skipped with
        a note.
    covariance_types : list of {"diag", "full"} or None
        Default both.
    n_components, n_components_full : int or None
        UBM sizes of the diagonal (default 256, LibriSpeech 128; 16 quick) and full
        (default 32; 4 quick) systems.
    max_files : int or None
        Cap the manifests (speakers for LibriSpeech enrolment, files otherwise).
    verbose : bool
    """
    from gmmspeech.features.config import FeatureConfig
    from gmmspeech.recipes import _speaker as chain

    t0 = time.perf_counter()
    if data_root is None:
        raise FileNotFoundError("recipe speaker_id needs --data-root pointing at the shared "
                                "datasets (the folder holding librispeech/ and fsdd/)")
    root = Path(data_root)
    protocols = list(protocols or PROTOCOLS)
    for p in protocols:
        if p not in PROTOCOLS:
            raise ValueError(f"protocol {p!r} is not one of {', '.join(PROTOCOLS)}")
    covs = list(covariance_types or ("diag", "full"))
    for c in covs:
        if c not in ("diag", "full"):
            raise ValueError(f"covariance type {c!r} must be 'diag' or 'full'")
    from gmmspeech.speaker.pipeline import protocol_settings

    tuned = protocol_settings("librispeech")
    k_full = int(n_components_full or (4 if quick else 32))

    rep = Report(out, "GMM-UBM speaker identification: LibriSpeech and FSDD")
    rep.text(
        "GMM-UBM (Reynolds, Quatieri and Dunn 2000): a universal background model trained by "
        "EM with binary splitting (10 iterations), one model per speaker by MAP adaptation of "
        "the means, and every test segment scored against every model as the average frame "
        "log-likelihood ratio to the UBM. Identification: the best model; verification: "
        "every (segment, model) pair is a trial (EER, minDCF with the NIST SRE08 and SRE10 "
        "costs). Systems: diagonal and full covariance (a full-covariance Gaussian costs "
        "about D/2 times the parameters of a diagonal one). FSDD: `speech` features, "
        "relevance factor 16, 256 diagonal components. LibriSpeech: the tuned protocol "
        "settings (`gmmspeech speaker-id --protocol librispeech` without its T-norm): no CMVN "
        "and no VAD (enrolment and test share one recording per speaker, so the long-term "
        "spectrum is speaker information), 24 cepstra, 128 diagonal components, UBM on "
        "background + enrolment data, relevance factor 4, exact scoring."
    )
    results: dict = {"recipe": "speaker_id", "quick": bool(quick), "protocols": {}}
    summary = []
    for protocol in protocols:
        if not (root / protocol).is_dir():
            rep.heading(protocol)
            rep.text(f"Skipped: {root / protocol} not found.")
            results["protocols"][protocol] = {"skipped": f"{root / protocol} not found"}
            continue
        tp = time.perf_counter()
        bg, en, te = _protocol_rows(protocol, root, quick, max_files)
        config = FeatureConfig.preset("speech")
        if protocol == "fsdd":
            config = config.replace(sample_rate=8000)
            k_diag = int(n_components or (16 if quick else 256))
            relevance, top_c, ubm_on_enroll = 16.0, None, False
        else:
            config = config.replace(**tuned["feature_overrides"])
            k_diag = int(n_components or (16 if quick else tuned["n_components"]))
            relevance, ubm_on_enroll = tuned["relevance_factor"], tuned["ubm_on_enroll"]
            top_c = tuned["top_c"]
        uniq = {r.id: r for r in bg + en + te}
        store, good, failed = chain.build_features(list(uniq.values()),
                                                   Path(out) / "features" / protocol,
                                                   config=config, n_jobs=n_jobs, backend=backend,
                                                   scheduler=scheduler, progress=verbose)
        ok = {r.id for r in good}
        bg = [r for r in bg if r.id in ok]
        en = [r for r in en if r.id in ok]
        enroll: dict[str, list] = {}
        for r in en:
            enroll.setdefault(r.label, []).append(np.asarray(store.load(r.id, mmap=False)))
        te = [r for r in te if r.id in ok and r.label in enroll]
        background = chain.load_arrays(store, bg)
        frames_bg = int(sum(a.shape[0] for a in background))
        if ubm_on_enroll:
            background = background + [a for arrays in enroll.values() for a in arrays]
        tests = chain.load_arrays(store, te)
        systems = {}
        for cov in covs:
            K = k_diag if cov == "diag" else k_full
            name = f"{cov}-{K}"
            systems[name] = chain.run_system(
                background=background, enroll=enroll, tests=tests,
                test_labels=[r.label for r in te], n_components=K, covariance_type=cov,
                max_iter=10, relevance_factor=relevance, top_c=top_c, seed=seed, n_jobs=n_jobs,
                backend=backend, scheduler=scheduler)
            m = systems[name]["metrics"]
            summary.append([protocol, name, m["n_models"], m["n_tests"],
                            f"{100 * m['accuracy']:.2f}%",
                            "n/a" if m["eer"] is None else f"{100 * m['eer']:.2f}%"])
            if verbose:
                print(format_text_table(["protocol", "system", "models", "tests", "accuracy", "EER"],
                                        [summary[-1]]), flush=True)
        rep.heading(f"{protocol}")
        label = ("LibriSpeech: UBM on test-other (background.csv) and the enrolment data, "
                 "models on 60 % of each "
                 "train-clean-100 file, tests on 3-s segments of the rest"
                 if protocol == "librispeech" else
                 "FSDD: UBM and models on recordings 5-49 of every digit, tests on recordings 0-4")
        rep.text(
            f"{label}. {len(bg)} background files ({frames_bg} frames"
            f"{' after VAD' if config.vad else ''}), "
            f"{len(enroll)} speaker models, {len(te)} test segments; chance accuracy "
            f"{100.0 / max(len(enroll), 1):.2f} %. Features: `speech` preset"
            f"{' without CMVN and VAD, 24 cepstra,' if protocol == 'librispeech' else ''} at "
            f"{config.sample_rate} Hz ({config.n_features} dims)."
            + (f" {len(failed)} files could not be used (features/{protocol}/errors.tsv)."
               if failed else "")
        )
        chain.report_systems(rep, systems, prefix=protocol, title=protocol,
                             confusion_for=next(iter(systems)))
        rep.credit(protocol)
        results["protocols"][protocol] = {
            "n_background_files": len(bg), "n_background_frames": frames_bg,
            "n_models": len(enroll), "n_tests": len(te), "n_failed": len(failed),
            "chance_accuracy": 1.0 / max(len(enroll), 1),
            "systems": {n: chain.json_metrics(s) for n, s in systems.items()},
            "seconds": time.perf_counter() - tp,
        }
    results["seconds"] = time.perf_counter() - t0
    report = rep.write(results)
    if verbose:
        print(format_text_table(["protocol", "system", "models", "tests", "accuracy", "EER"],
                                summary))
        print(f"report: {report}")
    return results
