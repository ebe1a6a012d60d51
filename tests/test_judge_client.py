"""JudgeClient against the scripted judge: retries, n fall-back, usage, key handling."""

import asyncio

import pytest

from trm_testing.judge import Fault, ScriptedJudge
from trm.llm.client import JudgeClient, JudgeConfig, JudgeUnavailable, resolve_api_key

FAST = dict(backoff_base_s=0.01, backoff_max_s=0.05)


def test_rate_limits_and_server_errors_are_retried_and_usage_counted():
    faults = iter([Fault(429), Fault(503), Fault(500)])

    def policy(req):
        return next(faults, None) or "four words of answer"

    with ScriptedJudge(policy) as judge:
        client = JudgeClient(judge.url, "m", config=JudgeConfig(**FAST))
        texts = asyncio.run(client.chat([{"role": "user", "content": "two words"}], n=2))
        assert judge.count() == 4  # three failures, then one request carrying n=2
    assert texts == ["four words of answer"] * 2
    assert client.usage.requests == 1
    assert client.usage.prompt_tokens == 2 and client.usage.completion_tokens == 8


def test_gives_up_after_max_retries_with_a_clear_error():
    with ScriptedJudge(lambda req: Fault(500)) as judge:
        client = JudgeClient(judge.url, "m", config=JudgeConfig(max_retries=2, **FAST))
        with pytest.raises(JudgeUnavailable, match="giving up after 2 retries"):
            asyncio.run(client.chat([{"role": "user", "content": "x"}]))
        assert judge.count() == 3


def test_nothing_listening_fails_after_the_connect_budget_not_all_retries():
    from trm_testing.serving import free_port

    client = JudgeClient(f"http://127.0.0.1:{free_port()}/v1", "m",
                         config=JudgeConfig(max_retries=1000, connect_budget_s=0.3, backoff_base_s=0.05, backoff_max_s=0.1))
    with pytest.raises(JudgeUnavailable, match=r"no server accepted a connection in (\d+) attempts") as raised:
        asyncio.run(client.chat([{"role": "user", "content": "x"}]))
    attempts = int(raised.value.args[0].split(" attempts")[0].rsplit(" ", 1)[1])
    assert 2 <= attempts < 1000 and "connect budget 0.3s" in str(raised.value)  # the budget ended it, not the retries


def test_a_server_error_is_not_cut_short_by_the_connect_budget():
    with ScriptedJudge(lambda req: Fault(500)) as judge:
        client = JudgeClient(judge.url, "m", config=JudgeConfig(max_retries=3, connect_budget_s=0.0, **FAST))
        with pytest.raises(JudgeUnavailable, match="giving up after 3 retries"):
            asyncio.run(client.chat([{"role": "user", "content": "x"}]))
        assert judge.count() == 4


def test_client_errors_are_not_retried():
    with ScriptedJudge(lambda req: Fault(401, "bad key")) as judge:
        client = JudgeClient(judge.url, "m", config=JudgeConfig(**FAST))
        with pytest.raises(JudgeUnavailable, match="401"):
            asyncio.run(client.chat([{"role": "user", "content": "x"}]))
        assert judge.count() == 1


def test_api_key_from_environment_is_sent_but_never_shown(monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.setenv("TRM_JUDGE_API_KEY", "sk-secret-123")
    assert resolve_api_key(None) == "sk-secret-123"
    assert resolve_api_key("explicit") == "explicit"
    with ScriptedJudge(lambda req: "ok") as judge:
        client = JudgeClient(judge.url.removesuffix("/v1"), "m")  # base URL without /v1 is accepted
        asyncio.run(client.chat([{"role": "user", "content": "x"}]))
        assert judge.requests[0]["_authorization"] == "Bearer sk-secret-123"
    assert "sk-secret" not in repr(client)


def test_concurrency_is_bounded():
    import threading

    lock, state = threading.Lock(), {"now": 0, "peak": 0}
    release = threading.Event()

    def policy(req):
        with lock:
            state["now"] += 1
            state["peak"] = max(state["peak"], state["now"])
            if state["now"] >= 3:
                release.set()
        release.wait(timeout=5)
        with lock:
            state["now"] -= 1
        return "ok"

    with ScriptedJudge(policy) as judge:
        client = JudgeClient(judge.url, "m", max_concurrency=3)

        async def many():
            return await asyncio.gather(*(client.chat([{"role": "user", "content": str(i)}]) for i in range(12)))

        assert len(asyncio.run(many())) == 12
    assert state["peak"] == 3


def test_one_client_serves_several_event_loops():
    with ScriptedJudge(lambda req: "ok") as judge:
        client = JudgeClient(judge.url, "m")
        assert asyncio.run(client.chat([{"role": "user", "content": "a"}])) == ["ok"]
        assert asyncio.run(client.chat([{"role": "user", "content": "b"}])) == ["ok"]
    assert client.usage.requests == 2


def test_endpoint_rejecting_n_gets_single_calls():
    def policy(req):
        return Fault(400, "n must be 1") if int(req.body.get("n") or 1) > 1 else f"answer {req.call}"

    with ScriptedJudge(policy) as judge:
        client = JudgeClient(judge.url, "m", config=JudgeConfig(**FAST))
        first = asyncio.run(client.chat([{"role": "user", "content": "x"}], n=3))
        second = asyncio.run(client.chat([{"role": "user", "content": "y"}], n=2))
        assert [body.get("n", 1) for body in judge.requests] == [3, 1, 1, 1, 1, 1]
    assert first == ["answer 1", "answer 2", "answer 3"] and second == ["answer 4", "answer 5"]
