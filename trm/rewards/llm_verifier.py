"""Client for an answer-equivalence verifier model (TIGER-Lab/general-verifier) behind a chat completions API.

The verifier reads a question, the reference answer and a student answer under the headings
``### Question:``, ``### Ground Truth Answer:`` and ``### Student Answer:``, reasons briefly, and ends with
``Final Decision: Yes`` or ``Final Decision: No``. It is served with a plain template that concatenates
message contents (``chat_templates/verifier.jinja``), so the user message below is the model's whole input.
Decoding is greedy (temperature 0). An answer without a decision tag counts as "not verified"; a backend
failure raises (through :class:`trm.client.BackendPool`), it never becomes a verdict.
"""

from __future__ import annotations

import re

from trm.rewards.correctness import Verdict

DEFAULT_VERIFIER_MODEL = "TIGER-Lab/general-verifier"
DEFAULT_MAX_TOKENS = 512
DEFAULT_ANSWER_TAIL_CHARS = 2000

_DECISION_RE = re.compile(r"final\s+decision\s*[:：]\s*[*_`\"']*\s*(yes|no)\b", re.IGNORECASE)


def verifier_prompt(question: str, ground_truth: str, answer: str, answer_tail_chars: int = DEFAULT_ANSWER_TAIL_CHARS) -> str:
    """The verifier's input; the student answer keeps only its last ``answer_tail_chars`` characters."""
    student = answer[-answer_tail_chars:] if answer_tail_chars > 0 else answer
    return (
        f"### Question: {question}\n\n"
        f"### Ground Truth Answer: {ground_truth}\n\n"
        f"### Student Answer: {student}\n\n"
        "Check whether the student answer says the same thing as the ground truth answer for this question. "
        "Only compare the two answers; do not solve the question again. Allow different but equivalent forms "
        "(notation, units written out, rounding the question permits). End your reply with one line, "
        '"Final Decision: Yes" when they are equivalent or "Final Decision: No" when they are not.'
    )


def parse_decision(text: str) -> bool | None:
    """True/False from the last ``Final Decision: Yes/No`` tag in ``text``; None when there is no tag."""
    last = None
    for last in _DECISION_RE.finditer(text or ""):
        pass
    if last is None:
        return None
    return last.group(1).lower() == "yes"


async def llm_verify(
    pool,
    question: str,
    ground_truth: str,
    answer: str,
    model: str = DEFAULT_VERIFIER_MODEL,
    *,
    max_tokens: int = DEFAULT_MAX_TOKENS,
    answer_tail_chars: int = DEFAULT_ANSWER_TAIL_CHARS,
) -> Verdict:
    """Ask the verifier behind ``pool`` (a :class:`trm.client.BackendPool`) whether ``answer`` matches."""
    payload = {
        "model": model,
        "messages": [{"role": "user", "content": verifier_prompt(question, ground_truth, answer, answer_tail_chars)}],
        "temperature": 0.0,
        "max_tokens": max_tokens,
    }
    reply = await pool.post_json("/v1/chat/completions", payload)
    try:
        text = reply["choices"][0]["message"]["content"] or ""
    except (KeyError, IndexError, TypeError) as exc:
        raise ValueError(f"verifier answer is not a chat completion: {str(reply)[:300]}") from exc
    decision = parse_decision(text)
    if decision is None:
        snippet = text[-200:].replace("\n", " ")
        return Verdict(False, "llm_verifier", answer, f"unparsable verifier output (no 'Final Decision' tag): {snippet!r}")
    return Verdict(decision, "llm_verifier", answer, f"verifier decided {'Yes' if decision else 'No'}")
