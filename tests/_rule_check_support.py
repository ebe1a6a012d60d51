"""Worker functions for worker-pool fault tests (imported by the worker processes, via PYTHONPATH)."""

from __future__ import annotations

import os


def echo_or_fault(item):
    """Echo the item; "crash" kills the worker process, "hang" never returns, "raise" raises."""
    if item == "crash":
        os._exit(3)
    if item == "hang":
        while True:
            pass
    if item == "raise":
        raise ValueError("asked to raise")
    return {"echo": item, "pid": os.getpid()}
