"""Rule-based answer equivalence: a light exact match, math-verify, and verl's ``prime_math`` as the fallback.

This is the original release's rule check (exact match, math-verify on the ``$x$`` and bare forms of both sides,
then verl's ``prime_math`` scorer), minus one weakness: a bare-form parse is used only when it read the whole
text, never a number picked out of a larger expression (see :func:`_bare_reads_whole`).

Pure functions with no time bound of their own: math-verify's built-in timeout uses ``signal.alarm``, which
raises off the main thread, so it is switched off here (``parsing_timeout=None``, ``timeout_seconds=None``)
and :mod:`trm.rewards.worker_pool` bounds the time from outside by running these functions in worker
processes it can kill (with their process group: ``prime_math`` forks helpers of its own). Never call
:func:`math_equivalent` or :func:`prime_math_equivalent` on untrusted text in a process you cannot kill.
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
import os
import re
import sys
import types

# Stages of the worker-side check; each runs as its own time-bounded item (the release gives each its own budget).
MATH_VERIFY = "math_verify"
PRIME_MATH = "prime_math"

# Wrappers that change how an answer looks but not what it says.
_INLINE_MATH = (("$$", "$$"), ("$", "$"), ("\\(", "\\)"), ("\\[", "\\]"))
_SPACING_RE = re.compile(r"\\[,;:!>]|\\quad|\\qquad|~|\s+")
_SIZING_RE = re.compile(r"\\(?:left|right|big|Big|bigg|Bigg)(?![a-zA-Z])")
_TEXT_WRAPPERS = ("\\text{", "\\textbf{", "\\mathrm{", "\\mathbf{")
# What may surround a bare-form parse besides the part it read: words of two letters or more ("8 legs", "5 apples").
_WORD_SEPARATORS_RE = re.compile(r"[\s.,;:!?]+")


def _inner_wrapper(text: str, start: int, end: int) -> tuple[int, int] | None:
    """Bounds of X in ``\\text{X}`` (and bold/roman variants) spanning text[start:end], when X has no braces."""
    if end - start < 2 or text[end - 1] != "}":
        return None
    for wrapper in _TEXT_WRAPPERS:
        if text.startswith(wrapper, start, end) and end - 1 >= start + len(wrapper):
            inner = (start + len(wrapper), end - 1)
            if text.find("{", *inner) == -1 and text.find("}", *inner) == -1:
                return inner
    return None


def normalise_answer(text: str) -> str:
    """A conservative canonical form for exact matching: spacing, delimiters and case do not matter.

    Peels wrappers by moving two indices and slices once (peeling by copying was quadratic in the nesting depth:
    a megabyte of ``$`` took seconds).
    """
    start, end = 0, len(text)
    changed = True
    while changed:
        changed = False
        while start < end and text[start].isspace():
            start += 1
        while end > start and text[end - 1].isspace():
            end -= 1
        if text.endswith(".", start, end) and not text.endswith("..", start, end):
            end -= 1
            changed = True
            continue
        for left, right in _INLINE_MATH:
            if end - start >= len(left) + len(right) and text.startswith(left, start, end) and text.endswith(right, start, end):
                start, end = start + len(left), end - len(right)
                changed = True
                break
        if changed:
            continue
        inner = _inner_wrapper(text, start, end)  # the inner text has no braces: this applies once at most
        if inner is not None:
            start, end = inner
            changed = True
    text = text[start:end]
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


# -- verl's prime_math -----------------------------------------------------------------------------------------
_PRIME_MATH: types.ModuleType | None = None
_PRIME_MATH_PACKAGE = "verl.utils.reward_score.prime_math"


def _load_prime_math(light: bool = False) -> types.ModuleType:
    """verl's ``prime_math`` module, unmodified.

    ``light`` (worker processes only): import it without running ``verl/__init__`` and ``verl/utils/__init__``,
    which load torch and transformers (7 s and 300 MB per worker) for a module that needs neither. The parent
    packages are registered as bare package shells pointing at verl's own folders, so the module and its
    ``verl.utils.py_functional`` helper load from verl's files as they are. Never do this in a process that
    may use the rest of verl (its package would stay a shell).
    """
    global _PRIME_MATH
    if _PRIME_MATH is None:
        if light and "verl" not in sys.modules:
            spec = importlib.util.find_spec("verl")
            if spec is None or not spec.submodule_search_locations:
                raise ImportError("verl is not installed (its prime_math scorer is the rule check's fallback)")
            root = list(spec.submodule_search_locations)[0]
            for name, folder in (("verl", root), ("verl.utils", os.path.join(root, "utils")),
                                 ("verl.utils.reward_score", os.path.join(root, "utils", "reward_score"))):
                shell = types.ModuleType(name)
                shell.__path__ = [folder]
                sys.modules[name] = shell
        _PRIME_MATH = importlib.import_module(_PRIME_MATH_PACKAGE)
    return _PRIME_MATH


def warm_up() -> None:
    """Import math-verify (and sympy) and prime_math once, before a worker reports ready."""
    import math_verify  # noqa: F401

    _quiet_math_verify()
    _load_prime_math(light=True)


# -- math-verify on both forms of both sides --------------------------------------------------------------------
def _bare_reads_whole(text: str, read: str) -> bool:
    """Did a bare-form parse read all of ``text`` that is maths, leaving at most words around it?

    math-verify's bare form takes the first number it finds: "1" from "1+x^2", "2" from "2x+3", "3" from
    "1, 2, 3". The release verifies any parsed pair, so those fragments match a ground truth of "1", "2" or "3".
    Here a bare parse counts only when what it read (``read``, math-verify's own extracted string) stands apart
    from its neighbours and everything else is words of two letters or more ("8 legs", "5 apples"): that keeps
    what the bare form adds (numbers with words the ``$x$`` form reads as a product of letters) without fragments.
    """
    read = read.strip()
    at = text.find(read) if read else -1
    if at < 0:
        return False
    before, after = text[:at], text[at + len(read):]
    if (before and not before[-1].isspace()) or (after and not (after[0].isspace() or after[0] in ".,;:!?")):
        return False  # glued to a neighbour: "2x", "-2", "x=2"
    words = _WORD_SEPARATORS_RE.sub(" ", f"{before} {after}").split()
    return all(len(word) >= 2 and word.isascii() and word.isalpha() for word in words)


def _forms(text: str) -> list[tuple[str, list]]:
    """The parses of ``text`` to compare: as inline LaTeX, and bare when that read the whole text (see above)."""
    from math_verify import parse

    forms = []
    inline = parse(f"${text}$", parsing_timeout=None)
    if inline:
        forms.append(("$x$", inline))
    bare = parse(text, parsing_timeout=None)
    if bare and len(bare) > 1 and _bare_reads_whole(text, str(bare[-1])):
        if not inline or str(bare[0]) != str(inline[0]):
            forms.append(("bare", bare))
    return forms


def math_equivalent(answer: str, ground_truth: str) -> tuple[bool, str]:
    """(equivalent, detail) according to math-verify, any form of the ground truth against any of the answer."""
    from math_verify import verify

    _quiet_math_verify()
    golds = _forms(ground_truth)
    if not golds:
        return False, "ground truth not parsable by math-verify"
    targets = _forms(answer)
    if not targets:
        return False, "answer not parsable by math-verify"
    for gold_form, gold in golds:
        for target_form, target in targets:
            if verify(gold, target, timeout_seconds=None):
                return True, (f"parsed ground truth {str(gold[0])[:80]!r} ({gold_form}), "
                              f"answer {str(target[0])[:80]!r} ({target_form})")
    return False, f"parsed ground truth {str(golds[0][1][0])[:80]!r}, answer {str(targets[0][1][0])[:80]!r}: not equal"


def prime_math_equivalent(answer: str, ground_truth: str) -> tuple[bool, str]:
    """(equivalent, detail) according to verl's ``prime_math`` scorer (percentages, numeric tolerance, pi as 3.14)."""
    correct, _, compared = _load_prime_math().compute_score(answer, ground_truth)
    return bool(correct), f"prime_math compared {str(compared)[:80]!r} with the ground truth"


def check_item(item: list) -> dict:
    """Worker entry point: ``[answer, ground_truth, stage]`` -> ``{"correct", "source", "detail"}`` (JSON-safe).

    Stage ``math_verify`` (the default): exact match, then math-verify; stage ``prime_math``: verl's scorer.
    Either one raising on odd input means "not shown equivalent", with the error in the detail.
    """
    answer, ground_truth, *rest = item
    stage = rest[0] if rest else MATH_VERIFY
    if stage == PRIME_MATH:
        check = prime_math_equivalent
    elif stage == MATH_VERIFY:
        if exact_match(answer, ground_truth):
            return {"correct": True, "source": "exact_match", "detail": "equal after normalisation"}
        check = math_equivalent
    else:
        raise ValueError(f"unknown rule-check stage {stage!r}")
    try:
        correct, detail = check(answer, ground_truth)
    except Exception as exc:  # sympy failing on odd input means "not shown equivalent"
        return {"correct": False, "source": stage, "detail": f"{stage} error: {type(exc).__name__}: {exc}"[:300]}
    return {"correct": correct, "source": stage, "detail": detail}
