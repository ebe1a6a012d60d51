"""`bash train.sh --dry-run`: the whole verl config composed and validated on a CPU, with the launch's overrides."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from conftest import REPO


def dry_run(*overrides: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["bash", str(REPO / "train.sh"), "--dry-run", *overrides],
        capture_output=True,
        text=True,
        cwd=REPO,
        env={**os.environ, "PYTHON": sys.executable, **(env or {})},
        timeout=300,
    )


def test_dry_run_passes_with_the_paper_settings():
    result = dry_run()
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "verl GRPO config OK" in out and "verl validate_config" in out and "reward manager loaded" in out
    assert "512 prompts x 8 rollouts = 4096 responses/step; mini-batch 128; lr 5e-07; epochs 2" in out
    assert "clip       low 0.3, high 0.3, c 10.0" in out
    assert "kl loss True (low_var_kl, 0.0001)" in out and "entropy 0.001" in out
    assert "vllm TP 2; T=1.0; prompt 2048 / response 8192 tokens" in out
    assert "manager verify (trm.rewards.verl_manager.VerifyRewardManager); async True" in out
    assert "alpha 0.2; parallelism 1024; TRM scores verified answers only" in out
    assert "TRM backends 127.0.0.1:39999" in out and "verifier backends 127.0.0.1:23888" in out


def test_dry_run_applies_extra_overrides_and_environment(tmp_path):
    result = dry_run(
        "+reward_model.reward_kwargs.score_all=true",
        f"data.train_files={REPO / 'data' / 'webinstruct_tiny.parquet'}",
        "data.train_batch_size=8",
        env={"ALPHA": "0.5", "TRM_RM_BACKENDS": "10.0.0.1:1,10.0.0.2:2"},
    )
    assert result.returncode == 0, result.stderr
    assert "8 prompts x 8 rollouts = 64 responses/step" in result.stdout
    assert "note: actor.ppo_mini_batch_size 128 > data.train_batch_size 8: one policy update per step" in result.stdout
    assert "alpha 0.5; parallelism 1024; TRM scores every response (analysis)" in result.stdout
    assert "TRM backends 10.0.0.1:1,10.0.0.2:2" in result.stdout
    assert "data.train_files" not in result.stdout  # the tiny parquet exists and validates: no note about it


def test_dry_run_fails_on_a_misspelled_key_with_hydras_message():
    result = dry_run("data.train_batch_sizee=64")
    assert result.returncode != 0
    assert "Could not override 'data.train_batch_sizee'" in result.stderr, result.stderr


@pytest.fixture(scope="module")
def train_sh_overrides(tmp_path_factory) -> list[str]:
    """The exact Hydra overrides train.sh passes (captured by a stand-in interpreter that prints its argv)."""
    echo = tmp_path_factory.mktemp("echo") / "print-args"
    echo.write_text('#!/bin/sh\nprintf "%s\\0" "$@"\n')
    echo.chmod(0o755)
    out = subprocess.run(["bash", str(REPO / "train.sh"), "--dry-run"], capture_output=True, text=True, check=True,
                         env={**os.environ, "PYTHON": str(echo)}).stdout
    args = out.split("\0")[:-1]
    assert args[:4] == ["-m", "trm", "rl", "check"]
    return args[4:]


@pytest.mark.parametrize(
    "override, message",
    [
        ("actor_rollout_ref.rollout.n=abc", "actor_rollout_ref.rollout.n='abc'"),
        ("data.shuffle=2", "data.shuffle=2: expected true/false"),
        ("+reward_model.reward_kwargs.paralelism=8", "unknown reward setting(s) paralelism"),
        ("reward_model.reward_kwargs.alpha=1.5", "alpha must be in [0, 1]"),
        ("reward_model.reward_manager=verfy", "Unknown reward manager: verfy"),
        (f"data.train_files={REPO / 'data' / 'webinstruct_tiny.parquet'}",
         "data.train_files has 12 rows, fewer than data.train_batch_size=512"),
        ("actor_rollout_ref.actor.use_dynamic_bsz=false", "Please set at least one of 'actor.ppo_micro_batch_size'"),
    ],
)
def test_invalid_values_fail_with_the_library_message(train_sh_overrides, override, message, capsys):
    from trm.rl.check import main

    assert main([*train_sh_overrides, override]) == 1
    assert message in capsys.readouterr().err


def test_dry_run_rejects_a_parquet_the_reward_cannot_use(train_sh_overrides, tmp_path, capsys):
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = pq.read_table(REPO / "data" / "webinstruct_tiny.parquet").to_pylist()
    for row in rows:
        del row["extra_info"]["user_prompt"]
    bad = tmp_path / "bad.parquet"
    pq.write_table(pa.Table.from_pylist(rows), bad)
    from trm.rl.check import main

    assert main([*train_sh_overrides, f"data.train_files={bad}"]) == 1
    assert "row 0: missing extra_info.user_prompt" in capsys.readouterr().err
