"""The two views of a trace that the pairwise judge reads.

Macro view: the merged DAG, one line per super-node in emission order: a structural header
``<Branch id=2 depth=1 parents=[0] children=[3, 4]>`` followed by a one-sentence LLM summary of its text.

Micro view: the *dominant path*, the raw text (in emission order) of the final-answer leaves and all their
ancestors. How the final-answer leaves are found (documented in docs/preference-data.md):

1. The last step of the trace is always one: it is a leaf (nothing comes after it) and it is where the
   reasoning stops before the answer is written out.
2. Any other leaf whose own text states the same final answer as the response (``trm.traces.extract_answer``
   on the leaf equals the response's answer, compared without spaces) is one too: a branch that reached the
   answer independently, e.g. a verification.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from trm.dag.build import DagConfig, build_dag, steps_of
from trm.dag.graph import Dag, SuperNode, merged_view
from trm.llm.client import ChatClient, Usage
from trm.preference.prompts import summary_messages
from trm.traces import extract_answer, reasoning


@dataclass
class ViewConfig:
    """How super-nodes are summarised; `trm preference build` derives its --summary-* flags from these fields."""

    temperature: float = field(default=0.3, metadata={"help": "summariser sampling temperature"})
    top_p: float = field(default=0.9, metadata={"help": "summariser nucleus sampling"})
    max_tokens: int = field(default=128, metadata={"help": "summary budget per super-node"})
    segment_chars: int = field(default=4000, metadata={
        "help": "super-node text shown to the summariser, clipped to this many characters (head and tail kept)"})
    fallback_chars: int = field(default=200, metadata={"help": "an empty summary becomes this much of its segment"})


@dataclass
class TraceViews:
    """Everything the pairwise judge needs about one response, plus what it cost to make."""

    dag: Dag
    merged: list[SuperNode]
    summaries: list[str]
    macro: str
    micro: str
    dominant_leaves: list[int]
    answer: str | None
    usage: Usage = field(default_factory=Usage)
    errors: list[dict] = field(default_factory=list)  # summary fall-backs (DAG errors live in dag.errors)

    def to_dict(self, include_dag: bool = True) -> dict:
        out = {
            "macro": self.macro,
            "micro": self.micro,
            "dominant_leaves": self.dominant_leaves,
            "answer": self.answer,
            "summaries": self.summaries,
            "usage": self.usage.to_dict(),
            "errors": self.errors,
        }
        if include_dag:
            out["dag"] = self.dag.to_dict()
            out["merged"] = [node.to_dict() for node in self.merged]
        return out


def _normalise(answer: str | None) -> str | None:
    return None if answer is None else "".join(answer.split())


def dominant_leaves(dag: Dag, answer: str | None) -> list[int]:
    """Final-answer leaves: the last step, plus other leaves that state ``answer`` themselves."""
    last = len(dag.steps) - 1
    target = _normalise(answer)
    found = {last}
    if target:
        for leaf in dag.leaves:
            if _normalise(extract_answer(dag.steps[leaf])) == target:
                found.add(leaf)
    return sorted(found)


def dominant_path(dag: Dag, leaves: list[int]) -> str:
    """Raw text of the leaves and their ancestors in emission order (the whole trace if that is everything)."""
    keep = dag.ancestors(leaves)
    return "".join(dag.steps[node] for node in sorted(keep))


def structural_header(node: SuperNode) -> str:
    return f"<{node.role.capitalize()} id={node.id} depth={node.depth} parents={node.parents} children={node.children}>"


def macro_view_text(merged: list[SuperNode], summaries: list[str]) -> str:
    return "\n".join(f"{structural_header(node)} {summary}" for node, summary in zip(merged, summaries))


def _one_sentence(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return " ".join(lines[:2])[:400] if lines else ""


async def summarise(
    judge: ChatClient, question: str, dag: Dag, merged: list[SuperNode], config: ViewConfig, usage: Usage
) -> tuple[list[str], list[dict]]:
    """One sentence per super-node (requests run concurrently); empty answers fall back to the opening text."""

    async def one(node: SuperNode) -> str:
        text = "".join(dag.steps[m] for m in node.members)
        messages = summary_messages(question, node.role, text, config.segment_chars)
        answer = await judge.chat(
            messages, n=1, temperature=config.temperature, top_p=config.top_p, max_tokens=config.max_tokens, usage=usage
        )
        return _one_sentence(answer[0])

    summaries = list(await asyncio.gather(*(one(node) for node in merged)))
    errors = []
    for node, summary in zip(merged, summaries):
        if not summary:
            text = " ".join("".join(dag.steps[m] for m in node.members).split())
            summaries[node.id] = text[: config.fallback_chars]
            errors.append({"super_node": node.id, "error": "empty summary; used the segment's opening text"})
    return summaries, errors


async def build_views(
    judge: ChatClient,
    question: str,
    response: str,
    dag_config: DagConfig | None = None,
    view_config: ViewConfig | None = None,
    keywords: frozenset[str] | None = None,
    dag: Dag | None = None,
) -> TraceViews:
    """DAG (unless given), merged view, summaries, macro view and dominant path of one response."""
    view_config = view_config or ViewConfig()
    usage = Usage()
    if dag is None:
        steps = steps_of({"trace": reasoning(response)}, keywords)
        dag = await build_dag(judge, question, steps, dag_config, usage)
    merged = merged_view(dag)
    summaries, errors = await summarise(judge, question, dag, merged, view_config, usage)
    answer = extract_answer(response)
    leaves = dominant_leaves(dag, answer)
    return TraceViews(
        dag=dag,
        merged=merged,
        summaries=summaries,
        macro=macro_view_text(merged, summaries),
        micro=dominant_path(dag, leaves),
        dominant_leaves=leaves,
        answer=answer,
        usage=usage,
        errors=errors,
    )
