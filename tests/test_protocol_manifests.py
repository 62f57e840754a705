"""The committed development protocol of data_manifests/<corpus>/{dev,test}/: counts, speaker
disjointness between dev, test and background, enrol/test rules, and that the generator
reproduces the committed files exactly."""

from __future__ import annotations

import csv
import filecmp
import importlib.util
import os
from collections import Counter
from pathlib import Path

import pytest

from gmmspeech.corpus.manifest import read_manifest

ROOT = Path(__file__).resolve().parents[1]
MANIFESTS = ROOT / "data_manifests"
CORPORA = ("librispeech", "fsdd", "dspspeech20", "speechocean762")
PARTS = ("background", "enroll", "test")

#: (rows, speakers) per corpus, split and part.
EXPECTED = {
    "librispeech": {"dev": {"background": (100, 10), "enroll": (63, 63), "test": (112, 63)},
                    "test": {"background": (100, 10), "enroll": (63, 63), "test": (116, 63)}},
    "fsdd": {s: {"background": (600, 6), "enroll": (900, 6), "test": (300, 6)} for s in ("dev", "test")},
    "dspspeech20": {s: {"background": (400, 5), "enroll": (360, 9), "test": (360, 9)}
                    for s in ("dev", "test")},
    "speechocean762": {s: {"background": (200, 25), "enroll": (200, 50), "test": (200, 50)}
                       for s in ("dev", "test")},
}


def _rows(corpus: str, split: str, part: str) -> list[dict[str, str]]:
    with open(MANIFESTS / corpus / split / f"{part}.csv", newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def _speakers(rows) -> set[str]:
    return {r["label"] for r in rows}


@pytest.mark.parametrize("corpus", CORPORA)
def test_counts(corpus):
    for split in ("dev", "test"):
        for part in PARTS:
            rows = _rows(corpus, split, part)
            assert (len(rows), len(_speakers(rows))) == EXPECTED[corpus][split][part], (corpus, split, part)


@pytest.mark.parametrize("corpus", CORPORA)
def test_every_tested_speaker_is_enrolled_and_files_are_disjoint(corpus):
    for split in ("dev", "test"):
        enroll, test = _rows(corpus, split, "enroll"), _rows(corpus, split, "test")
        assert _speakers(test) == _speakers(enroll)
        assert {r["id"] for r in enroll}.isdisjoint(r["id"] for r in test)
    ids = [r["id"] for s in ("dev", "test") for p in ("enroll", "test") for r in _rows(corpus, s, p)]
    assert len(ids) == len(set(ids)), "a file or segment is used twice across dev and test"


@pytest.mark.parametrize("corpus", ("librispeech", "dspspeech20", "speechocean762"))
def test_dev_and_test_speakers_are_disjoint_and_background_is_other_speakers(corpus):
    dev = _speakers(_rows(corpus, "dev", "enroll"))
    test = _speakers(_rows(corpus, "test", "enroll"))
    assert dev.isdisjoint(test)
    for split in ("dev", "test"):
        bg = _speakers(_rows(corpus, split, "background"))
        assert bg.isdisjoint(dev | test)


def test_fsdd_is_split_by_recording_index():
    """Six speakers only: same speakers, disjoint recording indices per role."""
    def indices(split, part):
        return {int(r["id"].rsplit("_", 1)[1]) for r in _rows("fsdd", split, part)}

    assert indices("dev", "enroll") == set(range(10, 25)) and indices("dev", "test") == set(range(5, 10))
    assert indices("test", "enroll") == set(range(25, 40)) and indices("test", "test") == set(range(0, 5))
    assert indices("dev", "background") == indices("test", "background") == set(range(40, 50))
    used = [indices(s, p) for s in ("dev", "test") for p in PARTS if (s, p) != ("test", "background")]
    assert sum(len(u) for u in used) == len(set().union(*used))
    # every speaker says every digit equally often in every role
    for split in ("dev", "test"):
        for part in PARTS:
            rows = _rows("fsdd", split, part)
            counts = Counter((r["label"], r["id"].split("_")[1]) for r in rows)
            assert len(counts) == 60 and len(set(counts.values())) == 1


def test_dspspeech20_enrols_early_takes_and_tests_late_ones():
    for split in ("dev", "test"):
        enroll, test = _rows("dspspeech20", split, "enroll"), _rows("dspspeech20", split, "test")
        assert {r["id"].rsplit("-", 1)[1] for r in enroll} == {"01", "07"}
        assert {r["id"].rsplit("-", 1)[1] for r in test} == {"14", "20"}
        # 20 words x 2 takes per speaker on each side
        assert set(Counter(r["label"] for r in enroll).values()) == {40}
        assert set(Counter(r["label"] for r in test).values()) == {40}


def test_speechocean762_enrols_four_sentences_tests_four_and_is_stratified():
    for split in ("dev", "test"):
        enroll, test = _rows("speechocean762", split, "enroll"), _rows("speechocean762", split, "test")
        assert set(Counter(r["label"] for r in enroll).values()) == {4}
        assert set(Counter(r["label"] for r in test).values()) == {4}
        for r in enroll + test:
            assert r["path"] == f"speechocean762/audio/{r['label']}/{r['id']}.flac"


def test_speechocean762_strata_are_balanced(datasets_root):
    data = datasets_root / "speechocean762" / "train"
    if not data.is_dir():
        pytest.skip(f"{data} not found")
    age = dict(line.split() for line in (data / "spk2age").read_text().splitlines())
    gender = dict(line.split() for line in (data / "spk2gender").read_text().splitlines())

    def strata(rows):
        return Counter(("child" if int(age[s]) <= 15 else "adult", gender[s]) for s in _speakers(rows))

    dev, test = strata(_rows("speechocean762", "dev", "enroll")), strata(_rows("speechocean762", "test", "enroll"))
    bg = strata(_rows("speechocean762", "dev", "background"))
    total = Counter(("child" if int(a) <= 15 else "adult", gender[s]) for s, a in age.items())
    assert dev + test + bg == total
    for key in total:
        assert abs(dev[key] - test[key]) <= 2, key
        assert abs(dev[key] - 2 * bg[key]) <= 3, key


def test_protocol_manifests_point_at_existing_files(datasets_root):
    for corpus in CORPORA:
        if not (datasets_root / corpus).is_dir():
            continue
        for split in ("dev", "test"):
            for part in PARTS:
                rows = read_manifest(MANIFESTS / corpus / split / f"{part}.csv", data_root=datasets_root)
                missing = [r.path for r in rows if not os.path.isfile(r.path)]
                assert not missing, f"{corpus}/{split}/{part}: e.g. {missing[:3]}"


def test_generator_reproduces_the_committed_manifests(datasets_root, tmp_path):
    for corpus in CORPORA:
        if not (datasets_root / corpus).is_dir():
            pytest.skip(f"shared dataset {corpus!r} not found")
    spec = importlib.util.spec_from_file_location("make_manifests", MANIFESTS / "make_manifests.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    assert mod.main(["--datasets", str(datasets_root), "--out", str(tmp_path)]) == 0
    for corpus in CORPORA:
        for split in ("dev", "test"):
            for part in PARTS:
                rel = Path(corpus) / split / f"{part}.csv"
                assert filecmp.cmp(tmp_path / rel, MANIFESTS / rel, shallow=False), rel
