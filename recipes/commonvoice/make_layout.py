#!/usr/bin/env python3
"""Lay out a labelled corpus as Common Voice does (clips/*.mp3 and validated.tsv).

    recipes/commonvoice/make_layout.py (--kaldi DIR [--wav-root W] | --manifest CSV [--data-root R]) --out CV
                                       [--rate 48000] [--locale en] [--speakers N] [-j N]

For trying `recipes/commonvoice/run.py` (and `gmmspeech manifest from-commonvoice`) where no
Common Voice release is at hand: every recording of a Kaldi data directory (``wav.scp``,
``utt2spk``, and where present ``segments``, ``text``, ``spk2gender``, ``spk2age``) or of a
gmmspeech manifest is decoded, resampled to ``--rate`` (Common Voice clips are 48 kHz mono MP3)
and encoded to MP3 by libsndfile's LAME encoder into ``CV/clips/``; ``CV/validated.tsv`` lists
them with Common Voice's columns: ``client_id`` (the SHA-512 of the speaker label, 128 hex
digits like Common Voice's), ``path``, ``sentence_id``, ``sentence`` (``text``), ``up_votes``,
``down_votes``, ``age`` (Common Voice's decade buckets: ``teens`` for anyone under 20, since
the buckets start there), ``gender`` (``male``/``female``), ``accents``, ``variant``, ``locale``
and ``segment``.

A recording that cannot be read is reported (file and reason) and left out; the others are
written, and the exit status is 1. Run it again into the same folder: finished clips are kept.

Example (speechocean762's Kaldi data directory, 125 speakers x 8 sentences):

    recipes/commonvoice/make_layout.py --kaldi ../shared/datasets/speechocean762/train \\
        --out /tmp/cv-speechocean762 -j 2
    recipes/commonvoice/run.py --data-root /tmp/cv-speechocean762 -j 2
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import io
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # run from a checkout

COLUMNS = ["client_id", "path", "sentence_id", "sentence", "sentence_domain", "up_votes", "down_votes",
           "age", "gender", "accents", "variant", "locale", "segment"]
_DECADES = ["teens", "twenties", "thirties", "fourties", "fifties", "sixties", "seventies", "eighties",
            "nineties"]


def client_id(speaker: str) -> str:
    """Common Voice's anonymous speaker id: 128 hex digits (here the SHA-512 of the label)."""
    return hashlib.sha512(speaker.encode("utf-8")).hexdigest()


def age_bucket(age: str) -> str:
    """A numeric age as Common Voice's bucket (``"teens"`` below 20; ``""`` when unknown);
    a value that already is a bucket passes through."""
    age = (age or "").strip()
    if age in _DECADES:
        return age
    try:
        years = float(age)
    except ValueError:
        return ""
    return _DECADES[min(max(int(years // 10) - 1, 0), len(_DECADES) - 1)]


def gender_word(gender: str) -> str:
    g = (gender or "").strip().lower()
    return {"m": "male", "f": "female"}.get(g, g)


def encode_clip(src: str, start, end, dst: str, rate: int) -> str | None:
    """Decode ``src`` (the segment ``start``-``end``), resample to ``rate`` and write ``dst`` as MP3
    (through a temporary name, so a finished clip is complete). ``None`` or the error text."""
    import numpy as np
    import soundfile as sf

    from gmmspeech.atomic import atomic_write
    from gmmspeech.audio import load
    from gmmspeech.errors import AudioError

    if os.path.isfile(dst):
        return None
    try:
        y = load(src, sr=rate, start=start, end=end)
    except (AudioError, OSError, ValueError) as exc:
        return str(exc)
    peak = float(np.max(np.abs(y))) if y.size else 0.0
    if peak > 1.0:  # a float file beyond full scale: MP3 would clip it
        y = y / peak
    y = np.asarray(y, np.float32)
    atomic_write(dst, lambda fh: sf.write(fh, y, rate, format="MP3"), sync=False)
    return None


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="recipes/commonvoice/make_layout.py", description=__doc__.splitlines()[0],
                                epilog="\n".join(__doc__.splitlines()[3:]),
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--kaldi", help="a Kaldi data directory")
    src.add_argument("--manifest", help="a gmmspeech manifest (id,path,label[,start,end], extra columns)")
    p.add_argument("--wav-root", help="folder the relative paths of wav.scp resolve against (default: the "
                   "data directory's parent, as in speechocean762/train)")
    p.add_argument("--data-root", help="folder the manifest's relative paths resolve against")
    p.add_argument("--out", required=True, help="the Common Voice folder to write (clips/, validated.tsv)")
    p.add_argument("--rate", type=int, default=48000, help="sampling rate of the MP3 clips (default 48000)")
    p.add_argument("--locale", default="en", help="the locale column and the clip names' infix (default en)")
    p.add_argument("--speakers", type=int, default=None, help="only the first N speakers (sorted labels)")
    p.add_argument("-j", "--jobs", type=int, default=1, help="parallel encoders (default 1)")
    a = p.parse_args(argv)
    if a.rate < 8000:
        p.error(f"--rate must be >= 8000, got {a.rate}")
    if a.jobs < 1:
        p.error(f"-j/--jobs must be >= 1, got {a.jobs}")
    if a.speakers is not None and a.speakers < 1:
        p.error(f"--speakers must be >= 1, got {a.speakers}")

    from gmmspeech.atomic import atomic_write_text
    from gmmspeech.corpus.manifest import ManifestError, from_kaldi, read_manifest
    from gmmspeech.parallel import parallel_map

    try:
        if a.kaldi:
            rows = from_kaldi(a.kaldi, wav_root=a.wav_root or Path(a.kaldi).resolve().parent)
        else:
            rows = read_manifest(a.manifest, data_root=a.data_root)
    except ManifestError as exc:
        p.exit(2, f"{p.prog}: error: {exc}\n")
    if not rows:
        p.exit(2, f"{p.prog}: error: {a.kaldi or a.manifest} lists no recordings\n")
    if a.speakers is not None:
        keep = set(sorted({r.label for r in rows})[: a.speakers])
        rows = [r for r in rows if r.label in keep]

    out = Path(a.out)
    (out / "clips").mkdir(parents=True, exist_ok=True)
    names = [f"common_voice_{a.locale}_{i:08d}.mp3" for i in range(len(rows))]
    jobs = [(r.path, r.start, r.end, os.fspath(out / "clips" / n), a.rate) for r, n in zip(rows, names)]
    errors = parallel_map(encode_clip, jobs, n_jobs=a.jobs, star=True, progress=True, desc="MP3 clips",
                          unit="files")

    lines, bad = [], []
    for r, name, err in zip(rows, names, errors):
        if err is not None:
            bad.append((r.path, err))
            continue
        text = r.extra.get("text", "").replace("\t", " ")
        lines.append({"client_id": client_id(r.label), "path": name,
                      "sentence_id": hashlib.sha256(text.encode()).hexdigest()[:64] if text else "",
                      "sentence": text, "sentence_domain": "", "up_votes": "2", "down_votes": "0",
                      "age": age_bucket(r.extra.get("age", "")), "gender": gender_word(r.extra.get("gender", "")),
                      "accents": r.extra.get("accents", ""), "variant": "", "locale": a.locale, "segment": ""})
    table = io.StringIO()
    w = csv.DictWriter(table, COLUMNS, delimiter="\t", lineterminator="\n", quoting=csv.QUOTE_NONE,
                       escapechar="\\")
    w.writeheader()
    w.writerows(lines)
    atomic_write_text(out / "validated.tsv", table.getvalue())
    n_spk = len({d["client_id"] for d in lines})
    print(f"{len(lines)} clips of {n_spk} speakers at {a.rate} Hz -> {out / 'clips'}; {out / 'validated.tsv'}")
    for path, err in bad:
        print(f"{p.prog}: skipped {path}: {err}", file=sys.stderr)
    if bad:
        print(f"{p.prog}: {len(bad)} of {len(rows)} recordings could not be read (listed above)", file=sys.stderr)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
