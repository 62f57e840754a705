"""The embedded demo: the whole GMM-UBM speaker-identification chain with no download.

Without a data root a corpus is synthesised (:mod:`gmmspeech.synth`): background
speakers for the UBM and target speakers with enrolment and test utterances, written as
WAV files with manifests, so the run goes through exactly the same steps as on real
data: manifests -> feature store -> UBM -> MAP enrolment -> scoring -> metrics and
report. With ``data_root`` pointing at the shared datasets the LibriSpeech protocol of
``data_manifests/librispeech`` runs instead.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from gmmspeech.recipes.report import Report, format_text_table

# synthetic corpus defaults: hard enough that the task is real (overlapping voices,
# 20-40 dB background noise, random channel tilt, 2-3 s utterances)
N_SPEAKERS = 24
N_UTTERANCES = 6  # per target speaker: 3 enrolment + 3 test
N_BACKGROUND = 16
N_BACKGROUND_UTTS = 4
N_COMPONENTS = 64  # UBM components on the synthetic corpus
N_COMPONENTS_QUICK = 32  # with quick=True (either corpus)
SNR_DB = (20.0, 40.0)
DURATION = (2.0, 3.0)


def _write_synthetic(out: Path, *, n_speakers: int, n_utterances: int, n_background: int,
                     seed: int, n_jobs: int):
    """Synthesise and write the corpus; returns rows of background, enrolment and test."""
    import soundfile as sf

    from gmmspeech.corpus.manifest import Row, write_manifest
    from gmmspeech.synth import random_speakers, synth_corpus

    n_enroll = max(1, n_utterances // 2)
    targets = random_speakers(n_speakers, seed=seed, prefix="spk")
    # background voices drawn from the same population, with their own seed
    background = random_speakers(n_background, seed=seed + 7919, prefix="bkg")
    _, t_utts = synth_corpus(speakers=targets, n_utterances=n_utterances, seed=seed,
                             duration=DURATION, snr_db=SNR_DB, n_jobs=n_jobs)
    _, b_utts = synth_corpus(speakers=background, n_utterances=N_BACKGROUND_UTTS,
                             seed=seed + 7919, duration=DURATION, snr_db=SNR_DB, n_jobs=n_jobs)
    audio = out / "audio"
    audio.mkdir(parents=True, exist_ok=True)
    sets = {"background": [], "enroll": [], "test": []}
    for u in b_utts + t_utts:
        path = audio / f"{u.id}.wav"
        sf.write(path, u.y, u.sr, subtype="PCM_16")
        if u.speaker.startswith("bkg"):
            part = "background"
        else:
            part = "enroll" if u.index < n_enroll else "test"
        sets[part].append(Row(u.id, str(path), u.speaker, None, None, None))
    man = out / "manifests"
    man.mkdir(exist_ok=True)
    for part, rows in sets.items():
        write_manifest(rows, man / f"{part}.csv", root=man)  # paths relative to the manifest
    profiles = {s.name: s.to_dict() for s in targets}
    return sets, profiles


def run(*, out="demo-out", data_root=None, quick: bool = False, seed: int = 0, n_jobs: int = 1,
        backend: str | None = None, scheduler: str | None = None,
        n_speakers: int | None = None, n_utterances: int | None = None,
        n_components: int | None = None, verbose: bool = True) -> dict:
    """Run the demo and write ``out/report.md`` and ``out/results.json``.

    Parameters
    ----------
    out : path-like
        Output folder (audio, manifests, features, report).
    data_root : path-like or None
        None: synthetic corpus. Else the shared datasets folder: LibriSpeech protocol.
    quick : bool
        Smaller corpus and UBM (for tests).
    seed : int
        Seed of the corpus and of the UBM training.
    n_jobs, backend, scheduler
        Parallelism (see :mod:`gmmspeech.parallel`).
    n_speakers, n_utterances : int or None
        Synthetic target speakers and utterances per speaker (half enrolment, half test);
        with LibriSpeech, ``n_speakers`` keeps the first speakers of the protocol.
    n_components : int or None
        UBM components (default 64 synthetic, 32 quick; LibriSpeech: 128, with the other
        tuned settings of ``gmmspeech.speaker.pipeline.PROTOCOL_PRESETS["librispeech"]``
        except the T-norm: no VAD or CMVN, 24 cepstra, UBM on background + enrolment,
        relevance 4, exact scoring).
    verbose : bool
        Print the results table.
    """
    from gmmspeech.corpus.manifest import read_manifest
    from gmmspeech.features.config import FeatureConfig
    from gmmspeech.recipes import _speaker as chain

    t0 = time.perf_counter()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    config = FeatureConfig.preset("speech")
    if data_root is None:
        n_spk = int(n_speakers or (10 if quick else N_SPEAKERS))
        n_utt = int(n_utterances or (4 if quick else N_UTTERANCES))
        if n_utt < 2:
            raise ValueError(f"n_utterances must be at least 2 (enrolment and test), got {n_utt}")
        if n_spk < 2:
            raise ValueError(f"n_speakers must be at least 2, got {n_spk}")
        K = int(n_components or (N_COMPONENTS_QUICK if quick else N_COMPONENTS))
        sets, profiles = _write_synthetic(out, n_speakers=n_spk, n_utterances=n_utt,
                                          n_background=8 if quick else N_BACKGROUND,
                                          seed=seed, n_jobs=n_jobs)
        relevance, top_c, ubm_on_enroll = 16.0, None, False
        corpus = "synthetic"
    else:
        from gmmspeech.recipes._common import default_manifest, require_data_root

        root = require_data_root(data_root, "librispeech", "demo")
        sets = {part: read_manifest(default_manifest("librispeech", f"{part}.csv"), data_root=root)
                for part in ("background", "enroll", "test")}
        if quick or n_speakers:
            keep = sorted({r.label for r in sets["enroll"]})[: int(n_speakers or 10)]
            sets["enroll"] = [r for r in sets["enroll"] if r.label in keep]
            sets["test"] = [r for r in sets["test"] if r.label in keep]
        if quick:
            sets["background"] = sets["background"][::10]
        from gmmspeech.speaker.pipeline import protocol_settings

        tuned = protocol_settings("librispeech")
        config = config.replace(**tuned["feature_overrides"])
        K = int(n_components or (N_COMPONENTS_QUICK if quick else tuned["n_components"]))
        relevance, top_c, ubm_on_enroll = tuned["relevance_factor"], tuned["top_c"], tuned["ubm_on_enroll"]
        profiles = None
        corpus = "librispeech"
    t_data = time.perf_counter() - t0

    rows_all = sets["background"] + sets["enroll"] + sets["test"]
    store, good, failed = chain.build_features(rows_all, out / "features", config=config,
                                               n_jobs=n_jobs, backend=backend,
                                               scheduler=scheduler, progress=verbose)
    good_ids = {r.id for r in good}
    parts = {p: [r for r in rows if r.id in good_ids] for p, rows in sets.items()}
    t_feat = time.perf_counter() - t0 - t_data
    enroll: dict[str, list] = {}
    for r in parts["enroll"]:
        enroll.setdefault(r.label, []).append(np.asarray(store.load(r.id, mmap=False)))
    tests = [r for r in parts["test"] if r.label in enroll]
    background = chain.load_arrays(store, parts["background"])
    if ubm_on_enroll:
        background = background + [a for arrays in enroll.values() for a in arrays]
    system = chain.run_system(
        background=background, enroll=enroll, relevance_factor=relevance, top_c=top_c,
        tests=chain.load_arrays(store, tests), test_labels=[r.label for r in tests],
        n_components=K, covariance_type="diag", max_iter=10, seed=seed, n_jobs=n_jobs,
        backend=backend, scheduler=scheduler,
    )
    chain.save_system(system, out, config=config)
    m = system["metrics"]
    n_models = m["n_models"]
    results = {
        "recipe": "demo",
        "corpus": corpus,
        "quick": bool(quick),
        "seed": seed,
        "n_background_files": len(parts["background"]),
        "n_enroll_files": len(parts["enroll"]),
        "n_test_files": len(tests),
        "n_failed": len(failed),
        "ubm_components": K,
        "chance_accuracy": 1.0 / n_models,
        "system": chain.json_metrics(system),
        "accuracy": m["accuracy"],
        "eer": m["eer"],
        "seconds": {"data": t_data, "features": t_feat, **system["seconds"]},
    }
    rep = Report(out, "gmmspeech demo: GMM-UBM speaker identification")
    if corpus == "synthetic":
        rep.text(
            f"A synthetic corpus (seed {seed}) of {n_models} target speakers and "
            f"{len({r.label for r in parts['background']})} disjoint background speakers, made by "
            "`gmmspeech.synth`: a Rosenberg glottal source with per-speaker pitch, jitter, shimmer, "
            "open quotient and breathiness; vowel sequences with formant transitions through five "
            "cascaded resonators scaled by a per-speaker vocal-tract length, personal formant "
            "offsets and a personal vowel space; fricatives, stop bursts and pauses; per utterance a random channel tilt and "
            f"background noise at {SNR_DB[0]:g}-{SNR_DB[1]:g} dB SNR. Utterances last "
            f"{DURATION[0]:g}-{DURATION[1]:g} s; each target speaker has "
            f"{len(parts['enroll']) // max(n_models, 1)} enrolment and "
            f"{len(tests) // max(n_models, 1)} test utterances, written to `audio/` with "
            "manifests in `manifests/`."
        )
        rep.credit("synthetic")
    else:
        rep.text(
            "The LibriSpeech protocol of `data_manifests/librispeech`: UBM on `background.csv` "
            "(test-other, 10 speakers), one model per `train-clean-100` speaker enrolled on the "
            "first 60 % of its file (`enroll.csv`), tested on 3-second segments of the rest "
            "(`test.csv`)."
        )
        rep.credit("librispeech")
    rep.text(
        f"Chain: `speech` features ({config.n_features}-dim MFCC + deltas"
        + (", energy VAD, CMVN" if corpus == "synthetic" else
           "; no VAD and no CMVN: enrolment and test share one recording per speaker, so the "
           "long-term spectrum is speaker information")
        + f") in a feature store; a {K}-component diagonal UBM (binary splitting, 10 EM "
        "iterations" + ("" if corpus == "synthetic" else ", on background + enrolment data")
        + f"); MAP adaptation of the means (relevance factor {relevance:g}); every test "
        "segment scored against "
        "every model as the average frame log-likelihood ratio to the UBM. Identification "
        "picks the best model; every (segment, model) pair is also a verification trial for "
        f"the EER and minDCF. Chance accuracy is {100.0 / n_models:.1f} %."
    )
    rep.text("The UBM and the speaker models are saved as `ubm.npz` and `models/<speaker>.npz`; "
             f"`gmmspeech recipe score_files --models {out}/models --input {out}/audio "
             f"--out {out}/scored` scores any folder of audio against them.")
    if failed:
        rep.text(f"{len(failed)} files could not be used (see `features/errors.tsv`).")
    chain.report_systems(rep, {f"GMM-UBM diag-{K}": system}, prefix="demo",
                         title="speaker identification")
    if profiles:
        rep.heading("Synthetic speakers", 3)
        rep.table(["speaker", "sex", "f0 (Hz)", "vocal-tract scale", "jitter", "shimmer",
                   "correct"],
                  [[n, p["sex"], p["f0"], p["vtl_scale"], p["jitter"], p["shimmer"],
                    f"{sum(1 for t, q in zip(system['test_labels'], system['predicted']) if t == n and q == n)}"
                    f"/{sum(1 for t in system['test_labels'] if t == n)}"]
                   for n, p in profiles.items()], floatfmt=".3g")
        results["speakers"] = profiles
    results["seconds"]["total"] = time.perf_counter() - t0
    rep.text(f"Total run time {results['seconds']['total']:.1f} s.")
    report = rep.write(results)
    if verbose:
        print(format_text_table(
            ["corpus", "models", "tests", "accuracy", "chance", "EER", "minDCF08", "seconds"],
            [[corpus, n_models, len(tests), f"{100 * m['accuracy']:.1f}%",
              f"{100.0 / n_models:.1f}%", f"{100 * (m['eer'] or 0):.2f}%",
              f"{m['min_dcf_sre08'] or 0:.3f}", f"{results['seconds']['total']:.1f}"]]))
        print(f"report: {report}")
    return results
