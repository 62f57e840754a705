"""Validate before working, mismatches named, checkpoints never discarded silently, Ctrl-C.

* Every argument of every speaker command is checked before any audio is read or any
  UBM trained (feature extraction and training are replaced by functions that fail the
  test if they are reached); messages name the flags; exit code 2; no traceback.
* Dimension and feature-configuration mismatches name both files, their dimensions and
  feature-config hashes; models adapted from another UBM (same K) are refused.
* ``score`` writes no non-finite score and leaves nothing behind when it fails.
* An existing UBM checkpoint needs ``--resume`` or ``--restart``; SIGINT prints where the
  checkpoint is and the command that resumes; that command works.
"""

from __future__ import annotations

import csv
import os
import re
import shlex
import signal
import time

import numpy as np
import pytest
from conftest import speechlike
from test_faults import start_cli

from gmmspeech.cli import main
from gmmspeech.mixture.gmm import GMM
from gmmspeech.mixture.io import load, save


def _manifest(path, rows):
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["id", "path", "label"])
        w.writerows(rows)
    return path


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    import soundfile as sf

    root = tmp_path_factory.mktemp("val")
    rows = {"bg": [], "enr": [], "tst": []}
    for i, f0 in enumerate((90.0, 120.0, 160.0, 210.0)):
        for role, secs in (("bg", 1.0), ("enr", 1.0), ("tst", 0.6)):
            name = f"{role}{i}.wav"
            sf.write(root / name, speechlike(seconds=secs, f0=f0, seed=i + len(role)), 16000)
            rows[role].append((f"{role}{i}", name, f"s{i}"))
    return {role: _manifest(root / f"{role}.csv", r) for role, r in rows.items()} | {"root": root}


@pytest.fixture
def no_work(monkeypatch):
    """Feature extraction and UBM training fail the test if they are reached."""
    import gmmspeech.speaker.pipeline as pipeline
    import gmmspeech.speaker.ubm as ubm

    def boom(*a, **k):
        raise AssertionError("work started before the arguments were validated")

    monkeypatch.setattr(pipeline, "build_features", boom)
    monkeypatch.setattr(pipeline, "train_ubm", boom, raising=False)
    monkeypatch.setattr(ubm, "train_ubm", boom)
    from gmmspeech.corpus.store import FeatureStore

    monkeypatch.setattr(FeatureStore, "build", boom)


def _run(argv, capsys):
    rc = main([str(a) for a in argv])
    cap = capsys.readouterr()
    assert "Traceback" not in cap.err
    return rc, cap.err


def _sid(corpus, out, *extra):
    return ["speaker-id", "--background", corpus["bg"], "--enroll", corpus["enr"], "--test",
            corpus["tst"], "--out", out, "--quiet", *extra]


SPEAKER_ID_CASES = [
    (["-k", "0"], "-k/--components must be >= 1, got 0"),
    (["--components", "-3"], "-k/--components must be >= 1, got -3"),
    (["--relevance", "-1"], "--relevance must be > 0, got -1"),
    (["--relevance", "0"], "--relevance must be > 0, got 0"),
    (["--relevance", "nan"], "--relevance must be a finite number, got nan"),
    (["--adapt", "mx"], "--adapt must be a combination of m, w and v (e.g. m, mw, mwv), got 'mx'"),
    (["--adapt", "mm"], "--adapt must be a combination"),
    (["--top-c", "-1"], "--top-c must be >= 0, got -1"),
    (["--mode", "topc", "--top-c", "0"], "--mode topc needs --top-c >= 1, got 0"),
    (["--iterations", "-1"], "--iterations must be >= 0, got -1"),
    (["--seed", "-2"], "--seed must be >= 0, got -2"),
    (["--n-mfcc", "0"], "--n-mfcc must be >= 1, got 0"),
    (["--n-mfcc", "100"], "n_mfcc"),
    (["--jobs", "0"], "-j/--jobs must be >= 1, or negative"),
    (["--backend", "loky", "--scheduler", "tcp://h:1"], "--scheduler needs --backend dask"),
    (["--data-root", "/nonexistent/root"], "--data-root /nonexistent/root: no such folder"),
]


@pytest.mark.parametrize("extra,message", SPEAKER_ID_CASES,
                         ids=[" ".join(e) for e, _ in SPEAKER_ID_CASES])
def test_speaker_id_arguments_checked_before_any_work(corpus, tmp_path, capsys, no_work, extra,
                                                     message):
    rc, err = _run(_sid(corpus, tmp_path / "out", *extra), capsys)
    assert rc == 2
    assert err.startswith("gmmspeech speaker-id: error: ")
    assert message in err
    assert not (tmp_path / "out").exists()  # nothing was written either


def test_paths_checked_before_any_work(corpus, tmp_path, capsys, no_work):
    afile = tmp_path / "afile"
    afile.write_text("x")
    cases = [
        (["speaker-id", "--background", tmp_path / "nope.csv", "--enroll", corpus["enr"], "--test",
          corpus["tst"], "--out", tmp_path / "o"], "--background", "nope.csv: no such file"),
        (_sid(corpus, afile), "-o/--out", "is a file, expected a folder"),
        (["train-ubm", tmp_path / "missing", "--out", tmp_path / "u.npz"], "MANIFEST_OR_STORE",
         "no such file or folder"),
        (["train-ubm", corpus["bg"], "--out", tmp_path], "-o/--out", "is a folder"),
        (["enroll", "--ubm", tmp_path / "u.npz", "--manifest", corpus["enr"], "--out", tmp_path / "m"],
         "--ubm", "no such file"),
        (["score", "--ubm", afile, "--models", afile, "--manifest", corpus["tst"], "--out",
          tmp_path / "s.tsv"], "--models", "is a file, expected a folder"),
        (["evaluate", tmp_path / "none.tsv", "--out", tmp_path / "e"], "SCORES", "no such file"),
        (["features", corpus["bg"], "--out", afile], "-o/--out", "is a file, expected a folder"),
        (["features", corpus["bg"], "--out", tmp_path / "st", "--jobs", "0"], "-j/--jobs",
         "must be >= 1"),
        (["features", tmp_path / "no.csv", "--out", tmp_path / "st"], "MANIFEST", "no such file"),
    ]
    for argv, flag, message in cases:
        rc, err = _run(argv, capsys)
        assert rc == 2, (argv, err)
        assert flag in err and message in err, err


TRAIN_CASES = [
    (["-k", "0"], "-k/--components must be >= 1, got 0"),
    (["-k", "8", "--reservoir", "4"], "--reservoir must be >= -k/--components (8)"),
    (["--reservoir", "0"], "--reservoir must be >= 1, got 0"),
    (["--subsample", "0"], "--subsample must be >= 1, got 0"),
    (["--top-c", "0"], "--top-c must be >= 1, got 0"),
    (["-k", "4", "--top-c", "9"], "--top-c must be <= 4, got 9"),
    (["--iterations", "-5"], "--iterations must be >= 0, got -5"),
    (["--jobs", "0"], "-j/--jobs"),
]


@pytest.mark.parametrize("extra,message", TRAIN_CASES, ids=[" ".join(e) for e, _ in TRAIN_CASES])
def test_train_ubm_arguments(corpus, tmp_path, capsys, no_work, extra, message):
    rc, err = _run(["train-ubm", corpus["bg"], "--out", tmp_path / "u.npz", "--quiet", *extra], capsys)
    assert rc == 2 and message in err, err
    assert err.startswith("gmmspeech train-ubm: error: ")


def test_argparse_level_errors_exit_2(corpus, tmp_path, capsys):
    for argv in (["train-ubm", corpus["bg"], "--out", tmp_path / "u", "-k", "abc"],
                 ["train-ubm", corpus["bg"], "--out", tmp_path / "u", "--resume", "--restart"],
                 ["score", "--ubm", "u", "--models", "m", "--manifest", "t", "--out", "o",
                  "--mode", "fast"]):
        with pytest.raises(SystemExit) as ei:
            main([str(a) for a in argv])
        assert ei.value.code == 2
    assert "Traceback" not in capsys.readouterr().err


# ------------------------------------------------------------------------ models and files


def _ubm_file(path, d, *, seed=0, preset="speech", k=4):
    from gmmspeech.features.config import FeatureConfig

    cfg = FeatureConfig.preset(preset)
    assert cfg.n_features == d
    X = np.random.default_rng(seed).standard_normal((400, d))
    g = GMM(k, covariance_type="diag", max_iter=5, random_state=seed).fit(X)
    save(g, path, metadata={"role": "ubm", "feature_config": cfg.to_dict(),
                            "feature_config_hash": cfg.config_hash()})
    return path, cfg.config_hash(), X


def test_enroll_preset_with_other_dimensions_is_refused_before_work(corpus, tmp_path, capsys,
                                                                   no_work):
    ubm, h60, _ = _ubm_file(tmp_path / "ubm.npz", 60)
    from gmmspeech.features.config import FeatureConfig

    h13 = FeatureConfig.preset("kaldi").config_hash()
    rc, err = _run(["enroll", "--ubm", ubm, "--manifest", corpus["enr"], "--out", tmp_path / "m",
                    "--preset", "kaldi", "--quiet"], capsys)
    assert rc == 2
    for piece in (str(ubm), "60 dims", h60, "13-dim", h13, "--preset kaldi"):
        assert piece in err, (piece, err)


def test_score_dimension_and_config_mismatch_names_both_files(corpus, tmp_path, capsys, no_work):
    from gmmspeech.speaker.map import map_adapt

    ubm_path, h60, X = _ubm_file(tmp_path / "ubm.npz", 60)
    small_path, h13, X13 = _ubm_file(tmp_path / "ubm13.npz", 13, preset="kaldi")
    (tmp_path / "models").mkdir()
    spk = map_adapt(load(small_path), X13[:100])
    save(spk, tmp_path / "models" / "a.npz", metadata={"label": "a", "feature_config_hash": h13})
    rc, err = _run(["score", "--ubm", ubm_path, "--models", tmp_path / "models", "--manifest",
                    corpus["tst"], "--out", tmp_path / "s.tsv", "--quiet"], capsys)
    assert rc == 2
    for piece in (str(tmp_path / "models" / "a.npz"), "13 dims", h13, str(ubm_path), "60 dims", h60):
        assert piece in err, (piece, err)
    # same dimensions, another feature configuration (hash) recorded: refused too
    spk60 = map_adapt(load(ubm_path), X[:100])
    save(spk60, tmp_path / "models" / "a.npz", metadata={"label": "a", "feature_config_hash": "0" * 16})
    rc, err = _run(["score", "--ubm", ubm_path, "--models", tmp_path / "models", "--manifest",
                    corpus["tst"], "--out", tmp_path / "s.tsv", "--quiet"], capsys)
    assert rc == 2 and "feature configurations differ" in err and "0" * 16 in err and h60 in err


def test_models_from_another_ubm_refused_or_forced(corpus, tmp_path, capsys):
    from gmmspeech.speaker.map import map_adapt

    ubm_a, h, X = _ubm_file(tmp_path / "a.npz", 60, seed=1)
    ubm_b, _, _ = _ubm_file(tmp_path / "b.npz", 60, seed=2)  # same K and D, other parameters
    models = tmp_path / "models"
    models.mkdir()
    for lab, sl in (("s0", slice(0, 100)), ("s1", slice(100, 200))):
        m = map_adapt(load(ubm_a), X[sl], relevance_factor=4.0)
        save(m, models / f"{lab}.npz", metadata={"label": lab, "feature_config_hash": h})
    args = ["score", "--ubm", ubm_b, "--models", models, "--manifest", corpus["tst"], "--out",
            tmp_path / "s.tsv", "--mode", "exact", "--quiet"]
    rc, err = _run(args, capsys)
    assert rc == 2 and "another UBM" in err and str(models / "s0.npz") in err and str(ubm_b) in err
    assert not (tmp_path / "s.tsv").exists()
    rc, err = _run(args + ["--force"], capsys)
    assert rc == 0, err
    assert "warning" in err and "another UBM" in err
    lines = (tmp_path / "s.tsv").read_text().splitlines()
    assert len(lines) == 1 + 4 * 2
    assert all(np.isfinite(float(x.split("\t")[2])) for x in lines[1:])
    # against the right UBM: no warning
    rc, err = _run(["score", "--ubm", ubm_a] + args[3:], capsys)
    assert rc == 0 and "warning" not in err


def test_score_with_hostile_ubm_writes_nothing(corpus, tmp_path, capsys):
    from gmmspeech.mixture.io import _checksum

    ubm, _, X = _ubm_file(tmp_path / "ubm.npz", 60)
    # subnormal variances with a valid checksum: the "120 of 120 nan scores"
    import json

    with np.load(ubm, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    meta = json.loads(arrays.pop("__meta__").tobytes())
    arrays["covariances"] = arrays["covariances"] * 1e-310
    meta["checksum"] = _checksum(arrays, meta)
    bad = tmp_path / "bad.npz"
    np.savez(bad, **arrays, __meta__=np.frombuffer(json.dumps(meta).encode(), np.uint8))
    (tmp_path / "models").mkdir()
    save(GMM.from_params([1.0], np.zeros((1, 60)), np.ones((1, 60))), tmp_path / "models" / "a.npz",
         metadata={"label": "a"})
    out = tmp_path / "run"
    out.mkdir()
    rc, err = _run(["score", "--ubm", bad, "--models", tmp_path / "models", "--manifest",
                    corpus["tst"], "--out", out / "scores.tsv", "--quiet"], capsys)
    assert rc == 2 and str(bad) in err and "covariances" in err
    assert os.listdir(out) == []


def test_score_full_disk_leaves_no_partial_or_temporary_file(corpus, tmp_path, capsys, monkeypatch):
    import gmmspeech.speaker.pipeline as pipeline
    from gmmspeech.speaker.map import map_adapt

    ubm, h, X = _ubm_file(tmp_path / "ubm.npz", 60)
    (tmp_path / "models").mkdir()
    save(map_adapt(load(ubm), X[:50]), tmp_path / "models" / "a.npz",
         metadata={"label": "a", "feature_config_hash": h})
    out = tmp_path / "run"
    out.mkdir()
    (out / "scores.tsv").write_text("old\n")
    real_writer = csv.writer

    class FullDisk:
        def writer(self, fh, **kw):
            w = real_writer(fh, **kw)

            class W:
                n = 0

                def writerow(self, row):
                    W.n += 1
                    if W.n > 2:
                        fh.flush()
                        raise OSError(28, "No space left on device")
                    return w.writerow(row)

            return W()

    monkeypatch.setattr(pipeline, "csv", FullDisk())
    rc, err = _run(["score", "--ubm", ubm, "--models", tmp_path / "models", "--manifest",
                    corpus["tst"], "--out", out / "scores.tsv", "--quiet"], capsys)
    assert rc == 2
    assert err.strip().splitlines()[-1] == (
        f"gmmspeech score: error: cannot write {out / 'scores.tsv'}: No space left on device; "
        "nothing was written (no partial or temporary file is left)")
    assert os.listdir(out) == ["scores.tsv"] and (out / "scores.tsv").read_text() == "old\n"


# ------------------------------------------------------------------------ checkpoints


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """A feature store of synthetic frames (no audio): 60 utterances x 400 frames x 60 dims."""
    from gmmspeech.corpus.manifest import Row
    from gmmspeech.corpus.store import FeatureStore
    from gmmspeech.features.config import FeatureConfig

    def synth(path, *, config, start, end):
        r = np.random.default_rng(int(path.split(":")[1]))
        centres = np.random.default_rng(7).normal(0, 3, (8, config.n_features))
        return (centres[r.integers(0, 8, 400)] + r.standard_normal((400, config.n_features))
                ).astype(np.float32)

    st = FeatureStore(tmp_path_factory.mktemp("ck") / "store")
    rows = [Row(f"u{i:02d}", f"synth:{i}", "x") for i in range(60)]
    assert st.build(rows, config=FeatureConfig.preset("speech"), progress=False, extractor=synth).ok
    return st.root


def test_existing_checkpoint_needs_resume_or_restart(store, tmp_path, capsys):
    out, ck = tmp_path / "u.npz", tmp_path / "u.ckpt"
    base = ["train-ubm", store, "--out", out, "-k", "4", "--init", "kmeans", "--reservoir", "2000",
            "--checkpoint", ck, "--quiet", "--iterations"]
    rc, err = _run(base + ["2"], capsys)
    assert rc == 0 and ck.exists()  # an explicit --checkpoint is kept
    before = ck.read_bytes()
    rc, err = _run(base + ["4"], capsys)
    assert rc == 2
    # the run finished: the message does not call it interrupted
    assert f"{ck}: a checkpoint of an earlier run exists (after EM iteration 2; interrupted, or finished" in err
    assert "--resume" in err and "--restart" in err
    assert ck.read_bytes() == before  # untouched
    rc, err = _run(base + ["4", "--resume"], capsys)
    assert rc == 0 and load(out).n_iter_ == 4
    rc, err = _run(base + ["3", "--restart"], capsys)
    assert rc == 0 and load(out).n_iter_ == 3
    ck.unlink()
    rc, err = _run(base + ["2", "--resume"], capsys)
    assert rc == 0 and f"--resume: no checkpoint at {ck}; starting fresh" in err
    # a checkpoint from other settings: the error says how to discard it
    rc, err = _run(["train-ubm", store, "--out", out, "-k", "5", "--init", "kmeans", "--reservoir",
                    "2000", "--checkpoint", ck, "--quiet", "--iterations", "2", "--resume"], capsys)
    assert rc == 2 and "n_components" in err and "--restart" in err


def _iteration(ck):
    from gmmspeech.speaker.ubm import checkpoint_iteration

    return checkpoint_iteration(ck) if os.path.exists(ck) else None


def _interrupt(argv, ck, after=2):
    """Run the CLI in a subprocess and send it SIGINT (Ctrl-C) after EM iteration ``after``."""
    proc = start_cli(*argv)
    deadline = time.monotonic() + 240
    while proc.poll() is None and time.monotonic() < deadline:
        it = _iteration(ck)
        if it is not None and it >= after:
            break
        time.sleep(0.02)
    assert proc.poll() is None, "finished before the interrupt: make it longer"
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    return proc.returncode, err


def _resume_line(err):
    m = re.search(r"^resume with: (gmmspeech .*)$", err, re.M)
    assert m, err
    return shlex.split(m.group(1))[1:]


def _with_iterations(argv, n):
    argv = list(argv)
    argv[argv.index("--iterations") + 1] = str(n)
    return argv


def test_sigint_train_ubm_prints_checkpoint_and_resume_command(store, tmp_path, capsys):
    out = tmp_path / "u.npz"
    ck = str(out) + ".ckpt.npz"
    argv = ["train-ubm", store, "--out", out, "-k", "16", "--init", "kmeans", "--reservoir", "4000",
            "--iterations", "100000", "--quiet"]
    rc, err = _interrupt(argv, ck)
    assert rc == 130, err
    assert "Traceback" not in err
    done = _iteration(ck)
    assert done is not None and done >= 2
    assert f"UBM checkpoint after EM iteration {done} of 100000: {ck}" in err
    rc, again = _run(argv, capsys)  # in this process from here on (no start-up cost)
    assert rc == 2 and "--resume" in again and "--restart" in again
    resume = _resume_line(err)
    assert resume[-1] == "--resume" and resume[:2] == ["train-ubm", str(store)]
    # the printed command resumes (fewer iterations than already done: it finishes at once)
    rc, fin = _run(_with_iterations(resume, 1), capsys)
    assert rc == 0, fin
    assert load(out).n_iter_ == done and not os.path.exists(ck)


def test_sigint_speaker_id_ubm_stage(corpus, tmp_path, capsys):
    out = tmp_path / "run"
    ck = str(out / "ubm.ckpt.npz")
    argv = ["speaker-id", "--background", corpus["bg"], "--enroll", corpus["enr"], "--test",
            corpus["tst"], "--out", out, "-k", "8", "--iterations", "100000", "--init", "kmeans",
            "--quiet"]
    rc, err = _interrupt(argv, ck)
    assert rc == 130 and "Traceback" not in err, err
    done = _iteration(ck)
    assert f"UBM checkpoint after EM iteration {done} of 100000: {ck}" in err
    rc, again = _run(argv, capsys)
    assert rc == 2 and f"{ck}: a checkpoint of an earlier run exists" in again
    resume = _resume_line(err)
    rc, fin = _run(_with_iterations(resume, 1), capsys)
    assert rc == 0, fin
    assert load(out / "ubm.npz").n_iter_ == done and not os.path.exists(ck)
    assert (out / "results.json").is_file()
