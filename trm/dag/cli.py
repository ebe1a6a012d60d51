"""`trm dag`: build DAGs of reasoning traces with an LLM judge, and draw them."""

from __future__ import annotations

from trm.cli import dispatch

DAG_COMMANDS = {
    "build": ("trm.dag.build_cli", "structure traces into DAGs with an OpenAI-compatible judge (resumable JSONL)"),
    "render": ("trm.dag.render", "draw one DAG from a `trm dag build` output as SVG"),
}


def main(argv: list[str], prog: str = "trm dag") -> int:
    return dispatch(prog, DAG_COMMANDS, argv, "Reasoning trace -> DAG (step partition, structuring, merged view).")
