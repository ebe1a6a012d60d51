"""`bash train.sh --dry-run`: the whole verl config composed and validated on a CPU, with the launch's overrides."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from trm_testing.serving import REPO
from trm.errors import BadInput


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
    assert "512 prompts x 8 rollouts = 4096 responses/step; mini-batch 128; lr 5e-07" in out
    # the paper's run length; the data is not here, so the epochs it amounts to cannot be computed, and it says so
    assert "length     300 steps (trainer.total_training_steps), at most 2 epochs; steps per epoch not computed" in out
    # the release's memory/throughput values
    assert ("memory     actor 32768 / rollout log-prob 32768 / ref log-prob 65536 tokens per GPU; vLLM "
            "gpu_memory_utilization 0.7; ref param_offload True") in out
    assert "schedule   val batch 500; test every 10 steps (before training True); save every 5 steps; " \
           "kl_ctrl.kl_coef 0" in out
    # context: the hub id is not read here (said so, with the known Qwen2.5-Math limit); batched tokens cover a sequence
    assert "context    check skipped: Qwen/Qwen2.5-Math-7B is not a local folder here" in out
    assert "Qwen2.5-Math ships 4096 positions < prompt + response 10240" in out
    assert "vLLM max_num_batched_tokens 65536 >= max_model_len 10240 (prompt + response)" in out
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
        env={"ALPHA": "0.5", "TRM_RM_BACKENDS": "10.0.0.1:1,10.0.0.2:2", "TOTAL_TRAINING_STEPS": "2"},
    )
    assert result.returncode == 0, result.stderr
    assert "2 steps (trainer.total_training_steps) = 2.00 epochs of 1 steps (12 rows / batch 8); " \
           "trainer.total_epochs=2 allows 2" in result.stdout
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
        ("+custom_reward_function.reward_kwargs.alpha=0.5", "reach only the per-sample compute_score"),
        (f"data.train_files={REPO / 'data' / 'webinstruct_tiny.parquet'}",
         "data.train_files has 12 rows, fewer than data.train_batch_size=512"),
        ("actor_rollout_ref.actor.use_dynamic_bsz=false", "Please set at least one of 'actor.ppo_micro_batch_size'"),
    ],
)
def test_invalid_values_fail_with_the_library_message(train_sh_overrides, override, message, capsys):
    from trm.cli import main

    assert main(["rl", "check", *train_sh_overrides, override]) == 1
    assert message in capsys.readouterr().err


def test_dry_run_rejects_a_parquet_the_reward_cannot_use(train_sh_overrides, tmp_path, capsys):
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = pq.read_table(REPO / "data" / "webinstruct_tiny.parquet").to_pylist()
    for row in rows:
        del row["extra_info"]["user_prompt"]
    bad = tmp_path / "bad.parquet"
    pq.write_table(pa.Table.from_pylist(rows), bad)
    from trm.cli import main

    assert main(["rl", "check", *train_sh_overrides, f"data.train_files={bad}"]) == 1
    assert "row 0: missing extra_info.user_prompt" in capsys.readouterr().err


def test_run_length_from_local_data_and_epochs_that_would_cut_the_steps_short(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = pq.read_table(REPO / "data" / "webinstruct_tiny.parquet").to_pylist()
    big = tmp_path / "train.parquet"
    pq.write_table(pa.Table.from_pylist(rows * 10), big)  # 120 rows: 30 steps per epoch at batch 4
    data = [f"data.train_files={big}", "data.train_batch_size=4", "actor_rollout_ref.actor.ppo_mini_batch_size=4"]
    ok = dry_run(*data, env={"TOTAL_TRAINING_STEPS": "45"})
    assert ok.returncode == 0, ok.stderr
    assert "45 steps (trainer.total_training_steps) = 1.50 epochs of 30 steps (120 rows / batch 4)" in ok.stdout
    short = dry_run(*data)  # the default 300 steps need 10 epochs of this data; TOTAL_EPOCHS=2 would stop at 60
    assert short.returncode == 1
    assert "= 60 steps: verl would stop there" in short.stderr and "Set TOTAL_EPOCHS=10" in short.stderr
    epochs = dry_run(*data, env={"TOTAL_TRAINING_STEPS": ""})  # epoch-based, as the release ran
    assert epochs.returncode == 0, epochs.stderr
    assert "2 epochs x 30 steps (120 rows / batch 4) = 60 steps" in epochs.stdout


def test_batched_tokens_follow_the_lengths_and_stay_overridable():
    longer = dry_run(env={"MAX_PROMPT_LENGTH": "4096", "MAX_RESPONSE_LENGTH": "65536"})
    assert longer.returncode == 0, longer.stderr
    assert "vLLM max_num_batched_tokens 69632 >= max_model_len 69632" in longer.stdout
    too_small = dry_run(env={"MAX_NUM_BATCHED_TOKENS": "8192"})  # verl's default, the launch failure of the issue
    assert too_small.returncode == 1
    assert "max_num_batched_tokens=8192 is smaller than one sequence (10240" in too_small.stderr
    assert "MAX_NUM_BATCHED_TOKENS=10240" in too_small.stderr


@pytest.fixture(scope="module")
def qwen_math_like(tmp_path_factory):
    """A local policy folder with Qwen2.5-Math-7B's config.json (4096 positions) and a tiny tokenizer."""
    import shutil

    from trm.tiny import build_tokenizer

    folder = tmp_path_factory.mktemp("models") / "Qwen2.5-Math-7B"
    build_tokenizer().save_pretrained(folder)
    shutil.copy(REPO / "data" / "model_configs" / "qwen2.5-math-7b.json", folder / "config.json")
    return folder


def test_short_context_policy_fails_with_the_fixes_spelled_out(qwen_math_like):
    result = dry_run(env={"MODEL_PATH": str(qwen_math_like)})
    assert result.returncode == 1
    err = result.stderr
    assert "has 4096 positions (config.json) but prompt 2048 + response 8192 = 10240" in err
    assert f"trm rl long-context {qwen_math_like} {qwen_math_like}-16k" in err
    assert "LONG_CONTEXT=1 bash train.sh" in err and "cap MAX_PROMPT_LENGTH + MAX_RESPONSE_LENGTH at 4096" in err
    capped = dry_run(env={"MODEL_PATH": str(qwen_math_like), "MAX_PROMPT_LENGTH": "1024", "MAX_RESPONSE_LENGTH": "3072"})
    assert capped.returncode == 0, capped.stderr
    assert "4096 positions needed (prompt 1024 + response 3072); policy has 4096 (verl) / 4096 (vLLM) via config.json" \
        in capped.stdout


def test_long_context_switch_overrides_verl_and_vllm_alike(qwen_math_like, train_sh_overrides):
    result = dry_run(env={"MODEL_PATH": str(qwen_math_like), "LONG_CONTEXT": "1"})
    assert result.returncode == 0, result.stderr
    assert "policy has 16384 (verl) / 16384 (vLLM) via verl override_config" in result.stdout
    from trm.rl.config import compose_ppo_config

    args = [a for a in train_sh_overrides if not a.startswith("actor_rollout_ref.model.path=")]
    config = compose_ppo_config([*args, f"actor_rollout_ref.model.path={qwen_math_like}",
                                 "+actor_rollout_ref.model.override_config.max_position_embeddings=16384"])
    from trm.rl.context import ContextError, check_policy_context

    with pytest.raises(ContextError, match="vLLM reads config.json .4096 positions. and refuses max_model_len 10240"):
        check_policy_context(config, qwen_math_like)  # verl's override alone: the launch failure of the issue
    assert dry_run(env={"LONG_CONTEXT": "yes"}).returncode == 2


def test_long_context_copy_is_accepted_without_overrides(qwen_math_like, tmp_path):
    from trm.rl.long_context import main

    copy = tmp_path / "qwen-16k"
    assert main([str(qwen_math_like), str(copy)]) == 0
    import json

    config = json.loads((copy / "config.json").read_text())
    original = json.loads((qwen_math_like / "config.json").read_text())
    assert config["max_position_embeddings"] == 16384 and config["rope_theta"] == 40000
    assert {k: v for k, v in config.items() if k not in ("max_position_embeddings", "rope_theta")} == \
        {k: v for k, v in original.items() if k not in ("max_position_embeddings", "rope_theta")}
    assert (copy / "tokenizer.json").is_symlink() and (copy / "tokenizer.json").resolve() == \
        (qwen_math_like / "tokenizer.json").resolve()
    assert json.loads((qwen_math_like / "config.json").read_text())["max_position_embeddings"] == 4096  # untouched
    with pytest.raises(BadInput, match="exists and is not empty"):  # never writes into a non-empty folder
        main([str(qwen_math_like), str(copy)])
    copied = tmp_path / "qwen-16k-copy"
    assert main([str(qwen_math_like), str(copied), "--copy", "--max-position-embeddings", "32768"]) == 0
    assert not (copied / "tokenizer.json").is_symlink()
    assert json.loads((copied / "config.json").read_text())["max_position_embeddings"] == 32768
    result = dry_run(env={"MODEL_PATH": str(copy)})
    assert result.returncode == 0, result.stderr
    assert "policy has 16384 (verl) / 16384 (vLLM) via config.json" in result.stdout


def test_context_limits_follow_verl_and_vllm_for_scaled_rope():
    import json

    from trm.model_context import verl_positions, vllm_positions
    from trm.rl.long_context import LongContextSettings, long_context_config

    llama = json.loads((REPO / "data" / "model_configs" / "llama-3.1-8b.json").read_text())
    assert vllm_positions(llama) == 131072  # llama3 RoPE scaling: vLLM keeps max_position_embeddings
    assert verl_positions(llama) == 131072 * 8  # verl multiplies by the factor whenever rope_scaling is set
    qwen = json.loads((REPO / "data" / "model_configs" / "qwen2.5-math-7b.json").read_text())
    assert verl_positions(qwen) == vllm_positions(qwen) == 4096
    yarn = {**qwen, "rope_scaling": {"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 4096}}
    assert vllm_positions(yarn) == 16384
    with pytest.raises(ValueError, match="already has rope_scaling"):
        long_context_config(llama, LongContextSettings())  # an extended model is not stretched a second way
