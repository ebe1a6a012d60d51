"""Wording of the judge requests on trace views: super-node summaries, the four ME² dimension comparisons and
the aggregation. Every comparison ends with ``<|decision|>`` and one of ``Trace 1``, ``Trace 2``, ``Tie``."""

from __future__ import annotations

import re

from trm.traces import clip
from dataclasses import dataclass

DECISION_MARKER = "<|decision|>"

SUMMARY_SYSTEM = "You condense parts of a reasoning trace into single sentences that say what the part does."


def summary_messages(question: str, role: str, text: str, max_chars: int = 4000) -> list[dict]:
    """Ask for a one-sentence summary of one super-node (a chain of steps)."""
    user = (
        f"A model is solving this question:\n{clip(question, 1500)}\n\n"
        f"Below is one segment ({role}) of its reasoning. In ONE sentence of at most 30 words, state what the "
        "segment does (its goal and any result it reaches). Reply with the sentence only.\n\n"
        f"SEGMENT:\n{clip(text, max_chars)}"
    )
    return [{"role": "system", "content": SUMMARY_SYSTEM}, {"role": "user", "content": user}]


@dataclass(frozen=True)
class Dimension:
    name: str
    title: str
    view: str  # "macro" (structure summaries) or "micro" (dominant path text)
    criteria: str


DIMENSIONS: tuple[Dimension, ...] = (
    Dimension(
        "macro_efficiency",
        "structural economy",
        "macro",
        "Which trace organises its exploration more economically? Credit branches and checks that are opened "
        "only when they are needed and wrapped up promptly. Count against a trace: returning to branches it "
        "had already settled, starting over without a reason, and re-verification that adds nothing new.",
    ),
    Dimension(
        "macro_effectiveness",
        "structural soundness",
        "macro",
        "Which trace has the more coherent, goal-directed overall plan? Credit branches with a clear purpose "
        "that feed into the solution. Count against a trace: branches whose aim is unclear, sudden switches "
        "of topic, and leaps that skip the argument they would need (for example a claimed proof that "
        "does not actually establish the result).",
    ),
    Dimension(
        "micro_efficiency",
        "step economy",
        "micro",
        "Which trace uses its individual steps better? Credit steps that are brief and each move the work "
        "forward. Count against a trace: padding, hedging, saying the same thing again in other words, and "
        "guess-and-check that never sharpens its guesses.",
    ),
    Dimension(
        "micro_effectiveness",
        "step soundness",
        "micro",
        "Which trace has the more reliable individual steps? Credit steps that are correct and consistent "
        "with each other. Count against a trace: self-contradictions, claims without support, calculation "
        "slips, and notation that changes meaning along the way.",
    ),
)

PAIRWISE_SYSTEM = (
    "You compare the reasoning of two solutions to the same question. Both reach the correct final answer, "
    "so judge only how they reason. Ignore length as such, and ignore which trace is shown first."
)

_VIEW_NAMES = {
    "macro": "Each trace is shown as its structure: one summary sentence per segment, with a header giving the "
    "segment's role, depth, parent segments and child segments.",
    "micro": "Each trace is shown as its main line of reasoning: the steps leading to the final answer, verbatim.",
}

_DECISION_FORMAT = (
    f"Write one short paragraph contrasting the two traces on this criterion, then finish with "
    f"{DECISION_MARKER} followed by exactly one of: Trace 1, Trace 2, Tie."
)


def pairwise_messages(
    dimension: Dimension, question: str, view_1: str, view_2: str, max_chars: int = 12000
) -> list[dict]:
    user = (
        f"QUESTION:\n{clip(question, 3000)}\n\n"
        f"CRITERION ({dimension.title}): {dimension.criteria}\n\n"
        f"{_VIEW_NAMES[dimension.view]}\n\n"
        f"=== Trace 1 ===\n{clip(view_1, max_chars)}\n\n=== Trace 2 ===\n{clip(view_2, max_chars)}\n\n"
        f"{_DECISION_FORMAT}"
    )
    return [{"role": "system", "content": PAIRWISE_SYSTEM}, {"role": "user", "content": user}]


AGGREGATE_SYSTEM = (
    "You give the overall verdict on which of two correct solutions reasons better, weighing four criterion "
    "verdicts written by other judges. Check them against the traces rather than counting votes blindly."
)


def aggregation_messages(
    question: str,
    traces: tuple[tuple[str, str], tuple[str, str]],
    verdicts: list[tuple[Dimension, str, str]],
    max_chars: int = 8000,
) -> list[dict]:
    """``traces`` = ((macro_1, micro_1), (macro_2, micro_2)); ``verdicts`` = (dimension, decision, rationale)."""
    parts = [f"QUESTION:\n{clip(question, 3000)}\n"]
    for number, (macro, micro) in enumerate(traces, start=1):
        parts.append(
            f"=== Trace {number}: structure ===\n{clip(macro, max_chars // 2)}\n\n"
            f"=== Trace {number}: main line of reasoning ===\n{clip(micro, max_chars)}\n"
        )
    parts.append("CRITERION VERDICTS:")
    for dimension, decision, rationale in verdicts:
        parts.append(f"- {dimension.title}: {decision}. {rationale.strip()}")
    parts.append(
        "\nBoth traces reach the correct answer. Considering structure and steps together, which trace shows the "
        f"better reasoning overall? {_DECISION_FORMAT}"
    )
    return [{"role": "system", "content": AGGREGATE_SYSTEM}, {"role": "user", "content": "\n".join(parts)}]


_DECISION_RE = re.compile(re.escape(DECISION_MARKER) + r"[\s*_:\"'`\[(]*(trace\s*1|trace\s*2|tie)\b", re.IGNORECASE)


def parse_decision(text: str) -> tuple[str | None, str]:
    """("1" | "2" | "tie" | None, rationale). The last decision marker counts; None if there is none."""
    matches = list(_DECISION_RE.finditer(text))
    if not matches:
        return None, text.strip()
    last = matches[-1]
    word = re.sub(r"\s+", "", last.group(1).lower())
    decision = {"trace1": "1", "trace2": "2", "tie": "tie"}[word]
    return decision, text[: last.start()].strip()


def decision_words(decision: str | None) -> str:
    return {"1": "Trace 1", "2": "Trace 2", "tie": "Tie"}.get(decision or "", "no decision")
