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
import math
import re
import sys
import types

# The release's length guard (protocol.md section 4, step 2); also applied in workers to answers they extract.
LENGTH_GUARD_CHARS = 50
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
            # verl bounds each prime_math comparison by forking a process per call (26 ms each, ten times a
            # math-verify check); these workers are bounded from outside, so its time limit becomes a plain call.
            importlib.import_module("verl.utils.py_functional").timeout_limit = _no_time_limit
        _PRIME_MATH = importlib.import_module(_PRIME_MATH_PACKAGE)
    return _PRIME_MATH


def _no_time_limit(seconds: float = 0, use_signals: bool = False):
    """Stand-in for verl's ``timeout_limit`` in workers (see :func:`_load_prime_math`), as decorator and context."""
    import contextlib

    class _Limit(contextlib.ContextDecorator):
        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

    return _Limit()


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


def math_equivalent(answer: str, ground_truth: str, parsed_answer: list | None = None) -> tuple[bool, str]:
    """(equivalent, detail) according to math-verify, any form of the ground truth against any of the answer.

    ``parsed_answer``: math-verify's own parse of the answer (from its extraction on a response tail), compared too;
    the answer's text is parsed again only when its braces balance (math-verify's extracted text can be cut short).
    """
    from math_verify import verify

    _quiet_math_verify()
    golds = _forms(ground_truth)
    if not golds:
        return False, "ground truth not parsable by math-verify"
    targets = _forms(answer) if parsed_answer is None or _balanced(answer) else []
    if parsed_answer:
        targets.append(("extracted", parsed_answer))
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


# -- answer shapes the release misjudges: percent, units, decimal commas, tuples against sets, exponent towers --------
# Verdict sources a worker settles for good in the math_verify stage (prime_math never revisits them).
SETTLED_SOURCES = frozenset({"units", "numeric", "length_guard", "no_answer"})
_UNESCAPED_PERCENT_RE = re.compile(r"(?<!\\)%")
_TEXT_UNIT_RE = re.compile(r"\\(?:text|mbox|textnormal|mathrm|textrm|textit|operatorname)\s*\{([^{}]*)\}\s*$")
_WORD_UNIT_RE = re.compile(r"(?<![\\A-Za-z])([A-Za-z]+|°|/|\^\s*\{?\s*\\circ\s*\}?|\\circ)\s*$")
_UNIT_POWER_RE = re.compile(r"\^\s*\{?\s*([23])\s*\}?\s*$")
_SPACES_AT_END_RE = re.compile(r"(?:\s|\\[,;:! ]|~|\\quad)+$")
_NUMERIC_HEAD_RE = re.compile(r"[\d.,+\-*/^{}()\s]*\d[\d.,+\-*/^{}()\s]*")
_HEAD_COMMANDS_RE = re.compile(r"\\(?:[dtc]?frac|sqrt|pi|cdot|times)(?![A-Za-z])")
# Words that are not units after a number: connectives and maths ("2 and 3", "3 pi").
_NOT_UNITS = frozenset({"and", "or", "to", "pi", "i", "e", "x", "y", "z", "n", "k"})
_UNIT_GROUPS = {
    "mm": "mm millimeter millimetre", "cm": "cm centimeter centimetre", "m": "m meter metre",
    "km": "km kilometer kilometre", "in": "in inch inche", "ft": "ft foot feet", "yd": "yd yard", "mi": "mi mile",
    "mg": "mg milligram", "g": "g gram", "kg": "kg kilogram", "lb": "lb lbs pound", "oz": "oz ounce", "t": "ton tonne",
    "ml": "ml milliliter millilitre", "l": "l liter litre", "s": "s sec second", "min": "min minute",
    "h": "h hr hour", "day": "day", "week": "week wk", "month": "month", "year": "year yr", "°": "°", "rad": "rad radian",
    "$": "$", "cent": "cent ¢", "mi/h": "mph", "km/h": "kph kmh", "n": "newton", "j": "j joule", "w": "w watt",
    "pa": "pa pascal", "v": "v volt", "hz": "hz hertz",
}
_UNIT_SYNONYMS = {name: canonical for canonical, names in _UNIT_GROUPS.items() for name in names.split()}
_PERCENT_WORDS = frozenset({"percent", "pct", "percentage"})
_DEGREE_FORMS = ("^\\circ", "^{\\circ}", "\\circ", "°", "degree", "deg")
_DECIMAL_COMMA_RE = re.compile(r"-?\d+,\d+")
_THOUSANDS_RE = re.compile(r"-?\d{1,3}(?:,\d{3})+(?:\.\d+)?")
_PLAIN_NUMBER_RE = re.compile(r"-?(?:\d+(?:\.\d*)?|\.\d+)")


def _unit_name(raw: str) -> str:
    """A unit's comparable form: "\\text{ cm}^2" -> "cm^2", "weeks" -> "week", "^\\circ" -> "°"."""
    name = re.sub(r"\\(?:text|mbox|textnormal|mathrm|textrm|textit|operatorname)\s*\{([^{}]*)\}", r"\1", raw)
    name = re.sub(r"[\s{}]|\\[,;:! ]", "", name).casefold()
    for form in _DEGREE_FORMS:
        if name.startswith(form.casefold()):
            name = "°" + name[len(form):]
    if name.startswith("°") and name[1:] in ("", "s", "rees", "ree"):
        return "°"
    if name.isalpha() and len(name) >= 4 and name.endswith("s") and not name.endswith("ss"):  # plural: one unit
        name = name[:-2] if name.endswith(("ches", "shes", "xes")) else name[:-1]
    return name


def split_unit(text: str) -> tuple[str, str | None]:
    """(value, unit) when ``text`` is a number followed by a unit ("10 weeks", "15\\mbox{ cm}^2", "90^\\circ", "\\$5");
    (text, None) otherwise. Conservative: the value must be numeric (digits, fractions, roots), so "x = 2" or
    "2 and 3" have no unit."""
    head, parts = text.strip(), []
    if head.startswith("\\$") or (head.startswith("$") and head[1:2].isdigit()):
        head, parts = head.lstrip("\\$").strip(), ["dollar"]
    for _ in range(6):  # a unit is a few tokens at most ("m / s^2", "\\text{ cm}^2")
        head = _SPACES_AT_END_RE.sub("", head)
        power = _UNIT_POWER_RE.search(head)
        core = head[: power.start()] if power else head
        match = _TEXT_UNIT_RE.search(core) or _WORD_UNIT_RE.search(core)
        if match is None or match.group(0).strip().casefold() in _NOT_UNITS:
            break
        token = core[match.start():] + (f"^{power.group(1)}" if power else "")
        if token.strip() == "/" and not parts:
            break
        parts.insert(0, token)
        head = core[: match.start()]
    head = _SPACES_AT_END_RE.sub("", head).strip()
    unit_tokens = [p for p in parts if p != "dollar"]
    if not parts or not _NUMERIC_HEAD_RE.fullmatch(_HEAD_COMMANDS_RE.sub("", head)):
        return text, None
    if unit_tokens and unit_tokens[0].strip() == "/":
        return text, None
    unit = "".join(_unit_name(p) for p in unit_tokens) + ("$" if "dollar" in parts else "")
    if unit in ("dollar", "dollar$"):
        unit = "$"
    if unit in _PERCENT_WORDS:  # "28 percent" is 28\\%, a value, not a unit
        return f"{head}\\%", None
    return head, (unit or None)


def _shape(text: str) -> tuple[str, str]:
    """("tuple" | "set" | "list" | "other", inner text) of an answer, from its outer brackets and top-level commas."""
    t = re.sub(r"\\(?:left|right)(?![A-Za-z])", "", text).strip()
    for kind, left, right in (("tuple", "(", ")"), ("set", "\\{", "\\}")):
        if t.startswith(left) and t.endswith(right) and len(t) > len(left) + len(right):
            inner = t[len(left):-len(right)]
            if _top_level_commas(inner) and _balanced(inner):
                return kind, inner
            return "other", t
    if t[:1] not in "[(" and _top_level_commas(t):
        return "list", t
    return "other", t


def _balanced(text: str) -> bool:
    depth = 0
    for c in text:
        depth += c in "([{"
        depth -= c in ")]}"
        if depth < 0:
            return False
    return depth == 0


def _top_level_commas(text: str) -> int:
    depth, commas = 0, 0
    for c in text:
        depth += c in "([{"
        depth -= c in ")]}"
        commas += c == "," and depth == 0
    return commas


def prepare(answer: str, ground_truth: str) -> tuple[str, str, str | None]:
    """Both sides made comparable, or why they are not: (answer, ground truth, reason they differ or None).

    - an unescaped ``%`` (a LaTeX comment) is escaped: "10%" means ten percent, not "10";
    - units: a unit is dropped when both sides name the same one or one side is a bare number ("10 weeks" vs "10");
      two different units are not equal ("10 cm" vs "10 m"), whatever the numbers;
    - a decimal comma ("1000,99", "0,111") is read as a decimal point when the other side has no comma (it is not a
      list), unless it groups thousands ("1,000": digits in threes, as math-verify reads it too);
    - one sentence-ending period or comma is dropped ("2^{10}." is not "2");
    - an ordered tuple is not a set: against a tuple, a set or bare list is compared as the tuple written in its order
      ("(2, 1)" is not "\\{1, 2\\}" but "(1, 2)" is).
    """
    answer = _UNESCAPED_PERCENT_RE.sub(r"\\%", _unwrap_inline(answer))
    ground_truth = _UNESCAPED_PERCENT_RE.sub(r"\\%", _unwrap_inline(ground_truth))
    answer, ground_truth = _TRAILING_PUNCTUATION_RE.sub("", answer), _TRAILING_PUNCTUATION_RE.sub("", ground_truth)
    # upright Euler e, which math-verify reads as nothing ("1 + \\frac{1}{\\mathrm{e}}" parses as 1)
    answer, ground_truth = _UPRIGHT_E_RE.sub("e", answer), _UPRIGHT_E_RE.sub("e", ground_truth)
    a_items, g_items = _split_top_level(answer), _split_top_level(ground_truth)
    if len(a_items) > 1 and len(a_items) == len(g_items):  # a multi-part answer: units part by part ("5 cm, 7 cm")
        pairs = [_drop_units(a, g) for a, g in zip(a_items, g_items)]
        different = next((why for _, _, why in pairs if why), None)
        if different:
            return answer, ground_truth, different
        if any(a != a0 or g != g0 for (a, g, _), a0, g0 in zip(pairs, a_items, g_items)):
            answer, ground_truth = ", ".join(a for a, _, _ in pairs), ", ".join(g for _, g, _ in pairs)
    else:
        answer, ground_truth, different = _drop_units(answer, ground_truth)
        if different:
            return answer, ground_truth, different
    answer, ground_truth = _decimal_comma(answer, ground_truth), _decimal_comma(ground_truth, answer)
    (a_kind, a_inner), (g_kind, g_inner) = _shape(answer), _shape(ground_truth)
    if a_kind == "tuple" and g_kind in ("set", "list"):
        ground_truth = f"({g_inner})"
    elif g_kind == "tuple" and a_kind in ("set", "list"):
        answer = f"({a_inner})"
    return answer, ground_truth, None


# One sentence-ending period or comma ("2^{10}." would read as "2" in math-verify's inline form), never an ellipsis.
_TRAILING_PUNCTUATION_RE = re.compile(r"(?<![.,])[.,]\s*$")


_UPRIGHT_E_RE = re.compile(r"\\(?:mathrm|rm|text)\s*\{\s*e\s*\}")


def canonical_unit(unit: str) -> str | None:
    """A known unit's canonical name ("centimeters" -> "cm", "sqft" -> "ft^2", "mph" -> "mi/h"), None for words that
    are not known units ("apples", "units", "ways"): those are labels, never a reason to call an answer wrong."""
    parts = []
    for part in unit.split("/"):
        power = ""
        prefix = re.match(r"(square|sq\.?|cubic|cu\.?)(?=[a-z])", part)
        if prefix:
            power, part = ("^3" if prefix.group(1).startswith("cu") else "^2"), part[prefix.end():]
        suffix = re.search(r"\^([23])$", part)
        if suffix:
            power, part = f"^{suffix.group(1)}", part[: suffix.start()]
        base = _UNIT_SYNONYMS.get(part) or _UNIT_SYNONYMS.get(part[:-1] if part.endswith("s") else part)
        if base is None:
            return None
        parts.append(base + power)
    return "/".join(parts)


def _drop_units(answer: str, ground_truth: str) -> tuple[str, str, str | None]:
    """Both values without their units when the units agree, one side has none or either is not a known unit (a
    label such as "apples"); the reason when both are known units and differ ("10 cm" is not "10 m")."""
    a_value, a_unit = split_unit(answer)
    g_value, g_unit = split_unit(ground_truth)
    a_known, g_known = canonical_unit(a_unit or ""), canonical_unit(g_unit or "")
    if a_unit and g_unit and a_known and g_known and a_known != g_known:
        return answer, ground_truth, f"different units: answer in {a_unit!r}, ground truth in {g_unit!r}"
    if a_unit or g_unit:
        return a_value, g_value, None
    return answer, ground_truth, None


def _split_top_level(text: str) -> list[str]:
    """The items of a bare comma list ("5 cm, 7 cm"); one item for anything bracketed or without top-level commas."""
    t = text.strip()
    if t[:1] in "([" or t.startswith(("\\{", "\\left")) or _THOUSANDS_RE.fullmatch(t):
        return [text]
    items, depth, start = [], 0, 0
    for i, c in enumerate(t):
        depth += c in "([{"
        depth -= c in ")]}"
        if c == "," and depth == 0:
            items.append(t[start:i].strip())
            start = i + 1
    items.append(t[start:].strip())
    return items if all(items) else [text]


def _unwrap_inline(text: str) -> str:
    """"$15 cm$" -> "15 cm" (so that a math delimiter is not read as a dollar sign)."""
    t = text.strip()
    for left, right in _INLINE_MATH:
        if len(t) > len(left) + len(right) and t.startswith(left) and t.endswith(right):
            return t[len(left):-len(right)].strip()
    return text


def _decimal_comma(text: str, other: str) -> str:
    t = text.strip()
    if _DECIMAL_COMMA_RE.fullmatch(t) and not _THOUSANDS_RE.fullmatch(t) and "," not in other:
        return t.replace(",", ".")
    return text


# -- a float evaluator for exponent towers (2^{1/2^{1000}}), which sympy may grind on for minutes ------------------
class _NotNumeric(ValueError):
    pass


def _nested_exponent(text: str) -> bool:
    """Is there an exponent inside an exponent ("2^{1/2^{1000}}", "10^{10^{10}}")?"""
    at = text.find("^")
    while at != -1:
        rest = text[at + 1 :].lstrip()
        if rest.startswith("{"):
            depth = 0
            for i, c in enumerate(rest):
                depth += c == "{"
                depth -= c == "}"
                if depth == 0:
                    if "^" in rest[:i]:
                        return True
                    break
        at = text.find("^", at + 1)
    return False


_TOKEN_RE = re.compile(r"\s*(\d+(?:\.\d*)?|\.\d+|\\[dtc]?frac|\\sqrt|\\pi|\\cdot|\\times|\\left|\\right|[-+*/^{}()\[\]])")


def evaluate_numeric(text: str) -> float:
    """The value of a numeric LaTeX expression (numbers, + - * / ^, \\frac, \\sqrt, \\pi, brackets) in floats;
    raises ValueError for anything else, an overflow or a complex value. Linear in the text."""
    tokens, pos, text = [], 0, text.strip()
    while pos < len(text):
        match = _TOKEN_RE.match(text, pos)
        if match is None:
            if text[pos:].strip() == "":
                break
            raise _NotNumeric(f"not numeric at {text[pos:pos + 10]!r}")
        if match.group(1) not in ("\\left", "\\right"):
            tokens.append(match.group(1))
        pos = match.end()
    tokens.append("")
    at = [0]

    def peek() -> str:
        return tokens[at[0]]

    def take(expected: str | None = None) -> str:
        token = tokens[at[0]]
        if expected is not None and token != expected:
            raise _NotNumeric(f"expected {expected!r}, got {token!r}")
        at[0] += 1
        return token

    def expr() -> float:
        value = term()
        while peek() in ("+", "-"):
            value = value + term() if take() == "+" else value - term()
        return value

    def term() -> float:
        value = unary()
        while True:
            if peek() in ("*", "\\cdot", "\\times"):
                take()
                value *= unary()
            elif peek() == "/":
                take()
                value /= unary()
            elif peek() and peek() not in ("+", "-", ")", "}", "]", "^"):
                value *= unary()  # implicit product: 2\\pi, 3\\sqrt{2}
            else:
                return value

    def unary() -> float:
        if peek() in ("-", "+"):
            return -unary() if take() == "-" else unary()
        return power()

    def power() -> float:
        base = atom()
        if peek() == "^":
            take()
            exponent = unary() if peek() in ("-", "+") else power()
            try:
                result = base ** exponent
            except OverflowError:  # 2^{2000} inside 5^{1/2^{2000}}: infinite here, 1 after the outer power
                result = math.inf
            except ZeroDivisionError as exc:
                raise _NotNumeric(str(exc)) from exc
            if isinstance(result, complex):
                raise _NotNumeric("complex power")
            return result
        return base

    def group() -> float:
        take("{")
        value = expr()
        take("}")
        return value

    def atom() -> float:
        token = take()
        if token and (token[0].isdigit() or token[0] == "."):
            return float(token)
        if token == "\\pi":
            return math.pi
        if token in ("(", "["):
            value = expr()
            take(")" if token == "(" else "]")
            return value
        if token == "{":
            value = expr()
            take("}")
            return value
        if token.endswith("frac"):
            numerator = group()
            return numerator / group()
        if token == "\\sqrt":
            return math.sqrt(group())
        raise _NotNumeric(f"unexpected {token!r}")

    try:
        value = expr()
    except (OverflowError, ZeroDivisionError, RecursionError, IndexError) as exc:
        raise _NotNumeric(str(exc)) from exc
    if peek() != "" or math.isnan(value) or math.isinf(value):
        raise _NotNumeric("trailing text or no finite value")
    return value


def tower_check(answer: str, ground_truth: str) -> tuple[bool, str] | None:
    """Decide a pair with an exponent tower numerically (relative tolerance 1e-6, math-verify's rounding), or None
    when neither side has one or either side is not a finite number (then math-verify, time-bounded, decides)."""
    if not (_nested_exponent(answer) or _nested_exponent(ground_truth)):
        return None
    try:
        a, g = evaluate_numeric(answer), evaluate_numeric(ground_truth)
    except ValueError:
        return None
    return math.isclose(a, g, rel_tol=1e-6, abs_tol=1e-12), f"numeric: answer {a:.10g}, ground truth {g:.10g}"


_MATH_SPAN_RE = re.compile(r"\$\$(.+?)\$\$|\$(.+?)\$|\\\((.+?)\\\)|\\\[(.+?)\\\]", re.DOTALL)
_PUNCTUATION_IN_MATH_RE = re.compile(r"\s*[.,;]\s*(\$|\\\]|\\\))")


def extract_tail(tail: str) -> tuple[list, str] | None:
    """The last rung of the lenient ladder: math-verify's own extraction on a response's tail, as (its parse, its
    extracted text); None if it found nothing. Sentence punctuation written inside math ("$\\sqrt{2}.$") is dropped
    when the first try finds nothing."""
    from math_verify import parse

    _quiet_math_verify()
    for text in (tail, _PUNCTUATION_IN_MATH_RE.sub(r"\1", tail)):
        parsed = parse(text, parsing_timeout=None)
        if len(parsed) >= 2 and str(parsed[-1]).strip():
            found = str(parsed[-1]).strip()
            if not _balanced(found):  # its text is cut at a brace ("1 + \\frac{1}{"): the last math span, whole
                spans = [next(g for g in m.groups() if g is not None) for m in _MATH_SPAN_RE.finditer(text)]
                if spans and _balanced(spans[-1].strip()):
                    found = spans[-1].strip()
            return parsed, found
    return None


def check_item(item: list) -> dict:
    """Worker entry point: ``[answer, ground_truth, stage, rung]`` -> ``{"correct", "source", "detail"[, "answer"]}``
    (JSON-safe).

    Stage ``math_verify`` (the default): exact match, then the shapes of :func:`prepare` (a unit mismatch is settled
    as "units"), an exponent tower numerically ("numeric"), then math-verify; stage ``prime_math``: verl's scorer on
    the prepared pair. Rung "tail" (optional): ``answer`` is a response's tail and math-verify extracts the answer
    first (returned as "answer"; none is "no_answer", the length guard applies to it). Either check raising on odd
    input means "not shown equivalent", with the error in the detail.
    """
    answer, ground_truth, *rest = item
    stage = rest[0] if rest else MATH_VERIFY
    if stage not in (MATH_VERIFY, PRIME_MATH):
        raise ValueError(f"unknown rule-check stage {stage!r}")
    rung = rest[1] if len(rest) > 1 else None
    extracted, parsed = {}, None
    if rung == "tail":  # the lenient ladder's last rung: the answer is what math-verify extracts from the tail
        try:
            found = extract_tail(answer)
        except Exception as exc:
            found, error = None, f": {type(exc).__name__}: {exc}"[:200]
        else:
            error = ""
        parsed, answer = found if found is not None else (None, None)
        if answer is not None and _balanced(answer):
            parsed = None  # the text is whole: compare it like any answer (its own parse may be a fragment: "2^{10}." -> 2)
        if answer is None:
            return {"correct": False, "source": "no_answer", "answer": None,
                    "detail": f"math-verify extracted no answer from the response's tail{error}"}
        extracted = {"answer": answer}
        if abs(len(answer) - len(ground_truth)) > LENGTH_GUARD_CHARS:
            return {"correct": False, "source": "length_guard", **extracted,
                    "detail": f"answer has {len(answer)} characters, ground truth {len(ground_truth)}: more than "
                              f"{LENGTH_GUARD_CHARS} apart, not rule-checked"}
    if stage == MATH_VERIFY and exact_match(answer, ground_truth):
        return {"correct": True, "source": "exact_match", "detail": "equal after normalisation", **extracted}
    answer, ground_truth, different = prepare(answer, ground_truth)
    if different:
        return {"correct": False, "source": "units", "detail": different, **extracted}
    if stage == MATH_VERIFY:
        towers = tower_check(answer, ground_truth)
        if towers is not None:
            return {"correct": towers[0], "source": "numeric", "detail": towers[1], **extracted}
    try:
        if stage == PRIME_MATH:
            correct, detail = prime_math_equivalent(answer, ground_truth)
        else:
            correct, detail = math_equivalent(answer, ground_truth, parsed)
    except Exception as exc:  # sympy failing on odd input means "not shown equivalent"
        return {"correct": False, "source": stage, "detail": f"{stage} error: {type(exc).__name__}: {exc}"[:300],
                **extracted}
    return {"correct": correct, "source": stage, "detail": detail, **extracted}
