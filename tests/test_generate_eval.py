"""`trm generate`: N responses per prompt with the requested settings, resume without duplicates, both the
transformers backend (tiny chat model on CPU) and the OpenAI backend against `trm serve chat`."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from _serving_support import ReferenceCausalLM
from conftest import running_server

from trm.evaluation.generate import main as generate_main

FIXTURES = Path(__file__).resolve().parents[1] / "data" / "benchmarks"


def read_lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_transformers_backend_n_settings_and_resume(tiny_models, tmp_path):
    out = tmp_path / "gen.jsonl"
    args = ["--benchmark", "aime24", "--data-dir", str(FIXTURES), "--model", str(tiny_models["chat"]),
            "--backend", "transformers", "--n", "3", "--temperature", "1.0", "--top-p", "0.9", "--max-tokens", "6",
            "--seed", "5", "--batch-size", "2", "--out", str(out)]
    assert generate_main(args) == 0
    records = read_lines(out)
    assert [r["id"] for r in records] == ["aime24-toy-1", "aime24-toy-2", "aime24-toy-3"]
    for r in records:
        assert len(r["responses"]) == 3 and all(isinstance(x, str) for x in r["responses"])
        assert r["sampling"] == {"n": 3, "temperature": 1.0, "top_p": 0.9, "max_tokens": 6, "seed": 5}
        assert r["backend"] == "transformers" and r["answer"] and "\\boxed{}" in r["prompt"]
    assert len({x for r in records for x in r["responses"]}) > 3  # sampling at T=1 varies

    # Interrupt: keep one full line and a torn second line; the rerun completes without duplicates and,
    # because seeds are per prompt, re-samples exactly what the first run had.
    lines = out.read_text().splitlines(keepends=True)
    out.write_text(lines[0] + lines[1][:40])
    assert generate_main(args) == 0
    resumed = read_lines(out)
    assert [r["id"] for r in resumed] == [r["id"] for r in records]
    assert resumed == records

    # A finished file is left alone; a file written for other items is refused.
    assert generate_main(args) == 0 and read_lines(out) == records
    (tmp_path / "one.jsonl").write_text(lines[0])
    other = ["--benchmark", "aime25", *args[2:-1], str(tmp_path / "one.jsonl")]
    with pytest.raises(SystemExit, match="written for other data"):
        generate_main(other)
    with pytest.raises(SystemExit, match="written for other data"):
        generate_main(["--benchmark", "aime25", *args[2:]])


def test_greedy_gives_identical_samples(tiny_models, tmp_path):
    out = tmp_path / "greedy.jsonl"
    assert generate_main(["--benchmark", "mmlu-pro", "--data-dir", str(FIXTURES), "--model", str(tiny_models["chat"]),
                          "--backend", "transformers", "--n", "2", "--temperature", "0", "--max-tokens", "5",
                          "--limit", "1", "--out", str(out)]) == 0
    (record,) = read_lines(out)
    assert record["responses"][0] == record["responses"][1]
    assert record["choices"] == ["S", "So", "Na", "Sd"] and record["answer"] == "C"


@pytest.fixture(scope="module")
def chat_endpoint(tiny_models):
    """One `trm serve chat` on the tiny chat model for the OpenAI-backend tests."""
    with running_server(["serve", "chat", "--model", str(tiny_models["chat"]), "--served-model-name", "tiny-chat"]) as url:
        yield url


def test_openai_backend_against_trm_serve_chat(chat_endpoint, tmp_path):
    out = tmp_path / "api.jsonl"
    base = ["--benchmark", "gpqa-diamond", "--data-dir", str(FIXTURES), "--model", "tiny-chat",
            "--endpoint", chat_endpoint, "--api", "chat", "--max-tokens", "6", "--out", str(out)]
    assert generate_main(base + ["--n", "2", "--temperature", "1.0", "--limit", "1"]) == 0
    assert generate_main(base + ["--n", "2", "--temperature", "1.0"]) == 0  # resume: only the second question
    records = read_lines(out)
    assert [r["id"] for r in records] == ["g1", "g2"]
    assert all(len(r["responses"]) == 2 and r["backend"] == "openai" for r in records)
    greedy = tmp_path / "greedy.jsonl"
    assert generate_main(base[:-1] + [str(greedy), "--n", "3", "--temperature", "0", "--limit", "1"]) == 0
    (record,) = read_lines(greedy)
    assert len(set(record["responses"])) == 1 and record["sampling"]["temperature"] == 0.0


def test_openai_backend_completions_mode_against_trm_serve_chat(chat_endpoint, tiny_models, tmp_path):
    """--api completions sends the templated raw text to /v1/completions; resume samples only what is missing."""
    out = tmp_path / "completions.jsonl"
    template = "Problem:\n{prompt}\nSolution:"
    args = ["--benchmark", "gpqa-diamond", "--data-dir", str(FIXTURES), "--model", "tiny-chat",
            "--endpoint", chat_endpoint, "--api", "completions", "--completion-template", template,
            "--n", "2", "--temperature", "0", "--max-tokens", "6", "--out", str(out)]

    def served_items() -> int:
        return httpx.get(f"{chat_endpoint}/health").json()["items"]

    start = served_items()
    assert generate_main(args + ["--limit", "1"]) == 0
    assert served_items() - start == 2
    first_line = out.read_text()
    assert generate_main(args) == 0  # resume: only the second question is sampled
    assert served_items() - start == 4
    records = read_lines(out)
    assert [r["id"] for r in records] == ["g1", "g2"] and out.read_text().startswith(first_line)

    reference = ReferenceCausalLM(tiny_models["chat"])
    for record in records:
        expected, _ = reference.greedy_text(template.format(prompt=record["prompt"]), 6)
        assert record["responses"] == [expected, expected]  # raw templated text, no chat template
        assert record["backend"] == "openai" and record["sampling"]["max_tokens"] == 6

    # a torn last line is dropped and re-sampled; the file ends as the uninterrupted run's
    out.write_text(first_line + out.read_text()[len(first_line):][:30])
    assert generate_main(args) == 0
    assert read_lines(out) == records and served_items() - start == 6


def test_missing_benchmark_file_is_actionable(tmp_path, monkeypatch):
    monkeypatch.delenv("TRM_BENCH_DIR", raising=False)
    monkeypatch.delenv("TRM_BENCH_AIME24", raising=False)
    with pytest.raises(SystemExit, match="TRM_BENCH_AIME24"):
        generate_main(["--benchmark", "aime24", "--model", "x", "--out", str(tmp_path / "o.jsonl")])


def test_dead_endpoint_raises_and_writes_nothing(tmp_path):
    from conftest import free_port

    out = tmp_path / "dead.jsonl"
    with pytest.raises(Exception, match="Connection|connect"):
        generate_main(["--benchmark", "aime25", "--data-dir", str(FIXTURES), "--model", "m", "--n", "1",
                       "--endpoint", f"http://127.0.0.1:{free_port()}", "--max-retries", "0", "--out", str(out)])
    assert not out.exists() or out.read_text() == ""
