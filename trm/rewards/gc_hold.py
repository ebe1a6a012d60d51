"""Python's automatic garbage collection held off while reward batches are in flight (``RewardSettings.hold_gc``).

A full collection scans every object of the process (a trainer's: torch, transformers, verl, its data): ~0.2 s on
the reward bench's heap, more in a trainer, with the process stopped. What brings one on is objects that live
through young collections and are promoted to the oldest generation, and a batch keeps thousands of records,
futures and HTTP exchanges alive for its whole length. While a batch runs, the process mostly waits on the network
and a pause there delays the step. Held off, nothing is collected during the batch (cyclic garbage waits, bounded by
one batch's allocations); after it, most of the batch's objects are already freed by reference counting, so they
are never promoted: fewer full passes, and none inside a batch (bench/bench_reward_path.py counts them).

The collector is process-wide: concurrent and nested batches count, collection resumes when the last one ends, and
only if it was on when the first began (a trainer that manages collection itself keeps its choice).
"""

from __future__ import annotations

import gc
import threading
from contextlib import contextmanager
from typing import Iterator


class _Hold:
    """How many batches hold the collector off, and whether it was on before the first."""

    def __init__(self):
        self.lock = threading.Lock()
        self.batches = 0
        self.was_enabled = False


_HOLD = _Hold()


@contextmanager
def gc_held_off(hold: bool = True) -> Iterator[None]:
    """Automatic collection off inside the block (a no-op with ``hold`` False)."""
    if not hold:
        yield
        return
    with _HOLD.lock:
        if _HOLD.batches == 0:
            _HOLD.was_enabled = gc.isenabled()
            gc.disable()
        _HOLD.batches += 1
    try:
        yield
    finally:
        with _HOLD.lock:
            _HOLD.batches -= 1
            if _HOLD.batches == 0 and _HOLD.was_enabled:
                gc.enable()
