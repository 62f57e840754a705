"""Hostile model files: nothing in a file is trusted.

Every file here is a well-formed archive with a VALID checksum (recomputed after the
change), so only the schema and the value checks can refuse it: subnormal or huge
parameters, lying metadata, zip bombs, a 100,000-member archive, malformed members.
Each must raise ``ModelFileError`` naming the file and the field, fast and in bounded
memory, and nothing may ever produce a non-finite score.
"""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
import time
import warnings
import zlib

import numpy as np
import pytest

from gmmspeech.errors import ModelFileError
from gmmspeech.mixture.gmm import GMM
from gmmspeech.mixture.io import _checksum, fingerprint, load, save


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    r = np.random.default_rng(0)
    X = np.concatenate([r.normal(c, 1.0, (200, 3)) for c in (-4.0, 0.0, 4.0)])
    root = tmp_path_factory.mktemp("good")
    out = {}
    for ct in ("diag", "full", "tied", "spherical"):
        g = GMM(3, covariance_type=ct, max_iter=10, random_state=0).fit(X)
        path = root / f"{ct}.npz"
        save(g, path, metadata={"feature_config": {"sample_rate": 16000, "n_mels": 40,
                                                   "n_mfcc": 20, "frame_length": 0.025},
                                "label": "ubm"})
        out[ct] = path
    out["X"] = X
    return out


def _arrays_meta(src):
    with np.load(src, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    return arrays, json.loads(arrays.pop("__meta__").tobytes())


def _write(dst, arrays, meta, *, meta_text=None):
    """An archive with a valid checksum (recomputed over the given arrays and metadata)."""
    meta = dict(meta)
    meta["checksum"] = _checksum(arrays, meta)
    text = json.dumps(meta) if meta_text is None else meta_text(meta)
    np.savez(dst, **arrays, __meta__=np.frombuffer(text.encode(), np.uint8))
    return dst


def _edit(src, dst, *, arrays=None, meta=None, meta_text=None):
    a, m = _arrays_meta(src)
    for k, fn in (arrays or {}).items():
        a[k] = fn(a[k].copy())
    if meta:
        meta(m)
    return _write(dst, a, m, meta_text=meta_text)


def _refused(path, field, match=None):
    with pytest.raises(ModelFileError) as ei:
        load(path)
    assert ei.value.path == str(path)
    assert ei.value.field == field or (field and (ei.value.field or "").startswith(field)), str(ei.value)
    assert str(path) in str(ei.value) and (field is None or field in str(ei.value))
    if match is not None:
        assert match in str(ei.value), str(ei.value)
    return ei.value


def _set(d, dotted, value):
    keys = dotted.split(".")
    for k in keys[:-1]:
        d = d[k]
    d[keys[-1]] = value


# ----------------------------------------------------------------------------- values


@pytest.mark.parametrize("ct", ["diag", "spherical"])
@pytest.mark.parametrize("bad", [5e-324, 1e-310, 1e-40, 0.0, -1.0])
def test_subnormal_tiny_or_negative_variances(models, tmp_path, ct, bad):
    def change(c):
        c.flat[0] = bad
        return c

    path = _edit(models[ct], tmp_path / "v.npz", arrays={"covariances": change})
    _refused(path, "covariances")


def test_variance_tiny_relative_to_the_data_scale(models, tmp_path):
    """Means of 1e6 with a variance of 1e-10 (normal floats, ratio 1e-22): refused."""
    path = _edit(models["diag"], tmp_path / "r.npz",
                 arrays={"means": lambda m: m + 1e6,
                         "covariances": lambda c: np.where(np.arange(c.size).reshape(c.shape) == 0,
                                                           1e-10, c)})
    e = _refused(path, "covariances", "squared data scale")
    assert "non-finite" in str(e)


@pytest.mark.parametrize("ct", ["full", "tied"])
def test_full_and_tied_subnormal_eigenvalue(models, tmp_path, ct):
    def change(c):
        m = c.reshape(-1, 3, 3)
        m[0] = np.diag([1.0, 1.0, 1e-320])
        return c

    _refused(_edit(models[ct], tmp_path / "e.npz", arrays={"covariances": change}), "covariances")
    asym = _edit(models[ct], tmp_path / "a.npz",
                 arrays={"covariances": lambda c: c + np.triu(np.ones((3, 3)), 1)})
    _refused(asym, "covariances", "not symmetric")


@pytest.mark.parametrize("value", [1e300, 1e13, np.inf, np.nan])
def test_huge_or_non_finite_means(models, tmp_path, value):
    def change(m):
        m[1, 2] = value
        return m

    _refused(_edit(models["diag"], tmp_path / "m.npz", arrays={"means": change}), "means")


def test_huge_variances(models, tmp_path):
    _refused(_edit(models["diag"], tmp_path / "h.npz",
                   arrays={"covariances": lambda c: c * 1e30}), "covariances")


@pytest.mark.parametrize("weights", [[0.5, 0.5, 0.0], [1.2, -0.1, -0.1], [0.5, 0.5, 0.5],
                                     [5e-324, 0.5, 0.5], [np.nan, 0.5, 0.5]])
def test_weights_positive_and_summing_to_one(models, tmp_path, weights):
    path = _edit(models["diag"], tmp_path / "w.npz",
                 arrays={"weights": lambda w: np.array(weights)})
    _refused(path, "weights")


def test_non_finite_history(models, tmp_path):
    path = _edit(models["diag"], tmp_path / "h.npz",
                 arrays={"history": lambda h: np.r_[h, np.nan]})
    _refused(path, "history")


# ---------------------------------------------------------------------- lying metadata


LIES = [
    ("metadata.feature_config.sample_rate", 100_000_000),
    ("metadata.feature_config.sample_rate", 1e8),
    ("metadata.feature_config.sample_rate", 8),
    ("metadata.feature_config.sample_rate", "16000"),
    ("metadata.feature_config.n_mels", 100_000),
    ("metadata.feature_config.n_mfcc", 100_000),
    ("metadata.feature_config.n_mfcc", 20.5),
    ("metadata.feature_config.frame_length", 100.0),
    ("metadata.feature_config.n_fft", 1 << 30),
    ("metadata.feature_config.vad", "yes"),
    ("metadata.feature_config.cmvn", 3),
    ("metadata.feature_config", [1, 2]),
    ("metadata", 5),
    ("metadata", "x"),
    ("metadata.label", 5),
    ("metadata.ubm_fingerprint", "not hex!"),
    ("metadata.ubm_training.iteration", -1),
    ("metadata.ubm_training.history", [1.0, "x"]),
    ("fitted.n_iter_", 2.5),
    ("fitted.n_iter_", True),
    ("fitted.converged_", "yes"),
    ("fitted.n_features_in_", 7),
    ("fitted", 3),
    ("params", [1]),
    ("params.max_iter", "many"),
    ("params.max_iter", 1e300),
    ("params.tol", {"__float__": "nan"}),
    ("params.dtype", {"__dtype__": "object"}),
    ("params.means_init", {"__array__": "weights"}),
    ("params.n_components", 4),
    ("params.covariance_type", "full"),
    ("params.random_state", -5),
    ("n_components", "3"),
    ("n_components", 3.0),
    ("n_components", True),
    ("n_components", 10**9),
    ("n_features", 0),
    ("covariance_type", "weird"),
    ("dtype", "object"),
]


@pytest.mark.parametrize("field,value", LIES, ids=[f"{f}={v!r}"[:50] for f, v in LIES])
def test_lying_metadata(models, tmp_path, field, value):
    def lie(m):
        if field.startswith("metadata.ubm_training"):
            m["metadata"]["ubm_training"] = {"iteration": 1, "history": [1.0]}
        _set(m, field, value)

    path = _edit(models["diag"], tmp_path / "lie.npz", meta=lie)
    with pytest.raises(ModelFileError) as ei:
        load(path)
    assert ei.value.path == str(path)
    assert ei.value.field is not None and ei.value.field.startswith(field), str(ei.value)
    assert str(ei.value).startswith(f"{path}: {field}")


def test_n_iter_1e400_is_refused_not_an_overflow(models, tmp_path):
    """``1e400`` parses as infinity: an integer field holding it is refused (no OverflowError)."""
    a, m = _arrays_meta(models["diag"])
    m["fitted"]["n_iter_"] = float("inf")  # the checksum covers the parsed value
    path = _write(tmp_path / "big.npz", a, m,
                  meta_text=lambda mm: json.dumps(mm).replace("Infinity", "1e400"))
    assert b"1e400" in path.read_bytes()
    _refused(path, "fitted.n_iter_", "integer")
    for token in ("NaN", "-Infinity"):
        path = _write(tmp_path / "nan.npz", a, m,
                      meta_text=lambda mm, t=token: json.dumps(mm).replace("Infinity", t))
        _refused(path, "fitted.n_iter_")


def test_deeply_nested_metadata_and_invalid_json(models, tmp_path):
    a, m = _arrays_meta(models["diag"])
    deep = "[" * 100_000 + "]" * 100_000
    path = _write(tmp_path / "deep.npz", a, m,
                  meta_text=lambda mm: json.dumps(mm)[:-1] + ', "x": ' + deep + "}")
    with pytest.raises(ModelFileError) as ei:
        load(path)
    assert ei.value.path == str(path)
    np.savez(tmp_path / "junk.npz", **a, __meta__=np.frombuffer(b"{not json", np.uint8))
    _refused(tmp_path / "junk.npz", "__meta__", "not valid JSON")


def test_lying_feature_config_cannot_size_an_allocation(models, tmp_path):
    """The values of the issue: each is refused by the schema before anything is built."""
    for key, value in (("sample_rate", 1e8), ("n_mels", 100_000)):
        path = _edit(models["diag"], tmp_path / f"{key}.npz",
                     meta=lambda m, k=key, v=value: _set(m, f"metadata.feature_config.{k}", v))
        _refused(path, f"metadata.feature_config.{key}")


# ------------------------------------------------------------------------ archive level


def _zip(members):
    """Raw zip bytes from ``[(name, data, method, crc, file_size)]`` (no zipfile checks)."""
    out = bytearray()
    central = bytearray()
    for name, data, method, crc, size, *flags in members:
        flag = flags[0] if flags else 0
        nb = name.encode()
        off = len(out)
        out += struct.pack("<4sHHHHHIIIHH", b"PK\x03\x04", 20, flag, method, 0, 0x21, crc,
                           len(data), size, len(nb), 0) + nb + data
        central += struct.pack("<4sHHHHHHIIIHHHHHII", b"PK\x01\x02", 20, 20, flag, method, 0,
                               0x21, crc, len(data), size, len(nb), 0, 0, 0, 0, 0, off) + nb
    cd_off = len(out)
    n = len(members)
    out += central
    out += struct.pack("<4sHHHHIIH", b"PK\x05\x06", 0, 0, min(n, 0xFFFF), min(n, 0xFFFF),
                       len(central), cd_off, 0)
    return bytes(out)


def _stored(name, data):
    return (name, data, 0, zlib.crc32(data), len(data))


def _npy(a):
    import io

    buf = io.BytesIO()
    np.lib.format.write_array(buf, np.asarray(a), allow_pickle=False)
    return buf.getvalue()


def _members_of(src):
    a, m = _arrays_meta(src)
    m["checksum"] = _checksum(a, m)
    a["__meta__"] = np.frombuffer(json.dumps(m).encode(), np.uint8)
    return [_stored(f"{k}.npy", _npy(v)) for k, v in a.items()]


def _bomb_member(name, n_bytes):
    """A deflated .npy of ``n_bytes`` zeros (declared honestly) from ~n_bytes/1000 bytes."""
    import io

    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": "<f8", "fortran_order": False,
                                              "shape": (n_bytes // 8,)})
    header = buf.getvalue()
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    head = c.compress(header) + c.flush(zlib.Z_FULL_FLUSH)
    mib = bytes(1 << 20)
    block = c.compress(mib) + c.flush(zlib.Z_FULL_FLUSH)
    data = head + block * (n_bytes >> 20) + c.flush()
    # the CRC is not computed (4 s for 2 GiB): a loader that inflated the member would hold
    # 2 GiB before it could notice; ours refuses from the directory alone
    return (name, data, 8, 0, len(header) + n_bytes)


def test_zip_bomb_refused_from_the_directory(models, tmp_path):
    members = [m for m in _members_of(models["diag"]) if m[0] != "history.npy"]
    members.append(_bomb_member("history.npy", 2 << 30))
    path = tmp_path / "bomb.npz"
    data = _zip(members)
    assert len(data) < 3 << 20  # a 2-3 MB file ...
    path.write_bytes(data)
    t0 = time.perf_counter()
    e = _refused(path, None, "nothing was decompressed")
    assert "zip bomb" in str(e)
    assert time.perf_counter() - t0 < 5  # ... refused without inflating 2 GiB (no timing claim)


def test_zip_bomb_in_the_metadata_member(models, tmp_path):
    members = [m for m in _members_of(models["diag"]) if m[0] != "__meta__.npy"]
    members.append(_bomb_member("__meta__.npy", 1 << 30))
    path = tmp_path / "metabomb.npz"
    path.write_bytes(_zip(members))
    _refused(path, "__meta__")


def test_member_larger_than_its_header_implies(models, tmp_path):
    """A member whose declared size exceeds its shape (padding or a smuggled payload)."""
    members = _members_of(models["diag"])
    members = [(_stored(n, d + bytes(64)) if n == "means.npy" else (n, d, *rest))
               for n, d, *rest in members]
    path = tmp_path / "pad.npz"
    path.write_bytes(_zip(members))
    _refused(path, "means", "declares")


def test_lying_directory_size_is_caught_by_the_crc(models, tmp_path):
    """Declared size smaller than the real stream: reading stops at the declared size."""
    members = []
    for name, data, method, crc, size in _members_of(models["diag"]):
        if name == "means.npy":
            size = size - 8
        members.append((name, data, method, crc, size))
    path = tmp_path / "lie.npz"
    path.write_bytes(_zip(members))
    with pytest.raises(ModelFileError) as ei:
        load(path)
    assert ei.value.path == str(path)


def test_100000_member_archive_is_refused_fast(tmp_path):
    nb = b"x.npy"
    n = 100_000
    local = struct.pack("<4sHHHHHIIIHH", b"PK\x03\x04", 20, 0, 0, 0, 0x21, 0, 0, 0, len(nb), 0) + nb
    body = local * n
    central = b"".join(struct.pack("<4sHHHHHHIIIHHHHHII", b"PK\x01\x02", 20, 20, 0, 0, 0, 0x21, 0, 0,
                                   0, len(nb), 0, 0, 0, 0, 0, i * len(local)) + nb for i in range(n))
    # the 16-bit count saturates: the zip64 record carries the real one
    z64 = struct.pack("<4sQHHIIQQQQ", b"PK\x06\x06", 44, 45, 45, 0, 0, n, n, len(central), len(body))
    loc = struct.pack("<4sIQI", b"PK\x06\x07", 0, len(body) + len(central), 1)
    eocd = struct.pack("<4sHHHHIIH", b"PK\x05\x06", 0, 0, 0xFFFF, 0xFFFF, 0xFFFFFFFF, 0xFFFFFFFF, 0)
    path = tmp_path / "many.npz"
    path.write_bytes(body + central + z64 + loc + eocd)
    t0 = time.perf_counter()
    _refused(path, None, "100000 members")
    small = tmp_path / "many16.npz"
    small.write_bytes(_zip([_stored(f"a{i}.npy", _npy(np.zeros(1))) for i in range(40)]))
    _refused(small, None, "40 members")
    # a count that lies (3) over a huge central directory: its size gives it away
    lying = bytearray(body + central)
    lying += struct.pack("<4sHHHHIIH", b"PK\x05\x06", 0, 0, 3, 3, len(central), len(body), 0)
    (tmp_path / "lying.npz").write_bytes(bytes(lying))
    with pytest.raises(ModelFileError):
        load(tmp_path / "lying.npz")
    assert time.perf_counter() - t0 < 10


@pytest.mark.parametrize("case", ["no-magic", "bad-dtype", "bad-shape", "version3", "trailing",
                                  "truncated", "unicode", "big-endian", "dir", "encrypted"])
def test_malformed_members(models, tmp_path, case):
    members = _members_of(models["diag"])
    out = []
    for name, data, method, crc, size in members:
        if name == "means.npy":
            if case == "no-magic":
                data = b"JUNK" + data[4:]
            elif case == "bad-dtype":
                data = _npy(np.zeros((3, 3), dtype=np.complex128))
            elif case == "bad-shape":
                data = _npy(np.zeros((3, 4)))
            elif case == "version3":
                data = data[:6] + b"\x03\x00" + data[8:]
            elif case == "trailing":
                data = data + b"\0" * 8
            elif case == "truncated":
                data = data[:-8]
            elif case == "unicode":
                data = _npy(np.array([["a"] * 3] * 3))
            elif case == "big-endian":
                data = _npy(np.zeros((3, 3), dtype=">f8"))
            elif case == "dir":
                name = "sub/means.npy"
            out.append((*_stored(name, data), 1 if case == "encrypted" else 0))
            continue
        out.append((name, data, method, crc, size))
    raw = _zip(out)
    path = tmp_path / f"{case}.npz"
    path.write_bytes(raw)
    e = _refused(path, None if case == "dir" else "means")
    assert "Traceback" not in str(e)


# --------------------------------------------------------------------- memory, subprocess

_MEMORY_SCRIPT = r"""
import json, resource, sys
from gmmspeech.errors import ModelFileError
from gmmspeech.mixture.io import load
out = {}
for p in sys.argv[1:]:
    try:
        load(p)
        out[p] = "loaded"
    except ModelFileError as e:
        out[p] = "ModelFileError"
    except BaseException as e:
        out[p] = type(e).__name__
print(json.dumps({"peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "results": out}))
"""


def test_hostile_files_in_bounded_memory(models, tmp_path):
    """Every hostile file a ModelFileError in a fresh process whose peak RSS stays <= 1.5 GB
    (in fact about the interpreter's own size: nothing is inflated or allocated from a lie)."""
    files = []
    members = [m for m in _members_of(models["diag"]) if m[0] != "history.npy"]
    members.append(_bomb_member("history.npy", 2 << 30))
    (tmp_path / "bomb.npz").write_bytes(_zip(members))
    files.append(tmp_path / "bomb.npz")
    members = [m for m in _members_of(models["full"]) if m[0] != "covariances.npy"]
    members.append(_bomb_member("covariances.npy", 1 << 30))
    (tmp_path / "bomb2.npz").write_bytes(_zip(members))
    files.append(tmp_path / "bomb2.npz")
    for key, value in (("sample_rate", 1e8), ("n_mels", 100_000)):
        files.append(_edit(models["diag"], tmp_path / f"{key}.npz",
                           meta=lambda m, k=key, v=value: _set(m, f"metadata.feature_config.{k}", v)))
    files.append(_edit(models["diag"], tmp_path / "k.npz",
                       meta=lambda m: m.update(n_components=1 << 20, n_features=1 << 16)))
    files.append(_edit(models["diag"], tmp_path / "sub.npz",
                       arrays={"covariances": lambda c: c * 1e-320}))
    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")
    res = subprocess.run([sys.executable, "-c", _MEMORY_SCRIPT, *map(str, files)], env=env,
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout.strip().splitlines()[-1])
    assert set(out["results"].values()) == {"ModelFileError"}, out
    assert out["peak_mb"] <= 1536, out
    # far below the bombs' declared 1-2 GiB: nothing sized by the file was allocated (the
    # interpreter with numpy, scipy and scikit-learn, which GMM imports, is ~400 MB of it)
    assert out["peak_mb"] < 700, out


# -------------------------------------------------------------------- scores stay finite


def test_scoring_never_returns_non_finite_scores(models, tmp_path):
    from gmmspeech.speaker.scoring import score

    ubm = load(models["diag"])
    X = models["X"][:50]
    # in-memory models (from_params does not refuse them) are checked as files are
    evil = GMM.from_params(ubm.weights_, ubm.means_ * 1e150, ubm.covariances_,
                           covariance_type="diag")
    with pytest.raises(ValueError, match=r"models\[1\]: means: largest \|mean\|"):
        score([ubm, evil], None, [X])
    sub = GMM.from_params(ubm.weights_, ubm.means_, ubm.covariances_ * 1e-300,
                          covariance_type="diag")
    sub.path_ = str(tmp_path / "evil.npz")
    with pytest.raises(ModelFileError, match="evil.npz: covariances: smallest variance"):
        score([ubm, sub], ubm, [X])
    with pytest.raises(ValueError, match=r"ubm: covariances"):
        score([ubm], sub.__class__.from_params(ubm.weights_, ubm.means_, ubm.covariances_ * 1e-300),
              [X])
    # sane models, extreme (finite) features: float32 squares overflow; the utterance is
    # named, no non-finite score is returned
    for mode in ("exact", "topc", "linear"):
        with pytest.raises(ValueError, match=r"utterances\[1\]: non-finite"):
            score([ubm, ubm], ubm, [X, X * 1e25], mode=mode)


def test_write_scores_refuses_non_finite_and_leaves_no_temporary(tmp_path):
    from gmmspeech.speaker.pipeline import write_scores

    path = tmp_path / "scores.tsv"
    with pytest.raises(ValueError, match="non-finite"):
        write_scores(path, ["t1", "t2"], ["a", "b"], ["a", "b"], [[0.0, np.nan], [1.0, 2.0]])
    assert os.listdir(tmp_path) == []
    write_scores(path, ["t1"], ["a"], ["a", "b"], [[0.5, -1.5]])
    assert path.read_text().splitlines() == ["test_id\tmodel\tscore\ttest_label",
                                             "t1\ta\t0.5\ta", "t1\tb\t-1.5\ta"]
    assert os.listdir(tmp_path) == ["scores.tsv"]


# ------------------------------------------------------------------------ UBM fingerprints


def test_fingerprint_recorded_and_other_ubm_refused(models, tmp_path):
    from gmmspeech.speaker.map import map_adapt
    from gmmspeech.speaker.scoring import score

    X = models["X"]
    ubm = load(models["diag"])
    # another UBM with the same K and D (a different seed): same shapes, other parameters
    other = GMM(3, covariance_type="diag", max_iter=10, random_state=5).fit(X[::2] + 0.1)
    assert fingerprint(other) != fingerprint(ubm)
    assert fingerprint(ubm) == fingerprint(GMM.from_params(ubm.weights_, ubm.means_,
                                                           ubm.covariances_))
    m = map_adapt(ubm, X[:100], relevance_factor=4.0)
    assert m.ubm_fingerprint_ == fingerprint(ubm)
    save(m, tmp_path / "spk.npz", metadata={"label": "a"})
    got = load(tmp_path / "spk.npz")
    assert got.ubm_fingerprint_ == fingerprint(ubm) == got.metadata_["ubm_fingerprint"]
    s_ok = score([got], ubm, [X[:40]])
    assert np.isfinite(s_ok).all()
    with pytest.raises(ModelFileError, match="another UBM") as ei:
        score([got], other, [X[:40]])
    assert ei.value.path == str(tmp_path / "spk.npz")
    assert ei.value.field == "metadata.ubm_fingerprint"
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        s = score([got], other, [X[:40]], force=True)
    assert any("another UBM" in str(x.message) for x in w)
    assert np.isfinite(s).all()
    # a model that is not MAP-adapted (no fingerprint) is not checked
    plain = GMM.from_params(ubm.weights_, ubm.means_ + 0.1, ubm.covariances_)
    assert np.isfinite(score([plain], other, [X[:40]])).all()
