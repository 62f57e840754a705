#!/usr/bin/env python3
"""GMM-UBM speaker recognition on a corpus in the Common Voice layout (clips/*.mp3, validated.tsv).

    recipes/commonvoice/run.py --data-root CV [--stage N] [--stop-stage N] [--quick] [--out DIR] [-j N]

CV is a Common Voice folder (one language of a release, or any corpus laid out the same way:
clips/*.mp3 and validated.tsv with the columns client_id, path and sentence). Default
../shared/datasets/commonvoice.

Stages (each a `gmmspeech` command; the commands of a run are in OUT/commands.sh):
  0  data       manifest from validated.tsv (speakers with at least 4 clips); protocol: a
                quarter of the speakers (a fixed hash order of client_id) are background
                speakers (UBM and normalisation cohort), each other speaker is enrolled on the
                first half of its clips (sorted by name) and tested on the rest -> OUT/data/*.csv
  1  features   one feature store, the speaker defaults' configuration (MP3 decoded by
                libsndfile) -> OUT/feats
  for each system (OUT/exp/<system>/):
  2  UBM        train-ubm on the background (and enrolment) files, features read from the store
  3  enrol      enroll: one MAP-adapted model per speaker
  4  score      score: every test clip against every model, raw scores
  5  normalise  score again with S-norm (cohort: the background speakers; the library default is raw scores)
  6  evaluate   evaluate: accuracy, EER, minDCF, DET plot (raw and normalised)
  7  report     OUT/report.md and OUT/results.json, rewritten after every system

Every setting not named below is the library default (gmmspeech/speaker/defaults.py).
A finished step is never redone: re-running after a kill continues where it stopped.
"""

import hashlib
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # run from a checkout

from gmmspeech.cli.steps import (  # noqa: E402
    Recipe,
    parse_args,
    read_relative,
    speaker_systems,
    ubm_manifests,
    write_feature_config,
    write_protocol,
)

args = parse_args("commonvoice", __doc__.splitlines()[0])
root = Path(args.data_root)
if not (root / "validated.tsv").is_file() and (root / "commonvoice" / "validated.tsv").is_file():
    args.data_root = str(root / "commonvoice")
if not (Path(args.data_root) / "validated.tsv").is_file():
    sys.exit(f"recipes/commonvoice/run.py: error: neither {root / 'validated.tsv'} nor "
             f"{root / 'commonvoice' / 'validated.tsv'} found: --data-root must be a Common Voice "
             "folder (clips/*.mp3 and validated.tsv)")
r = Recipe("commonvoice", "GMM-UBM speaker recognition on a Common Voice corpus", args,
           credits=("commonvoice",), intro=(
    "Corpus in the Common Voice layout (MP3 clips of read sentences). Protocol: a quarter of "
    "the speakers with at least 4 clips are background speakers (UBM and normalisation "
    "cohort); every other speaker is enrolled on the first half of its clips and tested on the "
    "rest (text-independent). Features: the speaker defaults."))
data, R = r.data, ["--data-root", r.data_root]
systems = speaker_systems(r.quick)  # name -> (train-ubm options beyond the defaults, description)


def split_speakers(rows):
    """The protocol: (background, enrol, test) rows."""
    by_spk = {}
    for row in rows:
        by_spk.setdefault(row.label, []).append(row)
    order = sorted(by_spk, key=lambda s: hashlib.sha1(s.encode()).hexdigest())
    n_bg = max(1, len(order) // 4)
    background = [x for s in order[:n_bg] for x in by_spk[s]]
    enrol, test = [], []
    for s in order[n_bg:]:
        clips = sorted(by_spk[s], key=lambda x: x.id)
        half = (len(clips) + 1) // 2
        enrol += clips[:half]
        test += clips[half:]
    return background, enrol, test


if r.stage(0, "data"):
    r.gmmspeech("manifest", "from-commonvoice", r.data_root, "--min-clips", "4",
                "--out", data / "validated.csv")
    write_protocol(r, *split_speakers(read_relative(data / "validated.csv", r.data_root)))
if r.stage(1, "features"):
    r.gmmspeech("features", data / "all.csv", "--config", write_feature_config(r), *R,
                "--out", r.feats)
ubm_data = ubm_manifests(r)  # background (+ enrolment, as the library defaults say)
for name, (ubm_options, description) in systems.items():
    with r.system(name, description=description, settings={"train-ubm": ubm_options}) as s:
        ubm, models = s.path("ubm.npz"), s.path("models")
        if r.stage(2, f"{name}: UBM"):
            s.gmmspeech("train-ubm", *ubm_data, *ubm_options, "--features-dir", r.feats, *R,
                        "--out", ubm, out=ubm)
        if r.stage(3, f"{name}: enrol"):
            s.gmmspeech("enroll", "--ubm", ubm, "--manifest", data / "enroll.csv", *R,
                        "--out", models, out=models)
        if r.stage(4, f"{name}: score"):
            s.gmmspeech("score", "--ubm", ubm, "--models", models, "--manifest", data / "test.csv",
                        "--features-dir", r.feats, "--norm", "none", *R,
                        "--out", s.path("scores.raw.tsv"), out=s.path("scores.raw.tsv"))
        if r.stage(5, f"{name}: normalise"):
            s.gmmspeech("score", "--ubm", ubm, "--models", models, "--manifest", data / "test.csv",
                        "--background", data / "background.csv", "--norm", "snorm", "--features-dir", r.feats, *R,
                        "--out", s.path("scores.tsv"), out=s.path("scores.tsv"))
        if r.stage(6, f"{name}: evaluate"):
            s.gmmspeech("evaluate", s.path("scores.raw.tsv"), "--out", s.path("eval.raw"),
                        out=s.path("eval.raw"))
            s.gmmspeech("evaluate", s.path("scores.tsv"), "--out", s.path("eval"), out=s.path("eval"))
        s.evaluated(s.path("eval"), raw=s.path("eval.raw"))
r.finish()
