"""`trm rl`: commands around verl GRPO training."""

from __future__ import annotations

from trm.cli import dispatch

RL_COMMANDS = {
    "check": ("trm.rl.check", "compose and validate the verl config of train.sh on a CPU and summarise it"),
    "long-context": ("trm.rl.long_context", "copy a local model folder with 16384 positions and RoPE base 40000"),
    "toy": ("trm.rl.toy", "a few GRPO steps of the tiny policy on a CPU with TRL and the thinking reward"),
}


def main(argv: list[str], prog: str = "trm rl") -> int:
    return dispatch(prog, RL_COMMANDS, argv, "GRPO training with verl and thinking rewards.")
