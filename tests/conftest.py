"""Shared fixtures. Unit tests make their own small signals; tests that need the shared
corpora skip with a reason where ``../shared/datasets`` is absent."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

# One numba cache per pytest-xdist worker (inherited by the CLI subprocesses and loky workers it
# starts): two workers compiling and writing librosa's cached gufuncs (localmin/localmax) into
# the same site-packages cache at once left entries that crashed a later load with a segfault.
# Set before anything imports numba. The controller process loads this file first and its
# environment is the workers', so a directory this file chose (marked) is replaced in each
# worker; a NUMBA_CACHE_DIR the user set is kept.
_OWN_CACHE = "GMMSPEECH_TEST_NUMBA_CACHE_DIR"
if "NUMBA_CACHE_DIR" not in os.environ or os.environ["NUMBA_CACHE_DIR"] == os.environ.get(_OWN_CACHE):
    import tempfile

    os.environ["NUMBA_CACHE_DIR"] = os.environ[_OWN_CACHE] = os.path.join(
        tempfile.gettempdir(), f"gmmspeech-test-numba-{os.environ.get('PYTEST_XDIST_WORKER', 'main')}")

ROOT = Path(__file__).resolve().parents[1]
DATASETS = Path(os.environ.get("GMMSPEECH_DATASETS", ROOT.parent / "shared" / "datasets"))


def _dataset(name: str) -> Path:
    path = DATASETS / name
    if not path.is_dir():
        pytest.skip(f"shared dataset {name!r} not found at {path} (set GMMSPEECH_DATASETS)")
    return path


@pytest.fixture(scope="session")
def datasets_root() -> Path:
    """``../shared/datasets`` (skips the test when absent)."""
    if not DATASETS.is_dir():
        pytest.skip(f"shared datasets not found at {DATASETS} (set GMMSPEECH_DATASETS)")
    return DATASETS


@pytest.fixture(scope="session")
def fsdd_root() -> Path:
    return _dataset("fsdd")


@pytest.fixture(scope="session")
def librispeech_root() -> Path:
    return _dataset("librispeech")


@pytest.fixture(scope="session")
def faithful_csv() -> Path:
    path = _dataset("old-faithful") / "faithful.csv"
    if not path.is_file():
        pytest.skip(f"{path} not found")
    return path


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)


def speechlike(sr: int = 16000, seconds: float = 1.0, f0: float = 120.0, seed: int = 0) -> np.ndarray:
    """A small voiced, speech-like test signal: harmonics of f0 with a formant-ish envelope."""
    r = np.random.default_rng(seed)
    t = np.arange(int(sr * seconds)) / sr
    y = np.zeros_like(t)
    for h in range(1, int(min(4000, sr / 2 - 100) // f0)):
        f = h * f0
        amp = np.exp(-((f - 700) / 400) ** 2) + 0.6 * np.exp(-((f - 1700) / 500) ** 2) + 0.05
        y += amp * np.sin(2 * np.pi * f * t + r.uniform(0, 2 * np.pi))
    y += 0.01 * r.standard_normal(t.size)
    return (0.3 * y / np.max(np.abs(y))).astype(np.float32)


@pytest.fixture
def write_wav(tmp_path):
    """``write_wav(name, y, sr, subtype=None)`` writes a file under tmp_path and returns its path."""
    import soundfile as sf

    def _write(name: str, y: np.ndarray, sr: int, subtype: str | None = None, format: str | None = None) -> Path:
        path = tmp_path / name
        sf.write(path, y, sr, subtype=subtype, format=format)
        return path

    return _write
