"""remote_verifier.py: verl's per-sample compute_score contract, backend settings, registration on import."""

from __future__ import annotations

import asyncio
import importlib.util
import math
import subprocess
import sys

import pytest

from trm_testing.serving import REPO, free_port
from trm.traces import trm_input

PROMPT = "Solve for x: 3x - 7 = 11."
RIGHT = "<think>\nAdd 7: 3x = 18, so x = 6.\n</think>\nThe answer is \\boxed{6}."
WRONG = "<think>\n3x = 4, so x = 4/3.\n</think>\n\\boxed{4/3}"


@pytest.fixture(scope="module")
def remote_verifier():
    spec = importlib.util.spec_from_file_location("remote_verifier_under_test", REPO / "remote_verifier.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def rm_env(monkeypatch, reward_server):
    monkeypatch.setenv("TRM_RM_BACKENDS", reward_server)
    monkeypatch.setenv("TRM_VERIFIER_BACKENDS", f"127.0.0.1:{free_port()}")  # rule-only source: never called
    return reward_server


def load_file(path):
    spec = importlib.util.spec_from_file_location(f"remote_verifier_copy_{abs(hash(str(path)))}", path)
    spec.loader.exec_module(importlib.util.module_from_spec(spec))


def test_backend_settings_keywords_then_environment_then_the_files_constants(monkeypatch, tmp_path):
    from trm.rewards import compute

    monkeypatch.setattr(compute, "_default_backends", {})  # this process has loaded no reward file yet
    monkeypatch.delenv("TRM_RM_BACKENDS", raising=False)
    monkeypatch.delenv("TRM_VERIFIER_BACKENDS", raising=False)
    assert compute.RewardSettings.resolve().rm_backends == "127.0.0.1:39999"  # the package's defaults
    text = (REPO / "remote_verifier.py").read_text()
    edited = text.replace('DEFAULT_RM_BACKENDS = "127.0.0.1:39999"', 'DEFAULT_RM_BACKENDS = "10.0.0.9:39999"')
    assert edited != text and 'DEFAULT_VERIFIER_BACKENDS = "127.0.0.1:23888"' in text
    (tmp_path / "remote_verifier.py").write_text(edited)  # the user edits the constant
    load_file(tmp_path / "remote_verifier.py")  # as verl does before it builds the manager
    settings = compute.RewardSettings.resolve()
    assert (settings.rm_backends, settings.verifier_backends) == ("10.0.0.9:39999", "127.0.0.1:23888")
    monkeypatch.setenv("TRM_RM_BACKENDS", "h1:1,h2:2")
    assert compute.RewardSettings.resolve().rm_backends == "h1:1,h2:2"
    assert compute.RewardSettings.resolve(rm_backends="k:3").rm_backends == "k:3"
    with pytest.raises(TypeError, match="unknown reward setting"):
        compute.RewardSettings.resolve(alhpa=0.3)


def test_compute_score_blends_verified_answers_with_the_trm(remote_verifier, rm_env, tiny_models):
    from trm.serving.scorer import RewardScorer

    extra = {"user_prompt": PROMPT, "question": PROMPT}
    right = remote_verifier.compute_score("math", RIGHT, "6", extra)
    wrong = remote_verifier.compute_score("math", WRONG, "6", extra_info=extra)
    (t,) = RewardScorer(tiny_models["reward"]).score([trm_input(PROMPT, RIGHT)])
    assert right["rm_score_raw"] == pytest.approx(t, abs=1e-4)
    assert right["score"] == pytest.approx(0.8 + 0.2 / (1 + math.exp(-t)), abs=1e-6)
    assert (right["verify_score"], right["verify_binary"], right["verdict_source"]) == (1.0, 1, "exact_match")
    assert (wrong["score"], wrong["verify_score"], wrong["verify_binary"]) == (0.0, 0.0, 0)
    assert math.isnan(wrong["rm_score_raw"])
    half = remote_verifier.compute_score("math", RIGHT, "6", extra, alpha=0.5)  # keyword override
    assert half["score"] == pytest.approx(0.5 + 0.5 / (1 + math.exp(-t)), abs=1e-6)


def test_per_sample_calls_share_one_cached_pool_per_settings(remote_verifier, rm_env):
    """compute_score is called once per response: the pools of its settings are built once per process."""
    from trm.rewards import compute

    extra = {"user_prompt": PROMPT}
    remote_verifier.compute_score("math", RIGHT, "6", extra)
    cached = compute.rewarder(compute.RewardSettings.resolve())
    pool = cached.scorer.pool
    before = pool.stats()[pool.backends[0]]["requests"]
    for _ in range(3):
        assert remote_verifier.compute_score("math", RIGHT, "6", extra)["rm_score_raw"] > -1e9
    assert compute.rewarder(compute.RewardSettings.resolve()) is cached and cached.scorer.pool is pool
    assert pool.stats()[pool.backends[0]]["requests"] == before + 3  # all three went through that one pool
    other = compute.rewarder(compute.RewardSettings.resolve(alpha=0.5))  # other settings: a pool of their own
    assert other is not cached and other.scorer.pool is not pool
    compute.close_rewarders()  # what runs at exit: the next call builds a fresh rewarder
    with pytest.raises(RuntimeError, match="closed"):
        cached.reward([compute.request_from_sample("math", RIGHT, "6", extra)])
    assert remote_verifier.compute_score("math", RIGHT, "6", extra)["score"] > 0.8
    assert compute.rewarder(compute.RewardSettings.resolve()) is not cached


def test_compute_score_works_inside_a_running_event_loop_and_async(remote_verifier, rm_env):
    extra = {"user_prompt": PROMPT}

    async def caller():
        from_sync = remote_verifier.compute_score("math", RIGHT, "6", extra)  # sync call while a loop runs
        from_async = await remote_verifier.compute_score_async("math", RIGHT, "6", extra)
        return from_sync, from_async

    from_sync, from_async = asyncio.run(caller())
    assert from_sync["score"] == pytest.approx(from_async["score"], abs=1e-9) and from_sync["score"] > 0.8


def test_missing_user_prompt_and_dead_trm_raise(remote_verifier, monkeypatch):
    with pytest.raises(ValueError, match="user_prompt"):
        remote_verifier.compute_score("math", RIGHT, "6", {"question": PROMPT})
    from trm.client import BackendsUnavailable

    dead = f"127.0.0.1:{free_port()}"
    with pytest.raises(BackendsUnavailable, match=dead):
        remote_verifier.compute_score("math", RIGHT, "6", {"user_prompt": PROMPT}, rm_backends=dead, deadline_s=2)


def test_importing_the_file_registers_verify_with_verl():
    code = (
        "from verl.workers.reward_manager import get_reward_manager_cls\n"
        "try:\n    get_reward_manager_cls('verify'); print('registered before import')\n"
        "except ValueError:\n    pass\n"
        "from omegaconf import OmegaConf\n"
        "from verl.trainer.ppo.reward import get_custom_reward_fn\n"
        f"get_custom_reward_fn(OmegaConf.create({{'custom_reward_function': {{'path': {str(REPO / 'remote_verifier.py')!r}, 'name': 'compute_score'}}}}))\n"
        "cls = get_reward_manager_cls('verify'); print(cls.__module__, cls.__name__)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd="/", timeout=120)
    assert result.returncode == 0, result.stderr
    assert "registered before import" not in result.stdout
    assert "trm.rewards.verl_manager VerifyRewardManager" in result.stdout
