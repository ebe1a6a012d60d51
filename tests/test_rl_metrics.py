"""Item 7 of issue 10: the thinking reward's per-step metrics (the paper's Fig. 6) reach verl's logger.

Two training steps go through verl 0.6.0's own pieces in fit()'s order: the reward manager via verl's
``compute_reward``, the extra info merged into the batch as fit() does, GRPO advantages, then the metric function
fit() calls (``ray_trainer.compute_data_metrics``, extended by ``trm.rl.metrics.install``) and verl's ``Tracking``
logger with its file backend. Validation goes through verl's ``process_validation_metrics``: no NaN."""

from __future__ import annotations

import json
import math
from collections import Counter

import numpy as np
import pytest
from trm_testing.fault_server import dead_backend
from test_verl_reward import EXPECT_CORRECT, load_verify_manager, samples
from test_verl_reward import scorer, tokenizer  # noqa: F401  (the same module-scoped fixtures)

from trm_testing.rollout import rollout_batch
from trm.traces import trm_input


@pytest.fixture
def manager(tokenizer, reward_server):
    return load_verify_manager(tokenizer, f"+reward_model.reward_kwargs.rm_backends={reward_server}",
                               f"+reward_model.reward_kwargs.verifier_backends={dead_backend()}")


@pytest.fixture
def installed(monkeypatch):
    from verl.trainer.ppo import ray_trainer

    from trm.rl import metrics

    monkeypatch.setattr(ray_trainer, "compute_data_metrics", ray_trainer.compute_data_metrics)  # undone after the test
    metrics.install()
    metrics.install()  # idempotent: one wrapper, not two
    assert ray_trainer.compute_data_metrics.__module__ == "trm.rl.metrics"


def training_step(batch, manager):
    """fit()'s reward -> advantage -> data-metric path of verl 0.6.0 (sync reward), on a real DataProto."""
    from verl.trainer.ppo import ray_trainer
    from verl.trainer.ppo.reward import compute_reward

    batch.batch["response_mask"] = ray_trainer.compute_response_mask(batch)
    reward_tensor, extra = compute_reward(batch, manager)
    batch.batch["token_level_scores"] = reward_tensor
    batch.non_tensor_batch.update({k: np.array(v) for k, v in extra.items()})
    batch.batch["token_level_rewards"] = batch.batch["token_level_scores"]
    batch = ray_trainer.compute_advantage(batch, adv_estimator="grpo", num_repeat=2)
    return ray_trainer.compute_data_metrics(batch=batch, use_critic=False), extra


def test_two_training_steps_log_the_thinking_reward_metrics(installed, manager, tokenizer, scorer, tmp_path, monkeypatch):
    from verl.utils.tracking import Tracking

    log_file = tmp_path / "metrics.jsonl"
    monkeypatch.setenv("VERL_FILE_LOGGER_PATH", str(log_file))
    logger = Tracking(project_name="trm-test", experiment_name="fig6", default_backend=["console", "file"])
    plans = {1: samples("math"), 2: samples("math")[:4]}  # step 2: a different batch (3 of 4 right)
    expected = {}
    for step, rollouts in plans.items():
        step_metrics, extra = training_step(rollout_batch(tokenizer, rollouts), manager)
        logger.log(data=step_metrics, step=step)
        right = [i for i, correct in enumerate(EXPECT_CORRECT[: len(rollouts)]) if correct]
        t = scorer.score([trm_input(rollouts[i].extra_info["user_prompt"], rollouts[i].response) for i in right])
        expected[step] = {
            "thinking_reward/rm_score_raw/mean": sum(t) / len(t),
            "thinking_reward/acc": len(right) / len(rollouts),
            "thinking_reward/reward/mean": sum(0.8 + 0.2 / (1 + math.exp(-x)) for x in t) / len(rollouts),
            "thinking_reward/rm_calls": len(right),
            **{f"thinking_reward/verdict/{s}": c / len(rollouts) for s, c in Counter(extra["verdict_source"]).items()},
        }
    logger.logger["file"].finish()
    logged = [json.loads(line) for line in log_file.read_text().split("\n") if line]
    assert [entry["step"] for entry in logged] == [1, 2]
    for entry in logged:
        data, want = entry["data"], expected[entry["step"]]
        for key, value in want.items():
            assert data[key] == pytest.approx(value, abs=1e-4), key
        assert data["thinking_reward/reward/mean"] == pytest.approx(data["critic/score/mean"], abs=1e-6)  # verl's own
        assert sum(v for k, v in data.items() if k.startswith("thinking_reward/verdict/")) == pytest.approx(1.0)
    assert logged[0]["data"]["thinking_reward/acc"] != logged[1]["data"]["thinking_reward/acc"]


def test_validation_metrics_have_no_nan(manager, tokenizer, scorer):
    """verl's _validate averages each extra-info key per prompt with np.mean: validation batches are scored in full."""
    from verl.trainer.ppo.metric_utils import process_validation_metrics

    rollouts = samples("math")
    batch = rollout_batch(tokenizer, rollouts)
    batch.meta_info["validate"] = True  # what verl's _validate sets before calling the reward function
    result = manager(batch, return_dict=True)
    rewards = result["reward_tensor"].sum(-1).tolist()
    infos = {"reward": rewards, **result["reward_extra_info"]}
    per_source = process_validation_metrics(list(batch.non_tensor_batch["data_source"]),
                                            list(batch.non_tensor_batch["uid"]), infos)
    values = [v for var in per_source["math"].values() for v in var.values()]
    assert values and all(math.isfinite(v) for v in values)
    t = scorer.score([trm_input(r.extra_info["user_prompt"], r.response) for r in rollouts])
    assert result["reward_extra_info"]["rm_score_raw"] == pytest.approx(t, abs=1e-4)
    assert rewards == pytest.approx([0.8 + 0.2 / (1 + math.exp(-x)) if c else 0.0 for x, c in zip(t, EXPECT_CORRECT)],
                                    abs=1e-5)  # rewards unchanged: only the logged scores are complete


def test_the_entry_point_installs_the_metrics_in_the_task_runner_before_verl_runs(monkeypatch):
    from omegaconf import OmegaConf
    from verl.trainer.main_ppo import TaskRunner as VerlTaskRunner
    from verl.trainer.ppo import ray_trainer

    from trm.rl import train

    monkeypatch.setattr(ray_trainer, "compute_data_metrics", ray_trainer.compute_data_metrics)
    assert issubclass(train.MetricsTaskRunner, VerlTaskRunner.__ray_actor_class__)
    config = OmegaConf.create({"actor_rollout_ref": {"actor": {"strategy": "none"}}})
    with pytest.raises(NotImplementedError):  # verl's own run() got the config and rejected the strategy
        train.MetricsTaskRunner().run(config)
    assert ray_trainer.compute_data_metrics.__module__ == "trm.rl.metrics"
