"""Progress that tells the truth, on a terminal and in a log.

On a terminal (stderr is a TTY) :func:`progress_bar` is a tqdm bar whose rate is the average
over the whole run (``smoothing=0``: one slow first item cannot promise hours) and which shows
no remaining time before the first item is done. Anywhere else (a log file, a pipe, a batch
system) it writes plain lines, at most one every ``interval`` seconds plus the last, e.g.::

    features: 120/3000 files (4.0 %), 12 s, about 4 min 48 s left

so a log never fills with carriage-return bars. The remaining time is estimated from the items
done after the first one (which also paid the start-up: worker processes, compilation), so it
appears from the second item on. :func:`stage` writes one line per stage of a
long job (counts and time). ``GMMSPEECH_PROGRESS=bar|lines|off`` overrides the choice.
"""

from __future__ import annotations

import os
import sys
import time
from typing import IO, Any

__all__ = ["progress_bar", "stage", "format_duration", "progress_mode"]

#: Seconds between two plain progress lines.
LINE_INTERVAL = 10.0


def format_duration(seconds: float) -> str:
    """``3 s``, ``4 min 48 s``, ``1 h 02 min``: short, readable durations."""
    s = max(0.0, float(seconds))
    if s < 60:
        return f"{s:.0f} s" if s >= 10 else f"{s:.1f} s"
    m, s = divmod(int(round(s)), 60)
    if m < 60:
        return f"{m} min {s:02d} s"
    h, m = divmod(m, 60)
    return f"{h} h {m:02d} min"


def progress_mode(stream: IO[str] | None = None) -> str:
    """``"bar"`` on a terminal, ``"lines"`` elsewhere (``GMMSPEECH_PROGRESS`` overrides)."""
    env = os.environ.get("GMMSPEECH_PROGRESS", "").strip().lower()
    if env in ("bar", "lines", "off"):
        return env
    stream = sys.stderr if stream is None else stream
    try:
        return "bar" if stream.isatty() else "lines"
    except (AttributeError, ValueError):
        return "lines"


class _Lines:
    """A tqdm-like counter that writes plain, periodic lines."""

    def __init__(self, total: int | None, desc: str | None, unit: str, initial: int,
                 stream: IO[str], interval: float):
        self.total = total
        self.desc = desc or "progress"
        self.unit = unit
        self.n = int(initial)
        self._initial = int(initial)
        self._stream = stream
        self._interval = float(interval)
        self._t0 = time.monotonic()
        self._last = self._t0
        self._postfix = ""
        self._closed = False
        self._first: tuple[float, int] | None = None  # (time, count) when the first item was done

    def set_postfix(self, **kw: Any) -> None:
        self._postfix = ", ".join(f"{k}={v}" for k, v in kw.items())

    def _line(self) -> str:
        el = time.monotonic() - self._t0
        if self.total:
            head = f"{self.desc}: {self.n}/{self.total} {self.unit} ({100.0 * self.n / self.total:.1f} %)"
        else:
            head = f"{self.desc}: {self.n} {self.unit}"
        parts = [head, format_duration(el)]
        if self.total and self._first is not None and self._first[1] < self.n < self.total:
            # the rate since the first item was done: the first one also paid the start-up
            # (worker processes, compilation, caches), which would inflate the estimate
            t1, n1 = self._first
            rate = (time.monotonic() - t1) / (self.n - n1)
            parts.append(f"about {format_duration(rate * (self.total - self.n))} left")
        if self._postfix:
            parts.append(self._postfix)
        return ", ".join(parts)

    def update(self, k: int = 1) -> None:
        self.n += int(k)
        now = time.monotonic()
        if self._first is None and k > 0:
            self._first = (now, self.n)
        if now - self._last >= self._interval and not (self.total and self.n >= self.total):
            self._last = now
            print(self._line(), file=self._stream, flush=True)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self.n > self._initial or self.total == 0:
            print(self._line(), file=self._stream, flush=True)

    def __enter__(self) -> _Lines:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


class _Off:
    n = 0

    def set_postfix(self, **kw: Any) -> None:
        pass

    def update(self, k: int = 1) -> None:
        self.n += int(k)

    def close(self) -> None:
        pass

    def __enter__(self) -> _Off:
        return self

    def __exit__(self, *exc: Any) -> None:
        pass


def progress_bar(total: int | None = None, *, desc: str | None = None, unit: str = "it",
                 initial: int = 0, leave: bool = False, stream: IO[str] | None = None,
                 interval: float | None = None) -> Any:
    """A progress counter with tqdm's ``update`` / ``set_postfix`` / ``close`` methods.

    Parameters
    ----------
    total : int or None
        Number of items, when known.
    desc : str or None
        Label (``"features"``, ``"UBM EM"``...).
    unit : str
        What is counted (``"files"``, ``"iter"``...).
    initial : int
        Items already done (a resumed run); the remaining time counts only new items.
    leave : bool
        Keep a terminal bar on screen when it closes.
    stream : file or None
        Where to write (default stderr).
    interval : float or None
        Seconds between plain lines (default :data:`LINE_INTERVAL`).
    """
    stream = sys.stderr if stream is None else stream
    mode = progress_mode(stream)
    if mode == "off":
        return _Off()
    if mode == "lines":
        return _Lines(total, desc, unit, initial, stream,
                      LINE_INTERVAL if interval is None else interval)
    from tqdm import tqdm

    # smoothing=0: the rate (and so the remaining time) is the average since the start;
    # tqdm prints "?" for the remaining time until the first item is done.
    return tqdm(total=total, desc=desc, unit=unit or "it", initial=initial,
                leave=leave, file=stream, smoothing=0, dynamic_ncols=True, mininterval=0.5)


def stage(message: str, *, stream: IO[str] | None = None) -> None:
    """One line for one stage of a long job (what, how many, how long), to stderr."""
    if progress_mode(stream) == "off":
        return
    print(message, file=sys.stderr if stream is None else stream, flush=True)
