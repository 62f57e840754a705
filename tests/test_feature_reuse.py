"""One feature store reused everywhere: the step-by-step commands extract each file once."""

from __future__ import annotations

import csv
import json
import os
from collections import Counter

import numpy as np
import pytest
from conftest import ROOT

from gmmspeech.cli import main

FSDD = ROOT / "data_manifests" / "fsdd"


@pytest.fixture
def count_extractions(monkeypatch):
    """Count every audio file the feature extractor reads (in-process: -j 1)."""
    import gmmspeech.features.streaming as streaming

    seen: Counter = Counter()
    real = streaming.extract_to_file

    def counting(path, *args, **kwargs):
        seen[(os.fspath(path), kwargs.get("start"), kwargs.get("end"))] += 1
        return real(path, *args, **kwargs)

    monkeypatch.setattr(streaming, "extract_to_file", counting)
    return seen


def _subset(src, dst, *, per_speaker: int):
    """The first ``per_speaker`` rows of every speaker of ``src``, written to ``dst``."""
    with open(src, newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    kept: dict[str, int] = {}
    out = []
    for r in rows:
        if kept.get(r["label"], 0) < per_speaker:
            kept[r["label"]] = kept.get(r["label"], 0) + 1
            out.append(r)
    with open(dst, "w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=["id", "path", "label"], extrasaction="ignore")
        w.writeheader()
        w.writerows(out)
    return out


def test_step_by_step_fsdd_extracts_each_file_once(fsdd_root, tmp_path, count_extractions, capsys):
    data = str(fsdd_root.parent)
    train = _subset(FSDD / "speaker_train.csv", tmp_path / "train.csv", per_speaker=8)
    test = _subset(FSDD / "speaker_test.csv", tmp_path / "test.csv", per_speaker=3)
    feats, ubm, models = tmp_path / "feats", tmp_path / "ubm.npz", tmp_path / "models"
    common = ["--data-root", data, "--quiet"]
    # features: the store of the speaker defaults' configuration (as train-ubm would make)
    assert main(["train-ubm", str(tmp_path / "train.csv"), "--out", str(ubm), "-k", "4",
                 "--iterations", "2", "--features-dir", str(feats), *common]) == 0
    stores = [p for p in feats.iterdir() if (p / "store.json").is_file()]
    assert len(stores) == 1  # feats/<config hash>
    assert len(count_extractions) == len(train)
    assert main(["enroll", "--ubm", str(ubm), "--manifest", str(tmp_path / "train.csv"),
                 "--out", str(models), *common]) == 0
    assert len(count_extractions) == len(train)  # enrolment read the UBM's store
    scores = tmp_path / "scores.tsv"
    assert main(["score", "--ubm", str(ubm), "--models", str(models), "--manifest",
                 str(tmp_path / "test.csv"), "--out", str(scores), "--features-dir", str(feats),
                 "--norm", "none", *common]) == 0
    # scoring with T-norm over the enrolled models, and over background cohort models made
    # from the training files, again reads the stores
    for extra in (["--norm", "tnorm", "--norm-cohort", "enrolled"],
                  ["--norm", "tnorm", "--norm-cohort", "background", "--background",
                   str(tmp_path / "train.csv")]):
        assert main(["score", "--ubm", str(ubm), "--models", str(models), "--manifest",
                     str(tmp_path / "test.csv"), "--out", str(tmp_path / "s2.tsv"), *extra,
                     "--features-dir", str(feats), *common]) == 0
    assert main(["evaluate", str(scores), "--out", str(tmp_path / "eval")]) == 0
    # each of the train + test files was extracted exactly once
    assert all(n == 1 for n in count_extractions.values()), count_extractions.most_common(3)
    assert len(count_extractions) == len(train) + len(test)
    res = json.loads((tmp_path / "eval" / "results.json").read_text())
    assert res["n_tests"] == len(test)
    # the score file has every test against every enrolled speaker
    lines = scores.read_text().splitlines()
    assert len(lines) == 1 + len(test) * len({r["label"] for r in train})


def test_enroll_and_score_take_a_store(fsdd_root, tmp_path, count_extractions):
    data = str(fsdd_root.parent)
    train = _subset(FSDD / "speaker_train.csv", tmp_path / "train.csv", per_speaker=5)
    _subset(FSDD / "speaker_test.csv", tmp_path / "test.csv", per_speaker=2)
    ubm = tmp_path / "ubm.npz"
    common = ["--data-root", data, "--quiet"]
    assert main(["train-ubm", str(tmp_path / "train.csv"), "--out", str(ubm), "-k", "4",
                 "--iterations", "2", "--features-dir", str(tmp_path / "f"), *common]) == 0
    store = next(p for p in (tmp_path / "f").iterdir() if (p / "store.json").is_file())
    from gmmspeech.mixture import io as mio

    assert mio.load(ubm).metadata_["feature_stores"] == [str(store)]
    # a store as the enrolment source: every utterance of it, by its label
    assert main(["enroll", "--ubm", str(ubm), "--manifest", str(store), "--out",
                 str(tmp_path / "m"), *common]) == 0
    assert sorted(p.stem for p in (tmp_path / "m").glob("*.npz")) == sorted({r["label"] for r in train})
    n = len(count_extractions)
    # the models from a manifest equal the models from the store (same features)
    assert main(["enroll", "--ubm", str(ubm), "--manifest", str(tmp_path / "train.csv"), "--out",
                 str(tmp_path / "m2"), *common]) == 0
    assert len(count_extractions) == n
    for f in (tmp_path / "m").glob("*.npz"):
        np.testing.assert_array_equal(mio.load(f).means_, mio.load(tmp_path / "m2" / f.name).means_)
    # test features kept in a store of their own, then scored from it
    test_store = tmp_path / "test-feats"
    assert main(["features", str(tmp_path / "test.csv"), "--out", str(test_store),
                 "--config", str(store / "store.json"), *common]) == 0
    n = len(count_extractions)
    assert main(["score", "--ubm", str(ubm), "--models", str(tmp_path / "m"), "--manifest",
                 str(test_store), "--out", str(tmp_path / "s.tsv"), "--norm", "none", *common]) == 0
    assert len(count_extractions) == n
    # a store of another configuration is refused with both hashes named
    other = tmp_path / "other"
    assert main(["features", str(tmp_path / "test.csv"), "--out", str(other), "--n-mfcc", "13",
                 *common]) == 0
    assert main(["score", "--ubm", str(ubm), "--models", str(tmp_path / "m"), "--manifest",
                 str(other), "--out", str(tmp_path / "s3.tsv"), "--norm", "none", *common]) == 2


def test_speaker_id_same_manifest_extracted_once(fsdd_root, tmp_path, count_extractions):
    data = str(fsdd_root.parent)
    train = _subset(FSDD / "speaker_train.csv", tmp_path / "train.csv", per_speaker=6)
    test = _subset(FSDD / "speaker_test.csv", tmp_path / "test.csv", per_speaker=2)
    out = tmp_path / "sid"
    assert main(["speaker-id", "--background", str(tmp_path / "train.csv"), "--enroll",
                 str(tmp_path / "train.csv"), "--test", str(tmp_path / "test.csv"), "--out", str(out),
                 "-k", "4", "--iterations", "2", "--norm", "none", "--data-root", data, "--quiet"]) == 0
    assert len(count_extractions) == len(train) + len(test)
    assert all(n == 1 for n in count_extractions.values())
    # one store for the three manifests, recorded in the UBM; scoring the test manifest
    # again with the step-by-step command extracts nothing
    from gmmspeech.mixture import io as mio

    stores = mio.load(out / "ubm.npz").metadata_["feature_stores"]
    assert len(stores) == 1
    assert main(["score", "--ubm", str(out / "ubm.npz"), "--models", str(out / "models"),
                 "--manifest", str(tmp_path / "test.csv"), "--out", str(tmp_path / "s.tsv"),
                 "--norm", "none", "--data-root", data, "--quiet"]) == 0
    assert len(count_extractions) == len(train) + len(test)
    # same scores as the recipe's own (exact vs the recipe's scoring mode aside: compare ids)
    got = {ln.split("\t")[0] for ln in (tmp_path / "s.tsv").read_text().splitlines()[1:]}
    assert got == {r["id"] for r in test}


def test_store_subset_is_a_read_only_view(tmp_path, monkeypatch):
    from gmmspeech.corpus.manifest import Row
    from gmmspeech.corpus.store import FeatureStore

    def ext(path, *, config, start=None, end=None):
        return np.full((3 + len(os.path.basename(path)), config.n_features), 1.0, np.float32)

    from gmmspeech.features.config import FeatureConfig

    cfg = FeatureConfig.preset("speech")
    rows = [Row(f"u{i}", str(tmp_path / f"f{i}.wav"), "a" if i % 2 else "b") for i in range(5)]
    st = FeatureStore(tmp_path / "s")
    st.build(rows, config=cfg, extractor=ext, progress=False)
    v = st.subset(["u3", "u1"])
    assert v.ids() == ["u3", "u1"] and len(v) == 2 and "u0" not in v
    assert v.labels() == {"u3": "a", "u1": "a"}
    np.testing.assert_array_equal(v.load("u1"), st.load("u1"))
    assert v.total_frames() == st.n_frames("u3") + st.n_frames("u1")
    with pytest.raises(KeyError, match="u9"):
        st.subset(["u1", "u9"])
    with pytest.raises(TypeError, match="read-only"):
        v.build(rows, config=cfg)
    # a UBM trained on the view sees only its utterances
    import gmmspeech.speaker.ubm as ubm_mod

    calls = []
    plan = ubm_mod._plan_store

    def spy(store, chunk_frames):
        out = plan(store, chunk_frames)
        calls.append([i for c in out[0] for i in c.ids])
        return out

    monkeypatch.setattr(ubm_mod, "_plan_store", spy)
    ubm_mod.train_ubm(v, 1, max_iter=1, random_state=0)
    assert calls == [["u3", "u1"]]


def test_classify_reads_the_store_train_classes_used(fsdd_root, tmp_path, count_extractions):
    data = str(fsdd_root.parent)
    rows = _subset(FSDD / "digits_train.csv", tmp_path / "train.csv", per_speaker=4)
    common = ["--data-root", data, "--quiet"]
    assert main(["train-classes", str(tmp_path / "train.csv"), "--out", str(tmp_path / "m"), "-k", "2",
                 "--iterations", "30", "--sample-rate", "8000", "--features-dir", str(tmp_path / "f"),
                 *common]) == 0
    assert len(count_extractions) == len(rows)
    # classifying the training files again reads them from the recorded store ...
    assert main(["classify", "--models", str(tmp_path / "m"), "--manifest", str(tmp_path / "train.csv"),
                 "--out", str(tmp_path / "c1"), *common]) == 0
    assert len(count_extractions) == len(rows)
    # ... and a feature store is accepted as the input
    store = next(p for p in (tmp_path / "f").iterdir() if (p / "store.json").is_file())
    assert main(["classify", "--models", str(tmp_path / "m"), "--manifest", str(store),
                 "--out", str(tmp_path / "c2"), *common]) == 0
    assert len(count_extractions) == len(rows)
    assert all(n == 1 for n in count_extractions.values())
    p1 = (tmp_path / "c1" / "predictions.tsv").read_text()
    assert p1 == (tmp_path / "c2" / "predictions.tsv").read_text()
