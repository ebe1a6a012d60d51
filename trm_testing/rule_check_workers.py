"""Worker functions for worker-pool fault tests (imported by the worker processes, via PYTHONPATH)."""

from __future__ import annotations

import os

from trm.rewards.math_rules import warm_up  # noqa: F401  (workers import the checkers before "ready", as the real one)


def echo_or_fault(item):
    """Echo the item; "crash" kills the worker process, "hang" never returns, "raise" raises, "fork-hang" forks a
    helper that hangs (its pid goes to $TRM_TEST_CRASH_DIR/helper) and then hangs itself."""
    if item == "fork-hang":
        helper = os.fork()
        if helper == 0:
            while True:
                pass
        with open(os.path.join(os.environ["TRM_TEST_CRASH_DIR"], "helper"), "w") as out:
            out.write(str(helper))
        while True:
            pass
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


def check_or_crash(item):
    """The real rule check, except for answers "once|<marker>|<answer>" (the worker dies the first time, while the
    file <marker> in $TRM_TEST_CRASH_DIR does not exist yet; afterwards <answer> is checked) and "always|-|<answer>"
    (always dies). The marker is a short name, not a path, so the answer stays within the length guard."""
    from trm.rewards.math_rules import check_item

    answer, ground_truth, *stage = item
    if answer.count("|") >= 2:
        mode, marker, answer = answer.split("|", 2)
        if mode == "always":
            os._exit(4)
        marker = os.path.join(os.environ.get("TRM_TEST_CRASH_DIR", "."), marker)
        if mode == "once" and not os.path.exists(marker):
            open(marker, "w").close()
            os._exit(4)
    return check_item([answer, ground_truth, *stage])


def loaded_modules(names):
    """Which of ``names`` this worker process has imported (after the same warm-up as the real rule check)."""
    import sys

    return {name: name in sys.modules for name in names}
