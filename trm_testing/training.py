"""One tiny TRM trained on the committed toy pairs, shared by the training and evaluation tests.

Training happens once per test session: the first caller trains into the session's base temp folder and
later callers (any module) find the finished model there.
"""

from __future__ import annotations

import json
from contextlib import contextmanager
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TOY_TRAIN = REPO / "data" / "toy_preferences_train.jsonl"
TOY_TEST = REPO / "data" / "toy_preferences_test.jsonl"
TRAIN_PAIRS = 96  # 12 optimizer steps at batch 8: enough for the tiny model to learn the toy defects


@contextmanager
def one_torch_thread():
    """Tiny models run fastest on one thread; on a shared 2-core box, more threads spin against each other
    (a 2-layer forward was 15x slower with 2 threads under load). Restores the previous setting."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


SERVER_ENV = {"OMP_NUM_THREADS": "1"}  # same reason, for servers started by the tests


def release_flags(model: Path, output_dir: Path, **overrides) -> list[str]:
    """`trm train-rm` flags in the release's spelling, scaled down for a 2-layer model on CPU."""
    flags = {
        "model_name_or_path": model,
        "train_file": TOY_TRAIN,
        "validation_file": TOY_TEST,
        "output_dir": output_dir,
        "max_train_samples": TRAIN_PAIRS,
        "per_device_train_batch_size": 8,
        "per_device_eval_batch_size": 16,
        "gradient_accumulation_steps": 1,
        "learning_rate": 1e-3,
        "num_train_epochs": 1,
        "warmup_ratio": 0.03,
        "weight_decay": 1e-3,
        "center_rewards_coefficient": 0.001,
        "eval_strategy": "steps",
        "eval_steps": 6,
        "save_steps": 6,
        "load_best_model_at_end": True,
        "metric_for_best_model": "accuracy",
        "logging_steps": 4,
        "seed": 42,
        "disable_tqdm": True,
        "dataloader_pin_memory": False,
    }
    flags.update(overrides)
    argv: list[str] = []
    for key, value in flags.items():
        if value is None:
            continue
        argv += [f"--{key}", str(value)]
    return argv


def trained_reward_model(tmp_path_factory, tiny_models) -> Path:
    """Folder of the tiny TRM trained on the toy pairs (trained on first use in this session)."""
    from trm.training.train_rm import main

    out = tmp_path_factory.getbasetemp() / "trained_toy_trm"
    if (out / "eval_results.json").exists():
        return out
    with one_torch_thread():
        code = main(release_flags(tiny_models["reward"], out))
    assert code == 0, "trm train-rm failed on the toy pairs"
    json.loads((out / "eval_results.json").read_text())
    return out
