"""The commands chained as a user chains them: the outputs of one (speaker-id's folder,
train-ubm's feature stores, enroll's models) fed to the next, on the tiny synthetic corpus of
test_cli_speaker. The step-by-step path must give the one-shot run's numbers."""

from __future__ import annotations

import numpy as np
from test_cli_speaker import corpus  # noqa: F401  (the module-scoped corpus fixture)
from test_feature_reuse import count_extractions  # noqa: F401  (the fixture)

from gmmspeech.cli import main
from gmmspeech.speaker.pipeline import read_scores


def _scores(path):
    ids, _labels, models, s = read_scores(path)
    return {(i, m): s[a, b] for a, i in enumerate(ids) for b, m in enumerate(models)}


def test_ivector_commands_share_the_feature_stores(corpus, tmp_path, count_extractions, capsys):  # noqa: F811
    """train-ivector and extract-ivectors read the features the UBM (or extractor) records and
    treat --features-dir as enroll and score do (FDIR/<config hash>). Before, they extracted
    every file again into a temporary folder, and --features-dir F made F itself a store, after
    which train-ubm --features-dir F with other feature options failed ("holds features of
    configuration ...")."""
    feats = tmp_path / "F"
    ubm, ext = tmp_path / "ubm.npz", tmp_path / "ext.npz"
    q = ["--quiet"]
    assert main(["train-ubm", str(corpus / "bg.csv"), str(corpus / "enroll.csv"), "--out", str(ubm), "-k", "8",
                 "--iterations", "3", "--features-dir", str(feats), *q]) == 0
    n_train = sum(count_extractions.values())
    assert n_train == 18  # 10 background + 8 enrolment files
    assert main(["train-ivector", str(corpus / "bg.csv"), "--ubm", str(ubm), "--out", str(ext), "--rank", "4",
                 "--iterations", "2", *q]) == 0
    assert sum(count_extractions.values()) == n_train  # all read from the UBM's store
    # the extractor records the store, so extract-ivectors reads the enrolment files from it too
    assert main(["extract-ivectors", "--extractor", str(ext), "--manifest", str(corpus / "enroll.csv"),
                 "--out", str(tmp_path / "enroll.iv.npz"), *q]) == 0
    assert sum(count_extractions.values()) == n_train
    # new files go to FDIR/<config hash>, beside the UBM's store, as with enroll and score
    capsys.readouterr()
    assert main(["extract-ivectors", "--extractor", str(ext), "--manifest", str(corpus / "test.csv"),
                 "--out", str(tmp_path / "test.iv.npz"), "--features-dir", str(feats), *q]) == 1
    assert "broken.wav" in capsys.readouterr().err  # the bad file reported, the rest done
    assert not (feats / "store.json").exists()
    (store,) = [p for p in feats.iterdir() if p.is_dir()]
    assert (store / "store.json").is_file()
    assert sum(count_extractions.values()) == n_train + 9  # 8 test files + the broken one
    # the folder still takes a store of another configuration
    assert main(["train-ubm", str(corpus / "bg.csv"), "--out", str(tmp_path / "ubm13.npz"), "-k", "8",
                 "--iterations", "2", "--n-mfcc", "13", "--features-dir", str(feats), *q]) == 0
    assert len([p for p in feats.iterdir() if p.is_dir()]) == 2


def test_extract_ivectors_rejects_a_store_of_other_features(corpus, tmp_path, capsys):  # noqa: F811
    """A feature store given as --manifest must hold the extractor's features: a clear error
    naming the store, not a traceback from the statistics."""
    ubm, ext, feats = tmp_path / "ubm.npz", tmp_path / "ext.npz", tmp_path / "F"
    assert main(["train-ubm", str(corpus / "bg.csv"), "--out", str(ubm), "-k", "4", "--iterations", "2",
                 "--quiet"]) == 0
    assert main(["train-ivector", str(corpus / "bg.csv"), "--ubm", str(ubm), "--out", str(ext), "--rank", "3",
                 "--iterations", "1", "--quiet"]) == 0
    assert main(["features", str(corpus / "bg.csv"), "--out", str(feats), "--quiet"]) == 0  # 60-dim preset
    capsys.readouterr()
    rc = main(["extract-ivectors", "--extractor", str(ext), "--manifest", str(feats),
               "--out", str(tmp_path / "x.npz"), "--quiet"])
    err = capsys.readouterr().err
    assert rc == 2 and str(feats) in err and "configuration" in err and "Traceback" not in err


def test_speaker_id_features_dir_may_be_a_store(corpus, tmp_path, count_extractions, capsys):  # noqa: F811
    """speaker-id --features-dir S, where S is a store of the run's configuration (the
    features folder of an earlier run, or `gmmspeech features --out S`), reads its features
    as enroll, score and train-ubm do. Before, it nested a second store S/<hash> inside S and
    extracted every file again; a store of another configuration is now a clear error."""
    common = ["--background", str(corpus / "bg.csv"), "--enroll", str(corpus / "enroll.csv"),
              "--test", str(corpus / "test.csv"), "-k", "8", "--iterations", "3", "--quiet"]
    first = tmp_path / "first"
    assert main(["speaker-id", *common, "--out", str(first)]) == 1  # the corpus' bad file
    n = sum(count_extractions.values())
    assert n == 27  # 10 + 8 + 9 distinct files
    second = tmp_path / "second"
    assert main(["speaker-id", *common, "--out", str(second), "--features-dir", str(first / "features")]) == 1
    assert sum(count_extractions.values()) == n + 1  # only the broken file is tried again
    assert [p.name for p in (first / "features").iterdir() if p.is_dir()] == ["data"]
    assert _scores(second / "scores.tsv") == _scores(first / "scores.tsv")
    capsys.readouterr()
    rc = main(["speaker-id", *common, "--out", str(tmp_path / "third"), "--features-dir", str(first / "features"),
               "--n-mfcc", "13"])
    err = capsys.readouterr().err
    assert rc == 2 and "holds features of configuration" in err and "Traceback" not in err


def test_score_cohort_adapts_like_the_speaker_models(corpus, tmp_path):  # noqa: F811
    """score --norm snorm with speaker-id's UBM and models reproduces speaker-id's normalised
    scores: the background cohort models are adapted with the relevance factor and parameters
    the speaker models were adapted with (recorded in their files), as the help says. Before,
    they were adapted with score's own defaults (4, mw), so with --protocol classic (16, m) the
    scores differed by up to 0.4."""
    out = tmp_path / "run"
    assert main(["speaker-id", "--background", str(corpus / "bg.csv"), "--enroll", str(corpus / "enroll.csv"),
                 "--test", str(corpus / "test.csv"), "--out", str(out), "-k", "8", "--iterations", "3",
                 "--protocol", "classic", "--norm", "snorm", "--quiet"]) == 1
    base = ["score", "--ubm", str(out / "ubm.npz"), "--manifest", str(corpus / "test.csv"),
            "--background", str(corpus / "bg.csv"), "--norm", "snorm", "--quiet"]
    want = _scores(out / "scores.tsv")
    assert main([*base, "--models", str(out / "models"), "--out", str(tmp_path / "a.tsv")]) == 1  # broken.wav
    got = _scores(tmp_path / "a.tsv")
    assert got.keys() == want.keys()
    np.testing.assert_allclose([got[k] for k in want], [want[k] for k in want], rtol=1e-9, atol=1e-9)
    # models written by enroll record their settings as well
    assert main(["enroll", "--ubm", str(out / "ubm.npz"), "--manifest", str(corpus / "enroll.csv"), "--relevance",
                 "16", "--adapt", "m", "--out", str(tmp_path / "models"), "--quiet"]) == 0
    assert main([*base, "--models", str(tmp_path / "models"), "--out", str(tmp_path / "b.tsv")]) == 1
    got = _scores(tmp_path / "b.tsv")
    np.testing.assert_allclose([got[k] for k in want], [want[k] for k in want], rtol=1e-9, atol=1e-9)
    # an explicit option still wins (and changes the cohort, hence the scores)
    assert main([*base, "--models", str(out / "models"), "--relevance", "4", "--adapt", "mw",
                 "--out", str(tmp_path / "c.tsv")]) == 1
    got = _scores(tmp_path / "c.tsv")
    assert not np.allclose([got[k] for k in want], [want[k] for k in want], atol=1e-3)
    # models that record no MAP settings (written before they did): the defaults, 4 and mw
    from gmmspeech.mixture import io as mio
    from gmmspeech.speaker.defaults import SPEAKER_DEFAULTS
    from gmmspeech.speaker.pipeline import load_models, save_models

    assert (SPEAKER_DEFAULTS["relevance_factor"], SPEAKER_DEFAULTS["adapt"]) == (4.0, "mw")
    old = load_models(out / "models")
    for lab, m in old.items():
        meta = {k: v for k, v in m.metadata_.items() if k not in ("relevance_factor", "adapt", "label", "role")}
        save_models({lab: m}, tmp_path / "bare", metadata=meta)
    assert "relevance_factor" not in mio.load(tmp_path / "bare" / "ann.npz").metadata_
    assert main([*base, "--models", str(tmp_path / "bare"), "--out", str(tmp_path / "d.tsv")]) == 1
    assert _scores(tmp_path / "d.tsv") == got


def test_per_parameter_relevance_is_recorded_and_reused(corpus, tmp_path, capsys):  # noqa: F811
    """run_speaker_id takes per-parameter relevance factors (a mapping, as map_adapt): the models
    record them and score's cohort adapts with them (saving them crashed with a TypeError after
    the whole run); models that disagree make score warn and use the defaults."""
    from gmmspeech.mixture import io as mio
    from gmmspeech.speaker.pipeline import load_models, run_speaker_id, save_models

    out = tmp_path / "run"
    rel = {"m": 4.0, "v": 16.0}
    run_speaker_id(corpus / "bg.csv", corpus / "enroll.csv", corpus / "test.csv", out, n_components=8,
                   max_iter=3, relevance_factor=rel, adapt="mv", norm="snorm", progress=False, verbose=False)
    assert mio.load(next((out / "models").glob("*.npz"))).metadata_["relevance_factor"] == rel
    base = ["score", "--ubm", str(out / "ubm.npz"), "--manifest", str(corpus / "test.csv"),
            "--background", str(corpus / "bg.csv"), "--norm", "snorm", "--quiet"]
    want = _scores(out / "scores.tsv")
    assert main([*base, "--models", str(out / "models"), "--out", str(tmp_path / "a.tsv")]) == 1  # broken.wav
    got = _scores(tmp_path / "a.tsv")
    np.testing.assert_allclose([got[k] for k in want], [want[k] for k in want], rtol=1e-9, atol=1e-9)
    models = load_models(out / "models")
    first = next(iter(models))
    for lab, m in models.items():
        meta = {k: v for k, v in m.metadata_.items() if k not in ("label", "role")}
        if lab == first:
            meta["relevance_factor"] = 8.0
        save_models({lab: m}, tmp_path / "mixed", metadata=meta)
    capsys.readouterr()
    assert main([*base, "--models", str(tmp_path / "mixed"), "--out", str(tmp_path / "b.tsv")]) == 1
    err = capsys.readouterr().err
    assert "record different relevance_factor values" in err and "--relevance 4" in err


def test_step_by_step_ivector_reproduces_speaker_id(corpus, tmp_path, capsys):  # noqa: F811
    """speaker-id --system ivector (one TV matrix) enrols a speaker as one i-vector of its
    recordings' summed statistics and trains the back-end on the background and enrolment
    i-vectors. With its extractor file, extract-ivectors --pooled (the enrolment models),
    train-backend on two files and score-ivectors --uncertainty give its scores.tsv; the
    run's own back-end file gives them too. Before, neither --pooled nor several
    train-backend files existed, so the step-by-step path could not give the default
    system's scores (per-recording enrolment i-vectors averaged: other scores)."""
    out = tmp_path / "iv"
    assert main(["speaker-id", "--background", str(corpus / "bg.csv"), "--enroll", str(corpus / "enroll.csv"),
                 "--test", str(corpus / "test.csv"), "--out", str(out), "-k", "8", "--iterations", "3",
                 "--system", "ivector", "--ivector-iterations", "3", "--ivector-tv-seeds", "1",
                 "--quiet"]) == 1  # the corpus' bad file
    ext = str(out / "ivector_extractor.npz")

    def extract(man, name, *extra):
        return main(["extract-ivectors", "--extractor", ext, "--manifest", str(corpus / man), "--covariances",
                     "--out", str(tmp_path / name), "--quiet", *extra])

    assert extract("bg.csv", "bg.npz") == 0 and extract("enroll.csv", "enroll.npz") == 0
    assert extract("enroll.csv", "models.npz", "--pooled") == 0 and extract("test.csv", "test.npz") == 1
    from gmmspeech.mixture import io as mio

    models, info = mio.load_arrays(tmp_path / "models.npz", "ivectors")
    assert info["ids"] == info["labels"] == ["ann", "bob", "cid", "dan"]
    assert models["vectors"].shape[0] == 4 and models["covariances"].shape[0] == 4
    # the pooled statistics are the sum of the rows': a speaker's pooled i-vector is not the
    # mean of its recordings' i-vectors
    per_row, rinfo = mio.load_arrays(tmp_path / "enroll.npz", "ivectors")
    ann = np.mean([v for v, lab in zip(per_row["vectors"], rinfo["labels"]) if lab == "ann"], axis=0)
    assert not np.allclose(models["vectors"][0], ann, atol=1e-6)
    be = tmp_path / "be.npz"
    assert main(["train-backend", str(tmp_path / "bg.npz"), str(tmp_path / "enroll.npz"), "--out", str(be)]) == 0
    want = _scores(out / "scores.tsv")
    for backend in (be, out / "ivector_backend.npz"):
        sc = tmp_path / f"{backend.stem}.tsv"
        assert main(["score-ivectors", "--backend-model", str(backend), "--enroll", str(tmp_path / "models.npz"),
                     "--test", str(tmp_path / "test.npz"), "--uncertainty", "--out", str(sc)]) == 0
        got = _scores(sc)
        assert got.keys() == want.keys()
        np.testing.assert_allclose([got[k] for k in want], [want[k] for k in want], rtol=1e-6, atol=1e-6)
    # i-vector files of different extractors are not pooled into one back-end
    other = tmp_path / "other.npz"
    mio.save_arrays(other, "ivectors", {"vectors": np.ones((2, 3))}, {"ids": ["a", "b"], "labels": ["x", "y"]})
    capsys.readouterr()
    assert main(["train-backend", str(tmp_path / "bg.npz"), str(other), "--out", str(tmp_path / "x.npz")]) == 2
    assert "different dimensions" in capsys.readouterr().err


def test_supervectors_share_the_feature_stores(corpus, tmp_path, count_extractions):  # noqa: F811
    """supervectors reads the features the UBM records and takes --features-dir as the other
    commands do. Before, it extracted every file again and made --features-dir F a store
    itself (F then refused train-ubm's stores of other configurations)."""
    feats, ubm = tmp_path / "F", tmp_path / "ubm.npz"
    assert main(["train-ubm", str(corpus / "bg.csv"), "--out", str(ubm), "-k", "4", "--iterations", "2",
                 "--features-dir", str(feats), "--quiet"]) == 0
    n = sum(count_extractions.values())
    assert main(["supervectors", str(corpus / "bg.csv"), "--ubm", str(ubm), "--out", str(tmp_path / "a.npz"),
                 "--quiet"]) == 0
    assert sum(count_extractions.values()) == n  # read from the UBM's store
    assert main(["supervectors", str(corpus / "enroll.csv"), "--ubm", str(ubm), "--out", str(tmp_path / "b.npz"),
                 "--features-dir", str(feats), "--quiet"]) == 0
    assert sum(count_extractions.values()) == n + 8
    assert not (feats / "store.json").exists() and len([p for p in feats.iterdir() if p.is_dir()]) == 1
    assert main(["train-ubm", str(corpus / "bg.csv"), "--out", str(tmp_path / "u13.npz"), "-k", "4",
                 "--iterations", "1", "--n-mfcc", "13", "--features-dir", str(feats), "--quiet"]) == 0
    # the same supervectors as from freshly extracted features (the UBM's store moved away)
    feats.rename(tmp_path / "moved")
    n = sum(count_extractions.values())
    assert main(["supervectors", str(corpus / "bg.csv"), "--ubm", str(ubm), "--out", str(tmp_path / "c.npz"),
                 "--quiet"]) == 0
    assert sum(count_extractions.values()) == n + 10
    a, c = np.load(tmp_path / "a.npz"), np.load(tmp_path / "c.npz")
    assert list(a["ids"]) == list(c["ids"])
    np.testing.assert_array_equal(a["supervectors"], c["supervectors"])


def test_train_ivector_pools_sources_as_speaker_id(corpus, tmp_path, capsys):  # noqa: F811
    """train-ivector BG ENR (several sources, pooled in order, as train-ubm) trains the
    total-variability matrix speaker-id --system ivector trains on background + enrolment
    recordings: the same matrix from its UBM. Before, train-ivector took one source."""
    from gmmspeech.backend.extractor import load_extractor

    out = tmp_path / "iv"
    assert main(["speaker-id", "--background", str(corpus / "bg.csv"), "--enroll", str(corpus / "enroll.csv"),
                 "--test", str(corpus / "test.csv"), "--out", str(out), "-k", "8", "--iterations", "2",
                 "--system", "ivector", "--ivector-iterations", "2", "--ivector-tv-seeds", "1",
                 "--quiet"]) == 1  # the corpus' bad file
    ext = tmp_path / "ext.npz"
    assert main(["train-ivector", str(corpus / "bg.csv"), str(corpus / "enroll.csv"), "--ubm", str(out / "ubm.npz"),
                 "--out", str(ext), "--iterations", "2", "--quiet"]) == 0
    want, got = load_extractor(out / "ivector_extractor.npz"), load_extractor(ext)
    assert got.rank_ == want.rank_
    np.testing.assert_allclose(got.T_, want.T_, rtol=1e-10, atol=1e-12)
    assert got.metadata_["feature_stores"] == [str(out / "features")]
    # an id that names two different files is an error, not silently pooled
    clash = tmp_path / "clash.csv"
    clash.write_text("id,path,label\nbg0_0," + str(corpus / "ann_e0.wav") + ",ann\n")
    capsys.readouterr()
    assert main(["train-ivector", str(corpus / "bg.csv"), str(clash), "--ubm", str(out / "ubm.npz"),
                 "--out", str(tmp_path / "x.npz"), "--quiet"]) == 2
    assert "ids must be unique across the sources" in capsys.readouterr().err


def test_feature_options_that_differ_from_the_model_warn(corpus, tmp_path, capsys):  # noqa: F811
    """enroll (and every command that reads a UBM's saved feature configuration) with a
    --preset or front-end option giving other features of the same dimensions warns, naming
    the model file and both configurations; with the saved configuration it says nothing.
    Before, a PLP UBM took 60-dim MFCCs from --preset speech silently."""
    ubm = tmp_path / "ubm.npz"
    assert main(["train-ubm", str(corpus / "bg.csv"), "--out", str(ubm), "-k", "4", "--iterations", "1",
                 "--preset", "plp", "--quiet"]) == 0
    from gmmspeech.mixture import io as mio
    from gmmspeech.speaker.defaults import speaker_feature_config

    saved = mio.load(ubm).metadata_["feature_config_hash"]
    speech = speaker_feature_config("speech", {})
    assert speech.n_features == mio.load(ubm).means_.shape[1]  # same dimensions, other features
    capsys.readouterr()
    base = ["enroll", "--ubm", str(ubm), "--manifest", str(corpus / "enroll.csv"), "--quiet"]
    assert main([*base, "--out", str(tmp_path / "a")]) == 0
    assert "warning" not in capsys.readouterr().err
    assert main([*base, "--out", str(tmp_path / "b"), "--preset", "speech"]) == 0
    err = capsys.readouterr().err
    assert "warning: --preset speech" in err and str(ubm) in err
    assert saved in err and speech.config_hash() in err


def test_train_ubm_uses_a_file_in_two_sources_once(corpus, tmp_path, capsys):  # noqa: F811
    """speaker-id trains its UBM on the background rows and the enrolment rows not among
    them; train-ubm BG ENR now does the same when the manifests share rows (same id, same
    file: used once, with a note), so the step-by-step UBM is the run's. Before, the shared
    files were trained on twice and the means differed by up to 6.6."""
    from gmmspeech.mixture import io as mio

    bg = tmp_path / "bgplus.csv"  # the background plus 4 of the enrolment rows
    enr_lines = (corpus / "enroll.csv").read_text().splitlines()
    bg.write_text("\n".join((corpus / "bg.csv").read_text().splitlines() + enr_lines[1:5]) + "\n")
    out = tmp_path / "run"
    common = ["-k", "8", "--iterations", "3", "--data-root", str(corpus), "--quiet"]
    assert main(["speaker-id", "--background", str(bg), "--enroll", str(corpus / "enroll.csv"),
                 "--test", str(corpus / "test.csv"), "--out", str(out), *common]) == 1  # the bad file
    ubm = tmp_path / "ubm.npz"
    capsys.readouterr()
    assert main(["train-ubm", str(bg), str(corpus / "enroll.csv"), "--out", str(ubm), *common[:-1]]) == 0
    assert "4 of 8 rows are in an earlier source" in capsys.readouterr().err
    a, b = mio.load(out / "ubm.npz"), mio.load(ubm)
    np.testing.assert_allclose(b.means_, a.means_, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(b.weights_, a.weights_, rtol=1e-10, atol=1e-12)
    # the same manifest twice is the manifest once
    assert main(["train-ubm", str(corpus / "bg.csv"), str(corpus / "bg.csv"), "--out", str(tmp_path / "twice.npz"),
                 *common]) == 0
    assert main(["train-ubm", str(corpus / "bg.csv"), "--out", str(tmp_path / "once.npz"), *common]) == 0
    np.testing.assert_array_equal(mio.load(tmp_path / "twice.npz").means_, mio.load(tmp_path / "once.npz").means_)
