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


def rule_check_in_child(pairs):
    """Run a rule-check batch inside a (daemonic) multiprocessing worker, as reward workers do."""
    from trm.rewards.correctness import rule_check_batch

    verdicts = rule_check_batch([a for a, _ in pairs], [g for _, g in pairs], timeout_s=2.0)
    return [(v.correct, v.source) for v in verdicts]
