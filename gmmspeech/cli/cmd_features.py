"""Sub-commands: (being written)."""

from __future__ import annotations


def register(sub) -> None:
    """Add this module's sub-commands to the parser."""
