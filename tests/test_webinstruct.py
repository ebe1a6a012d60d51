"""`trm data webinstruct`: conversion to verl parquet and validation of processed parquets."""

from __future__ import annotations

import json
import subprocess
import sys

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from trm_testing.serving import REPO
from trm.data.prompts import BOXED_INSTRUCTION
from trm.data.webinstruct import convert_row, validate_parquet
from trm.protocol import LLAMA_RL_PROMPT, QWEN_MATH_RL_PROMPT

TINY = REPO / "data" / "webinstruct_tiny.parquet"
SOURCE = REPO / "data" / "webinstruct_tiny_source.jsonl"


def run_trm(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "trm", "data", "webinstruct", *args], capture_output=True, text=True, cwd=REPO)


@pytest.mark.parametrize("template", ["luffy", "llama-boxed", "own-qwen-math", "own-llama", "plain"])
def test_convert_row_shapes_prompt_per_template(template):
    row = convert_row({"question": " What is 2+2? ", "answer": "4", "category": "Mathematics"}, index=7, split="test", template=template)
    assert row["data_source"] == "TIGER-Lab/WebInstruct-verified"
    assert row["reward_model"] == {"style": "rule", "ground_truth": "4"}
    assert row["ability"] == "Mathematics"
    extra = row["extra_info"]
    assert (extra["question"], extra["index"], extra["split"], extra["category"]) == ("What is 2+2?", 7, "test", "Mathematics")
    user_turns = [m for m in row["prompt"] if m["role"] == "user"]
    assert len(user_turns) == 1 and user_turns[0]["content"] == extra["user_prompt"]
    if template in ("luffy", "llama-boxed"):  # the paper's prompt is the whole user turn, no system turn
        paper = QWEN_MATH_RL_PROMPT if template == "luffy" else LLAMA_RL_PROMPT
        assert row["prompt"] == [{"role": "user", "content": paper.format(problem="What is 2+2?")}]
    elif template == "own-qwen-math":
        assert row["prompt"][0] == {"role": "system", "content": BOXED_INSTRUCTION}
        assert extra["user_prompt"] == "What is 2+2?"
    elif template == "own-llama":
        assert len(row["prompt"]) == 1 and extra["user_prompt"] == f"What is 2+2?\n\n{BOXED_INSTRUCTION}"
    else:
        assert row["prompt"] == [{"role": "user", "content": "What is 2+2?"}]


def test_convert_row_names_missing_field():
    with pytest.raises(ValueError, match="row 3: field 'answer'"):
        convert_row({"question": "q"}, index=3, split="train", template="plain")


def test_paper_prompt_is_each_family_default_and_user_prompt_is_the_whole_user_turn(tmp_path):
    """Defaults: --family qwen-math gives LUFFY's prompt, --family llama the Llama prompt (protocol.md section 2)."""
    question = pq.read_table(TINY).to_pylist()[0]["extra_info"]["question"]
    for family, paper in (("qwen-math", QWEN_MATH_RL_PROMPT), ("llama", LLAMA_RL_PROMPT)):
        out = tmp_path / f"{family}.parquet"
        result = run_trm("convert", "--input", str(SOURCE), "--output", str(out), *(["--family", family] * (family != "qwen-math")))
        assert result.returncode == 0, result.stderr
        row = pq.read_table(out).to_pylist()[0]
        expected = paper.replace("{problem}", question).replace("{{}}", "{}")  # the reference text, filled by hand
        assert row["prompt"] == [{"role": "user", "content": expected}]
        assert row["extra_info"]["user_prompt"] == expected
        assert validate_parquet(out) == []
    result = run_trm("convert", "--input", str(SOURCE), "--output", str(tmp_path / "x.parquet"), "--template", "qwen-math")
    assert result.returncode == 2 and "invalid choice: 'qwen-math'" in result.stderr  # a family is not a template


def test_bundled_tiny_parquet_matches_its_source_and_validates(tmp_path):
    # The bundled toy parquet keeps our own short wording: the tiny test models need no 150-token instruction.
    out = tmp_path / "tiny.parquet"
    result = run_trm("convert", "--input", str(SOURCE), "--output", str(out), "--template", "own-qwen-math")
    assert result.returncode == 0, result.stderr
    assert pq.read_table(out).to_pylist() == pq.read_table(TINY).to_pylist()  # rebuilt byte-for-byte in content
    rows = pq.read_table(TINY).to_pylist()
    assert len(rows) == 12 and [r["extra_info"]["index"] for r in rows] == list(range(12))
    assert validate_parquet(TINY) == []
    result = run_trm("validate", str(TINY))
    assert result.returncode == 0 and "12 rows" in result.stdout


def test_validate_names_missing_fields_and_rows(tmp_path):
    rows = pq.read_table(TINY).to_pylist()[:3]
    rows[1]["extra_info"]["user_prompt"] = None
    rows[2]["reward_model"]["ground_truth"] = ""
    broken = tmp_path / "broken.parquet"
    pq.write_table(pa.Table.from_pylist(rows), broken)
    problems = validate_parquet(broken)
    assert problems == ["row 1: missing extra_info.user_prompt", "row 2: missing reward_model.ground_truth"]
    result = run_trm("validate", str(broken))
    assert result.returncode == 1 and "row 1: missing extra_info.user_prompt" in result.stderr

    no_extra = tmp_path / "no_extra.parquet"
    pq.write_table(pa.Table.from_pylist([{k: v for k, v in r.items() if k != "extra_info"} for r in rows]), no_extra)
    assert "missing column(s) extra_info" in validate_parquet(no_extra)[0]


def test_convert_reports_bad_input_without_writing(tmp_path):
    source = tmp_path / "rows.jsonl"
    source.write_text(json.dumps({"question": "q1", "answer": "1"}) + "\n" + json.dumps({"question": "q2"}) + "\n")
    out = tmp_path / "out.parquet"
    result = run_trm("convert", "--input", str(source), "--output", str(out))
    assert result.returncode == 2 and "row 1: field 'answer'" in result.stderr
    assert not out.exists()
