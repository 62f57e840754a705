"""One source of defaults: speaker-id, the step-by-step commands, run_speaker_id and the
recipes all take theirs from gmmspeech.speaker.defaults.SPEAKER_DEFAULTS."""

from __future__ import annotations

import inspect

import pytest

from gmmspeech.cli import build_parser
from gmmspeech.cli.cmd_speaker import speaker_id_settings
from gmmspeech.speaker.defaults import (
    CLASSIC_SETTINGS,
    PROTOCOL_PRESETS,
    SPEAKER_DEFAULTS,
    protocol_settings,
    speaker_defaults,
    speaker_feature_config,
)

BASE = ["speaker-id", "--background", "b.csv", "--enroll", "e.csv", "--test", "t.csv", "--out", "o"]


def test_run_speaker_id_signature_is_the_defaults():
    from gmmspeech.speaker.pipeline import run_speaker_id

    params = inspect.signature(run_speaker_id).parameters
    for key, value in SPEAKER_DEFAULTS.items():
        if key in ("preset", "feature_overrides"):
            assert params[key].default is None  # None = the default feature configuration
            continue
        assert params[key].default == value, key


def test_speaker_id_without_flags_is_the_defaults():
    args = build_parser().parse_args(BASE)
    s = speaker_id_settings(args)
    expected = speaker_defaults()
    for key in ("covariance_type", "max_iter", "ubm_init"):
        assert getattr(args, {"covariance_type": "covariance", "max_iter": "iterations",
                              "ubm_init": "init"}[key]) == expected.pop(key)
    assert s == expected


def test_step_by_step_commands_share_the_defaults():
    p = build_parser()
    a = p.parse_args(["train-ubm", "bg.csv", "--out", "u.npz"])
    assert (a.components, a.covariance, a.iterations, a.init) == (
        SPEAKER_DEFAULTS["n_components"], SPEAKER_DEFAULTS["covariance_type"],
        SPEAKER_DEFAULTS["max_iter"], SPEAKER_DEFAULTS["ubm_init"])
    a = p.parse_args(["enroll", "--ubm", "u.npz", "--manifest", "e.csv", "--out", "m"])
    assert (a.relevance, a.adapt) == (SPEAKER_DEFAULTS["relevance_factor"], SPEAKER_DEFAULTS["adapt"])
    a = p.parse_args(["score", "--ubm", "u.npz", "--models", "m", "--manifest", "t.csv", "--out", "s.tsv"])
    assert (a.mode, a.top_c, a.norm, a.norm_cohort) == (None, None, None, None)  # resolved from the defaults
    # the cohort models' MAP settings: the speaker models' own (recorded in their files), else the
    # defaults (tests/test_cli_interop.py::test_score_cohort_adapts_like_the_speaker_models)
    assert (a.relevance, a.adapt) == (None, None)
    # the feature configuration without --preset or a UBM is the speaker default
    from gmmspeech.cli.cmd_speaker import _config_for

    cfg = _config_for(p.parse_args(["train-ubm", "bg.csv", "--out", "u.npz"]))
    assert cfg == speaker_feature_config()
    for k, v in SPEAKER_DEFAULTS["feature_overrides"].items():
        assert getattr(cfg, k) == v


def test_a_named_preset_is_used_as_it_is():
    from gmmspeech.features.config import FeatureConfig

    assert speaker_feature_config("kaldi") == FeatureConfig.preset("kaldi")
    assert speaker_feature_config("speech") == FeatureConfig.preset("speech")
    assert speaker_feature_config(None, {"n_mfcc": 16}) == FeatureConfig.preset("speech").replace(
        **{**SPEAKER_DEFAULTS["feature_overrides"], "n_mfcc": 16})
    args = build_parser().parse_args(BASE + ["--preset", "kaldi"])
    assert speaker_id_settings(args)["feature_overrides"] == {}
    args = build_parser().parse_args(BASE + ["--cmvn", "sliding", "--vad"])
    fo = speaker_id_settings(args)["feature_overrides"]
    assert fo["cmvn"] == "sliding" and fo["vad"] is True


def test_named_settings_and_overrides():
    p = build_parser()
    s = speaker_id_settings(p.parse_args(BASE + ["--protocol", "classic"]))
    assert (s["n_components"], s["relevance_factor"], s["top_c"], s["norm"]) == (256, 16.0, 5, None)
    assert s["feature_overrides"] == {}
    s = speaker_id_settings(p.parse_args(BASE + ["--protocol", "classic", "-k", "64", "--norm", "snorm",
                                                 "--no-ubm-on-enroll", "--norm-cohort", "both"]))
    assert (s["n_components"], s["norm"], s["ubm_on_enroll"], s["norm_cohort"]) == (64, "snorm", False, "both")
    assert set(PROTOCOL_PRESETS) >= {"classic", "librispeech"}
    assert protocol_settings("classic") == CLASSIC_SETTINGS
    protocol_settings("librispeech")["feature_overrides"]["n_mfcc"] = 99
    assert protocol_settings("librispeech")["feature_overrides"]["n_mfcc"] == 24
    speaker_defaults()["feature_overrides"]["n_mfcc"] = 99
    assert SPEAKER_DEFAULTS["feature_overrides"].get("n_mfcc") != 99
    with pytest.raises(ValueError, match="not one of"):
        protocol_settings("timit")
