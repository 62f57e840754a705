"""Generate the manifests of data_manifests/ from the shared datasets.

Usage (from the repository root)::

    .venv/bin/python data_manifests/make_manifests.py [--datasets ../shared/datasets]

Paths in the manifests are relative to the datasets root, so read them with
``read_manifest(..., data_root="../shared/datasets")`` or ``--data-root``. Segment
bounds are whole samples (durations from the file headers via soundfile.info), written
in seconds with full precision. The output is deterministic (sorted).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from gmmspeech.corpus.manifest import Row, write_manifest  # noqa: E402

#: FSDD upstream convention: recordings 0-4 of every digit and speaker are the test set.
FSDD_TEST_INDICES = range(0, 5)
#: LibriSpeech protocol: enrol on the first 60 % of each train-clean-100 file ...
ENROLL_FRACTION = 0.6
#: ... and test on consecutive 3 s segments of the rest, keeping a last piece >= 1 s.
TEST_SEGMENT = 3.0
MIN_TAIL = 1.0


def fsdd_rows(datasets: Path) -> tuple[list[Row], list[Row], list[Row]]:
    """(speaker_train, speaker_test, digits) rows for FSDD."""
    rec = datasets / "fsdd" / "recordings"
    files = sorted(rec.glob("*.wav"), key=lambda p: _fsdd_key(p.stem))
    train, test, digits = [], [], []
    for f in files:
        digit, speaker, index = f.stem.split("_")
        rid = f"{speaker}_{digit}_{index}"
        path = str(f)
        (test if int(index) in FSDD_TEST_INDICES else train).append(Row(rid, path, speaker))
        digits.append(Row(rid, path, digit))
    return train, test, digits


def _fsdd_key(stem: str) -> tuple[str, int, int]:
    digit, speaker, index = stem.split("_")
    return speaker, int(digit), int(index)


def librispeech_rows(datasets: Path) -> tuple[list[Row], list[Row], list[Row]]:
    """(background, enroll, test) rows for the LibriSpeech excerpt."""
    import soundfile as sf

    ls = datasets / "librispeech"
    background = [
        Row(f.stem, str(f), f.stem.split("-")[0])
        for f in sorted((ls / "test-other").glob("*/*.flac"))
    ]
    enroll: list[Row] = []
    test: list[Row] = []
    for f in sorted((ls / "train-clean-100").glob("*.flac")):
        info = sf.info(str(f))
        sr, n = info.samplerate, info.frames
        speaker = f.stem.split("-")[0]
        split = int(round(ENROLL_FRACTION * n))
        enroll.append(Row(f"{f.stem}_enroll", str(f), speaker, 0.0, split / sr))
        seg, tail = int(round(TEST_SEGMENT * sr)), int(round(MIN_TAIL * sr))
        bounds = []
        pos = split
        while n - pos >= seg:
            bounds.append((pos, pos + seg))
            pos += seg
        if n - pos >= tail or not bounds:
            # the last piece if it is long enough; the whole remainder when it is all there is
            bounds.append((pos, n))
        for k, (a, b) in enumerate(bounds):
            test.append(Row(f"{f.stem}_test{k:02d}", str(f), speaker, a / sr, b / sr))
    return background, enroll, test


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--datasets", default=str(HERE.parent.parent / "shared" / "datasets"),
                    help="datasets root (default: ../shared/datasets from the repository root)")
    ap.add_argument("--out", default=str(HERE), help="output folder (default: data_manifests/)")
    args = ap.parse_args(argv)
    datasets = Path(args.datasets).resolve()
    out = Path(args.out)
    if not datasets.is_dir():
        print(f"datasets root {datasets} not found", file=sys.stderr)
        return 2
    outputs = {}
    if (datasets / "fsdd" / "recordings").is_dir():
        train, test, digits = fsdd_rows(datasets)
        outputs.update({"fsdd/speaker_train.csv": train, "fsdd/speaker_test.csv": test,
                        "fsdd/digits.csv": digits})
    if (datasets / "librispeech").is_dir():
        background, enroll, test = librispeech_rows(datasets)
        outputs.update({"librispeech/background.csv": background,
                        "librispeech/enroll.csv": enroll, "librispeech/test.csv": test})
    for name, rows in outputs.items():
        target = out / name
        os.makedirs(target.parent, exist_ok=True)
        write_manifest(rows, target, root=datasets)
        print(f"{target}: {len(rows)} rows, {len({r.label for r in rows})} labels")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
