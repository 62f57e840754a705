"""Atomic file writes: a reader sees the old file or the whole new one, never a part.

The data goes to a temporary file in the destination's folder (same file system), which
then replaces the destination with ``os.replace``. A crash leaves at worst a temporary
file, never a truncated destination. The file gets the permissions ``open`` would give it
(0666 less the umask), not ``mkstemp``'s owner-only 0600, so models, scores and reports are
as readable by a team or a cluster's workers as any other output.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable
from typing import IO


def _create_unique(folder: str, name: str) -> tuple[int, str]:
    """A new hidden ``.NAME.<random>.tmp`` in ``folder``, created exclusively with mode 0666
    less the umask (``tempfile.mkstemp`` would make it 0600 whatever the umask)."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    for _ in range(100):
        tmp = os.path.join(folder, f".{name}.{uuid.uuid4().hex[:12]}.tmp")
        try:
            return os.open(tmp, flags, 0o666), tmp
        except FileExistsError:
            continue
    raise FileExistsError(f"{folder}: no unused temporary name for {name}")  # pragma: no cover


def atomic_write(
    path: str | os.PathLike,
    write: Callable[[IO[bytes]], object],
    *,
    tmp_path: str | None = None,
    sync: bool = True,
) -> str:
    """Write a file atomically through ``write(binary_file_handle)``.

    Parameters
    ----------
    path : path-like
        The destination; its folder is created if needed.
    write : callable
        Writes the content to the open binary handle it is given.
    tmp_path : str or None
        The temporary file to use (default: a unique hidden name beside ``path``).
        Callers that clean up after crashed writers pass a name they can recognise.
    sync : bool
        ``fsync`` the data before the rename (durable across a power loss).

    Returns
    -------
    str
        ``path`` as a string.
    """
    final = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(final))
    os.makedirs(folder, exist_ok=True)
    if tmp_path is None:
        fd, tmp = _create_unique(folder, os.path.basename(final))
        fh = os.fdopen(fd, "wb")
    else:
        tmp = tmp_path
        fh = open(tmp, "wb")  # noqa: SIM115 - closed by the with block below
    try:
        with fh:
            write(fh)
            if sync:
                fh.flush()
                os.fsync(fh.fileno())
        os.replace(tmp, final)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    return final


def atomic_write_text(path: str | os.PathLike, text: str, *, tmp_path: str | None = None,
                      sync: bool = True) -> str:
    """Write UTF-8 text atomically (see :func:`atomic_write`)."""
    data = text.encode("utf-8")
    return atomic_write(path, lambda fh: fh.write(data), tmp_path=tmp_path, sync=sync)
