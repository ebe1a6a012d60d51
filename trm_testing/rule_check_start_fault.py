"""A rule-check worker function whose module misbehaves while the worker imports it (fault injection).

TRM_TEST_START_FAULT chooses the fault: "hang" (the import never returns) or "kill" (the worker is killed by
SIGKILL while importing, as the out-of-memory killer would). Each worker first appends its pid to
$TRM_TEST_CRASH_DIR/pids, so a test can check that none is left behind.
"""

from __future__ import annotations

import os
import signal
import threading

from trm.rewards.math_rules import warm_up  # noqa: F401  (workers import the checkers before "ready", as the real one)

_fault = os.environ.get("TRM_TEST_START_FAULT", "")
with open(os.path.join(os.environ.get("TRM_TEST_CRASH_DIR", "."), "pids"), "a") as _pids:
    _pids.write(f"{os.getpid()}\n")
if _fault == "hang":
    threading.Event().wait()  # never set: the import hangs
elif _fault == "kill":
    os.kill(os.getpid(), signal.SIGKILL)


def check(item):
    from trm.rewards.math_rules import check_item

    return check_item(item)
