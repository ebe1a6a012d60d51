"""Correctness of generations: the reward path's rule verifier for maths and short text, letters for options.

Grades are stored in the records themselves (`correct`: one bool per response, `verdicts`: the verdict source),
so `trm eval accuracy`, `trm eval bon` and `trm eval figures` grade a file once and reuse it.
"""

from __future__ import annotations

import re
from typing import Sequence

from trm.evaluation.benchmarks import LETTERS
from trm.traces import LENIENT, extract_answer

_TEXT_WRAPPER = re.compile(r"^\\(?:text|textbf|mathrm|mathbf)\{(.*)\}$", re.DOTALL)
_LEADING_LETTER = re.compile(r"^\(?([A-Za-z])\)?(?:[\s.):,]|$)")


def choice_letter(answer: str | None, choices: Sequence[str]) -> str | None:
    """The option letter an extracted answer names: "C", "(C)", "C) text", "\\text{C}" or the option's text."""
    if answer is None:
        return None
    text = answer.strip().strip("$").strip()
    wrapped = _TEXT_WRAPPER.match(text)
    if wrapped:
        text = wrapped.group(1).strip()
    match = _LEADING_LETTER.match(text)
    if match and match.group(1).upper() in LETTERS[: len(choices)]:
        return match.group(1).upper()
    for i, choice in enumerate(choices):
        if text.lower() == str(choice).strip().lower():
            return LETTERS[i]
    return None


def is_graded(record: dict) -> bool:
    correct = record.get("correct")
    return isinstance(correct, list) and len(correct) == len(record.get("responses", []))


def grade_records(records: list[dict], timeout_s: float = 10.0, answer_format: str = LENIENT) -> list[dict]:
    """Add `correct`, `verdicts`, `extracted` and `rungs` to every record that lacks them (in place; returns records).

    Maths and text answers go through the reward path's rule check with the ``lenient`` extraction ladder by
    default (an answer written in free text counts, as in other projects' evaluation tables); ``answer_format=
    "strict"`` grades as the RL reward does (box or answer marker required)."""
    todo = [r for r in records if not is_graded(r)]
    rule_items: list[tuple[dict, int, str | None, str]] = []
    for record in todo:
        responses = record.get("responses")
        if not isinstance(responses, list):
            raise ValueError(f"record {record.get('id')!r} has no 'responses' list (is this a `trm generate` file?)")
        record["correct"] = [False] * len(responses)
        record["verdicts"] = [""] * len(responses)
        record["extracted"] = [None] * len(responses)
        record["rungs"] = [""] * len(responses)  # which rung of the extraction ladder found each answer
        for j, response in enumerate(responses):
            if record.get("answer_type") == "choice" and record.get("choices"):
                answer = extract_answer(response)
                record["extracted"][j] = answer
                letter = choice_letter(answer, record["choices"])
                record["correct"][j] = letter is not None and letter == str(record["answer"]).strip().upper()
                record["verdicts"][j] = "no_answer" if answer is None else "choice_letter"
            else:
                rule_items.append((record, j, str(response), str(record["answer"])))
    if rule_items:
        try:
            from trm.rewards.correctness import check_responses
        except ImportError as exc:
            raise RuntimeError(
                "grading maths/text answers needs trm.rewards.correctness (the reward path's verifier), "
                f"which failed to import: {exc}"
            ) from exc
        verdicts = check_responses([r for _, _, r, _ in rule_items], [g for _, _, _, g in rule_items], answer_format,
                                   timeout_s=timeout_s)
        failed = [(r.get("id"), j, v.detail) for (r, j, _, _), v in zip(rule_items, verdicts) if v.source == "worker_error"]
        if failed:  # a crashed checker is not a wrong answer
            raise RuntimeError(f"the rule verifier failed on {len(failed)} responses, first: {failed[0]}")
        for (record, j, _, _), verdict in zip(rule_items, verdicts):
            record["extracted"][j] = verdict.answer
            record["rungs"][j] = verdict.rung
            record["correct"][j] = bool(verdict.correct)
            record["verdicts"][j] = verdict.source
    return records


def correctness_matrix(records: list[dict]) -> list[list[bool]]:
    missing = [r.get("id") for r in records if not is_graded(r)]
    if missing:
        raise ValueError(f"records not graded: {missing[:5]}")
    return [[bool(c) for c in r["correct"]] for r in records]
