"""Client for an answer-equivalence verifier model (TIGER-Lab/general-verifier) behind an OpenAI-compatible API.

The verifier gets exactly the input format it was trained on (:func:`trm.protocol.general_verifier_input`, the
model card's format as the original release sends it) as its whole input: by default as a plain completions
prompt, several answers' prompts in one request (:data:`VERIFIER_APIS`); or, as the release does, as one user
message under a plain template that concatenates message contents (``chat_templates/verifier.jinja``).
Decoding is greedy with the release's 512-token budget; the student answer is cut to its last 2000 characters.

Reading the reply:
- ``Final Decision: Yes`` anywhere in it: verified (the release's rule, so that rewards match the paper's);
- otherwise the last ``Final Decision: Yes/No`` tag, in any case and with markdown around the word, decides;
- a complete reply without a tag is the model's answer: not verified (source "llm_verifier");
- a reply with no content, or cut off at its token budget before any tag, is not an answer at all: source
  "verifier_unusable", a fault that counts toward the batch's limit like a rule-check worker error
  (:func:`trm.rewards.correctness.check_fault_budget`), because it means the deployment is wrong (context or
  max tokens too small), not the student;
- a backend failure, or an answer that is not a (chat) completion, raises (through :class:`trm.llm.client.ChatClient`,
  which retries it elsewhere first); it never becomes a verdict.
An empty student answer is not verified, without a call.
"""

from __future__ import annotations

import asyncio
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


VERIFIER_APIS = {
    "completions": "the protocol text as a prompt of POST /v1/completions; concurrent answers share a request (a "
                   "list prompt of up to verifier_batch_size texts): the served model gets the text itself, whatever "
                   "chat template the server has",
    "chat": "one user message per answer on POST /v1/chat/completions; the server must use the plain "
            "concatenating template chat_templates/verifier.jinja",
}
"""How the verifier is asked. Both give the model the same tokens for a tokenizer that adds no BOS (the
general-verifier's Qwen2.5 tokenizer): the text itself. ``completions`` needs a request per batch, not per answer."""


def check_verifier_api(api: str) -> str:
    if api not in VERIFIER_APIS:
        raise ValueError(f"verifier_api must be one of {', '.join(VERIFIER_APIS)}, got {api!r}")
    return api


class GeneralVerifier:
    """The answer-equivalence verifier behind ``pool`` (a :class:`trm.client.BackendPool`): the protocol's input,
    greedy, ``max_tokens`` new tokens; one long-lived object per pool, since it coalesces concurrent questions."""

    def __init__(self, pool, model: str = DEFAULT_VERIFIER_MODEL, *, max_tokens: int = GENERAL_VERIFIER_MAX_TOKENS,
                 answer_tail_chars: int = GENERAL_VERIFIER_ANSWER_TAIL_CHARS, api: str = "completions",
                 batch_size: int = 64):
        from trm.coalescing import Coalescer

        self.client = ChatClient(pool, model)
        self.max_tokens = max_tokens
        self.answer_tail_chars = answer_tail_chars
        self.api = check_verifier_api(api)
        self._coalescer = Coalescer(self._ask_batch, batch_size)

    def submit(self, question: str, ground_truth: str, answer: str) -> "asyncio.Future[Verdict]":
        """Whether the verifier calls ``answer`` equivalent to ``ground_truth`` (see the module docstring), as a
        future on the running loop: a batch hands over all its questions at once."""
        if not answer or not answer.strip():
            done = asyncio.get_running_loop().create_future()
            done.set_result(Verdict(False, "no_answer", answer or None,
                                    "empty student answer: not verified, verifier not asked"))
            return done
        text = general_verifier_input(question, ground_truth, answer, self.answer_tail_chars)
        if self.api == "chat":
            return asyncio.ensure_future(self._ask_chat(text, answer))
        return self._coalescer.put((text, answer), len(text))

    async def verify(self, question: str, ground_truth: str, answer: str) -> Verdict:
        return await self.submit(question, ground_truth, answer)

    async def _ask_chat(self, text: str, answer: str) -> Verdict:
        (choice,) = await self.client.complete([{"role": "user", "content": text}], temperature=0.0,
                                               max_tokens=self.max_tokens)
        return read_reply(choice, answer, self.max_tokens)

    async def _ask_batch(self, items: list[tuple[str, str]]) -> list[Verdict]:
        choices = await self.client.complete_batch([text for text, _ in items], temperature=0.0,
                                                   max_tokens=self.max_tokens)
        return [read_reply(choice, answer, self.max_tokens) for choice, (_, answer) in zip(choices, items)]
