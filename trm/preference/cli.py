"""`trm preference`: build TRM-Preference data with ME² pairwise judgements."""

from __future__ import annotations

from trm.cli import dispatch

PREFERENCE_COMMANDS = {
    "build": ("trm.preference.build_cli", "verified traces -> pairs -> DAGs, views, ME2 judging -> TRM-Preference JSONL"),
}


def main(argv: list[str], prog: str = "trm preference") -> int:
    return dispatch(prog, PREFERENCE_COMMANDS, argv, "Build preference data the ME2 way.")
