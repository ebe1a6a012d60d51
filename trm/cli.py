"""The `trm` command: a table of subcommands, each owned by one module.

Every entry maps a subcommand name to the module that implements it and a one-line summary. The module
exposes ``main(argv: list[str]) -> int | None`` with its own argparse parser, so `trm --help` stays fast
(nothing heavy is imported until a subcommand runs) and each part of the toolkit owns its flags.
Groups with their own subcommands (``trm serve reward``) reuse :func:`dispatch` with a table of their own.
"""

from __future__ import annotations

import importlib
import sys
from typing import Mapping, Sequence

# name -> (module, summary). Keep this list in the order a researcher meets the commands.
COMMANDS: dict[str, tuple[str, str]] = {
    "tiny": ("trm.tiny", "build tiny reward/chat models for tests and the quickstart (no downloads)"),
    "inspect": ("trm.inspect", "show the reasoning, the exact TRM input and the final answer of responses"),
    "serve": ("trm.serving.cli", "serve a reward model (embeddings API) or a chat model (chat completions API)"),
    "score": ("trm.serving.score", "score reasoning traces with a TRM endpoint or a local model"),
    "data": ("trm.data.cli", "prepare and validate datasets (webinstruct, trm-preference)"),
    "train-rm": ("trm.training.train_rm", "train a thinking reward model with TRL's RewardTrainer"),
    "eval-rm": ("trm.training.eval_rm", "pairwise accuracy of a reward model on a preference file"),
    "reward": ("trm.rewards.cli", "compute blended rewards for responses through the verifier and the TRM"),
    "rl": ("trm.rl.cli", "check and summarise the verl GRPO configuration (train.sh --dry-run)"),
    "dag": ("trm.dag.cli", "turn reasoning traces into DAGs with an LLM judge"),
    "preference": ("trm.judge.cli", "build TRM-Preference data with ME2 pairwise judgements"),
    "generate": ("trm.evaluation.generate", "sample N responses per benchmark prompt"),
    "eval": ("trm.evaluation.benchmarks_cli", "accuracy, avg@k and pass@k tables for generations"),
    "bon": ("trm.evaluation.bon", "best-of-N accuracy with a TRM or other selectors"),
    "winrate": ("trm.evaluation.winrate", "reasoning win rate of one model over another via the ME2 judge"),
    "figures": ("trm.evaluation.figures", "regenerate the tables and figures under assets/ from result files"),
}


def _usage(prog: str, table: Mapping[str, tuple[str, str]], description: str) -> str:
    width = max(len(name) for name in table) + 2
    lines = [f"usage: {prog} <command> [options]", "", description, "", "commands:"]
    lines += [f"  {name:<{width}}{summary}" for name, (_, summary) in table.items()]
    lines += ["", f"Run '{prog} <command> --help' for the options of one command."]
    return "\n".join(lines)


def dispatch(prog: str, table: Mapping[str, tuple[str, str]], argv: Sequence[str], description: str = "") -> int:
    """Run the subcommand named by argv[0] from `table`; print usage for --help or an unknown name."""
    argv = list(argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(_usage(prog, table, description))
        return 0 if argv else 2
    name, rest = argv[0], argv[1:]
    if name not in table:
        print(f"{prog}: unknown command {name!r}\n", file=sys.stderr)
        print(_usage(prog, table, description), file=sys.stderr)
        return 2
    module_name = table[name][0]
    module = importlib.import_module(module_name)
    result = module.main(rest, prog=f"{prog} {name}")
    return int(result or 0)


def main(argv: Sequence[str] | None = None) -> int:
    return dispatch(
        "trm",
        COMMANDS,
        sys.argv[1:] if argv is None else argv,
        "Thinking Reward Model toolkit: score, train and optimise how well a model reasons.",
    )


if __name__ == "__main__":
    sys.exit(main())
