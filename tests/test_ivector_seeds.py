"""Several i-vector systems from other random starts of the TV matrix (``tv_seeds``,
``speaker-id --ivector-tv-seeds N|auto``; "auto", the default, is 3 systems below 4,000 TV
training recordings): each member is the single system of seed (the same UBM and statistics)
``random_state + j`` (checked against an extractor fitted directly on the same statistics
and against the single-system runs), the scores are their mean, the fusion's held-out
scores are averaged the same way (columns aligned), files and settings are written, and a
bad count is refused before any work."""

from __future__ import annotations

import json

import numpy as np
import pytest
from test_cli_ivector import _run
from test_cli_speaker import corpus  # noqa: F401  (the module-scoped corpus fixture)
from test_ivector_background import toy  # noqa: F401  (the module-scoped toy fixture)
from test_ivector_shrinkage import _Store

PAR = dict(n_jobs=1, backend=None, scheduler=None)


def _scores(toy, out, opts, random_state):  # noqa: F811
    from gmmspeech.speaker import pipeline

    rows, stores, _xr, _xf, ubm = toy
    out.mkdir(parents=True, exist_ok=True)
    return pipeline._ivector_scores(ubm, stores, rows, str(out), pipeline.ivector_settings(opts), random_state,
                                    PAR, False, lambda m: None)


def test_members_are_the_single_systems_of_the_next_seeds_and_scores_their_mean(toy, tmp_path):  # noqa: F811
    from gmmspeech.backend.extractor import IVectorExtractor, load_extractor

    base = {"rank": 3, "n_iter": 3}
    ens = _scores(toy, tmp_path / "ens", {**base, "tv_seeds": 3}, 5)
    singles = [_scores(toy, tmp_path / f"one{j}", {**base, "tv_seeds": 1}, 5 + j) for j in range(3)]
    assert len(ens["members"]) == 3
    labels = ens["model_labels"]
    assert labels == singles[0]["model_labels"]
    for j, (mem, one) in enumerate(zip(ens["members"], singles, strict=True)):
        assert mem["random_state"] == 5 + j
        np.testing.assert_allclose(mem["extractor"].T_, one["extractor"].T_, rtol=0, atol=1e-12)
        np.testing.assert_allclose(mem["scores"], one["scores"], rtol=1e-10, atol=1e-10)
        # the member's TV matrix: an extractor fitted directly on the same statistics from seed 5 + j
        direct = IVectorExtractor(rank=3, n_iter=3, ubm=toy[4], random_state=5 + j).fit(ens["tv_stats"])
        np.testing.assert_allclose(mem["extractor"].T_, direct.T_, rtol=1e-10, atol=1e-12)
        # and its file, beside the first member's ivector_extractor.npz / ivector_backend.npz
        suffix = "" if j == 0 else f".{j}"
        saved = load_extractor(tmp_path / "ens" / f"ivector_extractor{suffix}.npz")
        np.testing.assert_allclose(saved.T_, one["extractor"].T_, rtol=0, atol=1e-12)
        assert (tmp_path / "ens" / f"ivector_backend{suffix}.npz").is_file()
    # different random starts give different systems, and the scores are their mean
    assert not np.allclose(singles[0]["scores"], singles[1]["scores"])
    mean = np.mean([one["scores"] for one in singles], axis=0)
    np.testing.assert_allclose(ens["scores"], mean, rtol=1e-10, atol=1e-10)
    # one seed: exactly the single system (no members list)
    one = _scores(toy, tmp_path / "k1", {**base, "tv_seeds": 1}, 5)
    assert "members" not in one
    np.testing.assert_array_equal(one["scores"], singles[0]["scores"])


def test_heldout_scores_are_averaged_over_members_with_columns_aligned(monkeypatch):
    from gmmspeech.speaker import pipeline

    # two members whose held-out back-ends list the same models in another order
    a = {"name": "a", "opts": {"o": 1}}
    b = {"name": "b", "opts": {"o": 2}}
    sa = np.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
    sb = np.array([[30.0, 10.0, 20.0], [60.0, 40.0, 50.0]])  # columns (z, x, y)
    calls = []

    def fake_heldout_ivectors(mem, role, enr, tst, opts, par):
        calls.append((mem["name"], opts))
        return mem["name"]

    def fake_scores(mem, fold, enr, held, opts):
        return (["x", "y", "z"], sa) if held == "a" else (["z", "x", "y"], sb)

    monkeypatch.setattr(pipeline, "_heldout_ivectors", fake_heldout_ivectors)
    monkeypatch.setattr(pipeline, "_heldout_ivector_scores", fake_scores)
    labels, s = pipeline._heldout_ensemble_scores({"members": [a, b]}, {"x"}, "enroll", [], [], {"o": 0}, PAR)
    assert labels == ["x", "y", "z"]
    np.testing.assert_allclose(s, [[5.5, 11.0, 16.5], [22.0, 27.5, 33.0]])  # by hand: (a + b aligned) / 2
    assert calls == [("a", {"o": 1}), ("b", {"o": 2})]  # each member with its own resolved options
    # a single system (no members): its own held-out scores
    labels, s = pipeline._heldout_ensemble_scores({"name": "a"}, {"x"}, "enroll", [], [], {"o": 0}, PAR)
    np.testing.assert_array_equal(s, sa)
    assert calls[-1] == ("a", {"o": 0})  # no resolved options of its own: the run's


def test_each_members_heldout_tv_matrix_starts_from_its_own_seed(toy, tmp_path, monkeypatch):  # noqa: F811
    """The fusion's held-out systems: each member's TV matrix retrained (without the held-out
    tests) from that member's start, on the statistics the real members share."""
    from gmmspeech.backend import extractor as ex
    from gmmspeech.speaker import pipeline

    rows, stores, _xr, _xf, _ubm = toy
    ens = _scores(toy, tmp_path / "ens", {"rank": 3, "n_iter": 3, "tv_seeds": 3}, 5)
    # held-out trials by hand: each enrolled speaker's first recording enrols, its second tests
    enr, tst = [], []
    for i, r in enumerate(rows["enroll"]):
        (enr if r.id.endswith("_0") else tst).append((r.label, stores["enroll"][i], i, True))
    fits = []
    real_fit = ex.IVectorExtractor.fit

    def spy(self, X, y=None):
        fits.append((self.random_state, len(X)))
        return real_fit(self, X, y)

    monkeypatch.setattr(ex.IVectorExtractor, "fit", spy)
    opts = pipeline.ivector_settings({"rank": 3, "n_iter": 3, "tv_seeds": 3})
    pipeline._heldout_ensemble_scores(ens, {r.label for r in rows["enroll"]}, "enroll", enr, tst, opts, PAR)
    n_tv = len(ens["tv_stats"]) - len(tst)  # the real TV data without the held-out tests
    assert fits == [(5, n_tv), (6, n_tv), (7, n_tv)]


def test_unseeded_runs_and_stale_member_files(toy, tmp_path):  # noqa: F811
    from gmmspeech.backend.extractor import load_extractor

    base = {"rank": 3, "n_iter": 3}
    out = tmp_path / "run"
    # random_state None: every member unseeded (no error after the first member's work)
    res = _scores(toy, out, {**base, "tv_seeds": 3}, None)
    assert [m["random_state"] for m in res["members"]] == [None, None, None]
    assert not np.allclose(res["members"][1]["extractor"].T_, res["members"][2]["extractor"].T_)
    assert load_extractor(out / "ivector_extractor.2.npz").metadata_["random_state"] is None
    # a later run with fewer systems into the same folder removes the extra systems' files
    (out / "ivector_backend.7.npz").write_bytes(b"left by someone")
    (out / "notes.npz").write_bytes(b"not ours")
    _scores(toy, out, {**base, "tv_seeds": 2}, 0)
    names = sorted(p.name for p in out.iterdir())
    assert "ivector_extractor.1.npz" in names and "ivector_backend.1.npz" in names
    assert not {"ivector_extractor.2.npz", "ivector_backend.2.npz", "ivector_backend.7.npz"} & set(names)
    assert "notes.npz" in names and load_extractor(out / "ivector_extractor.1.npz").metadata_["random_state"] == 1


def test_a_bad_count_fails_before_any_work(tmp_path):
    from gmmspeech.speaker.pipeline import run_speaker_id

    # manifests that do not exist: the count is refused before any file is read
    with pytest.raises(ValueError, match=r"tv_seeds=0 must be an integer >= 1 or 'auto'"):
        run_speaker_id(tmp_path / "bg.csv", tmp_path / "enr.csv", tmp_path / "test.csv", tmp_path / "out",
                       system="ivector", ivector_options={"tv_seeds": 0}, verbose=False)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "3", "Auto"])
def test_bad_counts_are_refused(bad):
    from gmmspeech.speaker import pipeline

    with pytest.raises(ValueError, match=r"tv_seeds=.* must be an integer >= 1 or 'auto'"):
        pipeline._tv_seeds(pipeline.ivector_settings({"tv_seeds": bad}))


def test_auto_is_three_systems_below_4000_tv_recordings_else_one(toy, tmp_path):  # noqa: F811
    from gmmspeech.speaker import pipeline

    auto = pipeline.ivector_settings({})
    assert auto["tv_seeds"] == "auto"  # the default
    assert pipeline._tv_seeds(auto, 400) == 3 and pipeline._tv_seeds(auto, 3999) == 3
    assert pipeline._tv_seeds(auto, 4000) == 1 and pipeline._tv_seeds(auto, 100_000) == 1
    assert pipeline._tv_seeds({"tv_seeds": 2}, 100_000) == 2  # a number is taken as it is
    # the toy corpus (15 TV recordings): the default run is the 3-system one
    base = {"rank": 3, "n_iter": 3}
    default = _scores(toy, tmp_path / "auto", base, 0)
    three = _scores(toy, tmp_path / "three", {**base, "tv_seeds": 3}, 0)
    assert len(default["members"]) == 3
    np.testing.assert_array_equal(default["scores"], three["scores"])


def test_cli_flag_fusion_with_two_systems(corpus, tmp_path, capsys):  # noqa: F811
    out = tmp_path / "two"
    assert _run(corpus, out, "fusion", "--ivector-tv-seeds", "2") == 1  # the corpus' one bad file
    res = json.loads((out / "results.json").read_text())
    assert res["settings"]["ivector"]["tv_seeds"] == 2 and res["ivector_systems"] == 2
    for name in ("ivector_extractor.npz", "ivector_extractor.1.npz", "ivector_backend.npz",
                 "ivector_backend.1.npz"):
        assert (out / name).is_file()
    assert np.isfinite(res["eer"]) and set(res["components"]) == {"gmm-ubm", "ivector"}
    one = tmp_path / "one"
    assert _run(corpus, one, "ivector", "--ivector-tv-seeds", "1") == 1
    assert not (one / "ivector_extractor.1.npz").exists()
    assert json.loads((one / "results.json").read_text())["ivector_systems"] == 1
    default = tmp_path / "default"  # auto: 3 systems with this corpus' few TV recordings
    assert _run(corpus, default, "ivector") == 1
    res = json.loads((default / "results.json").read_text())
    assert res["settings"]["ivector"]["tv_seeds"] == "auto" and res["ivector_systems"] == 3
    assert (default / "ivector_extractor.2.npz").is_file() and not (default / "ivector_extractor.3.npz").exists()
    two = tmp_path / "two-iv"
    assert _run(corpus, two, "ivector", "--ivector-tv-seeds", "2") == 1
    assert (one / "scores.tsv").read_text() != (two / "scores.tsv").read_text()
    capsys.readouterr()
    # a bad count: a usage error naming the flag, before any work (no results written)
    bad = tmp_path / "bad"
    assert _run(corpus, bad, "ivector", "--ivector-tv-seeds", "0") == 2
    assert "--ivector-tv-seeds must be >= 1, got 0" in capsys.readouterr().err
    assert not bad.exists()
    for v in ("many", "+3", "٣"):
        assert _run(corpus, bad, "ivector", "--ivector-tv-seeds", v) == 2
        assert f"--ivector-tv-seeds must be an integer >= 1 or auto, got {v!r}" in capsys.readouterr().err
        assert not bad.exists()


def test_each_member_chooses_its_own_whitening_on_its_own_heldout_trials(toy, tmp_path):  # noqa: F811
    """With an extra background and in-domain whitening, ``whiten_shrinkage="auto"`` is
    resolved per member: member j's choice, its report and its scores are those of the
    single system of seed ``random_state + j`` (held-out trials and TV retraining included).
    On this toy every member's held-out EERs tie at 0, so each takes "ledoit-wolf" by the tie
    rule: the test pins the per-member path and its scores, not two different choices."""
    from types import SimpleNamespace

    from gmmspeech.speaker import pipeline

    rows, stores, x_rows, x_frames, ubm = toy
    rows = {role: [SimpleNamespace(id=r.id, label=r.label, path=f"{r.id}.wav") for r in rs]
            for role, rs in rows.items()}
    stores = {role: _Store(rows[role], stores[role]) for role in rows}
    extra = [{"store": x_frames, "ids": [r.id for r in x_rows], "labels": [f"extra1:{r.label}" for r in x_rows],
              "tv": True}]
    base = {"rank": 3, "n_iter": 3, "uncertainty": False, "domain_norm": "whiten"}

    def run(opts, seed, name):
        out = tmp_path / name
        out.mkdir()
        return pipeline._ivector_scores(ubm, stores, rows, str(out), pipeline.ivector_settings(opts), seed, PAR,
                                        False, lambda m: None, extra=extra)

    ens = run({**base, "tv_seeds": 3}, 2, "ens")
    for j, mem in enumerate(ens["members"]):
        one = run({**base, "tv_seeds": 1}, 2 + j, f"one{j}")
        ch = mem["whiten_choice"]
        assert ch["reason"] == "held-out trials" and ch == one["whiten_choice"]
        assert mem["opts"]["whiten_shrinkage"] == ch["chosen"] == mem["backend"].whiten_shrinkage
        np.testing.assert_allclose(mem["scores"], one["scores"], rtol=1e-10, atol=1e-10)
