"""``gmmspeech features``: manifest -> feature store with the real front end, through the CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import speechlike

from gmmspeech.cli import main
from gmmspeech.corpus.store import FeatureStore


def _frames(seconds: float, sr: int = 16000, win: float = 0.025, hop: float = 0.010) -> int:
    """Frame count of the speech preset (snip_edges, nothing removed by VAD): closed form."""
    n, w, h = round(seconds * sr), round(win * sr), round(hop * sr)
    return (n - w) // h + 1


@pytest.fixture
def small_corpus(tmp_path, write_wav):
    """4 good files (two rates, one segment row), 1 corrupt file, 1 missing file."""
    audio = tmp_path / "audio"
    audio.mkdir()
    write_wav("audio/a.wav", speechlike(16000, 1.0, 110, 0), 16000)
    write_wav("audio/b.wav", speechlike(16000, 1.5, 180, 1), 16000, subtype="PCM_16")
    write_wav("audio/c.flac", speechlike(8000, 1.0, 140, 2), 8000, format="FLAC")
    (audio / "broken.wav").write_bytes(b"RIFF\x10\x00\x00\x00WAVEnot really audio")
    manifest = tmp_path / "m.csv"
    manifest.write_text(
        "id,path,label,start,end\n"
        "a,audio/a.wav,s1,,\n"
        "b,audio/b.wav,s2,,\n"
        "broken,audio/broken.wav,s1,,\n"
        "c,audio/c.flac,s2,,\n"
        "b_seg,audio/b.wav,s2,0.25,0.75\n"
        "gone,audio/missing.wav,s1,,\n"
    )
    return manifest


def test_features_cli_reports_bad_files_and_finishes_good_ones(tmp_path, small_corpus, capsys):
    out = tmp_path / "feats"
    rc = main(["features", str(small_corpus), "--out", str(out), "--quiet"])
    cap = capsys.readouterr()
    assert rc == 1
    lines = cap.err.strip().splitlines()
    assert lines[-1] == f"2 of 6 files failed, see {out / 'errors.tsv'}"
    # the 8 kHz file was upsampled: said once, with the count and the native rate
    assert lines[:-1] == ["note: 1 of 4 files were upsampled to 16000 Hz (native 8000 Hz): their "
                          "features hold nothing above 4000 Hz; to analyse them at their own rate "
                          "use --sample-rate 8000"]
    assert FeatureStore(out).entry("c").native_rate == 8000
    assert FeatureStore(out).entry("a").native_rate == 16000
    errors = (out / "errors.tsv").read_text().splitlines()
    assert errors[0] == "id\tpath\treason"
    bad = {line.split("\t")[0]: line.split("\t") for line in errors[1:]}
    assert set(bad) == {"broken", "gone"}
    assert bad["gone"][1] == str(tmp_path / "audio" / "missing.wav")
    assert "missing" in bad["gone"][2]
    assert bad["broken"][2]

    store = FeatureStore(out)
    assert store.ids() == ["a", "b", "c", "b_seg"]
    assert store.labels() == {"a": "s1", "b": "s2", "c": "s2", "b_seg": "s2"}
    # frame counts from the closed form (25 ms / 10 ms, snip_edges; c is resampled 8k -> 16k)
    assert [store.n_frames(i) for i in store.ids()] == [_frames(1.0), _frames(1.5), _frames(1.0),
                                                        _frames(0.5)]
    for i in store.ids():
        x = store.load(i, mmap=False)
        assert x.shape[1] == 60 and x.dtype == np.float32
        # the speech preset ends with utterance mean/variance normalisation
        np.testing.assert_allclose(x.mean(axis=0), 0.0, atol=1e-4)
        np.testing.assert_allclose(x.std(axis=0), 1.0, atol=1e-3)
    meta = json.loads((out / "store.json").read_text())
    from gmmspeech.features.config import FeatureConfig

    assert meta["config_hash"] == FeatureConfig.preset("speech").config_hash()
    assert store.config == FeatureConfig.preset("speech")

    # re-run: nothing good is redone (same .npy files, same mtimes); the bad ones are retried
    mtimes = {i: os.stat(store.file(i)).st_mtime_ns for i in store.ids()}
    assert main(["features", str(small_corpus), "--out", str(out), "--quiet"]) == 1
    assert {i: os.stat(store.file(i)).st_mtime_ns for i in store.ids()} == mtimes
    capsys.readouterr()

    # without the bad rows: exit 0 and a summary on stdout
    good = tmp_path / "good.csv"
    good.write_text("".join(line for line in small_corpus.read_text().splitlines(keepends=True)
                            if "broken" not in line and "missing" not in line))
    assert main(["features", str(good), "--out", str(out), "--quiet"]) == 0
    cap = capsys.readouterr()
    assert "4 files in the store (0 extracted, 4 already done)" in cap.out
    assert (out / "errors.tsv").read_text() == "id\tpath\treason\n"


def test_features_cli_refuses_another_config(tmp_path, small_corpus, capsys):
    good = tmp_path / "one.csv"
    good.write_text("id,path,label\na,audio/a.wav,s1\n")
    out = tmp_path / "feats"
    assert main(["features", str(good), "--out", str(out), "--quiet"]) == 0
    assert main(["features", str(good), "--out", str(out), "--preset", "kaldi", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "another feature configuration" in err and str(out) in err
    assert main(["features", str(good), "--out", str(tmp_path / "k"), "--preset", "kaldi", "-q"]) == 0
    assert FeatureStore(tmp_path / "k").load("a").shape == (_frames(1.0), 13)
    # the Python API takes a preset name too; same configuration, so nothing is redone
    from gmmspeech.corpus.manifest import read_manifest

    report = FeatureStore(tmp_path / "k").build(read_manifest(good), config="kaldi", progress=False)
    assert (report.n_done, report.n_skipped) == (0, 1)


def test_features_cli_config_file_and_data_root(tmp_path, small_corpus):
    from gmmspeech.features.config import FeatureConfig

    cfg = FeatureConfig.preset("speech").replace(n_mfcc=13)
    cfg_file = tmp_path / "cfg.json"
    cfg_file.write_text(cfg.to_json())
    lists = tmp_path / "lists"
    lists.mkdir()
    m = lists / "m.csv"
    m.write_text("id,path,label\na,a.wav,s1\n")
    out = tmp_path / "f13"
    assert main(["features", str(m), "--out", str(out), "--data-root", str(tmp_path / "audio"),
                 "--config", str(cfg_file), "-q"]) == 0
    store = FeatureStore(out)
    assert store.config == cfg
    assert store.load("a").shape == (_frames(1.0), 39)
    # another store's store.json reproduces its configuration
    assert main(["features", str(m), "--out", str(tmp_path / "again"), "--data-root",
                 str(tmp_path / "audio"), "--config", str(out / "store.json"), "-q"]) == 0
    assert FeatureStore(tmp_path / "again").config_hash == cfg.config_hash()
    bad = tmp_path / "bad.json"
    bad.write_text('{"n_mfcc": -3}')
    assert main(["features", str(m), "--out", str(tmp_path / "x"), "--config", str(bad), "-q"]) == 2
    bad.write_text("{oops")
    assert main(["features", str(m), "--out", str(tmp_path / "x"), "--config", str(bad), "-q"]) == 2


def test_features_cli_manifest_error_exit_2(tmp_path, capsys):
    m = tmp_path / "bad.csv"
    m.write_text("id,path,label,start,end\na,a.wav,x,2,1\n")
    assert main(["features", str(m), "--out", str(tmp_path / "f")]) == 2
    assert f"{m}, line 2: end=1 is not after start=2" in capsys.readouterr().err


FSDD_FILES = [f"{d}_{s}_{i}.wav" for d, s, i in [
    (0, "george", 0), (1, "jackson", 7), (2, "lucas", 12), (3, "nicolas", 49), (4, "theo", 3),
    (5, "yweweler", 20), (6, "george", 33), (7, "jackson", 1), (8, "lucas", 44), (9, "nicolas", 5),
    (3, "theo", 18), (8, "yweweler", 2)]]


def test_features_on_fsdd_with_two_workers(tmp_path, fsdd_root):
    import soundfile as sf

    from gmmspeech.features import extract

    manifest = tmp_path / "fsdd.csv"
    lines = ["id,path,label"]
    for name in FSDD_FILES:
        digit, speaker, index = Path(name).stem.split("_")
        lines.append(f"{speaker}_{digit}_{index},recordings/{name},{speaker}")
    manifest.write_text("\n".join(lines) + "\n")
    out = tmp_path / "feats"
    cmd = [sys.executable, "-m", "gmmspeech", "features", str(manifest), "--out", str(out),
           "--data-root", str(fsdd_root), "--jobs", "2", "--backend", "loky"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "12 files in the store (12 extracted, 0 already done)" in proc.stdout
    store = FeatureStore(out)
    assert len(store) == 12
    assert set(store.labels().values()) == {"george", "jackson", "lucas", "nicolas", "theo", "yweweler"}
    for name in FSDD_FILES[:3]:
        digit, speaker, index = Path(name).stem.split("_")
        x = store.load(f"{speaker}_{digit}_{index}")
        np.testing.assert_array_equal(x, extract(fsdd_root / "recordings" / name))
        # VAD may drop frames, never add any: at most the closed-form count at 16 kHz
        assert 0 < x.shape[0] <= _frames(sf.info(str(fsdd_root / "recordings" / name)).duration)
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0
    assert "(0 extracted, 12 already done)" in proc.stdout


def test_features_on_a_dask_cluster(tmp_path, small_corpus, monkeypatch, capsys):
    """Workers on a Dask cluster write the arrays into the (shared) store themselves."""
    distributed = pytest.importorskip("dask.distributed")
    from gmmspeech import parallel

    monkeypatch.delenv(parallel.BACKEND_ENV, raising=False)
    monkeypatch.delenv(parallel.SCHEDULER_ENV, raising=False)
    lc = distributed.LocalCluster(n_workers=1, threads_per_worker=2, processes=True, host="127.0.0.1",
                                  dashboard_address=":0")
    try:
        out = tmp_path / "dask-feats"
        rc = main(["features", str(small_corpus), "--out", str(out), "--backend", "dask",
                   "--scheduler", lc.scheduler_address, "-q"])
        client = parallel._CLIENTS.pop(lc.scheduler_address, None)
        if client is not None:
            client.close()
    finally:
        lc.close()
    cap = capsys.readouterr()
    store = FeatureStore(out)
    assert rc == 1, cap.err  # the two bad rows, as locally
    assert store.ids() == ["a", "b", "c", "b_seg"], store.errors()
    assert {r[0] for r in store.errors()} == {"broken", "gone"}, store.errors()
    local = tmp_path / "local"
    assert main(["features", str(small_corpus), "--out", str(local), "-q"]) == 1
    for i in store.ids():
        np.testing.assert_array_equal(store.load(i), FeatureStore(local).load(i))


def test_features_cli_feature_options(tmp_path, small_corpus, capsys):
    """--sample-rate/--n-mfcc/--cmvn/--no-vad build the configuration; 8 kHz audio analysed
    at 8 kHz is not upsampled (no note); options that cannot apply are errors."""
    from gmmspeech.features.config import FeatureConfig

    m = tmp_path / "c.csv"
    m.write_text("id,path,label\nc,audio/c.flac,s2\n")
    out = tmp_path / "f8"
    assert main(["features", str(m), "--out", str(out), "--sample-rate", "8000", "--n-mfcc", "13",
                 "--cmvn", "sliding", "--no-vad", "-q"]) == 0
    cap = capsys.readouterr()
    assert "upsampled" not in cap.err
    want = FeatureConfig.preset("speech").replace(sample_rate=8000, n_mfcc=13, cmvn="sliding",
                                                  vad=False)
    store = FeatureStore(out)
    assert store.config == want
    assert store.load("c").shape == (_frames(1.0, sr=8000), 39)
    assert store.entry("c").native_rate == 8000
    # options with --config: refused, naming the flags
    cfg = tmp_path / "cfg.json"
    cfg.write_text(want.to_json())
    assert main(["features", str(m), "--out", str(tmp_path / "x"), "--config", str(cfg),
                 "--n-mfcc", "12", "-q"]) == 2
    err = capsys.readouterr().err
    assert "--n-mfcc cannot apply with --config" in err
    assert main(["features", str(m), "--out", str(tmp_path / "y"), "--sample-rate", "0", "-q"]) == 2
    assert "--sample-rate 0" in capsys.readouterr().err
    assert main(["features", str(m), "--out", str(tmp_path / "z"), "--max-duration", "0", "-q"]) == 2
    assert "--max-duration" in capsys.readouterr().err


def test_train_ubm_refuses_feature_options_for_a_store(tmp_path, small_corpus, capsys):
    m = tmp_path / "ab.csv"
    m.write_text("id,path,label\na,audio/a.wav,s1\nb,audio/b.wav,s2\n")
    out = tmp_path / "feats"
    assert main(["features", str(m), "--out", str(out), "-q"]) == 0
    capsys.readouterr()
    for extra in (["--preset", "kaldi"], ["--no-vad"], ["--sample-rate", "8000", "--cmvn", "none"]):
        rc = main(["train-ubm", str(out), "--out", str(tmp_path / "u.npz"), "-k", "2",
                   "--iterations", "1", "-q", *extra])
        err = capsys.readouterr().err
        assert rc == 2, err
        assert "cannot apply" in err and "feature store" in err and str(out) in err
        assert extra[0] in err
        assert not (tmp_path / "u.npz").exists()


def test_train_ubm_from_a_manifest_takes_feature_options(tmp_path, small_corpus, capsys):
    from gmmspeech.features.config import FeatureConfig
    from gmmspeech.mixture.io import load

    m = tmp_path / "ab.csv"
    m.write_text("id,path,label\na,audio/a.wav,s1\nb,audio/b.wav,s2\nc,audio/c.flac,s2\n")
    rc = main(["train-ubm", str(m), "--out", str(tmp_path / "u.npz"), "-k", "2", "--iterations",
               "1", "-q", "--n-mfcc", "13", "--no-vad", "--init", "kmeans"])
    err = capsys.readouterr().err
    assert rc == 0, err
    assert "note: 1 of 3 files were upsampled to 16000 Hz (native 8000 Hz)" in err
    ubm = load(tmp_path / "u.npz")
    assert ubm.means_.shape[1] == 39
    saved = FeatureConfig.from_dict(ubm.metadata_["feature_config"])
    # train-ubm starts from the speaker defaults (gmmspeech.speaker.defaults), like speaker-id
    from gmmspeech.speaker.defaults import speaker_feature_config

    assert saved == speaker_feature_config(None, {"n_mfcc": 13, "vad": False})
    assert saved.n_mfcc == 13 and saved.vad is False
