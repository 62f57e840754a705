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
import csv
import os
import random
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from gmmspeech.corpus.manifest import Row, from_kaldi, write_manifest  # noqa: E402

#: FSDD upstream convention: recordings 0-4 of every digit and speaker are the test set.
FSDD_TEST_INDICES = range(0, 5)
#: LibriSpeech protocol: enrol on the first 60 % of each train-clean-100 file ...
ENROLL_FRACTION = 0.6
#: ... and test on consecutive 3 s segments of the rest, keeping a last piece >= 1 s.
TEST_SEGMENT = 3.0
MIN_TAIL = 1.0
#: Speaker-independent classification (digits, words): every ``SPLIT_EVERY``-th speaker in
#: sorted order, starting at ``SPLIT_OFFSET``, is a test speaker; settings are chosen by
#: cross-validation over the speakers of the train split (never on the test speakers).
FSDD_TEST_EVERY, FSDD_TEST_OFFSET = 3, 2  # lucas, yweweler
WORDS_TEST_EVERY, WORDS_TEST_OFFSET = 4, 3  # 5 of 23 speakers


def speaker_split(rows, speaker_of, every: int, offset: int) -> tuple[list[Row], list[Row]]:
    """(train, test) rows: the speakers at sorted positions offset, offset + every, ... test."""
    speakers = sorted({speaker_of(r) for r in rows})
    test_spk = set(speakers[offset::every])
    return ([r for r in rows if speaker_of(r) not in test_spk],
            [r for r in rows if speaker_of(r) in test_spk])


def dspspeech20_word_rows(datasets: Path) -> list[Row]:
    """Every DSPSpeech-20 file labelled with its word (``00``-``19``); the id
    ``{speaker}-{word}-{round}`` names the speaker."""
    import csv

    base = datasets / "dspspeech20"
    rows = []
    with open(base / "files.tsv", encoding="utf-8", newline="") as fh:
        for rec in csv.DictReader(fh, delimiter="\t"):
            rows.append(Row(rec["id"], str(base / rec["path"]), rec["word_label"]))
    return sorted(rows, key=lambda r: r.id)


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


# --------------------------------------------------------------------------- speaker-recognition
# development protocol: <corpus>/{dev,test}/{background,enroll,test}.csv

#: Seed of every speaker split (a fixed, documented seed: the splits never change).
SPLIT_SEED = 10
#: DSPSpeech-20: speaker identification across takes (enrol early takes, test late ones).
DSP_ENROLL_ROUNDS = ("01", "07")
DSP_TEST_ROUNDS = ("14", "20")
#: DSPSpeech-20 speakers kept for background (UBM) data; the rest split evenly dev/test.
DSP_N_BACKGROUND = 5
#: speechocean762: background / dev / test speaker proportions within each age-gender stratum.
SO762_PARTS = (1, 2, 2)
#: speechocean762: a speaker is a child up to this age (the corpus's children are 5-15).
SO762_CHILD_MAX_AGE = 15
#: FSDD (6 speakers only, so the split is by recording index, not by speaker).
FSDD_SPLITS = {
    "dev": {"enroll": range(10, 25), "test": range(5, 10)},
    "test": {"enroll": range(25, 40), "test": range(0, 5)},
}
FSDD_BACKGROUND = range(40, 50)


def _split_speakers(strata: dict[str, list[str]], parts: tuple[int, ...], seed: int = SPLIT_SEED
                    ) -> list[list[str]]:
    """Split speakers into ``len(parts)`` groups in proportion ``parts``, stratum by stratum.

    Each stratum's speakers are sorted, shuffled with a seeded generator and dealt out
    so every group receives its share of every stratum (remainders go round-robin
    across strata, so group sizes stay within one of the proportions overall).
    """
    rng = random.Random(seed)
    groups: list[list[str]] = [[] for _ in parts]
    total = sum(parts)
    # cycle: e.g. parts (1, 2, 2) -> deal order [0, 1, 1, 2, 2]
    cycle = [g for g, p in enumerate(parts) for _ in range(p)]
    pos = 0
    for key in sorted(strata):
        spk = sorted(strata[key])
        rng.shuffle(spk)
        for s in spk:
            groups[cycle[pos % total]].append(s)
            pos += 1
    return [sorted(g) for g in groups]


def _by_label(rows: list[Row], labels: set[str]) -> list[Row]:
    return [r for r in rows if r.label in labels]


def librispeech_protocol(datasets: Path) -> dict[str, dict[str, list[Row]]]:
    """Dev/test speaker-recognition splits of the LibriSpeech excerpt.

    The 126 train-clean-100 speakers are split in two halves (stratified by gender from
    ``SPEAKERS.TXT``): 63 development and 63 test speakers, each enrolled and tested as
    in the original protocol (first 60 % of the file / 3 s segments of the rest). The
    background (UBM) data is ``test-other`` for both (10 other speakers).
    """
    background, enroll, test = librispeech_rows(datasets)
    gender = _librispeech_genders(datasets / "librispeech" / "SPEAKERS.TXT")
    strata: dict[str, list[str]] = {}
    for r in enroll:
        strata.setdefault(gender.get(r.label, "?"), []).append(r.label)
    dev_spk, test_spk = _split_speakers(strata, (1, 1))
    out = {}
    for split, spk in (("dev", set(dev_spk)), ("test", set(test_spk))):
        out[split] = {"background": background, "enroll": _by_label(enroll, spk),
                      "test": _by_label(test, spk)}
    return out


def _librispeech_genders(path: Path) -> dict[str, str]:
    genders: dict[str, str] = {}
    if not path.is_file():
        return genders
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith(";") or "|" not in line:
            continue
        fields = [f.strip() for f in line.split("|")]
        genders[fields[0]] = fields[1]
    return genders


def fsdd_protocol(datasets: Path) -> dict[str, dict[str, list[Row]]]:
    """Dev/test speaker-identification splits of FSDD (6 speakers: split by recording index).

    With six speakers, disjoint dev and test speakers would leave nothing to identify,
    so both splits enrol and test the same six speakers on disjoint recordings: dev
    enrols indices 10-24 and tests 5-9, test enrols 25-39 and tests 0-4 (the upstream
    test convention); background (UBM) data is indices 40-49 of the same speakers (no
    other 8 kHz speakers exist).
    """
    train, test, _ = fsdd_rows(datasets)
    rows = train + test
    index = {r.id: int(r.id.rsplit("_", 1)[1]) for r in rows}
    background = [r for r in rows if index[r.id] in FSDD_BACKGROUND]
    out = {}
    for split, rule in FSDD_SPLITS.items():
        out[split] = {"background": background,
                      "enroll": [r for r in rows if index[r.id] in rule["enroll"]],
                      "test": [r for r in rows if index[r.id] in rule["test"]]}
    return out


def dspspeech20_protocol(datasets: Path) -> dict[str, dict[str, list[Row]]]:
    """Dev/test speaker-identification splits of DSPSpeech-20 (text-dependent, across takes).

    Of the 23 speakers, 5 give background (UBM) data (all four takes of all words); the
    other 18 are split 9 dev / 9 test. Each enrols takes 01 and 07 of the 20 words and
    is tested on takes 14 and 20.
    """
    root = datasets / "dspspeech20"
    with open(root / "files.tsv", encoding="utf-8", newline="") as fh:
        records = list(csv.DictReader(fh, delimiter="\t"))
    rows = {rec["id"]: (Row(rec["id"], str(root / rec["path"]), rec["speaker"]), rec["round"])
            for rec in records}
    speakers = sorted({r.label for r, _ in rows.values()})
    bg_spk, rest = _split_speakers({"all": speakers}, (DSP_N_BACKGROUND, len(speakers) - DSP_N_BACKGROUND))
    dev_spk, test_spk = _split_speakers({"all": rest}, (1, 1), seed=SPLIT_SEED + 1)
    ordered = [rows[k] for k in sorted(rows)]
    background = [r for r, _ in ordered if r.label in set(bg_spk)]
    out = {}
    for split, spk in (("dev", set(dev_spk)), ("test", set(test_spk))):
        out[split] = {
            "background": background,
            "enroll": [r for r, rnd in ordered if r.label in spk and rnd in DSP_ENROLL_ROUNDS],
            "test": [r for r, rnd in ordered if r.label in spk and rnd in DSP_TEST_ROUNDS],
        }
    return out


def speechocean762_protocol(datasets: Path) -> dict[str, dict[str, list[Row]]]:
    """Dev/test speaker-recognition splits of speechocean762 (its Kaldi data dir ``train/``).

    The 125 speakers are split 1:2:2 into background, development and test speakers
    (25 / 50 / 50), stratified by age group (child <= 15 years, adult) and gender from
    ``spk2age`` / ``spk2gender``. Background speakers give all 8 sentences as UBM data
    to both splits; dev and test speakers enrol on their first 4 sentences (sorted
    utterance ids) and are tested on the other 4.
    """
    root = datasets / "speechocean762"
    data = root / "train"
    rows = sorted(from_kaldi(data, root=root), key=lambda r: r.id)
    age = _kaldi_map(data / "spk2age")
    gender = _kaldi_map(data / "spk2gender")
    strata: dict[str, list[str]] = {}
    for spk in sorted({r.label for r in rows}):
        group = "child" if int(age[spk]) <= SO762_CHILD_MAX_AGE else "adult"
        strata.setdefault(f"{group}-{gender[spk]}", []).append(spk)
    bg_spk, dev_spk, test_spk = _split_speakers(strata, SO762_PARTS)
    per_spk: dict[str, list[Row]] = {}
    for r in rows:
        per_spk.setdefault(r.label, []).append(Row(r.id, r.path, r.label))
    background = [r for s in bg_spk for r in per_spk[s]]
    out = {}
    for split, spk in (("dev", dev_spk), ("test", test_spk)):
        enroll, test = [], []
        for s in spk:
            utts = per_spk[s]
            half = len(utts) // 2
            enroll += utts[:half]
            test += utts[half:]
        out[split] = {"background": background, "enroll": enroll, "test": test}
    return out


def _kaldi_map(path: Path) -> dict[str, str]:
    out = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        parts = line.split()
        if len(parts) >= 2:
            out[parts[0]] = parts[1]
    return out


#: corpus folder in data_manifests/ -> (dataset folder that must exist, protocol builder)
PROTOCOLS = {
    "librispeech": ("librispeech", librispeech_protocol),
    "fsdd": ("fsdd/recordings", fsdd_protocol),
    "dspspeech20": ("dspspeech20/files.tsv", dspspeech20_protocol),
    "speechocean762": ("speechocean762/train", speechocean762_protocol),
}


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
        d_train, d_test = speaker_split(digits, lambda r: r.id.split("_")[0],
                                        FSDD_TEST_EVERY, FSDD_TEST_OFFSET)
        outputs.update({"fsdd/digits_train.csv": d_train, "fsdd/digits_test.csv": d_test})
    if (datasets / "dspspeech20" / "files.tsv").is_file():
        words = dspspeech20_word_rows(datasets)
        w_train, w_test = speaker_split(words, lambda r: r.id.split("-")[0],
                                        WORDS_TEST_EVERY, WORDS_TEST_OFFSET)
        outputs.update({"dspspeech20/words_train.csv": w_train,
                        "dspspeech20/words_test.csv": w_test})
    if (datasets / "librispeech").is_dir():
        background, enroll, test = librispeech_rows(datasets)
        outputs.update({"librispeech/background.csv": background,
                        "librispeech/enroll.csv": enroll, "librispeech/test.csv": test})
    for corpus, (needed, builder) in PROTOCOLS.items():
        if (datasets / needed).exists():
            for split, parts in builder(datasets).items():
                for part, rows in parts.items():
                    outputs[f"{corpus}/{split}/{part}.csv"] = rows
    for name, rows in outputs.items():
        target = out / name
        os.makedirs(target.parent, exist_ok=True)
        write_manifest(rows, target, root=datasets)
        print(f"{target}: {len(rows)} rows, {len({r.label for r in rows})} labels")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
