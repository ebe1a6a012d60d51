"""Wording of the structuring request: the judge sees the question, the attachment pool and the current step,
and answers with one line of explanation and an action marker. The parser is strict about the marker and
lenient about everything around it (case, spaces, extra prose before the marker)."""

from __future__ import annotations

import re

from trm.dag.graph import ACTIONS, AttachmentPool, Decision
from trm.traces import clip as _clip

ACTION_MARKER = "<|action|>"
PREVIOUS_MARKER = "<|previous|>"

SYSTEM_PROMPT = (
    "You map the structure of a step-by-step reasoning trace. Steps arrive one at a time. For each new step you "
    "decide what it builds on, looking only at how the reasoning moves, not at whether it is correct."
)

INSTRUCTIONS = f"""Choose exactly one action for the NEW STEP:

- continue: it carries on directly from the last step of the main path.
- backtrack: it abandons the latest line of thought and restarts from an EARLIER step of the main path
  (for example "wait, go back to ...", "let me redo the part where ..."). Name that one step; when several
  fit, pick the most recent one.
- merge: it combines the results of two or more lines of thought, at least one of them an open branch
  listed below, and at most one step of the main path. This is rare; use it only when the step clearly
  brings separate branches together.

Reply with one short line explaining your choice, then the marker on its own line, in exactly one of these forms:
{ACTION_MARKER}continue
{ACTION_MARKER}backtrack {PREVIOUS_MARKER}K
{ACTION_MARKER}merge {PREVIOUS_MARKER}K1,K2
where K, K1, K2 are step ids shown above."""


def structure_messages(
    question: str, steps: list[str], step: int, pool: AttachmentPool, step_chars: int = 600, question_chars: int = 2000
) -> list[dict]:
    """Chat messages asking how ``steps[step]`` attaches, given the pool."""
    main_ids = ", ".join(str(k) for k in pool.shown_main_path)
    lines = [f"QUESTION:\n{_clip(question, question_chars)}", ""]
    hidden = len(pool.main_path) - len(pool.shown_main_path)
    lines.append(
        f"MAIN PATH (step ids, root first{f'; {hidden} older ids not shown' if hidden > 0 else ''}): {main_ids}"
    )
    for k in pool.shown_main_path:
        lines.append(f"[step {k}] {_clip(steps[k], step_chars)}")
    lines.append("")
    if pool.open_leaves:
        lines.append(
            f"OPEN BRANCH LEAVES (ends of abandoned lines of thought): {', '.join(map(str, pool.open_leaves))}"
        )
        for k in pool.open_leaves:
            lines.append(f"[step {k}] {_clip(steps[k], step_chars)}")
    else:
        lines.append("OPEN BRANCH LEAVES: none")
    lines += ["", f"NEW STEP (id {step}):", _clip(steps[step], step_chars * 2), "", INSTRUCTIONS]
    return [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": "\n".join(lines)}]


_ACTION_RE = re.compile(re.escape(ACTION_MARKER) + r"\s*([A-Za-z]+)", re.IGNORECASE)
_PREVIOUS_RE = re.compile(re.escape(PREVIOUS_MARKER) + r"\s*([0-9][0-9,\s]*)")


def parse_structure_answer(text: str) -> tuple[Decision | None, str, str]:
    """(decision or None, explanation, parse error). The last action marker in the text counts."""
    matches = list(_ACTION_RE.finditer(text))
    if not matches:
        return None, "", "no action marker"
    last = matches[-1]
    action = last.group(1).lower()
    explanation = text[: last.start()].strip().splitlines()
    explanation_line = explanation[-1].strip() if explanation else ""
    if action not in ACTIONS:
        return None, explanation_line, f"unknown action {action!r}"
    if action == "continue":
        return Decision("continue"), explanation_line, ""
    previous = _PREVIOUS_RE.search(text, last.end())
    if previous is None:
        return None, explanation_line, f"{action} without {PREVIOUS_MARKER} ids"
    ids = tuple(int(part) for part in re.split(r"[,\s]+", previous.group(1).strip()) if part)
    return Decision(action, ids), explanation_line, ""
