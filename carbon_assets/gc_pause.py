"""Pausing Python's cyclic garbage collector around bursts of small acyclic objects."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def paused_gc() -> Iterator[None]:
    """Parsed API answers are millions of small objects without cycles: the collector would
    only rescan them again and again (a large share of the CPU), so it waits meanwhile.
    Reference counting still frees everything as usual."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()
