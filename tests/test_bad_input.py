"""Bad input never stops a batch: every bad file is reported once with its reason, every good
file completes, results are written, and nothing ends in a traceback.

:func:`write_bad_corpus` writes a small corpus mixing good speech-like files with every kind
of bad input met in real corpora; the tests run it through ``gmmspeech features`` and
``gmmspeech speaker-id`` (as subprocesses, as a user would) and through the library.
"""

from __future__ import annotations

import csv
import os
import re
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import hostile
import numpy as np
import pytest
import soundfile as sf
from conftest import speechlike

SR = 16000

# bad case id -> regular expression its reason must match (case-insensitive)
BAD_REASONS = {
    "bad_empty": r"empty",
    "bad_truncated_flac": r"corrupt|truncat|unreadable|lost sync",
    "bad_text_as_wav": r"not audio|format|not recognised",
    "bad_nan_float": r"finite|nan",
    "bad_one_sample": r"short|sample|frame",
    "bad_silence": r"vad|silen|speech|frame|energy",
    "bad_segment_past_end": r"past the end|beyond|segment|out of range",
    "bad_missing": r"missing|no such file",
    # the hostile corpus: header lies, sparse giants, cut-off data, absurd samples,
    # file-system objects that are not files
    "bad_wav_cut_off": r"truncated",
    "bad_flac_claims_2e36": r"maximum duration|truncat",
    "bad_sparse_giant_wav": r"maximum duration",
    "bad_samples_1e30": r"implausible sample value",
    "bad_inf_float": r"non-finite",
    "bad_symlink_loop": r"symlink loop",
    "bad_fifo": r"not a regular file.*FIFO",
    "bad_folder_as_file": r"not a regular file.*folder",
}
# unusual but valid files that must succeed
GOOD_UNUSUAL = ("good_6ch_44k", "good_mp3", "good_mp3_cv32k", "good_mp3_vbr_no_length")


@dataclass
class BadCorpus:
    root: Path
    background_manifest: Path  # good rows of other speakers + bad rows, for the UBM
    train_manifest: Path  # good + bad rows for enrolment
    test_manifest: Path  # good + bad rows for testing
    all_manifest: Path  # every row of both
    good_ids: list[str] = field(default_factory=list)
    bad_ids: list[str] = field(default_factory=list)
    labels: dict[str, str] = field(default_factory=dict)


def _speaker_signal(speaker: int, utt: int, seconds: float = 1.2, sr: int = SR) -> np.ndarray:
    """A speech-like signal whose pitch identifies the speaker, with a little variation."""
    f0 = (105.0, 165.0, 240.0, 90.0, 130.0, 200.0, 280.0)[speaker] * (1.0 + 0.015 * utt)
    y = speechlike(sr=sr, seconds=seconds, f0=f0, seed=100 * speaker + utt)
    # syllable-like amplitude modulation so that an energy VAD has something to keep
    t = np.arange(y.size) / sr
    env = 0.55 + 0.45 * np.sin(2 * np.pi * (3.0 + speaker) * t) ** 2
    return (y * env).astype(np.float32)


def write_bad_corpus(root: Path, *, n_speakers: int = 3, n_train: int = 3, n_test: int = 2) -> BadCorpus:
    """Write good utterances of ``n_speakers`` speakers plus every bad case under ``root``.

    Returns the manifests and the ids. Bad rows are split between the background, the
    train and the test manifest (each bad row in exactly one), so the UBM, enrolment and
    scoring paths all meet them; the two unusual but valid files (6-channel 44.1 kHz WAV,
    MP3) are in the test manifest and must succeed. Background speakers (4 of them) are
    not the enrolled ones.
    """
    root = Path(root)
    audio = root / "audio"
    audio.mkdir(parents=True, exist_ok=True)
    bg_rows: list[list] = []
    train_rows: list[list] = []
    test_rows: list[list] = []
    labels: dict[str, str] = {}

    def add(rows, rid, path, label, start=None, end=None):
        rows.append([rid, str(path), label, "" if start is None else repr(start),
                     "" if end is None else repr(end)])
        labels[rid] = label

    good: list[str] = []
    for s in range(n_speakers):
        label = f"spk{s}"
        for u in range(n_train + n_test):
            rid = f"{label}_u{u}"
            path = audio / f"{rid}.wav"
            sf.write(path, _speaker_signal(s, u), SR, subtype="PCM_16")
            add(train_rows if u < n_train else test_rows, rid, path, label)
            good.append(rid)

    for s in range(3, 7):
        for u in range(3):
            rid = f"bg{s}_u{u}"
            sf.write(audio / f"{rid}.wav", _speaker_signal(s, u), SR, subtype="PCM_16")
            add(bg_rows, rid, audio / f"{rid}.wav", f"bg{s}")
            good.append(rid)

    # 6-channel 44.1 kHz float WAV: every channel the same voice, different gains (GOOD)
    y = _speaker_signal(0, 7, sr=44100)
    multi = np.stack([y * g for g in (1.0, 0.8, 0.6, 0.9, 0.7, 0.5)], axis=1)
    sf.write(audio / "good_6ch_44k.wav", multi, 44100, subtype="FLOAT")
    add(test_rows, "good_6ch_44k", audio / "good_6ch_44k.wav", "spk0")
    good.append("good_6ch_44k")
    # an MP3 of speaker 1 (GOOD)
    sf.write(audio / "good_mp3.mp3", _speaker_signal(1, 7), SR, format="MP3")
    add(test_rows, "good_mp3", audio / "good_mp3.mp3", "spk1")
    good.append("good_mp3")
    # a 32 kHz mono CBR MP3 whose length libsndfile over-estimates (Common Voice) (GOOD)
    import soxr

    y32 = soxr.resample(_speaker_signal(2, 5), SR, 32000).astype(np.float32)
    # (a high bit rate: the toy speaker models here are not meant to survive 56 kbit/s coding)
    hostile.mp3_like_common_voice(audio / "good_mp3_cv32k.mp3", y32, 32000, compression_level=0.2)
    add(test_rows, "good_mp3_cv32k", audio / "good_mp3_cv32k.mp3", "spk2")
    good.append("good_mp3_cv32k")
    # a VBR MP3 without its length tag: libsndfile's estimate is far too short (GOOD)
    hostile.mp3_vbr_without_length(audio / "good_mp3_vbr.mp3", _speaker_signal(0, 9), SR)
    add(test_rows, "good_mp3_vbr_no_length", audio / "good_mp3_vbr.mp3", "spk0")
    good.append("good_mp3_vbr_no_length")

    bad: list[str] = []
    # empty file
    (audio / "bad_empty.wav").write_bytes(b"")
    add(bg_rows, "bad_empty", audio / "bad_empty.wav", "bg3")
    # truncated FLAC: the first half of a valid file
    full = audio / "full.flac.tmp"
    sf.write(full, _speaker_signal(1, 8), SR, format="FLAC")
    raw = full.read_bytes()
    full.unlink()
    (audio / "bad_truncated_flac.flac").write_bytes(raw[: len(raw) // 2])
    add(test_rows, "bad_truncated_flac", audio / "bad_truncated_flac.flac", "spk1")
    # text renamed .wav
    (audio / "bad_text_as_wav.wav").write_text("id,path,label\nthis is not audio\n" * 20)
    add(bg_rows, "bad_text_as_wav", audio / "bad_text_as_wav.wav", "bg4")
    # float WAV holding NaN
    y = _speaker_signal(2, 8)
    y[1000:1100] = np.nan
    sf.write(audio / "bad_nan_float.wav", y, SR, subtype="FLOAT")
    add(test_rows, "bad_nan_float", audio / "bad_nan_float.wav", "spk2")
    # one sample
    sf.write(audio / "bad_one_sample.wav", np.array([0.1], dtype=np.float32), SR, subtype="PCM_16")
    add(train_rows, "bad_one_sample", audio / "bad_one_sample.wav", "spk2")
    # pure digital silence: audio reads, VAD keeps nothing
    sf.write(audio / "bad_silence.wav", np.zeros(SR, dtype=np.float32), SR, subtype="PCM_16")
    add(train_rows, "bad_silence", audio / "bad_silence.wav", "spk0")
    # a segment that starts past the end of a valid 1.2 s file
    add(test_rows, "bad_segment_past_end", audio / "spk0_u0.wav", "spk0", start=5.0, end=6.0)
    # a path that does not exist
    add(test_rows, "bad_missing", audio / "no_such_file.wav", "spk1")
    # the hostile part
    hostile.wav_cut_off(audio / "bad_wav_cut_off.wav", _speaker_signal(0, 10, seconds=1.5), SR)
    add(train_rows, "bad_wav_cut_off", audio / "bad_wav_cut_off.wav", "spk0")
    hostile.flac_header_lie(audio / "bad_flac_claims_2e36.flac", _speaker_signal(1, 10), SR)
    add(bg_rows, "bad_flac_claims_2e36", audio / "bad_flac_claims_2e36.flac", "bg5")
    hostile.wav_sparse_giant(audio / "bad_sparse_giant_wav.wav")
    add(test_rows, "bad_sparse_giant_wav", audio / "bad_sparse_giant_wav.wav", "spk2")
    hostile.float_wav_with(audio / "bad_samples_1e30.wav", _speaker_signal(2, 10), SR, 5000, 1e30)
    add(bg_rows, "bad_samples_1e30", audio / "bad_samples_1e30.wav", "bg6")
    hostile.float_wav_with(audio / "bad_inf_float.wav", _speaker_signal(1, 11), SR, 77, -np.inf)
    add(train_rows, "bad_inf_float", audio / "bad_inf_float.wav", "spk1")
    hostile.symlink_loop(audio / "bad_symlink_loop.wav")
    add(test_rows, "bad_symlink_loop", audio / "bad_symlink_loop.wav", "spk0")
    hostile.fifo(audio / "bad_fifo.wav")
    add(bg_rows, "bad_fifo", audio / "bad_fifo.wav", "bg3")
    hostile.folder(audio / "bad_folder_as_file.wav")
    add(train_rows, "bad_folder_as_file", audio / "bad_folder_as_file.wav", "spk2")
    bad = list(BAD_REASONS)

    def write(path: Path, rows):
        with open(path, "w", newline="", encoding="utf-8") as fh:
            w = csv.writer(fh, lineterminator="\n")
            w.writerow(["id", "path", "label", "start", "end"])
            w.writerows(rows)

    corpus = BadCorpus(root, root / "background.csv", root / "train.csv", root / "test.csv",
                       root / "all.csv", good_ids=good, bad_ids=bad, labels=labels)
    write(corpus.background_manifest, bg_rows)
    write(corpus.train_manifest, train_rows)
    write(corpus.test_manifest, test_rows)
    write(corpus.all_manifest, bg_rows + train_rows + test_rows)
    return corpus


def run_cli(*args: str, cwd: Path | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    """``python -m gmmspeech ARGS`` with one BLAS thread, the local backend and captured output."""
    env = dict(os.environ)
    env.pop("GMMSPEECH_BACKEND", None)
    env.pop("GMMSPEECH_SCHEDULER", None)
    env.update(OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1",
               PYTHONWARNINGS="ignore")
    # a small parent reports the peak RSS of the command and its waited-for workers
    wrapper = ("import resource, subprocess, sys; rc = subprocess.call(sys.argv[1:]); "
               "sys.stderr.write('\\nPEAK_RSS_KB=%d\\n' % resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss); "
               "sys.exit(rc)")
    res = subprocess.run([sys.executable, "-c", wrapper, sys.executable, "-m", "gmmspeech",
                          *map(str, args)], cwd=cwd, env=env, capture_output=True, text=True,
                         timeout=timeout)
    m = re.search(r"\nPEAK_RSS_KB=(\d+)\n", res.stderr)
    res.peak_rss_mb = int(m.group(1)) / 1024 if m else None
    res.stderr = res.stderr[: m.start()] if m else res.stderr
    return res


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> BadCorpus:
    return write_bad_corpus(tmp_path_factory.mktemp("badcorpus"))


# ----------------------------------------------------------------- the corpus itself


def test_corpus_bad_cases_are_bad_and_good_cases_load(corpus):
    """The writer makes what it says: the audio loader refuses each bad audio file and reads
    each good one (independently of the feature pipeline)."""
    from gmmspeech import audio
    from gmmspeech.errors import AudioError

    rows = {r[0]: r for r in csv.reader(open(corpus.all_manifest, encoding="utf-8"))}
    for rid in corpus.good_ids:
        y = audio.load(rows[rid][1])
        assert y.dtype == np.float32 and y.ndim == 1 and np.all(np.isfinite(y))
        assert 1.15 * SR < y.size < 1.5 * SR, rid  # 1.2 s each (MP3s: + encoder padding)
    for rid in corpus.bad_ids:
        _, path, _, start, end = rows[rid]
        if rid == "bad_silence":
            assert np.all(audio.load(path) == 0)
            continue
        with pytest.raises(AudioError) as info:
            audio.load(path, start=float(start) if start else None, end=float(end) if end else None)
        assert re.search(BAD_REASONS[rid], info.value.reason, re.I), (rid, info.value.reason)


def _read_errors(path: Path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh, dialect="excel-tab"))


def _assert_bad_reported_once(errors: list[dict], bad_ids: list[str]) -> None:
    ids = [r["id"] for r in errors]
    assert sorted(ids) == sorted(bad_ids), f"reported {sorted(ids)}"
    for r in errors:
        assert re.search(BAD_REASONS[r["id"]], r["reason"], re.I), (r["id"], r["reason"])
        assert r["path"]


# ------------------------------------------------------------------------- features


@pytest.fixture(scope="module")
def feature_run(corpus, tmp_path_factory):
    out = tmp_path_factory.mktemp("badfeat") / "store"
    res = run_cli("features", corpus.all_manifest, "--out", out, "--quiet")
    return out, res


def test_features_cli_reports_each_bad_file_and_finishes_the_good(corpus, feature_run):
    from gmmspeech.corpus.store import FeatureStore

    out, res = feature_run
    assert "Traceback" not in res.stderr and "Traceback" not in res.stdout
    assert res.returncode == 1, (res.returncode, res.stderr)  # documented: some files failed
    assert res.peak_rss_mb is not None and res.peak_rss_mb <= 1536, res.peak_rss_mb
    assert f"{len(corpus.bad_ids)} of {len(corpus.good_ids) + len(corpus.bad_ids)}" in res.stderr
    # errors.tsv: every bad file exactly once, with its reason; no good file
    _assert_bad_reported_once(_read_errors(out / "errors.tsv"), corpus.bad_ids)
    for rid in corpus.bad_ids:
        assert res.stderr.count(rid) <= 1
    # every good file is in the store, finite, with the configured dimension
    store = FeatureStore(out)
    assert sorted(store.ids()) == sorted(corpus.good_ids)
    for rid in corpus.good_ids:
        x = store.load(rid, mmap=False)
        assert x.ndim == 2 and x.shape[1] == store.config.n_features and x.shape[0] > 20, rid
        assert np.all(np.isfinite(x)), rid
        assert store.label(rid) == corpus.labels[rid]


def test_features_cli_rerun_skips_good_and_reports_bad_again(corpus, feature_run):
    out, first = feature_run
    res = run_cli("features", corpus.all_manifest, "--out", out, "--quiet")
    assert "Traceback" not in res.stderr
    assert res.returncode == 1
    _assert_bad_reported_once(_read_errors(out / "errors.tsv"), corpus.bad_ids)
    from gmmspeech.corpus.store import FeatureStore

    assert sorted(FeatureStore(out).ids()) == sorted(corpus.good_ids)


def test_store_build_library_report(corpus, tmp_path):
    """The same through the library, with two local worker processes."""
    from gmmspeech.corpus.manifest import read_manifest
    from gmmspeech.corpus.store import FeatureStore

    rows = read_manifest(corpus.test_manifest)
    report = FeatureStore(tmp_path / "s").build(rows, config="speech", n_jobs=2, progress=False)
    bad_here = [r.id for r in rows if r.id in BAD_REASONS]
    assert sorted(f[0] for f in report.failed) == sorted(bad_here)
    assert report.n_done == len(rows) - len(bad_here)
    for rid, path, reason in report.failed:
        assert re.search(BAD_REASONS[rid], reason, re.I), (rid, reason)
        assert path


def test_bad_manifest_is_a_clean_error(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("id,path\nx,a.wav\n")  # no label column
    res = run_cli("features", bad, "--out", tmp_path / "s", "--quiet")
    assert res.returncode == 2
    assert "Traceback" not in res.stderr
    assert "bad.csv" in res.stderr and "label" in res.stderr


# ----------------------------------------------------------------------- speaker-id


def test_speaker_id_cli_with_bad_files(corpus, tmp_path):
    out = tmp_path / "sid"
    res = run_cli("speaker-id", "--background", corpus.background_manifest, "--enroll",
                  corpus.train_manifest, "--test", corpus.test_manifest, "--out", out,
                  "--components", 16, "--iterations", 3, "--quiet",
                  # the classic setting (utterance CMVN + VAD): with VAD a silent file is a bad
                  # file, and CMVN removes the MP3 encoder's channel colouring from the check below
                  "--protocol", "classic", timeout=300)
    assert "Traceback" not in res.stderr and "Traceback" not in res.stdout
    assert res.returncode in (0, 1), res.stderr
    assert res.peak_rss_mb is not None and res.peak_rss_mb <= 1536, res.peak_rss_mb
    # each bad file reported once on stderr, with its reason
    for rid in corpus.bad_ids:
        lines = [ln for ln in res.stderr.splitlines() if re.search(rf"\b{rid}\b", ln)]
        assert len(lines) == 1, (rid, lines)
        assert re.search(BAD_REASONS[rid], lines[0], re.I), lines[0]
    # results are written, and list the bad files with their reasons
    import json

    results = json.loads((out / "results.json").read_text())
    _assert_bad_reported_once(results["bad_files"], corpus.bad_ids)
    assert (out / "ubm.npz").is_file()
    # every good test file was scored against every enrolled speaker, including the
    # 6-channel 44.1 kHz WAV and the MP3
    with open(out / "scores.tsv", newline="", encoding="utf-8") as fh:
        trials = list(csv.DictReader(fh, dialect="excel-tab"))
    good_tests = [r[0] for r in csv.reader(open(corpus.test_manifest)) if r[0] in corpus.good_ids]
    assert set(GOOD_UNUSUAL) <= set(good_tests)
    scored = {}
    for t in trials:
        scored.setdefault(t["test_id"], set()).add(t["model"])
        assert np.isfinite(float(t["score"]))
    assert set(scored) == set(good_tests)
    assert all(models == {"spk0", "spk1", "spk2"} for models in scored.values())
    assert results["n_tests"] == len(good_tests)
    # the speakers are easy to tell apart (pitch): each good test's best model is its own
    best = {}
    for t in trials:
        if t["test_id"] not in best or float(t["score"]) > best[t["test_id"]][1]:
            best[t["test_id"]] = (t["model"], float(t["score"]))
    wrong = {tid: best[tid] for tid in good_tests if best[tid][0] != corpus.labels[tid]}
    assert not wrong, wrong


@pytest.mark.parametrize("extra, word", [
    (["--components", 100000], "components"),  # more components than frames
    (["--components", 0], "components"),
    (["--iterations", -1], "iter"),
    (["--top-c", 0], "top"),
    (["--subsample", 0], "subsample"),
])
def test_train_ubm_cli_bad_arguments_are_clean_errors(corpus, feature_run, extra, word):
    """A user error in the arguments, not a crash: exit 2, a message, no traceback."""
    out, _ = feature_run
    args = {"--components": 4, "--iterations": 1}
    args.update(dict(zip(extra[::2], extra[1::2])))
    res = run_cli("train-ubm", out, "--out", out.parent / "ubm.npz", "--quiet",
                  *[str(v) for kv in args.items() for v in kv])
    assert "Traceback" not in res.stderr
    assert res.returncode == 2, res.stderr
    assert word in res.stderr.lower()
