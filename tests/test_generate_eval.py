"""`trm generate`: N responses per prompt with the requested settings, resume without duplicates, both the
transformers backend (tiny chat model on CPU) and the OpenAI backend against `trm serve chat`."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from trm.errors import BadInput
from trm_testing.serving import ReferenceCausalLM
from trm_testing.serving import running_server

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
    with pytest.raises(BadInput, match="written for other data"):
        generate_main(other)
    with pytest.raises(BadInput, match="written for other data"):
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
    with pytest.raises(FileNotFoundError, match="TRM_BENCH_AIME24"):
        generate_main(["--benchmark", "aime24", "--model", "x", "--out", str(tmp_path / "o.jsonl")])


def test_dead_endpoint_raises_and_writes_nothing(tmp_path):
    from trm_testing.serving import free_port

    out = tmp_path / "dead.jsonl"
    with pytest.raises(Exception, match="Connection|connect"):
        generate_main(["--benchmark", "aime25", "--data-dir", str(FIXTURES), "--model", "m", "--n", "1",
                       "--endpoint", f"http://127.0.0.1:{free_port()}", "--connect-budget", "1", "--out", str(out)])
    assert not out.exists() or out.read_text() == ""


def test_template_sends_the_training_prompt_to_the_served_model(chat_endpoint, tiny_models, tmp_path, capsys):
    """--template llama-boxed: the user turn is the paper's prompt (trm.protocol), the only turn, and the served
    model answers exactly what greedy decoding of that chat gives."""
    from trm.protocol import LLAMA_RL_PROMPT

    out = tmp_path / "llama.jsonl"
    args = ["--benchmark", "aime24", "--data-dir", str(FIXTURES), "--model", "tiny-chat", "--endpoint", chat_endpoint,
            "--template", "llama-boxed", "--temperature", "0", "--limit", "2", "--connect-budget", "1", "--out", str(out)]
    # a served model name: its context is unknown here, the default is assumed and the server refuses it
    with pytest.raises(Exception, match="more than the context length of 4096"):
        generate_main(args)
    assert "unknown here (not a local model folder): assumed --max-tokens 32768" in capsys.readouterr().err
    assert generate_main(args + ["--max-tokens", "8"]) == 0
    reference = ReferenceCausalLM(tiny_models["chat"])
    for record, question in zip(read_lines(out), ["What is 17 + 25?", "How many positive divisors does 36 have?"]):
        assert record["template"] == "llama-boxed" and record["system"] is None
        assert record["prompt"] == LLAMA_RL_PROMPT.replace("{problem}", question).replace("{{}}", "{}")
        expected, _ = reference.greedy_chat([{"role": "user", "content": record["prompt"]}], 8)
        assert record["responses"] == [expected]
    # resuming with another prompt would mix two prompts in one file: refused
    with pytest.raises(BadInput, match="written with another prompt"):
        generate_main(["--benchmark", "aime24", "--data-dir", str(FIXTURES), "--model", "tiny-chat", "--endpoint",
                       chat_endpoint, "--template", "luffy", "--limit", "2", "--out", str(out)])


def test_max_tokens_is_kept_inside_a_local_models_context(tiny_models, tmp_path):
    """A local model folder: prompt + max_tokens must fit its positions; the default fills what is left."""
    import shutil

    reference = ReferenceCausalLM(tiny_models["chat"])
    from trm.evaluation.benchmarks import load_items
    from trm.protocol import rl_user_turn

    longest = max(len(reference.chat_ids([{"role": "user", "content": rl_user_turn("luffy", it.question)}]))
                  for it in load_items("aime24", data_dir=str(FIXTURES)))
    base = ["--benchmark", "aime24", "--data-dir", str(FIXTURES), "--backend", "transformers", "--template", "luffy",
            "--temperature", "0", "--out", str(tmp_path / "gen.jsonl")]
    with pytest.raises(BadInput, match=rf"longest prompt has {longest} tokens and the model's context is 4096 .*"
                                         rf"pass --max-tokens {4096 - longest} or less"):
        generate_main(base + ["--model", str(tiny_models["chat"]), "--max-tokens", str(4096 - longest + 1)])
    assert not (tmp_path / "gen.jsonl").exists() or not (tmp_path / "gen.jsonl").read_text()

    short = tmp_path / "short-model"
    shutil.copytree(tiny_models["chat"], short)
    config = json.loads((short / "config.json").read_text())
    (short / "config.json").write_text(json.dumps({**config, "max_position_embeddings": longest + 3}))
    assert generate_main(base + ["--model", str(short)]) == 0
    assert {r["sampling"]["max_tokens"] for r in read_lines(tmp_path / "gen.jsonl")} == {3}


LINE_BREAKS = ["\r", "\x0b", "\x0c", "\x1c", "\x1d", "\x1e", "\x85", "\u2028", "\u2029"]


def test_line_breaks_in_records_and_a_corrupt_line_with_the_endpoint_down_lose_nothing(tiny_models, tmp_path,
                                                                                        capsys):
    """Issue 11: questions holding every str.splitlines() break survive a finished run and its rerun; a corrupt
    line in the middle, resumed with the endpoint down, keeps every finished record and sets the line aside."""
    from trm_testing.serving import free_port

    data = tmp_path / "aime24.jsonl"
    data.write_text("".join(json.dumps({"id": f"q{i}", "problem": f"What is 1{sep}+ {i}?", "answer": str(i + 1)},
                                       ensure_ascii=False) + "\n" for i, sep in enumerate(LINE_BREAKS)),
                    encoding="utf-8")
    out = tmp_path / "gen.jsonl"
    args = ["--benchmark", "aime24", "--data", str(data), "--model", str(tiny_models["chat"]), "--backend",
            "transformers", "--temperature", "0", "--max-tokens", "2", "--batch-size", "4", "--out", str(out)]
    assert generate_main(args) == 0
    finished = out.read_bytes()
    assert "\u2028".encode() in finished
    records = [json.loads(line) for line in finished.decode().split("\n") if line]
    assert [r["id"] for r in records] == [f"q{i}" for i in range(len(LINE_BREAKS))]
    assert generate_main(args) == 0 and out.read_bytes() == finished  # rerun of a finished file: untouched

    lines = finished.decode().split("\n")
    lines[3] = lines[3][: len(lines[3]) // 2]  # corrupt record 3 in the middle
    corrupt = "\n".join(lines).encode()
    out.write_bytes(corrupt)
    capsys.readouterr()
    dead = ["--backend", "openai", "--endpoint", f"http://127.0.0.1:{free_port()}", "--connect-budget", "1"]
    with pytest.raises(Exception, match="Connection|connect"):
        generate_main(args[:6] + dead + args[8:])
    assert out.read_bytes() == corrupt  # nothing removed while no new work succeeded
    side = Path(f"{out}.set-aside")
    assert str(side) in capsys.readouterr().err
    (aside,) = [json.loads(line) for line in side.read_text().splitlines()]
    assert aside["line"] == 4 and aside["text"] == lines[3] and aside["reason"].startswith("not valid JSON")

    assert generate_main(args) == 0  # the endpoint is back (here: the local backend): only record 3 is redone
    assert [json.loads(line) for line in out.read_text(encoding="utf-8").split("\n") if line] == records


def test_choice_items_put_their_options_in_the_problem_of_a_template():
    from trm.evaluation.benchmarks import load_items
    from trm.evaluation.generate import prompt_of
    from trm.protocol import rl_user_turn

    item = load_items("mmlu-pro", data_dir=str(FIXTURES))[0]
    options = "\n".join(f"{letter}) {choice}" for letter, choice in zip("ABCD", item.choices))
    assert prompt_of(item, "luffy") == (None, rl_user_turn("luffy", f"{item.question.strip()}\n\n{options}"))
    assert prompt_of(item, "benchmark", "be brief") == ("be brief", item.prompt)
    with pytest.raises(ValueError, match="own system turn"):
        prompt_of(item, "own-qwen-math", "be brief")
