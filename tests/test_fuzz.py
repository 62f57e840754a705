"""Fuzzing the three readers of untrusted files with Hypothesis.

* the audio loader: any bytes, or a valid file with bytes flipped or cut, give a
  finite mono float32 signal or :class:`AudioError`, never another exception;
* the manifest parser: any text or bytes give rows or :class:`ManifestError`;
* the model loader: a valid model file with random byte mutations or truncations
  either loads as the identical model or raises :class:`ModelFileError`.

Runs are derandomized (the examples are the same on every run) and bounded.
"""

from __future__ import annotations

import io
import itertools
import os
import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from gmmspeech.errors import AudioError, ManifestError, ModelFileError

FUZZ = settings(
    derandomize=True,
    deadline=None,
    database=None,
    max_examples=120,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

_counter = itertools.count()


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    return tmp_path_factory.mktemp("fuzz")


def _fresh(workdir, suffix: str):
    return workdir / f"f{next(_counter)}{suffix}"


def _valid_audio_bytes(fmt: str) -> bytes:
    import soundfile as sf

    t = np.arange(4000) / 8000.0
    y = (0.4 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    buf = io.BytesIO()
    if fmt == "WAV":
        sf.write(buf, y, 8000, format="WAV", subtype="PCM_16")
    elif fmt == "WAVF":
        sf.write(buf, y, 8000, format="WAV", subtype="FLOAT")
    elif fmt == "FLAC":
        sf.write(buf, y, 8000, format="FLAC")
    else:
        sf.write(buf, y, 8000, format="MP3")
    return buf.getvalue()


_SUFFIX = {"WAV": ".wav", "WAVF": ".wav", "FLAC": ".flac", "MP3": ".mp3"}
_VALID = {}


def _valid(fmt):
    if fmt not in _VALID:
        _VALID[fmt] = _valid_audio_bytes(fmt)
    return _VALID[fmt]


def _check_audio(path) -> None:
    from gmmspeech import audio

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            y = audio.load(path, sr=None)
        except AudioError as exc:
            assert exc.path == os.fspath(path)
            assert exc.reason
            return
    assert isinstance(y, np.ndarray)
    assert y.dtype == np.float32 and y.ndim == 1 and y.size > 0
    assert np.all(np.isfinite(y))


# ------------------------------------------------------------------------------ audio


@FUZZ
@given(data=st.binary(max_size=2048), suffix=st.sampled_from([".wav", ".flac", ".mp3", ".ogg", ""]))
def test_audio_loader_random_bytes(workdir, data, suffix):
    path = _fresh(workdir, suffix)
    path.write_bytes(data)
    _check_audio(path)


@FUZZ
@given(
    fmt=st.sampled_from(["WAV", "WAVF", "FLAC", "MP3"]),
    flips=st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 255)), min_size=1, max_size=8),
)
def test_audio_loader_mutated_valid_file(workdir, fmt, flips):
    raw = bytearray(_valid(fmt))
    for pos, val in flips:
        # bias towards the header, where the parser makes its decisions
        i = pos % min(len(raw), 128) if pos % 2 else pos % len(raw)
        raw[i] = val
    path = _fresh(workdir, _SUFFIX[fmt])
    path.write_bytes(bytes(raw))
    _check_audio(path)


@FUZZ
@given(fmt=st.sampled_from(["WAV", "WAVF", "FLAC", "MP3"]), frac=st.floats(0.0, 1.0))
def test_audio_loader_truncated_valid_file(workdir, fmt, frac):
    raw = _valid(fmt)
    path = _fresh(workdir, _SUFFIX[fmt])
    path.write_bytes(raw[: int(frac * (len(raw) - 1))])
    _check_audio(path)


@FUZZ
@given(
    start=st.one_of(st.none(), st.floats(allow_nan=True, allow_infinity=True, width=32)),
    end=st.one_of(st.none(), st.floats(allow_nan=True, allow_infinity=True, width=32)),
)
def test_audio_loader_random_segments(workdir, start, end):
    from gmmspeech import audio

    path = workdir / "segment-source.wav"
    if not path.exists():
        path.write_bytes(_valid("WAV"))
    try:
        y = audio.load(path, sr=None, start=start, end=end)
    except AudioError:
        return
    assert y.dtype == np.float32 and y.ndim == 1 and y.size > 0
    assert np.all(np.isfinite(y))
    # a segment that loads lies inside [0, 0.5 s] and is as long as asked (to a sample)
    s = 0.0 if start is None else start
    e = 0.5 if end is None else min(end, 0.5)
    assert abs(y.size - (e - s) * 8000) <= 1


# --------------------------------------------------------------------------- manifest

_MANIFEST_ALPHABET = st.sampled_from(
    list("abc019,.-_/\" \t\n\r#;:") + ["id", "path", "label", "start", "end", "\ufeff", "é", "\x00"]
)


def _check_manifest(path) -> None:
    from gmmspeech.corpus.manifest import Row, read_manifest

    try:
        rows = read_manifest(path)
    except ManifestError as exc:
        assert exc.path == os.fspath(path)
        assert exc.reason
        return
    assert isinstance(rows, list)
    for row in rows:
        assert isinstance(row, Row)
        assert os.path.isabs(row.path)
        for t in (row.start, row.end):
            assert t is None or (isinstance(t, float) and np.isfinite(t))
    ids = [r.id for r in rows]
    assert len(ids) == len(set(ids)), "duplicate ids must be rejected"


@FUZZ
@given(data=st.binary(max_size=1024))
def test_manifest_parser_random_bytes(workdir, data):
    path = _fresh(workdir, ".csv")
    path.write_bytes(data)
    _check_manifest(path)


@FUZZ
@given(text=st.lists(_MANIFEST_ALPHABET, max_size=200).map("".join))
def test_manifest_parser_csvish_text(workdir, text):
    path = _fresh(workdir, ".csv")
    path.write_text(text, encoding="utf-8")
    _check_manifest(path)


_cell = st.one_of(
    st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=8),
    st.sampled_from(["", "0", "1.5", "-1", "nan", "inf", "1e309", "a.wav", "/abs/b.wav", "x y.flac"]),
)


@FUZZ
@given(
    header=st.permutations(["id", "path", "label", "start", "end"]).flatmap(
        lambda h: st.integers(2, 5).map(lambda k: list(h[:k]))
    ),
    rows=st.lists(st.lists(_cell, min_size=0, max_size=6), max_size=6),
)
def test_manifest_parser_structured_rows(workdir, header, rows):
    import csv

    assume("path" in header)
    path = _fresh(workdir, ".csv")
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(header)
        w.writerows(rows)
    _check_manifest(path)


# ------------------------------------------------------------------------------ model


@pytest.fixture(scope="module")
def model_file(workdir):
    from gmmspeech.mixture.gmm import GMM
    from gmmspeech.mixture.io import save

    rng = np.random.default_rng(0)
    w = np.array([0.2, 0.3, 0.5])
    means = rng.standard_normal((3, 4))
    covs = rng.uniform(0.5, 2.0, (3, 4))
    model = GMM.from_params(w, means, covs, covariance_type="diag")
    path = workdir / "model.npz"
    save(model, path)
    return model, path, path.read_bytes()


def _assert_same_model(a, b) -> None:
    assert a.covariance_type == b.covariance_type
    for name in ("weights_", "means_", "covariances_"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))


def _check_model_bytes(workdir, reference, raw: bytes) -> None:
    from gmmspeech.mixture.io import load

    path = _fresh(workdir, ".npz")
    path.write_bytes(raw)
    try:
        got = load(path)
    except ModelFileError as exc:
        assert exc.path == os.fspath(path)
        assert exc.reason
        return
    _assert_same_model(got, reference)


@FUZZ
@given(
    flips=st.lists(st.tuples(st.integers(0, 10**7), st.integers(1, 255)), min_size=1, max_size=6),
)
def test_model_loader_byte_mutations(workdir, model_file, flips):
    model, _, raw = model_file
    buf = bytearray(raw)
    for pos, xor in flips:
        buf[pos % len(buf)] ^= xor
    _check_model_bytes(workdir, model, bytes(buf))


@FUZZ
@given(cut=st.integers(0, 10**7))
def test_model_loader_truncations(workdir, model_file, cut):
    model, _, raw = model_file
    _check_model_bytes(workdir, model, raw[: cut % len(raw)])


@FUZZ
@given(data=st.binary(max_size=1024))
def test_model_loader_random_bytes(workdir, model_file, data):
    model, _, raw = model_file
    _check_model_bytes(workdir, model, data)


def test_model_loader_rejects_pickle(workdir, model_file):
    import pickle

    from gmmspeech.mixture.io import load

    model, _, _ = model_file
    path = workdir / "pickled.npz"
    path.write_bytes(pickle.dumps({"weights": model.weights_}))
    with pytest.raises(ModelFileError):
        load(path)
    # an .npz holding an object array is refused too (it would need allow_pickle=True)
    path2 = workdir / "object.npz"
    np.savez(path2, weights=np.array([{"evil": 1}], dtype=object))
    with pytest.raises(ModelFileError):
        load(path2)


# ----------------------------------------------------------- manifest regressions
# Inputs the fuzzer found; kept as plain tests so they run on every build.


def test_manifest_bare_carriage_returns(workdir):
    path = workdir / "cr-only.csv"
    path.write_bytes(b"id,path,label\ra,a.wav,x\r")
    _check_manifest(path)
    path.write_bytes(b"\r\x00")
    _check_manifest(path)


def test_manifest_oversized_field(workdir):
    path = workdir / "huge-field.csv"
    path.write_text('id,path,label\na,"' + "x" * 200_000 + '",b\n', encoding="utf-8")
    _check_manifest(path)


# ------------------------------------------------------- audio: header fields, resampling


# (a claimed 1 Hz is left out of the fixed values: 4000 samples become 64 M at 16 kHz, ~8 s)
@settings(FUZZ, max_examples=60)
@given(
    rate=st.one_of(st.integers(0, 2**32 - 1), st.sampled_from([0, 7, 8000, 44100, 2**31 - 1, 2**32 - 1])),
    channels=st.integers(0, 2**16 - 1),
    target=st.sampled_from([16000, 8000, None]),
)
def test_audio_loader_hostile_wav_header(workdir, rate, channels, target):
    """A WAV whose header claims any sampling rate or channel count: resampling to
    ``target`` and mixing down either work or raise AudioError."""
    import struct

    from gmmspeech import audio

    raw = bytearray(_valid("WAV"))
    # canonical 44-byte header: channels at 22 (uint16), sample rate at 24 (uint32),
    # byte rate at 28 (uint32), block align at 32 (uint16)
    raw[22:24] = struct.pack("<H", channels)
    raw[24:28] = struct.pack("<I", rate)
    raw[28:32] = struct.pack("<I", (rate * max(channels, 1) * 2) % 2**32)
    raw[32:34] = struct.pack("<H", (max(channels, 1) * 2) % 2**16)
    path = _fresh(workdir, ".wav")
    path.write_bytes(bytes(raw))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            info = audio.info(path)
            assert info.samplerate > 0 and info.channels > 0
            y = audio.load(path, sr=target)
        except AudioError as exc:
            assert exc.path == os.fspath(path) and exc.reason
            return
    assert y.dtype == np.float32 and y.ndim == 1 and y.size > 0 and np.all(np.isfinite(y))


@FUZZ
@given(data=st.binary(max_size=512), suffix=st.sampled_from([".wav", ".flac", ".mp3"]))
def test_audio_info_random_bytes(workdir, data, suffix):
    from gmmspeech import audio

    path = _fresh(workdir, suffix)
    path.write_bytes(data)
    try:
        info = audio.info(path)
    except AudioError as exc:
        assert exc.path == os.fspath(path)
        return
    assert info.samplerate > 0 and info.channels > 0 and info.frames >= 0
