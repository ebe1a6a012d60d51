"""Answer checking against real graders' labels (issue 14): tests/data/answer_cases.jsonl, per category.

The cases come from public graders' test suites and documentation (origin "owner/repo:path" per case) plus cases
written for the issue's categories. The rule check with the ``lenient`` extraction ladder (what evaluation tables use)
must agree with the labels at least as often as the thresholds below, and more often than plain
``math_verify.verify(parse(gold), parse(response))`` on the same cases, in every category.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from pathlib import Path

import pytest

from trm.jsonio import read_rows
from trm.rewards.correctness import check_responses
from trm.rewards.math_rules import canonical_unit, evaluate_numeric, prepare, split_unit, tower_check
from trm.traces import LENIENT, STRICT

CASES = read_rows(Path(__file__).parent / "data" / "answer_cases.jsonl")
# The issue's categories, plus "general" (notation and algebra plain math-verify already handles).
ISSUE_CATEGORIES = {"free_text", "multi_box_response", "multi_box_gold", "minerva", "percent", "units", "tuples_sets",
                    "decimal_comma", "towers"}
# Agreement the lenient check reaches on each category (plain math-verify stays below each: see the bench).
MIN_AGREEMENT = {"free_text": 0.95, "multi_box_response": 0.94, "multi_box_gold": 0.95, "minerva": 0.95,
                 "percent": 0.92, "units": 0.97, "tuples_sets": 0.97, "decimal_comma": 0.92, "towers": 0.9,
                 "general": 0.95, "overall": 0.97}


def plain_math_verify(gold: str, response: str) -> bool:
    from math_verify import parse, verify

    try:
        return bool(verify(parse(gold), parse(response)))
    except Exception:
        return False


def agreement(cases: list[dict], verdicts: list[bool]) -> dict[str, float]:
    rows = defaultdict(list)
    for case, verdict in zip(cases, verdicts):
        rows[case["category"]].append(verdict == case["label"])
        rows["overall"].append(verdict == case["label"])
    return {category: sum(hits) / len(hits) for category, hits in rows.items()}


def test_the_suite_is_real_labelled_cases_with_their_origin():
    assert len(CASES) >= 200
    assert all(set(case) == {"gold", "response", "label", "category", "origin"} for case in CASES)
    assert all(isinstance(case["label"], bool) and case["origin"] for case in CASES)
    assert {case["category"] for case in CASES} == ISSUE_CATEGORIES | {"general"}
    public = [case for case in CASES if ":" in case["origin"] and "/" in case["origin"].split(":")[0]]
    assert len(public) >= 150  # "owner/repo:path" of a public grader's tests or documentation
    labels_per_category = defaultdict(set)
    for case in CASES:
        labels_per_category[case["category"]].add(case["label"])
    assert all(labels == {True, False} for labels in labels_per_category.values())  # no category is all one label


def test_agreement_beats_plain_math_verify_in_every_category():
    logging.getLogger("math_verify").setLevel(logging.ERROR)
    verdicts = check_responses([c["response"] for c in CASES], [c["gold"] for c in CASES], LENIENT)
    ours = agreement(CASES, [v.correct for v in verdicts])
    plain = agreement(CASES, [plain_math_verify(c["gold"], c["response"]) for c in CASES])
    for category, minimum in MIN_AGREEMENT.items():
        assert ours[category] >= minimum, (category, ours[category], minimum)
        if category != "general":
            assert ours[category] > plain[category], (category, ours[category], plain[category])
    # no case hit the per-answer time bound or killed its worker, and every rung of the ladder answered some case
    assert not [v for v in verdicts if v.source in ("timeout", "worker_error")]
    assert {v.rung for v in verdicts} >= {"box", "boxes", "marker", "tail"}


def test_strict_is_the_release_format_rule_for_rl_rewards():
    free_text, minerva, boxed = "So there are 12 ways.", "The final answer is 12. I hope it is correct.", "\\boxed{12}"
    strict = check_responses([free_text, minerva, boxed], ["12"] * 3, STRICT)
    lenient = check_responses([free_text, minerva, boxed], ["12"] * 3, LENIENT)
    assert [(v.correct, v.source, v.rung) for v in strict] == [(False, "no_answer", "none"),
                                                               (True, "exact_match", "marker"),
                                                               (True, "exact_match", "box")]
    assert [(v.correct, v.rung, v.answer) for v in lenient] == [(True, "tail", "12"), (True, "marker", "12"),
                                                                (True, "box", "12")]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("10 weeks", ("10", "week")),
        ("15\\mbox{ cm}^2", ("15", "cm^2")),
        ("90^\\circ", ("90", "°")),
        ("45 \\text{ degrees}", ("45", "°")),
        ("\\$12.50", ("12.50", "$")),
        ("28 percent", ("28\\%", None)),  # a percent word is a value, not a unit
        ("x = 2", ("x = 2", None)),  # not a number: no unit
        ("2 and 3", ("2 and 3", None)),
        ("12\\text{ and }13", ("12\\text{ and }13", None)),
        ("3 \\text{ m/s}^2", ("3", "m/s^2")),
    ],
)
def test_split_unit(text, expected):
    assert split_unit(text) == expected


def test_prepare_units_decimal_commas_and_tuples():
    assert prepare("10 \\text{ cm}", "10 \\text{ m}")[2] == "different units: answer in 'cm', ground truth in 'm'"
    assert prepare("10", "10 weeks") == ("10", "10", None)  # one bare side: the unit goes
    assert prepare("5, 7", "5 \\text{ cm}, 7 \\text{ cm}") == ("5, 7", "5, 7", None)  # part by part
    assert prepare("1000,99", "1000.99")[0] == "1000.99"  # a decimal comma against a number
    assert prepare("1,000", "1000")[0] == "1,000"  # digits in threes group thousands (math-verify reads 1000)
    assert prepare("1,2", "1, 2")[0] == "1,2"  # against a list, a comma separates items
    assert prepare("(2,1)", "1, 2")[:2] == ("(2,1)", "(1, 2)")  # against a tuple, a list keeps its written order
    assert prepare("\\boxed{10%}"[7:-1], "0.1")[0] == "10\\%"  # an unescaped % is not a LaTeX comment
    assert prepare("2^{10}.", "2")[0] == "2^{10}"


def test_towers_are_decided_by_a_float_evaluation_not_sympy():
    assert evaluate_numeric("2\\sqrt{2}+\\frac{1}{2}") == pytest.approx(2 * 2 ** 0.5 + 0.5)
    assert tower_check("2^{1/2^{1000}}", "2") == (False, "numeric: answer 1, ground truth 2")
    assert tower_check("5^{1/2^{2000}}", "5")[0] is False  # 2^2000 overflows a float: infinite, then 5^0
    assert tower_check("2^{2^{4}}", "65536")[0] is True
    assert tower_check("10^{10^{10}}", "5") is None  # no finite value: left to math-verify under the time bound
    assert tower_check("2^{10}", "1024") is None  # no tower: the release's path


def test_only_known_units_can_make_an_answer_wrong():
    assert [canonical_unit(u) for u in ("centimeters", "sqft", "ft^2", "mph", "m/s", "hrs", "°", "apple", "unit")] == [
        "cm", "ft^2", "ft^2", "mi/h", "m/s", "h", "°", None, None]
    assert prepare("6 \\text{ oranges}", "6 \\text{ apples}") == ("6", "6", None)  # labels, not units: benefit of doubt
    assert prepare("3 \\text{ square inches}", "3 \\text{ ft}^2")[2] is not None


def test_evaluation_grading_reads_free_text_answers_and_records_the_rung():
    from trm.evaluation.grading import grade_records

    def record():
        return {"id": "q1", "answer": "12", "responses": ["So there are 12 ways.", "\\boxed{13}", "no idea"]}

    lenient, strict = grade_records([record()])[0], grade_records([record()], answer_format=STRICT)[0]
    assert (lenient["correct"], lenient["rungs"], lenient["extracted"][0]) == ([True, False, False],
                                                                              ["tail", "box", "tail"], "12")
    assert (strict["correct"], strict["rungs"]) == ([False, False, False], ["none", "box", "none"])
