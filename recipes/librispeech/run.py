#!/usr/bin/env python3
"""GMM-UBM speaker recognition on LibriSpeech (63 test speakers, read English, 16 kHz).

    recipes/librispeech/run.py [--stage N] [--stop-stage N] [--quick] [--data-root R] [--out DIR] [-j N]

Stages (each a `gmmspeech` command; the commands of a run are in OUT/commands.sh):
  0  data       the test protocol of data_manifests/librispeech/test (background: test-other,
                10 speakers; each of 63 train-clean-100 speakers enrolled on the first 60 % of
                its file, tested on 3-s segments of the rest) -> OUT/data/*.csv
  1  features   one feature store, the speaker defaults' configuration -> OUT/feats
  for each system (OUT/exp/<system>/):
  2  UBM        train-ubm on the background (and enrolment) files, features read from the store
  3  enrol      enroll: one MAP-adapted model per speaker
  4  score      score: every test file against every model, raw scores
  5  normalise  score again with S-norm (cohort: the background speakers; the library default is raw scores)
  6  evaluate   evaluate: accuracy, EER, minDCF, DET plot (raw and normalised)
  7  report     OUT/report.md and OUT/results.json, rewritten after every system

Every setting not named below is the library default (gmmspeech/speaker/defaults.py).
A finished step is never redone: re-running after a kill continues where it stopped.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # run from a checkout

from gmmspeech.cli.steps import (  # noqa: E402
    Recipe,
    parse_args,
    protocol_manifests,
    speaker_systems,
    ubm_manifests,
    write_feature_config,
    write_protocol,
)

args = parse_args("librispeech", __doc__.splitlines()[0])
r = Recipe("librispeech", "GMM-UBM speaker recognition on LibriSpeech", args,
           credits=("librispeech",), intro=(
    "Read English audiobooks. Test protocol `data_manifests/librispeech/test`: UBM and "
    "normalisation cohort on test-other (10 speakers x 10 utterances), 63 train-clean-100 "
    "speakers each enrolled on the first 60 % of its single file and tested on every 3-s segment "
    "of the remaining 40 % (the library defaults were chosen on the dev protocol's other 63 "
    "speakers). Features: the speaker defaults."))
data, R = r.data, ["--data-root", r.data_root]
systems = speaker_systems(r.quick)  # name -> (train-ubm options beyond the defaults, description)

if r.stage(0, "data"):
    write_protocol(r, *protocol_manifests("librispeech", "test", data_root=r.data_root))
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
