"""train_rm.sh: the release's settings, accelerate + FSDP2 with GPUs, one CPU process without, and a real
CPU run at toy scale through the script."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys

from trm_testing.training import REPO, TOY_TEST, TOY_TRAIN

SCRIPT = REPO / "train_rm.sh"


def dry_run(env: dict, *extra: str) -> list[str]:
    proc = subprocess.run(["bash", str(SCRIPT), "--dry-run", *extra], cwd=REPO, capture_output=True, text=True,
                          env={**os.environ, **env}, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return shlex.split(proc.stdout)


def flag(argv: list[str], name: str) -> str:
    return argv[argv.index(name) + 1]


def test_cpu_launch_is_one_process_with_release_settings():
    argv = dry_run({"NUM_GPUS": "0"}, "--max_steps", "7")
    assert argv[1:4] == ["-m", "trm", "train-rm"]
    for name, value in {
        "--per_device_train_batch_size": "2", "--gradient_accumulation_steps": "12", "--warmup_ratio": "0.03",
        "--weight_decay": "1e-3", "--center_rewards_coefficient": "0.001", "--eval_steps": "8",
        "--save_steps": "8", "--metric_for_best_model": "accuracy", "--seed": "42", "--eval_strategy": "steps",
        "--model_name_or_path": "meta-llama/Llama-3.1-8B-Instruct", "--resume_from_checkpoint": "auto",
    }.items():
        assert flag(argv, name) == value, name
    assert "--load_best_model_at_end" in argv and "--dataloader_drop_last" in argv
    assert "--bf16" not in argv and "--gradient_checkpointing" not in argv  # GPU-only settings
    assert argv[-2:] == ["--max_steps", "7"]  # extra flags pass through


def test_gpu_launch_uses_accelerate_fsdp2_with_bf16_and_checkpointing():
    argv = dry_run({"NUM_GPUS": "8", "TRUNCATION": "left"})
    assert os.path.basename(argv[0]) == "accelerate" and argv[1] == "launch"
    assert flag(argv, "--config_file").endswith("accelerate_configs/fsdp2.yaml") and flag(argv, "--num_processes") == "8"
    assert argv[argv.index("-m") + 1 : argv.index("-m") + 3] == ["trm", "train-rm"]
    assert "--bf16" in argv and "--gradient_checkpointing" in argv and flag(argv, "--truncation") == "left"
    assert argv.count("--per_device_train_batch_size") == 1


def test_accelerate_config_is_fsdp2_bf16_transformer_wrap():
    from accelerate.commands.config.config_args import ClusterConfig
    from transformers.models.llama import modeling_llama

    config = ClusterConfig.from_yaml_file(str(REPO / "accelerate_configs" / "fsdp2.yaml"))
    assert config.distributed_type == "FSDP" and config.mixed_precision == "bf16"
    fsdp = config.fsdp_config
    assert fsdp["fsdp_version"] == 2 and fsdp["fsdp_auto_wrap_policy"] == "TRANSFORMER_BASED_WRAP"
    assert hasattr(modeling_llama, fsdp["fsdp_transformer_layer_cls_to_wrap"])
    assert fsdp["fsdp_state_dict_type"] == "FULL_STATE_DICT"  # the saved model serves without conversion


def test_script_trains_the_tiny_model_on_cpu(tiny_models, tmp_path):
    out = tmp_path / "trm"
    env = {
        **os.environ, "NUM_GPUS": "0", "OMP_NUM_THREADS": "1", "MODEL_PATH": str(tiny_models["reward"]),
        "TRAIN_FILE": str(TOY_TRAIN), "VALIDATION_FILE": str(TOY_TEST), "OUTPUT_DIR": str(out),
        "PER_DEVICE_BATCH": "8", "GRAD_ACCUM": "1", "LR": "1e-3", "EVAL_STEPS": "3", "SAVE_STEPS": "3",
        "MAX_LENGTH": "1024", "PYTHON": sys.executable,
    }
    proc = subprocess.run(["bash", str(SCRIPT), "--max_steps", "6", "--disable_tqdm", "true"], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads((out / "eval_results.json").read_text())
    assert results["global_step"] == 6 and 0.0 <= results["eval_accuracy"] <= 1.0
    assert (out / "model.safetensors").exists() and (out / "tokenizer.json").exists()
