"""The baselines of Table 2 behind the same reward formula: verifier only (ALPHA=0: no reward-model server called
or needed) and ReasonFlux-PRM (``reward_scorer=reasonflux``: a vLLM pooling server, here a loopback fake that
speaks its API, since the 7B model cannot run in a test)."""

from __future__ import annotations

import json
import math

import pytest
import torch
from trm_testing.fault_server import FaultServer, dead_backend
from test_verl_reward import EXPECT_CORRECT, load_verify_manager, samples

from trm.protocol import REASONFLUX_STEP_TAG
from trm.rewards.reasonflux import prm_messages, reasoning_steps, trajectory_score
from trm_testing.rollout import rollout_batch


@pytest.fixture(scope="module")
def tokenizer(tiny_models):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_models["chat"])


def refuse_everything(i, request):
    return ("status", 500, {"error": {"message": "no request was expected here"}})


def test_alpha_zero_is_verifier_only_and_calls_no_reward_model(tokenizer):
    with FaultServer(refuse_everything) as trm:  # a call here (or to the dead port) would fail the batch
        manager = load_verify_manager(tokenizer, "+reward_model.reward_kwargs.alpha=0",
                                      f"+reward_model.reward_kwargs.rm_backends='{dead_backend()},{trm.url}'",
                                      f"+reward_model.reward_kwargs.verifier_backends={dead_backend()}")
        batch = rollout_batch(tokenizer, samples("math"))
        result = manager(batch, return_dict=True)
        batch.meta_info["validate"] = True  # validation batches score every response when a scorer is in use
        validation = manager(batch, return_dict=True)
    assert trm.requests == []
    for outcome in (result, validation):
        assert outcome["reward_tensor"].sum(-1).tolist() == [float(c) for c in EXPECT_CORRECT]
        extra = outcome["reward_extra_info"]
        assert "rm_score_raw" not in extra and extra["trm_scored"] == [False] * len(EXPECT_CORRECT)
    assert any("alpha 0: verifier only" in line for line in manager.describe())


def test_reasoning_steps_and_the_prm_input():
    response = "<think>\nFirst, add.\n\nWait, check it.\n\n\nSo 4.\n</think>\nThe answer is \\boxed{4}."
    assert reasoning_steps(response) == ["First, add.", "Wait, check it.", "So 4."]
    user, assistant = prm_messages("What is 2 + 2?", response)
    assert user == {"role": "user", "content": "What is 2 + 2?"}
    assert assistant["role"] == "assistant"
    assert assistant["content"] == "First, add.<extra_0>Wait, check it.<extra_0>So 4.<extra_0>"
    assert reasoning_steps("<think>\n\n</think> x") == [""]  # an empty trace is still one (empty) step
    assert 1 / (1 + math.exp(-trajectory_score([0.9, 0.3]))) == pytest.approx(0.6)
    assert math.isfinite(trajectory_score([1.0, 1.0])) and math.isfinite(trajectory_score([0.0]))


def step_probability(step: str) -> float:
    return 0.2 if "=" in step else 0.9  # any rule the fake applies per step; the test recomputes it


def pooling_server(i, request):
    """vLLM's /pooling answer for ReasonFlux-PRM with the STEP pooler: one [p_bad, p_good] pair per step tag."""
    body = request.json()
    if request.path != "/pooling" or "messages" not in body:
        return ("status", 404, {"error": {"message": f"unexpected {request.path}"}})
    steps = body["messages"][1]["content"].split(REASONFLUX_STEP_TAG)[:-1]
    pairs = [[1 - step_probability(s), step_probability(s)] for s in steps]
    return ("status", 200, {"id": "pool-1", "object": "list", "created": 0, "model": body["model"],
                            "data": [{"index": 0, "object": "pooling", "data": pairs}],
                            "usage": {"prompt_tokens": 1, "total_tokens": 1}})


def test_reasonflux_scorer_in_the_same_formula(tokenizer):
    rollouts = samples("math")
    with FaultServer(pooling_server) as prm:
        manager = load_verify_manager(tokenizer, "+reward_model.reward_kwargs.reward_scorer=reasonflux",
                                      "+reward_model.reward_kwargs.rm_model=Gen-Verse/ReasonFlux-PRM-7B",
                                      f"+reward_model.reward_kwargs.rm_backends={prm.url}",
                                      f"+reward_model.reward_kwargs.verifier_backends={dead_backend()}")
        result = manager(rollout_batch(tokenizer, rollouts), return_dict=True)
    assert len(prm.requests) == sum(EXPECT_CORRECT)  # verified answers only, one request each
    sent = prm.requests[0].json()
    assert prm.requests[0].path == "/pooling" and sent["model"] == "Gen-Verse/ReasonFlux-PRM-7B"
    rewards = result["reward_tensor"].sum(-1)
    for i, (rollout, correct) in enumerate(zip(rollouts, EXPECT_CORRECT)):
        if not correct:
            assert rewards[i].item() == 0.0
            continue
        probs = [step_probability(s) for s in reasoning_steps(rollout.response)]
        p = sum(probs) / len(probs)
        assert rewards[i].item() == pytest.approx(0.8 + 0.2 * p, abs=1e-6)
        assert result["reward_extra_info"]["rm_score_raw"][i] == pytest.approx(math.log(p / (1 - p)), abs=1e-6)
    assert any("reasonflux backends" in line for line in manager.describe())


@pytest.mark.parametrize("pooled", [[[0.1, 1.5]], [], [[0.5]], ["0.9"], [[0.1, float("nan")]]])
def test_a_malformed_pooling_answer_is_never_a_reward(tokenizer, pooled):
    from trm.client import BackendsUnavailable

    bad = {"object": "list", "data": [{"index": 0, "object": "pooling", "data": pooled}]}
    with FaultServer(lambda i, req: ("status", 200, bad)) as prm:
        manager = load_verify_manager(tokenizer, "+reward_model.reward_kwargs.reward_scorer=reasonflux",
                                      f"+reward_model.reward_kwargs.rm_backends={prm.url}",
                                      "+reward_model.reward_kwargs.deadline_s=0.5")
        with pytest.raises(BackendsUnavailable, match="malformed answer to /pooling"):
            manager(rollout_batch(tokenizer, samples("math")[:1]), return_dict=True)


def test_an_unknown_scorer_name_fails_when_the_manager_is_built(tokenizer):
    with pytest.raises(ValueError, match="unknown reward_scorer 'prm'; registered: reasonflux, trm"):
        load_verify_manager(tokenizer, "+reward_model.reward_kwargs.reward_scorer=prm")


def test_reward_cli_alpha_zero_needs_no_reward_model_server(tmp_path):
    from test_reward_cli import RESPONSES, rule_only_rows, run_reward

    out = tmp_path / "rewards.jsonl"
    result = run_reward("--data", str(rule_only_rows(tmp_path)), "--responses", str(RESPONSES), "--alpha", "0",
                        "--reward-scorer", "reasonflux", "--rm-backends", dead_backend(),
                        "--verifier-backends", dead_backend(), "--output", str(out))
    assert result.returncode == 0, result.stderr
    assert "24 responses, 12 verified, 0 TRM calls" in result.stdout
    records = [json.loads(line) for line in out.read_text().split("\n") if line]
    assert [r["score"] for r in records] == [float(r["verify_binary"]) for r in records]
    assert all(r["rm_score_raw"] is None for r in records)
