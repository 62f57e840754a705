"""Model files: exact round trips, metadata, and hostile or damaged files."""

from __future__ import annotations

import io
import json
import os
import pickle
import zipfile

import numpy as np
import pytest

from gmmspeech.errors import ModelFileError
from gmmspeech.mixture.gmm import GMM
from gmmspeech.mixture.io import _checksum, load, load_metadata, model_info, save

COV_TYPES = ["full", "tied", "diag", "spherical"]


@pytest.fixture(scope="module")
def data():
    r = np.random.default_rng(1)
    centres = np.array([[0.0, 0.0, 0.0], [4.0, 0.0, 1.0], [0.0, 5.0, -2.0]])
    X = np.concatenate([c + r.standard_normal((150, 3)) * [1.0, 0.5, 2.0] for c in centres])
    return X


@pytest.fixture(scope="module")
def fitted(data):
    return {ct: GMM(3, covariance_type=ct, max_iter=20, random_state=0).fit(data) for ct in COV_TYPES}


@pytest.mark.parametrize("ct", COV_TYPES)
def test_round_trip_is_exact(tmp_path, data, fitted, ct):
    model = fitted[ct]
    path = tmp_path / f"{ct}.npz"
    assert save(model, path) == str(path)
    got = load(path)
    assert type(got) is GMM and got.covariance_type == ct
    for name in ("weights_", "means_", "covariances_"):
        a, b = getattr(model, name), getattr(got, name)
        assert a.dtype == b.dtype and a.shape == b.shape
        np.testing.assert_array_equal(b, a)
    # precisions recomputed on load: inverse of the covariances (independent: numpy.linalg.inv)
    cov = got.covariances_
    if ct in ("diag", "spherical"):
        np.testing.assert_allclose(got.precisions_, 1.0 / cov, rtol=1e-12)
    else:
        np.testing.assert_allclose(got.precisions_, np.linalg.inv(cov), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(got.precisions_, model.precisions_, rtol=1e-12)
    assert got.history_ == list(model.history_)
    assert (got.converged_, got.n_iter_, got.lower_bound_, got.n_features_in_) == (
        model.converged_, model.n_iter_, model.lower_bound_, model.n_features_in_)
    assert got.get_params() == model.get_params()
    np.testing.assert_array_equal(got.score_samples(data), model.score_samples(data))
    np.testing.assert_array_equal(got.predict(data), model.predict(data))
    assert got.metadata_ == {}


def test_metadata_params_and_info(tmp_path, data):
    means_init = np.array([[0.0, 0, 0], [4, 0, 1], [0, 5, -2]])
    model = GMM(3, covariance_type="diag", means_init=means_init, random_state=np.random.default_rng(3),
                dtype=np.float64, max_iter=5, reg_covar=1e-4).fit(data)
    meta = {"speaker": "george", "feature_config_hash": "0123456789abcdef", "n": [1, 2.5, None]}
    path = tmp_path / "m.npz"
    save(model, path, metadata=meta)
    assert load_metadata(path) == meta
    got = load(path)
    assert got.metadata_ == meta
    assert got.dtype is np.float64 and got.reg_covar == 1e-4 and got.max_iter == 5
    np.testing.assert_array_equal(got.means_init, means_init)
    assert got.random_state is None  # a Generator has no faithful file form
    info = model_info(path)
    assert info["format"] == "gmmspeech-gmm" and info["format_version"] == 1
    assert (info["covariance_type"], info["n_components"], info["n_features"]) == ("diag", 3, 3)
    assert info["dtype"] == "float64" and len(info["checksum"]) == 64
    from gmmspeech import __version__

    assert info["gmmspeech_version"] == __version__
    # the package-level names are the same functions
    import gmmspeech

    assert gmmspeech.save is save and gmmspeech.load is load


def test_metadata_with_numpy_values_and_infinities(tmp_path, fitted):
    path = tmp_path / "m.npz"
    meta = {"history": np.array([-3.5, -2.25]), "iteration": np.int64(4), "best": -np.inf,
            "nested": {"ok": np.bool_(True)}}
    save(fitted["diag"], path, metadata=meta)
    assert load_metadata(path) == {"history": [-3.5, -2.25], "iteration": 4, "best": -np.inf,
                                   "nested": {"ok": True}}


def test_from_params_model_and_unnormalised_weights_survive(tmp_path):
    w = np.array([0.1, 0.2, 0.7000000000000001])  # sums to 1 only up to rounding
    model = GMM.from_params(w, [[0.0], [1.0], [2.0]], [[1.0], [2.0], [3.0]], covariance_type="diag")
    model.weights_ = w
    save(model, tmp_path / "p.npz")
    np.testing.assert_array_equal(load(tmp_path / "p.npz").weights_, w)


def test_save_errors_and_atomicity(tmp_path, fitted):
    path = tmp_path / "m.npz"
    with pytest.raises(TypeError, match="expects a fitted GMM"):
        save({"weights": [1.0]}, path)
    with pytest.raises(ValueError, match="not fitted"):
        save(GMM(2), path)
    save(fitted["diag"], path)
    before = path.read_bytes()
    with pytest.raises(TypeError, match="JSON-serialisable"):
        save(fitted["full"], path, metadata={"x": object()})
    with pytest.raises(TypeError, match="metadata must be a dict"):
        save(fitted["full"], path, metadata=["x"])
    assert path.read_bytes() == before  # a failed save leaves the old file
    save(fitted["full"], path)
    assert load(path).covariance_type == "full"
    assert sorted(os.listdir(tmp_path)) == ["m.npz"]  # no temporary files left
    save(fitted["tied"], tmp_path / "new" / "sub" / "t.npz")
    assert load(tmp_path / "new" / "sub" / "t.npz").covariance_type == "tied"


@pytest.mark.skipif(os.name != "posix", reason="POSIX permission bits")
@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002])
def test_saved_files_get_the_permissions_open_gives(tmp_path, fitted, umask):
    """Model files, scores and reports are written atomically, yet with the mode a plain
    ``open`` gives under the umask (mkstemp's 0600 hid a team's models from each other)."""
    import stat

    from gmmspeech.atomic import atomic_write_text

    old = os.umask(umask)
    try:
        with open(tmp_path / "reference.txt", "w") as fh:  # the independent reference
            fh.write("x")
        save(fitted["diag"], tmp_path / "m.npz")
        atomic_write_text(tmp_path / "scores.tsv", "a\tb\n")
    finally:
        os.umask(old)
    want = stat.S_IMODE(os.stat(tmp_path / "reference.txt").st_mode)
    assert want == 0o666 & ~umask
    for name in ("m.npz", "scores.tsv"):
        assert stat.S_IMODE(os.stat(tmp_path / name).st_mode) == want, name
    assert sorted(os.listdir(tmp_path)) == ["m.npz", "reference.txt", "scores.tsv"]


# ------------------------------------------------------------------ hostile files


class _Evil:
    """Unpickling this creates the file ``target`` (a visible side effect)."""

    def __init__(self, target):
        self.target = str(target)

    def __reduce__(self):
        return (open, (self.target, "w"))


def test_pickle_renamed_npz_is_refused_without_running_it(tmp_path):
    sentinel = tmp_path / "pwned"
    payload = pickle.dumps({"weights": _Evil(sentinel)})
    path = tmp_path / "model.npz"
    path.write_bytes(payload)
    with pytest.raises(ModelFileError, match="pickle") as ei:
        load(path)
    assert ei.value.path == str(path)
    with pytest.raises(ModelFileError):
        load_metadata(path)
    assert not sentinel.exists()
    # the payload is live: unpickling it does create the file
    pickle.loads(payload)
    assert sentinel.exists()


def _repack(src, dst, *, drop=(), change=None, meta_change=None, fix_checksum=True, extra=None):
    """Rewrite a model file with arrays/metadata changed (checksum recomputed if asked)."""
    with np.load(src, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    meta = json.loads(arrays.pop("__meta__").tobytes())
    for k in drop:
        arrays.pop(k)
    for k, fn in (change or {}).items():
        arrays[k] = fn(arrays[k])
    if meta_change:
        meta_change(meta)
    if fix_checksum:
        meta["checksum"] = _checksum(arrays, meta)
    arrays.update(extra or {})
    arrays["__meta__"] = np.frombuffer(json.dumps(meta).encode(), np.uint8)
    np.savez(dst, **arrays)
    return dst


def test_npz_with_object_array_is_refused_without_running_it(tmp_path, fitted):
    good = tmp_path / "good.npz"
    save(fitted["diag"], good)
    sentinel = tmp_path / "pwned"
    evil = np.array([_Evil(sentinel)], dtype=object)
    with np.load(good, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    for target in ("weights", "__meta__", "extra"):
        bad = dict(arrays)
        bad[target] = evil
        path = tmp_path / f"obj-{target}.npz"
        np.savez(path, **bad)
        # an object array where an array belongs is named as such; an extra member is
        # refused before its header is even read
        why = "unexpected array" if target == "extra" else "object arrays"
        with pytest.raises(ModelFileError, match=why) as ei:
            load(path)
        assert ei.value.path == str(path)
        assert not sentinel.exists()


def test_truncated_and_random_files(tmp_path, fitted):
    good = tmp_path / "good.npz"
    save(fitted["full"], good)
    raw = good.read_bytes()
    for cut in (0, 3, 10, len(raw) // 3, len(raw) // 2, len(raw) - 30, len(raw) - 1):
        path = tmp_path / f"cut{cut}.npz"
        path.write_bytes(raw[:cut])
        with pytest.raises(ModelFileError) as ei:
            load(path)
        assert ei.value.path == str(path)
    r = np.random.default_rng(0)
    for i in range(5):
        path = tmp_path / f"random{i}.npz"
        path.write_bytes(r.bytes(int(r.integers(1, 5000))))
        with pytest.raises(ModelFileError, match="not an .npz"):
            load(path)
    zipped_junk = tmp_path / "junk.npz"
    with zipfile.ZipFile(zipped_junk, "w") as zf:
        zf.writestr("readme.txt", "hello")
    with pytest.raises(ModelFileError, match="unexpected member 'readme.txt'"):
        load(zipped_junk)
    with pytest.raises(ModelFileError, match="no such file"):
        load(tmp_path / "absent.npz")
    with pytest.raises(ModelFileError, match="not a regular file"):
        load(tmp_path)
    plain = tmp_path / "plain.npz"
    np.savez(plain, weights=np.ones(2))
    with pytest.raises(ModelFileError, match="no metadata"):
        load(plain)


def test_tampered_bytes_are_detected(tmp_path, fitted):
    good = tmp_path / "good.npz"
    save(fitted["diag"], good)
    # one mean changed by one ulp, archive rebuilt consistently (zip CRCs valid)
    nudged = _repack(good, tmp_path / "nudged.npz", fix_checksum=False,
                     change={"means": lambda m: np.nextafter(m, np.inf)})
    with pytest.raises(ModelFileError, match="checksum mismatch"):
        load(nudged)
    meta_edit = _repack(good, tmp_path / "meta.npz", fix_checksum=False,
                        meta_change=lambda m: m["metadata"].update(speaker="mallory"))
    with pytest.raises(ModelFileError, match="checksum mismatch"):
        load(meta_edit)
    # a flipped byte inside the stored means (raw file edit): caught by zip CRC or checksum
    raw = bytearray(good.read_bytes())
    means = np.asarray(fitted["diag"].means_).tobytes()
    pos = bytes(raw).index(means) + 5
    raw[pos] ^= 0x01
    flipped = tmp_path / "flipped.npz"
    flipped.write_bytes(bytes(raw))
    with pytest.raises(ModelFileError):
        load(flipped)


def test_wrong_version_missing_arrays_and_bad_shapes(tmp_path, fitted):
    good = tmp_path / "good.npz"
    save(fitted["full"], good)
    v2 = _repack(good, tmp_path / "v2.npz", meta_change=lambda m: m.update(format_version=2))
    with pytest.raises(ModelFileError, match="format version 2 is not supported"):
        load(v2)
    other = _repack(good, tmp_path / "other.npz", meta_change=lambda m: m.update(format="keras"))
    with pytest.raises(ModelFileError, match="not a gmmspeech model file"):
        load(other)
    nocov = _repack(good, tmp_path / "nocov.npz", drop=("covariances",))
    with pytest.raises(ModelFileError, match="missing array covariances"):
        load(nocov)
    shape = _repack(good, tmp_path / "shape.npz", change={"covariances": lambda c: c[0]})
    with pytest.raises(ModelFileError, match=r"covariances: has shape \(3, 3\), the metadata implies \(3, 3, 3\)"):
        load(shape)
    notpd = _repack(good, tmp_path / "notpd.npz", change={"covariances": lambda c: -c})
    with pytest.raises(ModelFileError, match="covariances: not positive definite"):
        load(notpd)
    strings = _repack(good, tmp_path / "str.npz", extra={"means": np.array(["a", "b", "c"])})
    with pytest.raises(ModelFileError, match="only numeric arrays"):
        load(strings)


def test_npz_member_header_garbage(tmp_path, fitted):
    """A well-formed zip whose .npy member has a corrupt header (valid CRC)."""
    good = tmp_path / "good.npz"
    save(fitted["spherical"], good)
    out = tmp_path / "hdr.npz"
    with zipfile.ZipFile(good) as zin, zipfile.ZipFile(out, "w") as zout:
        for info in zin.infolist():
            data = zin.read(info.filename)
            if info.filename == "means.npy":
                buf = io.BytesIO()
                buf.write(data[:10] + b"{'descr': __import__('os').getcwd()}" + data[47:])
                data = buf.getvalue()
            zout.writestr(info.filename, data)
    with pytest.raises(ModelFileError) as ei:
        load(out)
    assert ei.value.path == str(out)
