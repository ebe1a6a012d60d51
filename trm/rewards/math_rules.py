"""Rule-based answer equivalence: a light exact match, then math-verify.

Pure functions with no time bound of their own: math-verify's built-in timeout uses ``signal.alarm``, which
raises off the main thread, so it is switched off here (``parsing_timeout=None``, ``timeout_seconds=None``)
and :mod:`trm.rewards.worker_pool` bounds the time from outside by running these functions in worker
processes it can kill. Never call :func:`math_equivalent` on untrusted text in a process you cannot kill.
"""

from __future__ import annotations

import logging
import re

# Wrappers that change how an answer looks but not what it says.
_INLINE_MATH = (("$$", "$$"), ("$", "$"), ("\\(", "\\)"), ("\\[", "\\]"))
_SPACING_RE = re.compile(r"\\[,;:!>]|\\quad|\\qquad|~|\s+")
_SIZING_RE = re.compile(r"\\(?:left|right|big|Big|bigg|Bigg)(?![a-zA-Z])")
_TEXT_WRAPPER_RE = re.compile(r"^\\(?:text|textbf|mathrm|mathbf)\{(.*)\}$", re.DOTALL)


def normalise_answer(text: str) -> str:
    """A conservative canonical form for exact matching: spacing, delimiters and case do not matter."""
    text = text.strip()
    changed = True
    while changed:
        changed = False
        if text.endswith(".") and not text.endswith(".."):
            text = text[:-1].rstrip()
            changed = True
        for left, right in _INLINE_MATH:
            if len(text) >= len(left) + len(right) and text.startswith(left) and text.endswith(right):
                text = text[len(left) : len(text) - len(right)].strip()
                changed = True
        match = _TEXT_WRAPPER_RE.match(text)
        if match and "{" not in match.group(1):
            text = match.group(1).strip()
            changed = True
    text = text.replace("\\dfrac", "\\frac").replace("\\tfrac", "\\frac")
    text = _SIZING_RE.sub("", text)
    text = _SPACING_RE.sub("", text)
    text = text.rstrip(".")
    return text.casefold()


def exact_match(answer: str, ground_truth: str) -> bool:
    return bool(normalise_answer(answer)) and normalise_answer(answer) == normalise_answer(ground_truth)


def _quiet_math_verify() -> None:
    # math-verify warns once per process that its timeout is off; that is deliberate here.
    logging.getLogger("math_verify").setLevel(logging.ERROR)


def warm_up() -> None:
    """Import math-verify (and sympy) once, before a worker reports ready."""
    import math_verify  # noqa: F401

    _quiet_math_verify()


def _parse(text: str) -> list:
    """Parse as inline LaTeX first; plain text only when that finds nothing.

    Parsing the bare text first would let math-verify pick a fragment ("1" out of "1+x^2") and match it.
    """
    from math_verify import parse

    parsed = parse(f"${text}$", parsing_timeout=None)
    if not parsed:
        parsed = parse(text, parsing_timeout=None)
    return parsed


def math_equivalent(answer: str, ground_truth: str) -> tuple[bool, str]:
    """(equivalent, detail) according to math-verify; detail shows what each side parsed to."""
    from math_verify import verify

    _quiet_math_verify()
    gold = _parse(ground_truth)
    if not gold:
        return False, "ground truth not parsable by math-verify"
    target = _parse(answer)
    if not target:
        return False, "answer not parsable by math-verify"
    equivalent = verify(gold, target, timeout_seconds=None)
    return bool(equivalent), f"parsed ground truth {str(gold[0])[:80]!r}, answer {str(target[0])[:80]!r}"


def check_item(item: list) -> dict:
    """Worker entry point: ``[answer, ground_truth]`` -> ``{"correct", "source", "detail"}`` (JSON-safe)."""
    answer, ground_truth = item
    if exact_match(answer, ground_truth):
        return {"correct": True, "source": "exact_match", "detail": "equal after normalisation"}
    try:
        correct, detail = math_equivalent(answer, ground_truth)
    except Exception as exc:  # math-verify or sympy failing on odd input means "not shown equivalent"
        return {"correct": False, "source": "math_verify", "detail": f"math-verify error: {type(exc).__name__}: {exc}"[:300]}
    return {"correct": correct, "source": "math_verify", "detail": detail}
