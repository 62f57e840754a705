"""Build-once helpers for optional compiled kernels."""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from typing import Any


def lazy_kernel(build: Callable[[], Any]) -> Callable[[], Any]:
    """Decorator: run ``build()`` once, on first call, and return its result ever after.

    Thread-safe: a thread that calls while another is building waits for the result,
    instead of seeing "not built" and taking a fallback path (whose float rounding can
    differ). ``build`` returns the kernel, or None when it cannot be had (no numba).
    """
    lock = threading.Lock()
    built: list[Any] = []

    @functools.wraps(build)
    def get() -> Any:
        if not built:
            with lock:
                if not built:
                    built.append(build())
        return built[0]

    return get
