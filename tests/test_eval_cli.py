"""`trm eval accuracy` (metrics and Table 2 shape), `trm eval bon` end to end (grading through the reward path's verifier,
TRM scores from a local tiny model and from the reward server), and the benchmark registry."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from trm.errors import BadInput
from trm.evaluation import paper, tables
from trm.evaluation.benchmarks import BENCHMARKS, MATH, STEM, load_items
from trm.evaluation.benchmarks_cli import main as eval_main
from trm.evaluation.bon import main as bon_main
from trm.evaluation.metrics import pass_at_k
from trm.evaluation.toy import synthetic_records

FIXTURES = Path(__file__).resolve().parents[1] / "data" / "benchmarks"


def write(path: Path, records: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def scripted(benchmark: str, finals: list[list[str]]) -> list[dict]:
    """Generation records for a fixture whose responses box the given final answers."""
    items = load_items(benchmark, data_dir=str(FIXTURES))
    return [{"id": it.id, "benchmark": it.benchmark, "answer_type": it.answer_type, "question": it.question,
             "choices": it.choices, "answer": it.answer, "prompt": it.prompt,
             "responses": [f"<think>try</think>\\boxed{{{f}}}" for f in answers]}
            for it, answers in zip(items, finals)]


def test_registry_fixtures_and_formats(monkeypatch, tmp_path):
    assert len(BENCHMARKS) == 10 and len(STEM) == 5 and len(MATH) == 5
    for name in BENCHMARKS:
        items = load_items(name, data_dir=str(FIXTURES))
        assert len(items) >= 2 and all(it.question and it.answer and it.prompt for it in items)
        if BENCHMARKS[name].answer_type == "choice":
            assert all(it.answer in "ABCD" and len(it.choices) == 4 for it in items)
    gpqa = load_items("gpqa-diamond", data_dir=str(FIXTURES))
    assert gpqa[0].choices[ord(gpqa[0].answer) - 65] == "Electron"  # shuffled, answer letter follows the text
    assert [it.choices for it in gpqa] == [it.choices for it in load_items("gpqa-diamond", data_dir=str(FIXTURES))]
    assert load_items("olympiadbench", data_dir=str(FIXTURES))[0].answer == "23"  # list answer, $ stripped
    monkeypatch.setenv("TRM_BENCH_AMC", str(FIXTURES / "amc.jsonl"))
    assert len(load_items("amc")) == 2
    bad = write(tmp_path / "bad.jsonl", [{"question": "q", "solution": "s"}])
    with pytest.raises(ValueError, match=r"row 0: no answer field; looked for answer"):
        load_items("math500", data=str(bad))
    assert load_items("math500", data=str(bad), overrides={"answer": "solution"})[0].answer == "s"


def test_eval_table2_over_two_checkpoints_with_paper_reference(tmp_path):
    # Checkpoint "good": AIME24 q1 4/4, q2 2/4, q3 0/4; MMLU-Pro 1/1 and 0/1.
    good = [write(tmp_path / "good_aime.jsonl", scripted("aime24", [["42"] * 4, ["9", "9", "8", "7"], ["5"] * 4])),
            write(tmp_path / "good_mmlu.jsonl", scripted("mmlu-pro", [["C"], ["A"]]))]
    weak = write(tmp_path / "weak.jsonl", scripted("aime24", [["41"] * 4, ["9", "1", "1", "1"], ["5"] * 4]))
    out = tmp_path / "out"
    assert eval_main(["--run", f"Qwen2.5-Math-7B/TRM={good[0]},{good[1]}", "--run", f"Qwen2.5-Math-7B/verifier={weak}",
                      "--out-dir", str(out), "--ks", "1", "2", "4", "--paper"]) == 0
    data = json.loads((out / "eval.json").read_text())
    aime = data["runs"]["Qwen2.5-Math-7B/TRM"]["aime24"]
    assert aime["avg@4"] == pytest.approx(100 * (1 + 0.5 + 0) / 3)
    assert aime["pass@2"] == pytest.approx(100 * (1 + pass_at_k(4, 2, 2) + 0) / 3)
    assert aime["pass@4"] == pytest.approx(100 * 2 / 3)
    assert data["runs"]["Qwen2.5-Math-7B/TRM"]["mmlu-pro"]["accuracy"] == 50.0
    assert data["runs"]["Qwen2.5-Math-7B/verifier"]["aime24"]["avg@4"] == pytest.approx(100 * 0.25 / 3)
    table = (out / "table2.md").read_text()
    lines = table.splitlines()
    assert lines[0].startswith("| Policy | Reward | GPQA |") and "STEM avg" in lines[0] and "Math avg" in lines[0]
    assert lines[2].startswith("| Qwen2.5-Math-7B | TRM | – | – | 50.0 |")  # MMLU-Pro column; AIME24 further right
    assert "| 50.0 |" in lines[2] and "| 8.3 |" in lines[3]
    assert "| TRM (paper) | 42.4 | 26.7 | 50.5 | 9.2 | 26.5 | 31.1 |" in table  # reference row with its STEM avg
    assert "Llama" not in table  # only the run policies' reference rows
    csv_rows = (out / "table2.csv").read_text().splitlines()
    assert csv_rows[0].startswith("source,Policy,Reward") and len(csv_rows) == 1 + 2 + 4
    assert "| Qwen2.5-Math-7B/TRM | aime24 | 3 | 4 |" in (out / "metrics.md").read_text()


def test_eval_checks_each_run_was_generated_with_the_training_prompt(tmp_path):
    """--template luffy: a run generated with another prompt (or a mix of prompts) is refused, naming the file."""
    luffy = write(tmp_path / "luffy.jsonl", [{**r, "template": "luffy"} for r in scripted("aime24", [["42"]] * 3)])
    own = write(tmp_path / "own.jsonl", scripted("mmlu-pro", [["C"], ["A"]]))  # no field: the benchmark's prompt
    out = tmp_path / "out"
    assert eval_main(["--run", f"Qwen2.5-Math-7B/TRM={luffy}", "--run", f"Qwen2.5-Math-7B/base={own}",
                      "--out-dir", str(out), "--ks", "1"]) == 0
    assert json.loads((out / "eval.json").read_text())["templates"] == {"Qwen2.5-Math-7B/TRM": "luffy",
                                                                        "Qwen2.5-Math-7B/base": "benchmark"}
    with pytest.raises(BadInput, match=r"Qwen2.5-Math-7B/base: generated with --template benchmark .*own.jsonl"):
        eval_main(["--run", f"Qwen2.5-Math-7B/TRM={luffy}", "--run", f"Qwen2.5-Math-7B/base={own}",
                   "--out-dir", str(out), "--ks", "1", "--template", "luffy"])
    with pytest.raises(BadInput, match="different prompts"):
        eval_main(["--run", f"mixed={luffy},{own}", "--out-dir", str(out), "--ks", "1"])


def test_paper_table_averages_match_published():
    for row in paper.table2_rows():
        values = tables.with_averages(row["values"])
        stem, math = paper.TABLE2_AVERAGES[(row["policy"], row["reward"])]
        assert values["stem_avg"] == pytest.approx(stem, abs=0.051)
        assert values["math_avg"] == pytest.approx(math, abs=0.051)


def _bon_args(gen: Path, out: Path, *extra: str) -> list[str]:
    return ["--generations", str(gen), "--out-dir", str(out), "--n-values", "1", "2", "4", "--repeats", "3", *extra]


def test_bon_cli_local_trm_and_endpoint_agree(tiny_models, reward_server, tmp_path):
    items = load_items("aime24", data_dir=str(FIXTURES)) + load_items("aime25", data_dir=str(FIXTURES))
    gen = write(tmp_path / "gen.jsonl", synthetic_records(items, n=6, seed=2))
    local, remote = tmp_path / "local", tmp_path / "remote"
    assert bon_main(_bon_args(gen, local, "--trm-model", str(tiny_models["reward"]), "--save-graded",
                              str(tmp_path / "graded.jsonl"))) == 0
    assert bon_main(_bon_args(gen, remote, "--selectors", "trm", "oracle", "--trm-endpoint", reward_server)) == 0
    result = json.loads((local / "bon.json").read_text())
    assert set(result["selectors"]) == {"trm", "majority", "random", "shortest", "oracle"}
    graded = [json.loads(line) for line in (tmp_path / "graded.jsonl").read_text().splitlines()]
    truth = [[r.endswith(f"\\boxed{{{rec['answer']}}}.") for r in rec["responses"]] for rec in graded]
    assert [rec["correct"] for rec in graded] == truth  # graded through the reward path's rule verifier
    assert result["pass@n"][-1] == pytest.approx(100 * sum(pass_at_k(6, sum(t), 4) for t in truth) / len(truth))
    local_scores = [json.loads(l)["scores"] for l in (local / "scores_trm.jsonl").read_text().splitlines()]
    remote_scores = [json.loads(l)["scores"] for l in (remote / "scores_trm.jsonl").read_text().splitlines()]
    assert len(local_scores) == len(items) and all(len(s) == 6 for s in local_scores)
    for a, b in zip(local_scores, remote_scores):
        assert a == pytest.approx(b, abs=1e-4)  # server and in-process scorer: same code path, same numbers
    assert json.loads((remote / "bon.json").read_text())["selectors"]["trm"]["runs"] == result["selectors"]["trm"]["runs"]
    table = (local / "bon.md").read_text()
    for row in ("| trm |", "| majority |", "| random |", "| shortest |", "| oracle |", "| pass@N (ceiling) |"):
        assert row in table
    assert (local / "bon.png").read_bytes()[:4] == b"\x89PNG"


def test_bon_cli_needs_a_scorer_for_trm(tmp_path):
    gen = write(tmp_path / "gen.jsonl", synthetic_records(load_items("aime25", data_dir=str(FIXTURES)), n=4))
    with pytest.raises(BadInput, match="--trm-endpoint or --trm-model"):
        bon_main(_bon_args(gen, tmp_path / "o"))


def test_bon_dead_trm_endpoint_raises_and_writes_no_result(tmp_path):
    from trm_testing.serving import free_port

    gen = write(tmp_path / "gen.jsonl", synthetic_records(load_items("aime25", data_dir=str(FIXTURES)), n=4))
    dead = f"127.0.0.1:{free_port()}"
    with pytest.raises(Exception, match="no backend answered"):
        bon_main(_bon_args(gen, tmp_path / "o", "--selectors", "trm", "--trm-endpoint", dead, "--deadline", "1.5"))
    assert not (tmp_path / "o" / "bon.json").exists()  # a dead scorer never becomes a number


def test_score_cache_resume_keeps_every_score_through_a_failure(tiny_models, tmp_path):
    """The best-of-N score cache: a corrupt line is set aside, other questions' entries stay, a scorer that is down
    changes nothing, and the next pass scores only the question whose line was bad."""
    from trm.evaluation.bon import score_records
    from trm.scoring import Scorer, ScoringConfig

    records = [{"id": f"q{i}", "prompt": f"problem {i}\u2028(line break inside)",
                "responses": [f"<think>step {j}\u2029done</think> \\boxed{{{j}}}" for j in range(2)]} for i in range(4)]
    cache = tmp_path / "scores.jsonl"
    scorer = Scorer(ScoringConfig(trm_model=str(tiny_models["reward"])))
    first = score_records(records, scorer, cache, questions_per_call=2, progress=False)
    lines = cache.read_text(encoding="utf-8").split("\n")[:-1]
    assert len(lines) == 4 and all(len(s) == 2 for s in first)
    damaged = "\n".join([lines[0], lines[1][:10], '{"id": "other-run", "scores": [0.5]}', *lines[2:]]) + "\n"
    cache.write_text(damaged, encoding="utf-8")

    def down(texts):
        raise ConnectionError("TRM endpoint down")

    with pytest.raises(ConnectionError):
        score_records(records, down, cache, progress=False)
    assert cache.read_text(encoding="utf-8") == damaged
    asked = []
    again = score_records(records, lambda texts: asked.append(len(texts)) or scorer(texts), cache, progress=False)
    assert asked == [2]  # only q1's two responses
    assert again[0] == first[0] and again[2:] == first[2:] and again[1] == pytest.approx(first[1], abs=1e-5)
    kept = [json.loads(line) for line in cache.read_text().splitlines()]
    assert [k["id"] for k in kept] == ["q0", "q1", "q2", "q3", "other-run"]
    assert json.loads((tmp_path / "scores.jsonl.set-aside").read_text())["text"] == lines[1][:10]
