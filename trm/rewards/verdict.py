"""A correctness decision and why it was taken: what the rule check and the LLM verifier both return (its own module so
that neither imports the other for it)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Verdict:
    """A correctness decision and why it was taken."""

    correct: bool
    # exact_match | math_verify | prime_math | llm_verifier | length_guard | length_rule | no_answer | timeout |
    # worker_error | verifier_unusable
    source: str
    answer: str | None = None  # the extracted answer that was judged
    detail: str = ""  # human-readable reason (parsed forms, verifier decision, error text)
    also: tuple[str, ...] = ()  # other steps that applied to this answer, in order (the source is the one that settled it)
    rung: str = ""  # which rung of the extraction ladder found the answer (trm.traces.extract); "" if given extracted
