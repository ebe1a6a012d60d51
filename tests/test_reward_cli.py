"""`trm reward`: rewards for the bundled tiny responses through the real reward server."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import pyarrow.parquet as pq
import pytest

from trm_testing.serving import REPO, free_port

RESPONSES = REPO / "data" / "webinstruct_tiny_responses.jsonl"


def run_reward(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "trm", "reward", *args], capture_output=True, text=True, cwd=REPO,
                          timeout=300)


def rule_only_rows(tmp_path):
    """The tiny rows under a data source the LLM verifier does not cover (so no chat server is needed)."""
    rows = pq.read_table(REPO / "data" / "webinstruct_tiny.parquet").to_pylist()
    path = tmp_path / "rows.jsonl"
    path.write_text("".join(json.dumps({**row, "data_source": "math"}) + "\n" for row in rows))
    return path


def test_reward_cli_prints_components_and_writes_records(tmp_path, reward_server, tiny_models):
    from trm.serving.scorer import RewardScorer
    from trm.traces import trm_input

    out = tmp_path / "rewards.jsonl"
    result = run_reward("--data", str(rule_only_rows(tmp_path)), "--responses", str(RESPONSES),
                        "--rm-backends", reward_server, "--verifier-backends", f"127.0.0.1:{free_port()}",
                        "--output", str(out))
    assert result.returncode == 0, result.stderr
    assert "24 responses, 12 verified, 12 TRM calls (12 saved by scoring verified answers only)" in result.stdout
    records = [json.loads(line) for line in out.read_text().splitlines()]
    expected = [json.loads(line)["expected"] for line in RESPONSES.read_text().splitlines()]
    assert [r["verify_binary"] for r in records] == [int(e == "correct") for e in expected]
    rows = pq.read_table(REPO / "data" / "webinstruct_tiny.parquet").to_pylist()
    right = [r for r in records if r["verify_binary"]]
    t = RewardScorer(tiny_models["reward"]).score([trm_input(rows[r["index"]]["extra_info"]["user_prompt"], r["response"]) for r in right])
    for record, score in zip(right, t):
        assert record["rm_score_raw"] == pytest.approx(score, abs=1e-4)
        assert record["score"] == pytest.approx(0.8 + 0.2 / (1 + math.exp(-score)), abs=1e-6)
    assert all(r["score"] == 0.0 and r["rm_score_raw"] is None for r in records if not r["verify_binary"])
    summary = next(l for l in result.stdout.splitlines() if l.startswith("verdicts: "))
    counts = dict(item.rsplit(" ", 1) for item in summary[len("verdicts: "):].split(", "))
    assert sum(map(int, counts.values())) == 24 and set(counts) == {r["verdict_source"] for r in records}
    line = next(l for l in result.stdout.splitlines() if l.split()[:2] == ["0", "0"])
    assert "exact_match" in line and f"{records[0]['score']:.4f}" in line


def test_reward_cli_dead_trm_fails_without_printing_rewards(tmp_path):
    dead = f"127.0.0.1:{free_port()}"
    result = run_reward("--data", str(rule_only_rows(tmp_path)), "--responses", str(RESPONSES),
                        "--rm-backends", dead, "--deadline", "1.5")
    assert result.returncode == 1
    assert "trm reward: error:" in result.stderr and dead in result.stderr and "Traceback" not in result.stderr
    assert "verified" not in result.stdout


def test_reward_cli_names_a_response_without_its_row(tmp_path):
    responses = tmp_path / "r.jsonl"
    responses.write_text(json.dumps({"index": 99, "response": "x"}) + "\n")
    result = run_reward("--data", str(REPO / "data" / "webinstruct_tiny.parquet"), "--responses", str(responses))
    assert result.returncode == 2 and "no data row has extra_info.index 99" in result.stderr


def test_reward_flags_are_derived_from_reward_settings(monkeypatch):
    """One declaration: each RewardSettings field is a flag with the field's help and default (the one visible
    override, the deadline, in trm.rewards.cli.CLI_DEFAULTS); the environment's backends are the shown default."""
    import dataclasses

    from trm.cli import dataclass_from_args
    from trm.rewards.cli import CLI_DEFAULTS, build_parser
    from trm.rewards.compute import RewardSettings

    monkeypatch.delenv("TRM_RM_BACKENDS", raising=False)
    monkeypatch.delenv("TRM_VERIFIER_BACKENDS", raising=False)
    required = ["--data", "d", "--responses", "r"]
    settings = dataclass_from_args(RewardSettings, build_parser().parse_args(required))
    assert CLI_DEFAULTS == {"deadline_s": 120.0}
    assert settings == dataclasses.replace(RewardSettings(), deadline_s=120.0) and settings.parallelism == 1024
    text = "".join(build_parser().format_help().split())
    for f in dataclasses.fields(RewardSettings):
        if f.name != "verify":
            assert "".join(f.metadata["help"].split()) in text, f.name
    assert "--trm-endpoint" in text and "--deadline" in text and "--rm-backends" not in text  # old spelling hidden
    parsed = build_parser().parse_args([*required, "--rm-backends", "h:1", "--no-score-all", "--rule-chunk", "8"])
    assert (parsed.rm_backends, parsed.score_all, parsed.rule_chunk) == ("h:1", False, 8)
    monkeypatch.setenv("TRM_RM_BACKENDS", "h:2")
    assert dataclass_from_args(RewardSettings, build_parser().parse_args(required)).rm_backends == "h:2"
    assert "(default:h:2)" in "".join(build_parser().format_help().split())
