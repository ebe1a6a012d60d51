"""`trm eval rm`: pairwise accuracy with ties counted wrong, baselines on the same pairs, clear failures."""

from __future__ import annotations

import json
import time

import pytest

from trm_testing.training import TOY_TEST, one_torch_thread
from trm_testing.serving import free_port
from trm.data.preference import load_records
from trm.training.eval_rm import (
    evaluate_pairs,
    markdown_table,
    pairwise_result,
    random_baseline,
    shorter_trace_baseline,
)
from trm.data.pairs import trace_lengths
from trm.cli import main as trm


def main(argv: list[str]) -> int:
    return trm(["eval", "rm", *argv])


def test_ties_count_as_wrong():
    result = pairwise_result("m", [1.0, 2.0, 0.5, 3.0], [0.0, 2.0, 0.7, -1.0])
    assert (result.correct, result.tie, result.wrong, result.pairs) == (2, 1, 1, 4)
    assert result.accuracy == 0.5 and result.accuracy_without_ties == pytest.approx(2 / 3)
    with pytest.raises(ValueError):
        pairwise_result("m", [1.0], [])


def test_baselines_judge_the_same_pairs():
    records = load_records(TOY_TEST)
    shorter = shorter_trace_baseline(records)
    lengths = [trace_lengths(r) for r in records]
    assert shorter.correct == sum(c < r for c, r in lengths) and shorter.tie == sum(c == r for c, r in lengths)
    coin = random_baseline(len(records), seed=3)
    assert coin.tie == 0 and coin.pairs == len(records)
    assert random_baseline(len(records), seed=3) == coin  # seeded
    assert abs(random_baseline(2000, seed=1).accuracy - 0.5) < 0.05


def test_report_has_counts_baselines_and_a_table():
    records = load_records(TOY_TEST)[:4]
    scores = [1.0, 0.0, 0.0, 0.0, 0.0, 1.0, 2.0, 1.0]  # correct, tie, wrong, correct
    report = evaluate_pairs(records, scores, seed=0)
    assert (report["accuracy"], report["correct"], report["tie"], report["wrong"]) == (0.5, 2, 1, 1)
    assert set(report["baselines"]) == {"shorter_trace", "random"}
    table = report["table"].splitlines()
    assert table[0].startswith("| Method | Accuracy") and len(table) == 5
    assert table[2].startswith("| reward model | 50.0% (2/4) | 2 | 1 | 1 | 66.7% |")
    with pytest.raises(ValueError):
        evaluate_pairs(records, scores[:-1])
    assert "n/a" in markdown_table([pairwise_result("all ties", [1.0], [1.0])])


def test_model_cli_prints_json_and_the_table(tiny_models, tmp_path, capsys):
    out = tmp_path / "report.json"
    with one_torch_thread():
        assert main(["--data", str(TOY_TEST), "--trm-model", str(tiny_models["reward"]), "--limit", "10",
                     "--output", str(out), "--table"]) == 0
    captured = capsys.readouterr()
    assert captured.out.startswith("| Method | Accuracy") and "| shorter trace wins |" in captured.out
    assert captured.err.startswith("| Method | Accuracy")
    report = json.loads(out.read_text())
    assert report["pairs"] == 10 and report["correct"] + report["tie"] + report["wrong"] == 10


def test_dead_endpoint_is_an_error_not_a_score(capsys):
    started = time.monotonic()
    code = main(["--data", str(TOY_TEST), "--endpoint", f"127.0.0.1:{free_port()}", "--timeout", "1", "--limit", "2"])
    assert code == 1
    err = capsys.readouterr().err
    assert "127.0.0.1" in err and "accuracy" not in err
    assert time.monotonic() - started < 30


def test_too_long_inputs_fail_unless_truncation_is_asked(tiny_models, capsys):
    with one_torch_thread():
        assert main(["--data", str(TOY_TEST), "--model", str(tiny_models["reward"]), "--limit", "3",
                     "--max-length", "16"]) == 2
        assert "--truncation" in capsys.readouterr().err
        assert main(["--data", str(TOY_TEST), "--model", str(tiny_models["reward"]), "--limit", "3",
                     "--max-length", "16", "--truncation", "right"]) == 0
    assert json.loads(capsys.readouterr().out)["pairs"] == 3
