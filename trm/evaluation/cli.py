"""`trm eval`: evaluate generations and reward models (`trm generate` samples the generations)."""

from __future__ import annotations

from trm.cli import ANY_FLAG, Alias, dispatch

EVAL_COMMANDS = {
    "accuracy": ("trm.evaluation.benchmarks_cli", "accuracy, avg@k and pass@k tables for generations"),
    "bon": ("trm.evaluation.bon", "best-of-N accuracy with a TRM or other selectors"),
    "winrate": ("trm.evaluation.winrate", "reasoning win rate of one model over another via the ME2 judge"),
    "rm": ("trm.training.eval_rm", "pairwise accuracy of a reward model on a preference file"),
    "figures": ("trm.evaluation.figures", "regenerate the tables and figures under assets/ from result files"),
    ANY_FLAG: Alias("accuracy"),  # `trm eval --run ...`, the spelling before `trm eval` was a group
}


def main(argv: list[str], prog: str = "trm eval") -> int:
    return dispatch(prog, EVAL_COMMANDS, argv, "Evaluate generations (from `trm generate`) and reward models.")
