"""When Python's cyclic garbage collector waits: around bursts of small acyclic objects, and
at the exit of a process that has loaded much."""

from __future__ import annotations

import atexit
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


def skip_collection_at_exit() -> None:
    """End this process without a last collection. At exit Python walks every object once more
    for cycles, which in a process that loaded dagster, dbt and pyarrow holds it up well after
    its work is done, while a run's process or a build's dbt is waited for
    (docs/performance.md). Frozen at exit instead (gc.freeze; atexit handlers run before that
    walk), nothing is walked, and the memory goes back to the system whole. Once per process,
    however often asked."""
    atexit.unregister(gc.freeze)
    atexit.register(gc.freeze)
