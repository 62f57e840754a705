"""Exceptions of gmmspeech. Every error names the file, line or argument at fault."""

from __future__ import annotations

import os


def _rebuild(cls, args, kwargs, state):
    exc = cls(*args, **kwargs)
    exc.__dict__.update(state)
    return exc


class GMMSpeechError(Exception):
    """Base class of every error gmmspeech raises on purpose.

    Instances pickle with their constructor's arguments (not just the formatted message),
    so an error raised in a worker process reaches the caller with its class, path and
    reason intact.
    """

    def __new__(cls, *args, **kwargs):
        self = super().__new__(cls, *args)
        self._init_args = (args, kwargs)
        return self

    def __reduce__(self):
        args, kwargs = self.__dict__.get("_init_args", (self.args, {}))
        state = {k: v for k, v in self.__dict__.items() if k != "_init_args"}
        return _rebuild, (type(self), args, kwargs, state)


class AudioError(GMMSpeechError, ValueError):
    """An audio file could not be turned into samples.

    Parameters
    ----------
    path : path-like or None
        The file at fault (None for an in-memory signal).
    reason : str
        Why, in a few words ("missing", "empty", "non-finite samples", ...).
    """

    def __init__(self, path: str | os.PathLike | None, reason: str):
        self.path = None if path is None else os.fspath(path)
        self.reason = reason
        where = "<signal>" if self.path is None else self.path
        super().__init__(f"{where}: {reason}")


class FeatureError(AudioError):
    """Audio was read but gave no usable feature frames (e.g. VAD kept nothing)."""


class ManifestError(GMMSpeechError, ValueError):
    """A manifest (CSV file list) is malformed; the message names file and line."""

    def __init__(self, path: str | os.PathLike, line: int | None, reason: str):
        self.path = os.fspath(path)
        self.line = line
        self.reason = reason
        where = self.path if line is None else f"{self.path}, line {line}"
        super().__init__(f"{where}: {reason}")


class ModelFileError(GMMSpeechError, ValueError):
    """A model file is missing, truncated, tampered with, or not a gmmspeech model.

    Parameters
    ----------
    path : path-like
        The file at fault.
    reason : str
        What is wrong.
    field : str or None
        The part of the file at fault (``"covariances"``, ``"metadata.feature_config.n_mels"``,
        ``"fitted.n_iter_"``, ...), when one is.
    """

    def __init__(self, path: str | os.PathLike, reason: str, field: str | None = None):
        self.path = os.fspath(path)
        self.reason = reason
        self.field = field
        where = self.path if field is None else f"{self.path}: {field}"
        super().__init__(f"{where}: {reason}")


class UsageError(GMMSpeechError, ValueError):
    """A command-line argument is invalid; the message names the flag (exit code 2)."""
