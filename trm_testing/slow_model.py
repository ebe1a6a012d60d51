"""A real `trm serve reward` whose model is slow: every forward pass takes `delay_s` longer (fault injection), so
tests can watch requests coalesce, queue and drain. The delay is wrapped around the model here, in the test's
server process; the server code has no such setting.

Run: python -m trm_testing.slow_model DELAY_S <trm serve reward flags>
"""

from __future__ import annotations

import sys
import time


def slow_reward_command(delay_s: float, *args: str) -> list[str]:
    """The command line of a reward server (flags `args`) whose every batch takes `delay_s` seconds longer."""
    return [sys.executable, "-m", "trm_testing.slow_model", str(delay_s), *args]


def main(argv: list[str]) -> int:
    from trm.cli import main as trm_main
    from trm.serving.scorer import RewardScorer

    delay_s, forward = float(argv[0]), RewardScorer.forward

    def slow_forward(self, batch):
        time.sleep(delay_s)  # the injected fault: a slower model, in the server's model thread
        return forward(self, batch)

    RewardScorer.forward = slow_forward
    return trm_main(["serve", "reward", *argv[1:]])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
