"""`trm data`: one subcommand per dataset format."""

from __future__ import annotations

from trm.cli import dispatch

DATA_COMMANDS = {
    "webinstruct": ("trm.data.webinstruct", "convert WebInstruct-verified rows to verl parquet, or validate one"),
    "trm-preference": ("trm.data.preference", "validate, describe, split and convert TRM-Preference files"),
}


def main(argv: list[str], prog: str = "trm data") -> int:
    return dispatch(prog, DATA_COMMANDS, argv, "Prepare and validate datasets.")
