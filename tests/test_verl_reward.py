"""The `verify` reward manager inside verl: loaded by verl's load_reward_manager from a composed config pointing at
remote_verifier.py, fed a real DataProto, scoring with the embedded reward server on the tiny TRM."""

from __future__ import annotations

import json
import math

import pytest
import torch

from trm_testing.serving import REPO, free_port
from trm_testing.rollout import RolloutSample, rollout_batch
from trm.traces import trm_input

RESPONSES = [json.loads(line) for line in (REPO / "data" / "webinstruct_tiny_responses.jsonl").read_text().splitlines()]


def sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


def samples(data_source: str) -> list[RolloutSample]:
    """Rollouts for the first three tiny questions: (right, wrong), (right, right), (wrong, wrong-no-answer)."""
    import pyarrow.parquet as pq

    rows = pq.read_table(REPO / "data" / "webinstruct_tiny.parquet").to_pylist()
    by = {(r["index"], r["expected"]): r["response"] for r in RESPONSES}
    plan = [(0, by[0, "correct"]), (0, by[0, "wrong"]), (1, by[1, "correct"]), (1, by[1, "correct"] + " "),
            (2, by[2, "wrong"]), (2, "<think>\nI am not sure.\n</think>\nNo idea.")]
    out = []
    for index, response in plan:
        row = rows[index]
        prompt = "\n".join(m["content"] for m in row["prompt"])
        out.append(RolloutSample(prompt, response, row["reward_model"]["ground_truth"], data_source,
                                 row["extra_info"], uid=f"q{index}"))
    return out


EXPECT_CORRECT = [True, False, True, True, False, False]


@pytest.fixture(scope="module")
def tokenizer(tiny_models):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_models["chat"])


@pytest.fixture(scope="module")
def scorer(tiny_models):
    from trm.serving.scorer import RewardScorer

    return RewardScorer(tiny_models["reward"])


def load_verify_manager(tokenizer, *overrides: str, num_examine: int = 0, reward_file=REPO / "remote_verifier.py"):
    """The manager exactly as main_ppo builds it: verl's load_reward_manager on the composed config."""
    from trm.rl.check import load_manager
    from trm.rl.config import compose_ppo_config

    config = compose_ppo_config([
        "algorithm.adv_estimator=grpo",
        "reward_model.reward_manager=verify",
        f"custom_reward_function.path={reward_file}",
        "+reward_model.reward_kwargs.parallelism=4",
        *overrides,
    ])
    return load_manager(config, tokenizer, num_examine=num_examine)


@pytest.fixture(scope="module")
def manager(tokenizer, reward_server):
    dead_verifier = f"127.0.0.1:{free_port()}"  # a verifier call would fail the test: math rows are rule-only
    return load_verify_manager(tokenizer, f"+reward_model.reward_kwargs.rm_backends={reward_server}",
                               f"+reward_model.reward_kwargs.verifier_backends={dead_verifier}", num_examine=1)


def check_result(batch, reward_tensor, extra, rollouts, scorer):
    lengths = batch.batch["attention_mask"][:, batch.batch["prompts"].shape[-1]:].sum(-1)
    expected_t = scorer.score([trm_input(s.extra_info["user_prompt"], s.response) for s in rollouts])
    for i, (rollout, correct) in enumerate(zip(rollouts, EXPECT_CORRECT)):
        row = reward_tensor[i]
        if correct:
            assert row.nonzero().flatten().tolist() == [int(lengths[i]) - 1]
            assert row[int(lengths[i]) - 1].item() == pytest.approx(0.8 + 0.2 * sigmoid(expected_t[i]), abs=1e-5)
            assert extra["rm_score_raw"][i] == pytest.approx(expected_t[i], abs=1e-4)
        else:
            assert torch.count_nonzero(row) == 0
            assert math.isnan(extra["rm_score_raw"][i]) and extra["trm_scored"][i] is False  # TRM never asked
    assert extra["verify_binary"] == [int(c) for c in EXPECT_CORRECT]
    assert extra["acc"] == [float(c) for c in EXPECT_CORRECT]
    assert extra["group_correct"] == [1, 1, 2, 2, 0, 0] and extra["group_size"] == [2] * 6
    assert extra["has_answer"] == [True] * 5 + [False]
    assert extra["verdict_source"][5] == "no_answer" and extra["verdict_source"][0] == "exact_match"
    assert extra["score"] == pytest.approx([reward_tensor[i].sum().item() for i in range(len(rollouts))], abs=1e-6)


def test_manager_rewards_verified_answers_at_the_last_response_token(manager, tokenizer, scorer, capsys):
    from verl.trainer.ppo.reward import compute_reward

    rollouts = samples("math")
    batch = rollout_batch(tokenizer, rollouts)
    reward_tensor, extra = compute_reward(batch, manager)  # what verl's trainer calls in the sync path
    check_result(batch, reward_tensor, extra, rollouts, scorer)
    printed = capsys.readouterr().out
    assert printed.count("[response]") == 1 and "[verdict_source] exact_match" in printed  # num_examine=1 per source
    assert torch.equal(manager(batch), reward_tensor)  # return_dict=False gives the same tensor


def test_the_manager_keeps_its_backend_pools_across_batches(manager, tokenizer, scorer):
    """Several batches (and verl's second call after a failure) go through the same pools, built once."""
    rollouts = samples("math")
    batch = rollout_batch(tokenizer, rollouts)
    first = manager.rewarder
    pools = (first.verifier_pool, first.scorer.pool)
    before = first.scorer.pool.stats()[first.scorer.pool.backends[0]]["requests"]
    for _ in range(3):
        check_result(batch, *manager(batch, return_dict=True).values(), rollouts, scorer)
    assert manager.rewarder is first and (manager.rewarder.verifier_pool, manager.rewarder.scorer.pool) == pools
    after = first.scorer.pool.stats()[first.scorer.pool.backends[0]]["requests"]
    # every TRM call of the three batches went through that pool (a batch's texts coalesced into 1 or more requests)
    assert 3 <= after - before <= 3 * sum(EXPECT_CORRECT)


def test_the_manager_reads_the_reward_files_constants(tokenizer, tmp_path, monkeypatch):
    """The constants a user edits in remote_verifier.py reach the manager verl builds (no kwargs, no environment)."""
    import sys

    from trm.rewards import compute

    monkeypatch.setattr(compute, "_default_backends", {})
    monkeypatch.delenv("TRM_RM_BACKENDS", raising=False)
    monkeypatch.delenv("TRM_VERIFIER_BACKENDS", raising=False)
    monkeypatch.delitem(sys.modules, "custom_module", raising=False)  # verl caches the reward file under this name
    edited = (REPO / "remote_verifier.py").read_text().replace('"127.0.0.1:39999"', '"10.0.0.9:39999"')
    (tmp_path / "remote_verifier.py").write_text(edited)
    manager = load_verify_manager(tokenizer, reward_file=tmp_path / "remote_verifier.py")
    assert (manager.settings.rm_backends, manager.settings.parallelism) == ("10.0.0.9:39999", 4)


def test_score_all_scores_every_response_but_still_rewards_only_verified(tokenizer, reward_server, scorer):
    manager = load_verify_manager(tokenizer, f"+reward_model.reward_kwargs.rm_backends={reward_server}",
                                  "+reward_model.reward_kwargs.score_all=true")
    rollouts = samples("math")
    result = manager(rollout_batch(tokenizer, rollouts), return_dict=True)
    expected_t = scorer.score([trm_input(s.extra_info["user_prompt"], s.response) for s in rollouts])
    assert result["reward_extra_info"]["rm_score_raw"] == pytest.approx(expected_t, abs=1e-4)
    for i, correct in enumerate(EXPECT_CORRECT):
        assert (result["reward_tensor"][i].sum().item() > 0) == correct


def test_a_dead_trm_backend_beside_a_live_one_costs_no_reward(tokenizer, reward_server, scorer):
    dead = f"127.0.0.1:{free_port()}"
    manager = load_verify_manager(tokenizer, f"+reward_model.reward_kwargs.rm_backends='{dead},{reward_server}'")
    rollouts = samples("math")
    batch = rollout_batch(tokenizer, rollouts)
    result = manager(batch, return_dict=True)
    check_result(batch, result["reward_tensor"], result["reward_extra_info"], rollouts, scorer)


def test_dead_trm_backend_raises_instead_of_rewarding(tokenizer):
    manager = load_verify_manager(tokenizer, f"+reward_model.reward_kwargs.rm_backends=127.0.0.1:{free_port()}",
                                  "+reward_model.reward_kwargs.deadline_s=1.5")
    from trm.client import BackendsUnavailable

    with pytest.raises(BackendsUnavailable, match="127.0.0.1"):
        manager(rollout_batch(tokenizer, samples("math")), return_dict=True)


def test_missing_user_prompt_is_a_clear_error(manager, tokenizer):
    rollouts = samples("math")
    rollouts[3].extra_info = {"question": "q"}
    with pytest.raises(ValueError, match=r"sample 3 .* no extra_info\['user_prompt'\]"):
        manager(rollout_batch(tokenizer, rollouts))


def test_webinstruct_rows_ask_the_llm_verifier_and_garbage_is_not_verified(tokenizer, reward_server, tiny_models,
                                                                          start_server, scorer):
    """Wrong WebInstruct answers go to the verifier (here the tiny chat model, which writes noise: cut off at its 8
    tokens, unusable replies, which count as checker faults; the limit is lifted so that the batch returns)."""
    verifier = start_server(["serve", "chat", "--model", str(tiny_models["chat"]),
                             "--served-model-name", "TIGER-Lab/general-verifier"])
    manager = load_verify_manager(tokenizer, f"+reward_model.reward_kwargs.rm_backends={reward_server}",
                                  f"+reward_model.reward_kwargs.verifier_backends={verifier}",
                                  "+reward_model.reward_kwargs.verifier_max_tokens=8",
                                  "+reward_model.reward_kwargs.max_worker_error_fraction=1.0")
    rollouts = samples("TIGER-Lab/WebInstruct-verified")
    batch = rollout_batch(tokenizer, rollouts)
    result = manager(batch, return_dict=True)
    check_result(batch, result["reward_tensor"], result["reward_extra_info"], rollouts, scorer)
    sources = result["reward_extra_info"]["verdict_source"]
    assert sources[1] == sources[4] == "verifier_unusable"  # rule check failed, WebInstruct source: verifier asked


def test_async_path_on_local_ray_matches_sync(manager, tokenizer, scorer):
    """reward_model.launch_reward_fn_async=True: verl pickles the manager into a Ray task (compute_reward_async)."""
    import ray
    from verl.trainer.ppo.reward import compute_reward_async

    rollouts = samples("math")
    batch = rollout_batch(tokenizer, rollouts)
    ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False, configure_logging=False)
    try:
        reward_tensor, extra = ray.get(compute_reward_async.remote(data=batch, reward_fn=manager), timeout=240)
    finally:
        ray.shutdown()
    check_result(batch, reward_tensor, extra, rollouts, scorer)


@pytest.fixture
def crashing_rule_check(monkeypatch):
    """Rule-check workers that die on answers "always|-|<answer>" (see trm_testing.rule_check_workers.check_or_crash)."""
    import trm.rewards.correctness as correctness
    from trm.rewards.worker_pool import get_pool

    monkeypatch.setattr(correctness, "RULE_CHECK_FUNCTION", "trm_testing.rule_check_workers:check_or_crash")
    yield
    get_pool("trm_testing.rule_check_workers:check_or_crash").shutdown()


def test_worker_errors_are_visible_and_systematic_ones_raise(tokenizer, reward_server, crashing_rule_check, capsys):
    import dataclasses

    from trm.rewards.correctness import RuleCheckUnavailable

    manager = load_verify_manager(tokenizer, f"+reward_model.reward_kwargs.rm_backends={reward_server}")
    rollouts = samples("math")
    crasher = "<think>\nHard.\n</think>\nThe answer is \\boxed{always|-|7}."
    one_crash = [dataclasses.replace(rollouts[0], response=crasher)] + rollouts[1:]
    result = manager(rollout_batch(tokenizer, one_crash), return_dict=True)
    extra = result["reward_extra_info"]
    assert extra["verdict_source"][0] == "worker_error" and extra["verify_binary"][0] == 0
    assert torch.count_nonzero(result["reward_tensor"][0]) == 0  # an answer that kills its checker twice is wrong
    assert extra["verify_binary"][1:] == [int(c) for c in EXPECT_CORRECT[1:]]  # the rest of the batch is judged
    assert "worker_error 1" in capsys.readouterr().err  # the per-batch verdict summary shows it
    two_crashes = one_crash[:2] + [dataclasses.replace(rollouts[2], response=crasher)] + rollouts[3:]
    with pytest.raises(RuleCheckUnavailable, match="failed on 2 of 6 answers"):
        manager(rollout_batch(tokenizer, two_crashes), return_dict=True)
