"""TRM-Preference records -> the (chosen, rejected) texts a TRM is trained and evaluated on.

A record is TRL's conversational preference format with an explicit prompt::

    {"prompt": [{"role": "user", "content": "..."}],
     "chosen": [{"role": "assistant", "content": "<think>...</think> ..."}],
     "rejected": [{"role": "assistant", "content": "..."}]}

Plain strings are accepted in place of message lists (TRL's "standard" format).

Text rules (one place, so training, evaluation and serving agree):
- prompt text: the contents of the prompt's ``user`` messages joined with a newline (system messages are
  instructions to the policy, not part of the question a TRM judges; the release's clients send the question);
- trace: the content of the last ``assistant`` message of ``chosen`` / ``rejected``;
- TRM input: :func:`trm.traces.trm_input` (prompt, newline, reasoning before ``</think>``).
"""

from __future__ import annotations

from typing import Any

from trm.errors import BadInput
from trm.traces import reasoning, trm_input


class RecordError(BadInput):
    """A preference record that cannot be turned into text; the message names the field."""

    def __init__(self, field: str, problem: str):
        super().__init__(f"field {field!r}: {problem}")
        self.field = field
        self.problem = problem


def _messages(value: Any, field: str) -> list[dict]:
    if not isinstance(value, list) or not value:
        raise RecordError(field, f"expected a non-empty list of messages or a string, got {_kind(value)}")
    for index, message in enumerate(value):
        where = f"{field}[{index}]"
        if not isinstance(message, dict):
            raise RecordError(where, f"expected a message object, got {_kind(message)}")
        if not isinstance(message.get("role"), str):
            raise RecordError(f"{where}.role", f"missing or not a string (got {_kind(message.get('role'))})")
        if not isinstance(message.get("content"), str):
            raise RecordError(f"{where}.content", f"missing or not a string (got {_kind(message.get('content'))})")
    return value


def _kind(value: Any) -> str:
    return "nothing" if value is None else type(value).__name__


def prompt_text(prompt: Any) -> str:
    """The question a TRM sees: a string as is, else the user messages' contents joined by newlines."""
    if isinstance(prompt, str):
        return prompt
    messages = _messages(prompt, "prompt")
    users = [m["content"] for m in messages if m["role"] == "user"]
    if not users:
        roles = sorted({m["role"] for m in messages})
        raise RecordError("prompt", f"no message with role 'user' (roles present: {roles})")
    return "\n".join(users)


def response_text(response: Any, field: str) -> str:
    """The full response (reasoning and answer): a string as is, else the last assistant message's content."""
    if isinstance(response, str):
        return response
    messages = _messages(response, field)
    answers = [m["content"] for m in messages if m["role"] == "assistant"]
    if not answers:
        roles = sorted({m["role"] for m in messages})
        raise RecordError(field, f"no message with role 'assistant' (roles present: {roles})")
    return answers[-1]


def preference_parts(record: Any) -> tuple[str, str, str]:
    """(prompt text, chosen response, rejected response) of one record; raises RecordError naming the field."""
    if not isinstance(record, dict):
        raise RecordError("record", f"expected a JSON object, got {_kind(record)}")
    for field in ("prompt", "chosen", "rejected"):
        if field not in record:
            raise RecordError(field, "missing")
    return (
        prompt_text(record["prompt"]),
        response_text(record["chosen"], "chosen"),
        response_text(record["rejected"], "rejected"),
    )


def preference_texts(record: Any) -> tuple[str, str]:
    """(chosen TRM input, rejected TRM input), each built by :func:`trm.traces.trm_input`."""
    prompt, chosen, rejected = preference_parts(record)
    return trm_input(prompt, chosen), trm_input(prompt, rejected)


def trace_lengths(record: Any) -> tuple[int, int]:
    """Character lengths of the chosen and rejected reasoning traces (for the shorter-trace baseline)."""
    _, chosen, rejected = preference_parts(record)
    return len(reasoning(chosen)), len(reasoning(rejected))
