"""Progress that tells the truth: plain lines in logs, bars only on a terminal, no remaining
time before the first item is done, one line per stage with counts."""

from __future__ import annotations

import io
import re

import numpy as np
import pytest

from gmmspeech import progress
from gmmspeech.parallel import parallel_map


class _TTY(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_format_duration():
    assert progress.format_duration(3.25) == "3.2 s"
    assert progress.format_duration(42) == "42 s"
    assert progress.format_duration(288) == "4 min 48 s"
    assert progress.format_duration(3720) == "1 h 02 min"


def test_mode_follows_the_stream_and_the_environment(monkeypatch):
    monkeypatch.delenv("GMMSPEECH_PROGRESS", raising=False)
    assert progress.progress_mode(io.StringIO()) == "lines"
    assert progress.progress_mode(_TTY()) == "bar"
    monkeypatch.setenv("GMMSPEECH_PROGRESS", "off")
    assert progress.progress_mode(_TTY()) == "off"


def test_lines_in_a_log_no_eta_before_the_first_item(monkeypatch):
    monkeypatch.delenv("GMMSPEECH_PROGRESS", raising=False)
    clock = [100.0]
    monkeypatch.setattr(progress.time, "monotonic", lambda: clock[0])
    log = io.StringIO()
    bar = progress.progress_bar(10, desc="features", unit="files", stream=log, interval=5.0)
    clock[0] += 30.0  # a slow first file: still nothing printed, so no estimate made up
    assert log.getvalue() == ""
    bar.update(1)  # first line: 1 of 10 after 30 s, which includes the start-up: no estimate
    clock[0] += 1.0
    bar.update(1)  # within the interval: no line
    clock[0] += 9.0
    bar.update(1)  # 2 files in the 10 s since the first -> 7 more at 5 s: 35 s
    bar.close()
    lines = log.getvalue().splitlines()
    assert lines[0] == "features: 1/10 files (10.0 %), 30 s"
    assert lines[1] == "features: 3/10 files (30.0 %), 40 s, about 35 s left"
    assert lines[2] == "features: 3/10 files (30.0 %), 40 s, about 35 s left"
    assert "\r" not in log.getvalue()


def test_resumed_counter_estimates_from_new_items_only(monkeypatch):
    monkeypatch.delenv("GMMSPEECH_PROGRESS", raising=False)
    clock = [0.0]
    monkeypatch.setattr(progress.time, "monotonic", lambda: clock[0])
    log = io.StringIO()
    bar = progress.progress_bar(10, desc="UBM EM", unit="iter", initial=5, stream=log, interval=0)
    clock[0] += 20.0
    bar.update(1)
    clock[0] += 20.0
    bar.update(1)
    assert log.getvalue().splitlines()[1] == "UBM EM: 7/10 iter (70.0 %), 40 s, about 1 min 00 s left"


def test_terminal_gets_a_bar_with_the_average_rate(monkeypatch):
    monkeypatch.delenv("GMMSPEECH_PROGRESS", raising=False)
    tty = _TTY()
    bar = progress.progress_bar(5, desc="x", unit="files", stream=tty, leave=True)
    assert type(bar).__name__ == "tqdm" and bar.smoothing == 0
    bar.update(5)
    bar.close()
    assert "0/5 [00:00<?" in tty.getvalue() and "5/5" in tty.getvalue()


def test_parallel_map_progress_is_plain_lines_in_a_log(monkeypatch, capsys):
    monkeypatch.delenv("GMMSPEECH_PROGRESS", raising=False)
    monkeypatch.setattr(progress, "LINE_INTERVAL", 0.0)
    out = parallel_map(abs, [-1, -2, -3], progress=True, desc="abs", unit="numbers")
    assert out == [1, 2, 3]
    err = capsys.readouterr().err  # pytest's captured stderr is not a terminal
    assert "\r" not in err
    assert re.search(r"^abs: 3/3 numbers \(100\.0 %\)", err, re.M)


def test_ubm_training_reports_frames_and_initialisation(capsys, monkeypatch):
    from gmmspeech.speaker.ubm import train_ubm

    monkeypatch.delenv("GMMSPEECH_PROGRESS", raising=False)
    rng = np.random.default_rng(0)
    utts = [rng.standard_normal((300, 3)).astype(np.float32) for _ in range(4)]
    train_ubm(utts, 2, max_iter=2, random_state=0, progress=True)
    err = capsys.readouterr().err
    assert "UBM: 1,200 frames of 3 dims" in err
    assert "UBM: initialising 2 components (split) from a sample of 1,200 frames" in err
    assert re.search(r"UBM: initialised in [0-9.]+ s", err)
    assert re.search(r"^UBM EM: 2/2 iter \(100\.0 %\)", err, re.M)


def test_split_initialisation_reports_its_em_passes(capsys, monkeypatch):
    """The binary-splitting initialisation (minutes with full covariances) writes periodic
    lines counting component-iterations: sizes 2, 4, 5 with 3 EM passes each = 3 * 11."""
    from gmmspeech.mixture.gmm import GMM
    from gmmspeech.speaker.ubm import train_ubm

    monkeypatch.delenv("GMMSPEECH_PROGRESS", raising=False)
    monkeypatch.setattr(progress, "LINE_INTERVAL", 0.0)
    rng = np.random.default_rng(1)
    X = rng.standard_normal((400, 3))
    g = GMM(5, covariance_type="full", init_params="split", split_iter=3, random_state=0)
    g.initialize(X, progress=True, desc="init")
    err = capsys.readouterr().err
    counts = [int(m) for m in re.findall(r"^init \(split\): (\d+)/33 component-iterations", err, re.M)]
    # one line per EM pass (interval 0): 2,2,2, 4,4,4, 5,5,5 components added up
    assert counts == [2, 4, 6, 10, 14, 18, 23, 28, 33]
    assert "components=5/5, iteration=3/3" in err.splitlines()[-1]
    # the same parameters as without progress
    ref = GMM(5, covariance_type="full", init_params="split", split_iter=3, random_state=0).initialize(X)
    np.testing.assert_array_equal(g.means_, ref.means_)
    # train_ubm passes it on: the initialisation of a UBM is reported between its stage lines
    train_ubm([X[:200].astype(np.float32), X[200:].astype(np.float32)], 4, "full", max_iter=1,
              random_state=0, progress=True)
    err = capsys.readouterr().err
    assert re.search(r"initialising 4 components \(split\).*\n(.*\n)*UBM initialisation \(split\): "
                     r"30/30 component-iterations.*\n(.*\n)*UBM: initialised in", err)
    monkeypatch.setenv("GMMSPEECH_PROGRESS", "off")
    GMM(4, init_params="split", random_state=0).initialize(X, progress=True)
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize("name", ["demo", "speaker_id", "digits", "fsdd", "score_files",
                                  "train_corpus", "em_tutorial"])
def test_recipe_help_has_a_description(name, capsys):
    from gmmspeech.cli import main

    try:  # a packaged recipe's parser exits; a script's launcher returns the script's status
        assert main(["recipe", name, "--help"]) == 0
    except SystemExit as exc:
        assert exc.code == 0
    text = capsys.readouterr().out
    assert "report.md" in text and "results.json" in text
