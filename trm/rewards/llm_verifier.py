"""Client for an answer-equivalence verifier model (TIGER-Lab/general-verifier) behind a chat completions API.

The verifier gets exactly the input format it was trained on (:func:`trm.protocol.general_verifier_input`, the
model card's format as the original release sends it) as one user message. It is served with a plain template
that concatenates message contents (``chat_templates/verifier.jinja``), so that text is the model's whole input.
Decoding is greedy with the release's 512-token budget; the student answer is cut to its last 2000 characters.

Reading the reply:
- ``Final Decision: Yes`` anywhere in it: verified (the release's rule, so that rewards match the paper's);
- otherwise the last ``Final Decision: Yes/No`` tag, in any case and with markdown around the word, decides;
- a complete reply without a tag is the model's answer: not verified (source "llm_verifier");
- a reply with no content, or cut off at its token budget before any tag, is not an answer at all: source
  "verifier_unusable", a fault that counts toward the batch's limit like a rule-check worker error
  (:func:`trm.rewards.correctness.check_fault_budget`), because it means the deployment is wrong (context or
  max tokens too small), not the student;
- a backend failure, or an answer that is not a chat completion, raises (through :class:`trm.llm.client.ChatClient`,
  which retries it elsewhere first); it never becomes a verdict.
An empty student answer is not verified, without a call.
"""

from __future__ import annotations

import re

from trm.llm.client import ChatClient, Choice
from trm.protocol import (
    GENERAL_VERIFIER_ANSWER_TAIL_CHARS,
    GENERAL_VERIFIER_MAX_TOKENS,
    GENERAL_VERIFIER_YES,
    general_verifier_input,
)
from trm.rewards.verdict import Verdict

DEFAULT_VERIFIER_MODEL = "TIGER-Lab/general-verifier"

# Any case, a full-width colon, and markdown emphasis or quotes around the word ("**Yes**").
_DECISION_RE = re.compile(r"final\s+decision\s*[:：]\s*[*_`\"']*\s*(yes|no)\b", re.IGNORECASE)


def parse_decision(text: str) -> bool | None:
    """True when ``text`` contains the release's ``Final Decision: Yes``; else True/False from its last decision
    tag (any case); None when there is no tag."""
    text = text or ""
    if GENERAL_VERIFIER_YES in text:
        return True
    last = None
    for last in _DECISION_RE.finditer(text):
        pass
    if last is None:
        return None
    return last.group(1).lower() == "yes"


def read_reply(choice: Choice, answer: str, max_tokens: int) -> Verdict:
    """The verdict the verifier's reply carries (see the module docstring)."""
    text, finish = choice.text, choice.finish_reason
    if text is None:
        return Verdict(False, "verifier_unusable", answer, f"verifier reply has no content (finish_reason {finish!r})")
    decision = parse_decision(text)
    snippet = text[-200:].replace("\n", " ")
    if decision is None and finish == "length":
        return Verdict(False, "verifier_unusable", answer,
                       f"verifier reply cut off at max_tokens {max_tokens} before its decision: {snippet!r}")
    if decision is None:
        return Verdict(False, "llm_verifier", answer, f"unparsable verifier output (no 'Final Decision' tag): {snippet!r}")
    return Verdict(decision, "llm_verifier", answer, f"verifier decided {'Yes' if decision else 'No'}")


async def llm_verify(
    pool,
    question: str,
    ground_truth: str,
    answer: str,
    model: str = DEFAULT_VERIFIER_MODEL,
    *,
    max_tokens: int = GENERAL_VERIFIER_MAX_TOKENS,
    answer_tail_chars: int = GENERAL_VERIFIER_ANSWER_TAIL_CHARS,
) -> Verdict:
    """Ask the verifier behind ``pool`` (a :class:`trm.client.BackendPool`) whether ``answer`` matches: the
    protocol's input as one user message, greedy."""
    if not answer or not answer.strip():
        return Verdict(False, "no_answer", answer or None, "empty student answer: not verified, verifier not asked")
    text = general_verifier_input(question, ground_truth, answer, answer_tail_chars)
    (choice,) = await ChatClient(pool, model).complete([{"role": "user", "content": text}], temperature=0.0,
                                                       max_tokens=max_tokens)
    return read_reply(choice, answer, max_tokens)
