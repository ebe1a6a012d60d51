"""Build the DAG of one trace with an LLM judge: one structuring decision per step, re-sampled until valid.

For each step the judge is asked in rounds (1, 3, 4, 4, 4 samples by default). Answers that do not parse or
break the attachment rules are discarded; after each round the valid votes so far are counted, and once one
action has more votes than any other the step is decided. If the rounds run out, the plurality action wins
with ties broken continue > backtrack > merge; the parents are those most often named with that action (ties:
the most recent ids). If no valid answer came back at all, the step falls back to ``continue`` and the
problem is recorded in ``Dag.errors`` with the answers that were rejected.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Callable

from trm.dag.graph import ROOT, Dag, DagState, Decision, apply_decision, check_decision
from trm.dag.partition import partition
from trm.dag.prompts import parse_structure_answer, structure_messages
from trm.errors import BadInput
from trm.llm.client import ChatClient, Usage

TIE_ORDER = ("continue", "backtrack", "merge")  # earlier wins a tie


@dataclass
class DagConfig:
    """How steps are structured (defaults follow the paper's release); the one declaration of these settings, whose
    flags `trm dag build` and `trm preference build` derive (trm.dag.build_cli.add_dag_arguments)."""

    rounds: tuple[int, ...] = field(default=(1, 3, 4, 4, 4), metadata={
        "help": "samples per re-sampling round, until a unique majority (a CPU judge: 1)"})
    main_path_window: int = field(default=8, metadata={"help": "main-path ids shown to the judge besides the root"})
    max_open_leaves: int = field(default=5, metadata={"help": "open branch leaves offered to the judge for merges"})
    temperature: float = field(default=0.3, metadata={"help": "judge sampling temperature"})
    top_p: float = field(default=0.9, metadata={"help": "judge nucleus sampling"})
    max_tokens: int = field(default=512, metadata={
        "help": "judge answer budget per sample (on a CPU judge, 16-64 keeps a step to seconds)"})
    step_chars: int = field(default=600, metadata={"help": "clip each shown step to this length (head and tail kept)"})
    max_steps: int = field(default=0, metadata={
        "help": "cap steps per trace, later blocks joining the last one (bounds judge calls per trace; 0 = no cap)"})
    error_answer_chars: int = field(default=300, metadata={
        "help": "rejected judge answers are kept in the DAG's errors, clipped to this many characters"})


def vote(decisions: list[Decision]) -> Decision | None:
    """Plurality action (ties continue > backtrack > merge), then its most frequent parent tuple."""
    if not decisions:
        return None
    actions = Counter(d.action for d in decisions)
    top = max(actions.values())
    action = next(a for a in TIE_ORDER if actions.get(a) == top)
    if action == "continue":
        return Decision("continue")
    choices = Counter(d.previous for d in decisions if d.action == action)
    best = max(choices.values())
    previous = max((p for p, count in choices.items() if count == best), key=lambda p: sorted(p, reverse=True))
    return Decision(action, previous)


def _unique_majority(decisions: list[Decision]) -> bool:
    counts = Counter(d.action for d in decisions).most_common()
    return bool(counts) and (len(counts) == 1 or counts[0][1] > counts[1][1])


FALLBACK_ERROR = "no valid structuring answer; fell back to continue"
"""The error recorded for a step no judge answer could decide (counted by `trm dag build`)."""


async def decide_step(
    judge: ChatClient, question: str, steps: list[str], step: int, state: DagState, config: DagConfig, usage: Usage
) -> tuple[Decision, str, dict | None]:
    """(decision, explanation, error record or None) for one step."""
    pool = state.pool(config.main_path_window, config.max_open_leaves)
    messages = structure_messages(question, steps, step, pool, step_chars=config.step_chars)
    valid: list[tuple[Decision, str]] = []
    rejected: list[dict] = []
    for size in config.rounds:
        answers = await judge.chat(
            messages,
            n=size,
            temperature=config.temperature,
            top_p=config.top_p,
            max_tokens=config.max_tokens,
            usage=usage,
        )
        for answer in answers:
            decision, explanation, problem = parse_structure_answer(answer)
            if decision is not None:
                problem = check_decision(decision, pool) or ""
            if problem:
                rejected.append({"reason": problem, "answer": answer[: config.error_answer_chars]})
            else:
                valid.append((decision, explanation))
        if _unique_majority([d for d, _ in valid]):
            break
    chosen = vote([d for d, _ in valid])
    if chosen is None:
        error = {"step": step, "error": FALLBACK_ERROR, "rejected": rejected}
        return Decision("continue"), "", error
    explanation = next(
        e for d, e in valid if d.action == chosen.action and (chosen.action == "continue" or d == chosen)
    )
    return chosen, explanation, None


async def build_dag(
    judge: ChatClient,
    question: str,
    steps: list[str],
    config: DagConfig | None = None,
    usage: Usage | None = None,
    on_step: Callable[[], None] | None = None,
) -> Dag:
    """Structure ``steps`` (from :func:`partition` or given) into a DAG; steps are decided in order, and
    ``on_step`` (progress) is called after each."""
    config = config or DagConfig()
    usage = usage if usage is not None else Usage()
    steps = cap_steps(list(steps), config.max_steps)
    if not steps:
        steps = [""]
    state = DagState()
    dag = Dag(steps=steps, parents=[[]], actions=[ROOT], rationales=[""])
    for step in range(1, len(steps)):
        decision, explanation, error = await decide_step(judge, question, steps, step, state, config, usage)
        dag.parents.append(apply_decision(state, step, decision))
        dag.actions.append(decision.action)
        dag.rationales.append(explanation)
        if error is not None:
            dag.errors.append(error)
        if on_step is not None:
            on_step()
    return dag


def fallback_counts(records: list[dict]) -> tuple[int, int]:
    """(steps that fell back to 'continue' for want of a valid judge answer, steps decided) over DAG records."""
    fallbacks = decided = 0
    for record in records:
        dag = record["dag"]
        decided += max(0, dag["num_steps"] - 1)  # the first step is the root: nothing to decide
        fallbacks += sum(1 for error in dag.get("errors", ()) if error.get("error") == FALLBACK_ERROR)
    return fallbacks, decided


def cap_steps(steps: list[str], max_steps: int) -> list[str]:
    """Join everything past ``max_steps`` into the last kept step (the text still round-trips)."""
    if max_steps <= 0 or len(steps) <= max_steps:
        return steps
    return steps[: max_steps - 1] + ["".join(steps[max_steps - 1 :])]


def steps_of(record: dict, keywords: frozenset[str] | None = None) -> list[str]:
    """Steps of an input record: ``steps`` as given, else ``trace`` (or the reasoning of ``response``) partitioned."""
    if "steps" in record:
        steps = record["steps"]
        if not isinstance(steps, list) or not all(isinstance(s, str) for s in steps):
            raise BadInput("'steps' must be a list of strings")
        return list(steps)
    if "trace" in record:
        if not isinstance(record["trace"], str):
            raise BadInput("'trace' must be a string")
        return partition(record["trace"], keywords)
    if "response" in record:
        from trm.traces import reasoning

        return partition(reasoning(str(record["response"])), keywords)
    raise BadInput("record needs 'trace' (text), 'steps' (list of strings) or 'response'")
