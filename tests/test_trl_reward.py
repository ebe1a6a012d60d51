"""The thinking reward inside TRL's GRPOTrainer (trm.integrations.trl): real GRPO steps on the tiny policy, the
embedded TRM server, and the same numbers as `trm reward` for the same completions."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import pytest

from trm_testing.serving import REPO, free_port

NAME = "thinking_reward"


def arithmetic_rows(truths: list[str]) -> list[dict]:
    """One question, rows in the verl layout; a truth other than "7" makes the policy's answer wrong."""
    question = "What is 3 + 4?"
    return [{"data_source": "toy_arithmetic", "prompt": [{"role": "user", "content": question}],
             "reward_model": {"style": "rule", "ground_truth": truth},
             "extra_info": {"user_prompt": question, "question": question, "index": i}}
            for i, truth in enumerate(truths)]


@pytest.fixture(scope="module")
def policy(tiny_models):
    """The tiny chat model after a short SFT on one trace, so that it answers "\\boxed{7}" inside think tags."""
    from transformers import AutoModelForCausalLM

    from trm.rl.toy import policy_tokenizer, sft_warmup

    tokenizer = policy_tokenizer(tiny_models["chat"])
    model = AutoModelForCausalLM.from_pretrained(tiny_models["chat"])
    sft_warmup(model, tokenizer, arithmetic_rows(["7"]), steps=60, seed=0, batch_size=1, lr=3e-3)  # one trace, learnt
    return model, tokenizer


def trm_reward_records(tmp_path, rows: list[dict], responses: list[dict], rm: str, verifier: str) -> list[dict]:
    data, answers, out = tmp_path / "rows.jsonl", tmp_path / "responses.jsonl", tmp_path / "rewards.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    answers.write_text("".join(json.dumps(r) + "\n" for r in responses))
    result = subprocess.run([sys.executable, "-m", "trm", "reward", "--data", str(data), "--responses", str(answers),
                             "--rm-backends", rm, "--verifier-backends", verifier, "--output", str(out)],
                            capture_output=True, text=True, cwd=REPO, timeout=300)
    assert result.returncode == 0, result.stderr
    return [json.loads(line) for line in out.read_text().splitlines()]


def test_two_grpo_steps_log_the_components_trm_reward_computes(tmp_path, policy, reward_server):
    from datasets import Dataset
    from trl import GRPOConfig, GRPOTrainer

    from trm.integrations.trl import ThinkingReward

    model, tokenizer = policy
    rows = arithmetic_rows(["7", "8"] * 4)  # half the rows make the same answer wrong (numeric: two plain integers)
    verifier = f"127.0.0.1:{free_port()}"  # rule-only data source: the verifier is never asked
    reward = ThinkingReward(rm_backends=reward_server, verifier_backends=verifier, deadline_s=60)
    calls = []

    def recorded(prompts, completions, **kwargs):
        scores = reward(prompts, completions, **kwargs)
        calls.append({"trl_text": list(completions), "requests": reward.last_requests, "scores": scores,
                      "index": [e["index"] for e in kwargs["extra_info"]]})
        return scores

    recorded.__name__ = NAME
    args = GRPOConfig(output_dir=str(tmp_path / "grpo"), max_steps=2, per_device_train_batch_size=8, num_generations=4,
                      max_completion_length=24, learning_rate=1e-4, beta=0.0, logging_steps=1, save_strategy="no",
                      report_to="none", use_cpu=True, seed=0, disable_tqdm=True)
    trainer = GRPOTrainer(model=model, reward_funcs=[recorded], args=args, train_dataset=Dataset.from_list(rows),
                          processing_class=tokenizer)
    reward.attach(trainer)
    trainer.train()

    logged = [entry for entry in trainer.state.log_history if f"{NAME}/accuracy" in entry]
    assert len(calls) == len(logged) == 2
    responses = [{"index": i, "response": r.response} for call in calls for i, r in zip(call["index"], call["requests"])]
    records = trm_reward_records(tmp_path, rows, responses, reward_server, verifier)
    # The tiny tokenizer marks the think tags special: TRL's text loses them, the reward decodes the ids itself.
    texts = [r.response for call in calls for r in call["requests"]]
    assert any("</think>" in t for t in texts) and not any("</think>" in t for c in calls for t in c["trl_text"])
    assert {r["verdict_source"] for r in records} >= {"exact_match", "numeric"}
    assert any(r["verify_binary"] for r in records) and not all(r["verify_binary"] for r in records)

    for n, (call, entry) in enumerate(zip(calls, logged)):
        step = records[n * 8 : (n + 1) * 8]
        for score, record in zip(call["scores"], step):
            assert score == pytest.approx(record["score"], abs=1e-6)
        assert entry[f"rewards/{NAME}/mean"] == pytest.approx(sum(r["score"] for r in step) / 8, abs=1e-6)
        assert entry[f"{NAME}/accuracy"] == sum(r["verify_binary"] for r in step) / 8
        assert entry[f"{NAME}/has_answer"] == sum(r["has_answer"] for r in step) / 8
        scored = [r["rm_score_raw"] for r in step if r["rm_score_raw"] is not None]
        assert entry[f"{NAME}/trm_scored"] == len(scored) / 8 == entry[f"{NAME}/accuracy"]  # verified ones only
        if scored:
            assert entry[f"{NAME}/trm_score_mean"] == pytest.approx(sum(scored) / len(scored), abs=1e-5)
        else:
            assert f"{NAME}/trm_score_mean" not in entry
        seen = {r["verdict_source"] for r in records[: (n + 1) * 8]}  # sources appear once seen, then stay
        assert {k for k in entry if k.startswith(f"{NAME}/verdict/")} == {f"{NAME}/verdict/{s}" for s in seen}
        for source in seen:
            assert entry[f"{NAME}/verdict/{source}"] == sum(r["verdict_source"] == source for r in step) / 8


def test_plain_completions_flat_columns_and_alpha_zero_without_a_trm_server():
    from trm.integrations.trl import DatasetColumns, ThinkingReward

    dead = f"127.0.0.1:{free_port()}"
    reward = ThinkingReward(rm_backends=dead, verifier_backends=dead, alpha=0.0, deadline_s=5,
                            columns=DatasetColumns(ground_truth="solution", user_prompt=None, default_data_source="math"))
    completions = ["<think>\n2 + 2 = 4\n</think>\n\\boxed{4}", "<think>\nguess\n</think>\n\\boxed{5}", "no answer"]
    scores = reward(["What is 2 + 2?"] * 3, completions, solution=["4", "4", "4"])
    assert scores == [1.0, 0.0, 0.0]  # r = v: no TRM call (its backend is dead)
    assert [r.user_prompt for r in reward.last_requests] == ["What is 2 + 2?"] * 3
    assert reward.last_metrics == {f"{NAME}/accuracy": 1 / 3, f"{NAME}/has_answer": 2 / 3,
                                   f"{NAME}/verdict/exact_match": 1 / 3, f"{NAME}/verdict/numeric": 1 / 3,
                                   f"{NAME}/verdict/no_answer": 1 / 3}
    logged = []
    reward([[{"role": "user", "content": "What is 2 + 2?"}]],
           [[{"role": "assistant", "content": "\\boxed{4}"}]], solution=["4"], log_metric=lambda k, v: logged.append((k, v)))
    assert (f"{NAME}/accuracy", 1.0) in logged and (f"{NAME}/verdict/no_answer", 0.0) in logged  # seen sources stay


def test_failures_raise(reward_server):
    from trm.client import BackendsUnavailable
    from trm.integrations.trl import ThinkingReward

    rows = arithmetic_rows(["7"])
    columns = {key: [rows[0][key]] for key in ("data_source", "reward_model", "extra_info")}
    dead = f"127.0.0.1:{free_port()}"
    right = ["<think>\n3 + 4 = 7\n</think>\n\\boxed{7}"]
    with pytest.raises(BackendsUnavailable, match=dead):
        ThinkingReward(rm_backends=dead, verifier_backends=dead, deadline_s=1.5)(["q"], right, **columns)
    reward = ThinkingReward(rm_backends=reward_server, verifier_backends=dead)
    with pytest.raises(ValueError, match=r"completion 0: no ground truth at column 'reward_model.ground_truth'"):
        reward(["q"], right, data_source=columns["data_source"], extra_info=columns["extra_info"])
    with pytest.raises(ValueError, match=r"completion 0 .* no extra_info\['user_prompt'\]"):
        reward(["q"], right, data_source=columns["data_source"], reward_model=columns["reward_model"])
    with pytest.raises(TypeError, match="unknown reward setting"):
        ThinkingReward(alpah=0.1)
    assert math.isfinite(reward(["q"], right, **columns)[0])


def test_settings_from_a_reward_file_use_its_constants(monkeypatch, tmp_path):
    """reward_file= reads remote_verifier.py's constants (edited here), then the environment, then overrides."""
    from trm.integrations.trl import ThinkingReward

    text = (REPO / "remote_verifier.py").read_text()
    edited = text.replace('DEFAULT_VERIFIER_BACKENDS = "127.0.0.1:23888"', 'DEFAULT_VERIFIER_BACKENDS = "10.0.0.8:23888"')
    assert edited != text
    (tmp_path / "remote_verifier.py").write_text(edited)
    monkeypatch.setenv("TRM_RM_BACKENDS", "10.0.0.9:39999")
    monkeypatch.delenv("TRM_VERIFIER_BACKENDS", raising=False)
    reward = ThinkingReward(reward_file=tmp_path / "remote_verifier.py", alpha=0.5)
    assert (reward.settings.rm_backends, reward.settings.verifier_backends, reward.settings.alpha) == (
        "10.0.0.9:39999", "10.0.0.8:23888", 0.5)


def test_toy_rows_cover_every_sum_of_the_operand_range():
    from trm.rl.toy import toy_rows, toy_trace

    rows = toy_rows(seed=3, max_operand=4)
    questions = {r["extra_info"]["question"]: r["reward_model"]["ground_truth"] for r in rows}
    assert len(rows) == len(questions) == 25 and questions["What is 4 + 3?"] == "7"
    assert toy_trace(rows[0]).endswith(f"\\boxed{{{rows[0]['reward_model']['ground_truth']}}}")


def test_sampled_accuracy_judges_the_policys_samples_through_the_reward(policy):
    """The policy learnt "3 + 4 = 7": its samples are right against truth 7 and wrong against 8 (same seed, same
    samples)."""
    from trm.integrations.trl import ThinkingReward
    from trm.rl.toy import sampled_accuracy

    model, tokenizer = policy
    dead = f"127.0.0.1:{free_port()}"  # alpha 0, rule-only data source: neither server is asked
    reward = ThinkingReward(rm_backends=dead, verifier_backends=dead, alpha=0.0, tokenizer=tokenizer)
    right, wrong = (sampled_accuracy(model, tokenizer, arithmetic_rows([truth]), reward, samples=4, temperature=0.3,
                                     max_new_tokens=32, seed=0) for truth in ("7", "8"))
    assert right >= 0.75 and right + wrong <= 1.0
    assert model.training  # left as it was found
