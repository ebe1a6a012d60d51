"""Text of a model response: its reasoning trace, the TRM input, and the final answer.

This module is the single source of truth for these shapes. Training, serving clients, scoring, RL rewards
and evaluation all call it, so a TRM is scored at serving time on exactly the text it was trained on.
All functions are pure and linear in the input length (no backtracking regexes over the whole text).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

THINK_OPEN = "<think>"
THINK_CLOSE = "</think>"

# Tokens that chat models leave at the end of a turn; they are never part of an answer.
END_OF_TURN_TOKENS = ("<|im_end|>", "<|endoftext|>", "<|eot_id|>", "<|end|>", "<|return|>", "</s>", "<eos>")

# Commands whose braced argument is the boxed answer: \boxed{..}, \boxed {..}, \fbox{..}.
_BOX_RE = re.compile(r"\\(?:boxed|fbox)\s*\{")

# Answer markers, longest first so "The final answer is" wins over "answer is" at the same place. The release's
# list (protocol.md section 4) also has "Solution:", which usually opens the worked solution rather than closing it
# with the answer; only "The solution is" is kept from it (tests/test_traces.py has the case).
# One whitespace run per gap (``\s*(?:\*\*\s*)?``, never ``\s*(?:\*\*)?\s*``): two adjacent runs over the same
# spaces backtrack quadratically when no colon follows ("answer" + a megabyte of spaces took hours).
_MARKER_RE = re.compile(
    r"\b(?:(?:the\s+)?final\s+answer\s+is|the\s+(?:answer|solution)\s+is)\s*(?:\*\*\s*)?[:：]?"
    r"|\b(?:final\s+answer|answer)\s*(?:\*\*\s*)?[:：]",
    re.IGNORECASE,
)


def reasoning(response: str) -> str:
    """The reasoning trace: text before the first ``</think>`` (after ``<think>`` if present).

    A response without ``</think>`` is all reasoning, as in the original release.
    """
    trace = response.split(THINK_CLOSE, 1)[0]
    if THINK_OPEN in trace:
        trace = trace.split(THINK_OPEN, 1)[1]
    return trace


def trm_input(prompt: str, response: str) -> str:
    """The exact text a TRM scores: the prompt, a newline, then the reasoning of the response."""
    return f"{prompt}\n{reasoning(response)}"


_BRACE_TOKEN = re.compile(r"\\.|[{}]", re.DOTALL)  # an escape pair (\{ \} \\ are literal in LaTeX) or a brace


def _matching_braces(text: str) -> dict[int, int]:
    """Map each unescaped '{' to its matching '}' in one pass; unbalanced braces simply have no entry. The regex skips
    plain text in C: a Python step per character made the rule check of long responses cost milliseconds each."""
    matches: dict[int, int] = {}
    stack: list[int] = []
    for token in _BRACE_TOKEN.finditer(text):
        brace = token.group()
        if brace == "{":
            stack.append(token.start())
        elif brace == "}" and stack:
            matches[stack.pop()] = token.start()
    return matches


def last_boxed(text: str) -> str | None:
    """Content of the last balanced ``\\boxed{...}`` / ``\\fbox{...}``, nested braces included."""
    starts = [m.end() - 1 for m in _BOX_RE.finditer(text)]
    if not starts:
        return None
    close_at = _closing_brace(text, starts[-1])  # the usual case: the last box closes, and it is near the end
    if close_at is not None:
        return text[starts[-1] + 1 : close_at].strip()
    matches = _matching_braces(text)  # an unclosed last box: one pass for all the others (linear, not per box)
    for open_at in reversed(starts[:-1]):
        close_at = matches.get(open_at)
        if close_at is not None:
            return text[open_at + 1 : close_at].strip()
    return None


def _closing_brace(text: str, open_at: int) -> int | None:
    """Where the '{' at ``open_at`` closes (what :func:`_matching_braces` maps it to), scanning only from there: the
    last box of a long response is near its end."""
    depth = 0
    for token in _BRACE_TOKEN.finditer(text, open_at):
        brace = token.group()
        if brace == "{":
            depth += 1
        elif brace == "}":
            depth -= 1
            if depth == 0:
                return token.start()
    return None


def _rstrip_end(text: str, end: int) -> int:
    """Index after the last non-whitespace character of ``text[:end]`` (no copy)."""
    while end and text[end - 1].isspace():
        end -= 1
    return end


def strip_end_tokens(text: str) -> str:
    """Remove trailing end-of-turn tokens, whitespace and a final period.

    Works on an end index and slices once: stripping a copy per token made a megabyte of ``</s>`` quadratic.
    """
    end = _rstrip_end(text, len(text))
    changed = True
    while changed:
        changed = False
        for token in END_OF_TURN_TOKENS:
            if text.endswith(token, 0, end):
                end = _rstrip_end(text, end - len(token))
                changed = True
    if text.endswith(".", 0, end) and not text.endswith("..", 0, end):
        end = _rstrip_end(text, end - 1)
    return text[:end].lstrip()


# Minerva-style endings close the marker line with a sentence that is not part of the answer: "The final answer is 7.
# I hope it is correct." A sentence break is a period (not between digits) followed by a space and a capital letter.
_SENTENCE_BREAK_RE = re.compile(r"\.\s+(?=[A-Z])|\$\s+(?=I hope\b)")


def _first_sentence(text: str) -> str:
    """The answer part of a marker line: up to the first sentence break ("7. I hope it is correct." -> "7")."""
    match = _SENTENCE_BREAK_RE.search(text)
    return text if match is None else text[: match.start() + (1 if text[match.start()] == "$" else 0)]


def _clean_marker_answer(text: str) -> str:
    text = _first_sentence(strip_end_tokens(text))
    text = strip_end_tokens(text)
    # Markdown emphasis and LaTeX inline delimiters wrapped around the whole answer.
    text = text.strip().strip("*").strip()
    if len(text) >= 2 and text[0] == "$" and text[-1] == "$":
        text = text.strip("$").strip()
    return strip_end_tokens(text)


def marker_answer(text: str) -> str | None:
    """Answer after the last "Final Answer:"-style marker: the rest of its line, else the next non-empty line."""
    last = None
    for last in _MARKER_RE.finditer(text):
        pass
    if last is None:
        return None
    rest = text[last.end() :]
    for line in rest.split("\n"):
        candidate = _clean_marker_answer(line)
        if candidate:
            return candidate
    return None


def extract_answer(response: str) -> str | None:
    """The final answer: last ``\\boxed{}`` (nested braces), else the last marker answer; None if absent."""
    boxed = last_boxed(response)
    if boxed is not None:
        return boxed
    return marker_answer(response)


# -- the extraction ladder ---------------------------------------------------------------------------------------
STRICT = "strict"
LENIENT = "lenient"
ANSWER_FORMATS = (STRICT, LENIENT)
# Characters of a response's end that the last rung (math-verify's own extraction, run in a rule-check worker) reads.
TAIL_CHARS = 400


# Words of prose (not LaTeX commands): three of them make a marker answer a sentence ("Final Answer: The largest $n$
# is 34"), whose answer math-verify's extraction finds.
_WORD_RE = re.compile(r"(?<![\\A-Za-z])[A-Za-z]{2,}(?![A-Za-z])")
_PROSE_WORDS = 3


@dataclass(frozen=True)
class Extraction:
    """What the extraction ladder found, and which rung found it.

    ``rung``: "box" (last box), "boxes" (the last ``parts`` boxes, joined with ", "), "marker", "tail" (``text`` is
    the response's tail for math-verify's extraction; the answer is known only after it ran) or "none".
    """

    text: str | None
    rung: str


def all_boxed(text: str) -> list[str]:
    """Contents of every balanced box, in order."""
    starts = [m.end() - 1 for m in _BOX_RE.finditer(text)]
    if not starts:
        return []
    matches = _matching_braces(text)
    return [text[s + 1 : matches[s]].strip() for s in starts if s in matches]


def answer_parts(ground_truth: str) -> int:
    """How many boxed answers a response to this ground truth may give: its number of boxes (a gold "\\boxed{1},
    \\boxed{2}"), or of top-level comma items of a bare list ("1, 2"); 1 for anything else (a tuple, a set, 1,000)."""
    boxes = all_boxed(ground_truth) if "\\boxed" in ground_truth or "\\fbox" in ground_truth else []
    if len(boxes) > 1:
        return len(boxes)
    text = (boxes[0] if boxes else ground_truth).strip().strip("$").strip()
    if not text or text[0] in "([" or text.startswith(("\\{", "\\left")) or re.fullmatch(r"-?\d{1,3}(?:,\d{3})+(?:\.\d+)?", text):
        return 1
    depth, items = 0, 1
    for c in text:
        depth += c in "([{"
        depth -= c in ")]}"
        items += c == "," and depth == 0
    return min(items, 16)


def _marker_after_last_box(text: str) -> bool:
    """Does an answer marker follow the last box ("... \\boxed{255} ... Final Answer: The final answer is 10,455")?"""
    last_marker = None
    for last_marker in _MARKER_RE.finditer(text):
        pass
    if last_marker is None:
        return False
    boxes = [m.start() for m in _BOX_RE.finditer(text)]
    return bool(boxes) and last_marker.start() > boxes[-1] and marker_answer(text) is not None


def extract(response: str, format: str = STRICT, parts: int = 1) -> Extraction:
    """The extraction ladder: box (the last ``parts`` boxes when the ground truth has several parts), marker, then
    (``format="lenient"`` only) the response's tail for math-verify's own extraction.

    ``strict`` (the release; RL rewards) requires a box or a marker, and a box wins over a marker. ``lenient``
    (evaluation tables) also reads answers written in free text ("so there are 12 ways."), takes a marker that
    comes after the last box (the response's closing statement), and hands a marker answer that is a sentence
    ("The largest $n$ is 34") to math-verify's extraction.
    """
    if format not in ANSWER_FORMATS:
        raise ValueError(f"unknown answer format {format!r}; expected one of {ANSWER_FORMATS}")
    boxes = all_boxed(response) if parts > 1 else []
    if len(boxes) >= parts > 1:
        return Extraction(", ".join(boxes[-parts:]), "boxes")
    boxed = boxes[-1] if boxes else last_boxed(response)
    if boxed is not None and not (format == LENIENT and _marker_after_last_box(response)):
        return Extraction(boxed, "box")
    marked = marker_answer(response)
    if marked is not None:
        if format == LENIENT and len(_WORD_RE.findall(marked, 0, 2000)) >= _PROSE_WORDS:  # "The largest $n$ is 34": the answer is inside a sentence
            return Extraction(marked, "tail")
        return Extraction(marked, "marker")
    if format == LENIENT:
        tail = strip_end_tokens(response)[-TAIL_CHARS:]
        if tail.strip():
            return Extraction(tail, "tail")
    return Extraction(None, "none")


def clip(text: str, limit: int) -> str:
    """Head and tail of a long text, with the cut marked; short texts unchanged."""
    text = text.strip()
    if limit <= 0 or len(text) <= limit:
        return text
    head = limit * 2 // 3
    return f"{text[:head]}\n[... {len(text) - limit} characters omitted ...]\n{text[-(limit - head) :]}"
