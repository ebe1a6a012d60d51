"""Best-of-N arithmetic on synthetic candidates with known correctness and a known scorer."""

from __future__ import annotations

import random

import pytest

from trm.evaluation.bon import best_of_n, markdown_table
from trm.evaluation.metrics import pass_at_k
from trm.evaluation.selectors import MajorityVote, Oracle, RandomSelector, ScoreSelector, ShortestTrace


def synthetic_records(questions=24, pool=16, seed=1):
    """Graded candidates with per-question accuracy spread between 0 and 1; answers are boxed numbers."""
    rng = random.Random(seed)
    records = []
    for q in range(questions):
        p = q / (questions - 1)
        correct = [rng.random() < p for _ in range(pool)]
        responses = [
            ("<think>" + "step " * rng.randint(1, 30) + "</think>") + (r"\boxed{7}" if ok else rf"\boxed{{{rng.randint(10, 12)}}}")
            for ok in correct
        ]
        records.append({"id": f"q{q}", "prompt": f"question {q}", "answer": "7", "responses": responses,
                        "correct": correct})
    return records


def test_oracle_reaches_pass_at_n_and_random_stays_at_mean():
    records = synthetic_records()
    ns = (1, 2, 4, 8, 16)
    result = best_of_n(records, {"oracle": Oracle(), "random": RandomSelector()}, ns, repeats=300, seed=3)
    truth_pass = [100 * sum(pass_at_k(16, sum(r["correct"]), n) for r in records) / len(records) for n in ns]
    assert result["pass@n"] == pytest.approx(truth_pass)
    oracle = result["selectors"]["oracle"]["mean"]
    for got, want in zip(oracle, truth_pass):
        assert got == pytest.approx(want, abs=1.5)
    # N equal to the pool: every subset is the whole pool, so the oracle is exactly "any correct".
    assert oracle[-1] == pytest.approx(100 * sum(any(r["correct"]) for r in records) / len(records))
    assert result["selectors"]["oracle"]["std"][-1] == pytest.approx(0.0, abs=1e-9)
    mean_acc = 100 * sum(sum(r["correct"]) / 16 for r in records) / len(records)
    assert result["mean_accuracy"] == pytest.approx(mean_acc)
    for got in result["selectors"]["random"]["mean"]:
        assert got == pytest.approx(mean_acc, abs=1.5)
    assert oracle[0] == pytest.approx(result["selectors"]["random"]["mean"][0], abs=1.5)


def test_perfect_scorer_equals_oracle_and_inverted_scorer_is_worst():
    records = synthetic_records()
    perfect = ScoreSelector(scores=[[float(c) for c in r["correct"]] for r in records], name="perfect")
    inverted = ScoreSelector(scores=[[-float(c) for c in r["correct"]] for r in records], name="inverted")
    result = best_of_n(records, {"oracle": Oracle(), "perfect": perfect, "inverted": inverted}, (1, 4, 16), repeats=5)
    assert result["selectors"]["perfect"]["runs"] == result["selectors"]["oracle"]["runs"]
    inv = result["selectors"]["inverted"]["mean"]
    assert inv[0] == result["selectors"]["oracle"]["mean"][0]  # N=1: nothing to choose
    assert inv[2] < inv[1] < inv[0]


def test_scorer_sees_trm_input_of_each_candidate():
    records = synthetic_records(questions=3, pool=4)
    seen = []

    def scorer(texts):
        seen.extend(texts)
        return [float(len(t)) for t in texts]  # longest reasoning wins

    selector = ScoreSelector(scorer=scorer)
    selector.prepare(records)
    assert len(seen) == 12
    assert seen[0].startswith("question 0\nstep ")  # prompt, newline, reasoning only
    assert "boxed" not in seen[0]
    q0 = records[0]["responses"]
    assert selector.choose(0, [0, 1, 2, 3], random.Random(0)) == max(range(4), key=lambda j: len(q0[j].split("</think>")[0]))


def test_majority_vote_and_shortest():
    responses = [r"\boxed{5}", r"\boxed{ 7 }", r"\boxed{7}", r"\boxed{5}", r"$\boxed{7}$", "no answer here"]
    lengths = ["<think>" + "x" * n + "</think>" + r for n, r in zip([9, 3, 8, 1, 7, 0], responses)]
    records = [{"id": "a", "prompt": "p", "responses": lengths, "correct": [False, True, True, False, True, False]}]
    majority, shortest = MajorityVote(), ShortestTrace()
    majority.prepare(records), shortest.prepare(records)
    rng = random.Random(0)
    assert majority.choose(0, [0, 1, 2, 3, 4, 5], rng) == 1  # "7" three times beats "5" twice
    assert majority.choose(0, [0, 3, 1], rng) == 0  # "5" twice
    assert majority.choose(0, [5], rng) == 5  # nobody votes: first candidate
    assert majority.choose(0, [0, 2], rng) == 0  # tie: first answer in the subset
    assert shortest.choose(0, [0, 1, 2, 3], rng) == 3
    assert shortest.choose(0, [0, 1, 2, 5], rng) == 5


def test_too_large_n_is_an_actionable_error_and_table_rows():
    records = synthetic_records(questions=4, pool=4)
    with pytest.raises(ValueError, match="generate more"):
        best_of_n(records, {"random": RandomSelector()}, (1, 8))
    result = best_of_n(records, {"random": RandomSelector(), "oracle": Oracle()}, (1, 2, 4), repeats=2)
    table = markdown_table(result, "toy")
    assert "| selector | N=1 | N=2 | N=4 |" in table
    assert "| random |" in table and "| oracle |" in table and "| pass@N (ceiling) |" in table
