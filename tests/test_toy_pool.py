"""The synthetic best-of-N pool (`trm.evaluation.toy`): wrong answers tend to come with ME² defects, so a tiny
TRM trained on the toy preference pairs picks correct answers more often than chance, but is no oracle, and
length alone tells nothing."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from trm_testing.training import one_torch_thread, trained_reward_model
from trm.evaluation.benchmarks import load_items
from trm.evaluation.bon import best_of_n
from trm.evaluation.grading import grade_records
from trm.scoring import Scorer, ScoringConfig
from trm.evaluation.selectors import SELECTORS, ScoreSelector
from trm.evaluation.toy import main as toy_main
from trm.evaluation.toy import synthetic_records
from trm.traces import reasoning

FIXTURES = Path(__file__).resolve().parents[1] / "data" / "benchmarks"
DEFECT_WORDS = ("wait", "hmm", "other words", "start over", "no,")


def items(repeat: int) -> list:
    base = load_items("aime24", data_dir=str(FIXTURES))
    return [replace(it, id=f"{it.id}#{k}") for k in range(repeat) for it in base]


def is_correct(record: dict, response: str) -> bool:
    return response.endswith(f"\\boxed{{{record['answer']}}}.")


def has_defect_words(response: str) -> bool:
    return any(w in reasoning(response).lower() for w in DEFECT_WORDS)


def test_defects_follow_correctness_at_the_configured_rates_without_a_length_signal():
    records = synthetic_records(items(10), n=32, seed=3, defect_rate_correct=0.2, defect_rate_wrong=0.8)
    counts = {True: [0, 0], False: [0, 0]}  # correct? -> [defective, total]
    lengths = {True: [], False: []}  # defective? -> reasoning lengths
    for record in records:
        assert len(record["responses"]) == len(record["toy_defects"]) == 32
        for response, defects in zip(record["responses"], record["toy_defects"]):
            assert bool(defects) == has_defect_words(response)  # the listed defects are the ones in the text
            ok = is_correct(record, response)
            counts[ok][0] += bool(defects)
            counts[ok][1] += 1
            lengths[bool(defects)].append(len(reasoning(response)))
    assert counts[True][0] / counts[True][1] == pytest.approx(0.2, abs=0.06)
    assert counts[False][0] / counts[False][1] == pytest.approx(0.8, abs=0.06)
    mean = {k: sum(v) / len(v) for k, v in lengths.items()}
    assert mean[True] == pytest.approx(mean[False], rel=0.08)  # clean traces are padded to the defective length


def test_extreme_rates_tie_defects_to_wrong_answers_exactly():
    records = synthetic_records(items(2), n=16, seed=1, defect_rate_correct=0.0, defect_rate_wrong=1.0)
    flags = [(is_correct(r, resp), bool(d)) for r in records for resp, d in zip(r["responses"], r["toy_defects"])]
    assert {ok for ok, _ in flags} == {True, False}
    assert all(defective == (not ok) for ok, defective in flags)


def test_cli_writes_the_rates_and_rejects_a_rate_outside_0_1(tmp_path, capsys):
    out = tmp_path / "pool.jsonl"
    assert toy_main(["--benchmark", "aime24", "--data-dir", str(FIXTURES), "--n", "4", "--out", str(out),
                     "--defect-rate-correct", "0.1", "--defect-rate-wrong", "0.9"]) == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == 3 and all(r["sampling"]["defect_rate_wrong"] == 0.9 for r in rows)
    with pytest.raises(SystemExit):
        toy_main(["--benchmark", "aime24", "--data-dir", str(FIXTURES), "--out", str(out), "--defect-rate-wrong", "1.5"])
    assert "must be a probability" in capsys.readouterr().err
    with pytest.raises(ValueError, match="defect_rate_correct"):
        synthetic_records(items(1), n=2, defect_rate_correct=-0.1)


def bon_gaps(records: list[dict], scorer, ns=(4, 8, 16)) -> dict[str, list[float]]:
    grade_records(records)
    selectors = {"trm": ScoreSelector(scorer=scorer)} | {k: SELECTORS[k]() for k in ("random", "shortest", "oracle")}
    result = best_of_n(records, selectors, ns, repeats=5, seed=0)
    return {name: sel["mean"] for name, sel in result["selectors"].items()}


def test_trained_trm_beats_random_and_shortest_but_not_the_oracle(tmp_path_factory, tiny_models):
    model = trained_reward_model(tmp_path_factory, tiny_models)
    with one_torch_thread():
        scorer = Scorer(ScoringConfig(trm_model=str(model), device="cpu"))
        informative = bon_gaps(synthetic_records(items(16), n=16, seed=0), scorer)
        # Control: the same model on a pool whose reasoning says nothing about correctness.
        blind = bon_gaps(synthetic_records(items(16), n=16, seed=0, defect_rate_correct=0.5, defect_rate_wrong=0.5), scorer)
    for i in (1, 2):  # N = 8, 16
        assert informative["trm"][i] >= informative["random"][i] + 10, informative
        assert informative["trm"][i] >= informative["shortest"][i] + 10, informative
        assert informative["trm"][i] < informative["oracle"][i], informative
        assert informative["trm"][i] - informative["random"][i] >= blind["trm"][i] - blind["random"][i] + 10, (informative, blind)
