"""Split a reasoning trace into steps.

A trace is cut at blank lines into blocks. A block opens a new step when its first word (case-insensitive) is
one of the family's step keywords ("wait", "alternatively", ...); any other block joins the step before it. The
first block always opens step 0, so text before the first keyword block (usually a restatement of the problem)
is step 0 on its own. Every piece keeps its trailing blank-line separator, hence ``"".join(steps) == trace``.
"""

from __future__ import annotations

import re

from trm.errors import BadInput

# Words that typically open a new move in a reasoning trace, by model family. The paper chose its lists from
# the most frequent block-leading words of each family without publishing them; these defaults were picked the
# same way by eye and can be replaced with --keywords (a family name, or a comma-separated word list).
_COMMON = {
    "so",
    "but",
    "wait",
    "alternatively",
    "therefore",
    "thus",
    "hence",
    "hmm",
    "now",
    "then",
    "next",
    "however",
    "first",
    "second",
    "third",
    "finally",
    "let",
    "let's",
    "maybe",
    "perhaps",
    "actually",
    "hold",
    "also",
    "another",
    "check",
    "verify",
    "again",
    "okay",
    "ok",
    "alright",
    "need",
    "we",
    "since",
    "given",
    "suppose",
    "assume",
    "instead",
    "similarly",
    "recall",
    "consider",
    "in",
    "both",
}
KEYWORD_SETS: dict[str, frozenset[str]] = {
    "default": frozenset(_COMMON),
    # Qwen3 thinking traces: "Okay, ...", "Wait, ...", "Let me ...", "Alternatively, ..."
    "qwen3": frozenset(_COMMON | {"yes", "right", "looking", "to", "for", "if", "oh", "no", "or"}),
    # DeepSeek-R1 distills: heavy on "Wait", "Hmm", "But", "Let me check"
    "deepseek-r1": frozenset(_COMMON | {"oh", "no", "yes", "right", "or", "if", "for", "to", "looking"}),
    # GPT-OSS analysis channel: terse lines such as "We need ...", "Compute ...", "Thus answer ..."
    "gpt-oss": frozenset(_COMMON | {"compute", "use", "find", "answer", "check", "simplify", "plug", "solve"}),
}

# A separator is a run of two or more newlines, possibly with spaces or tabs on the empty lines.
_SEPARATOR = re.compile(r"\n[ \t]*\n(?:[ \t]*\n)*")
# Leading markup that hides the first word: spaces, markdown emphasis/headers/quotes, list dashes, quotes.
_FIRST_WORD = re.compile(r"[\s*_#>\-\"'`(\[]*([A-Za-z]+(?:'[A-Za-z]+)?)")


def resolve_keywords(spec: str | None) -> frozenset[str]:
    """A family name from KEYWORD_SETS, or a comma-separated word list ("wait,so," for short ones); None = default."""
    if spec is None or spec == "":
        return KEYWORD_SETS["default"]
    if spec in KEYWORD_SETS:
        return KEYWORD_SETS[spec]
    if "," not in spec:
        raise BadInput(
            f"unknown keyword family {spec!r}; known: {', '.join(KEYWORD_SETS)}, or give a comma-separated word list"
        )
    words = frozenset(word.strip().lower() for word in spec.split(",") if word.strip())
    if not words:
        raise BadInput("empty keyword list")
    return words


def blocks(trace: str) -> list[str]:
    """Blank-line blocks, each with the separator that follows it; they concatenate back to ``trace``."""
    pieces: list[str] = []
    start = 0
    for match in _SEPARATOR.finditer(trace):
        pieces.append(trace[start : match.end()])
        start = match.end()
    if start < len(trace) or not pieces:
        pieces.append(trace[start:])
    return pieces


def first_word(block: str) -> str | None:
    match = _FIRST_WORD.match(block)
    return match.group(1).lower() if match else None


def partition(trace: str, keywords: frozenset[str] | None = None) -> list[str]:
    """Steps of ``trace``; ``"".join(partition(trace)) == trace`` always holds."""
    keywords = KEYWORD_SETS["default"] if keywords is None else keywords
    steps: list[str] = []
    for block in blocks(trace):
        word = first_word(block)
        starts_step = word is not None and (word in keywords or word.split("'")[0] in keywords)
        if not steps or (starts_step and steps[-1].strip()):
            steps.append(block)
        else:
            steps[-1] += block
    return steps
