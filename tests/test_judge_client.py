"""ChatClient (trm.llm.client) and wait_healthy (trm.client): against the real `trm serve chat`, with faults from
FaultServer (in front of it) and the scripted judge: retries, failover, n fall-back, usage, finish reasons, keys."""

import asyncio

import httpx
import pytest

from trm.client import BackendRequestError, BackendsUnavailable, resolve_api_key, wait_healthy
from trm.llm.client import ChatClient, ChatConfig, Usage
from trm_testing.fault_server import FaultServer, dead_backend
from trm_testing.judge import Fault, ScriptedJudge
from trm_testing.serving import running_server

FAST = dict(backoff_base=0.01, backoff_max=0.05)
ASK = [{"role": "user", "content": "two words"}]
GREEDY = dict(temperature=0.0, max_tokens=3)


@pytest.fixture(scope="module")
def chat_server(tiny_models):
    """One real `trm serve chat` on the tiny chat model."""
    with running_server(["serve", "chat", "--model", str(tiny_models["chat"]), "--served-model-name", "tiny-chat"]) as url:
        yield url


def direct(url: str, body: dict) -> dict:
    """The server's own answer to ``body``, asked without the client."""
    return httpx.post(f"{url}/v1/chat/completions", json={"model": "tiny-chat", **body}, timeout=120).json()


def test_n_choices_finish_reasons_and_usage_come_from_the_served_model(chat_server):
    client = ChatClient(chat_server + "/v1", "tiny-chat")  # an OpenAI-style /v1 root names the same server
    usage = Usage()
    choices = asyncio.run(client.complete(ASK, n=3, usage=usage, **GREEDY))
    expected = direct(chat_server, {"messages": ASK, "n": 3, **GREEDY})
    assert [c.text for c in choices] == [c["message"]["content"] for c in expected["choices"]]
    assert [c.finish_reason for c in choices] == [c["finish_reason"] for c in expected["choices"]] == ["length"] * 3
    assert usage == client.usage == Usage(expected["usage"]["prompt_tokens"], expected["usage"]["completion_tokens"], 1)


def test_an_endpoint_refusing_n_gets_single_requests_and_usage_counts_each(chat_server):
    refuse_n = lambda i, req: ("status", 400, {"error": {"message": "n must be 1"}}) \
        if req.json().get("n", 1) > 1 else ("forward",)
    with FaultServer(refuse_n, target=chat_server) as fault:
        client = ChatClient(fault.url, "tiny-chat", config=ChatConfig(**FAST))
        first = asyncio.run(client.complete(ASK, n=3, seed=5, **GREEDY))
        second = asyncio.run(client.chat(ASK, n=2, **GREEDY))
        sent = [req.json() for req in fault.requests]
    assert [body.get("n", 1) for body in sent] == [3, 1, 1, 1, 1, 1]  # refused once, then single requests only
    assert [body.get("seed") for body in sent[:4]] == [5, 5, 5 + 1000003, 5 + 2 * 1000003]  # re-asks differ
    one = direct(chat_server, {"messages": ASK, **GREEDY})
    assert [c.text for c in first] + second == [one["choices"][0]["message"]["content"]] * 5
    assert client.usage == Usage(5 * one["usage"]["prompt_tokens"], 5 * one["usage"]["completion_tokens"], 5)


def test_a_failing_backend_fails_over_to_the_served_one(chat_server):
    with FaultServer(lambda i, req: ("drop",)) as broken:
        client = ChatClient(f"{broken.url},{chat_server}", "tiny-chat", config=ChatConfig(**FAST))

        async def four():
            try:  # concurrent calls go to the least loaded backend, so the broken one gets some of them
                return await asyncio.gather(*(client.chat(ASK, **GREEDY) for _ in range(4)))
            finally:
                await client.aclose()

        answers = asyncio.run(four())
        assert broken.requests  # it was asked, and its failures were retried on the other backend
    assert answers == [[direct(chat_server, {"messages": ASK, **GREEDY})["choices"][0]["message"]["content"]]] * 4
    assert client.usage.requests == 4 and client.pool.stats()[broken.url]["failures"] >= 1


def test_a_bad_request_raises_with_the_servers_message(chat_server):
    client = ChatClient(chat_server, "not-served", config=ChatConfig(**FAST))
    with pytest.raises(BackendRequestError) as raised:
        asyncio.run(client.chat(ASK, **GREEDY))
    assert raised.value.status_code == 404 and "not-served" in raised.value.message


def test_wait_healthy_checks_the_served_model(chat_server):
    assert wait_healthy(f"{chat_server}/v1", 30, expect_model="tiny-chat") == [chat_server]
    with pytest.raises(BackendsUnavailable, match=r"is not the server that was started \(it serves tiny-chat, not x"):
        wait_healthy(chat_server, 30, expect_model="x")
    with pytest.raises(BackendsUnavailable, match="process 7 exited before"):
        wait_healthy([chat_server, dead_backend()], 300, abort=lambda: "process 7 exited")
    with pytest.raises(BackendsUnavailable, match=r"not healthy after 0.3s: http://127\.0\.0\.1:\d+ \(ConnectError"):
        wait_healthy(dead_backend(), 0.3)


def test_rate_limits_and_server_errors_are_retried_and_usage_counted():
    faults = iter([Fault(429), Fault(503), Fault(500)])

    with ScriptedJudge(lambda req: next(faults, None) or "four words of answer") as judge:
        client = ChatClient(judge.url, "m", config=ChatConfig(**FAST))
        texts = asyncio.run(client.chat(ASK, n=2))
        assert judge.count() == 4  # three failures, then one request carrying n=2
    assert texts == ["four words of answer"] * 2
    assert client.usage == Usage(prompt_tokens=2, completion_tokens=8, requests=1)


def test_a_failing_server_gives_up_at_the_deadline_not_the_connect_budget():
    with ScriptedJudge(lambda req: Fault(500)) as judge:
        client = ChatClient(judge.url, "m", config=ChatConfig(deadline=0.5, connect_budget=0.01, **FAST))
        with pytest.raises(BackendsUnavailable, match=r"(?s)no backend answered POST /v1/chat/completions within"
                                                      r" .*deadline 0.5s.*HTTP 500: injected fault"):
            asyncio.run(client.chat(ASK))
        assert judge.count() > 2  # retried until the deadline: a server that answers is not cut short


def test_nothing_listening_fails_after_the_connect_budget_not_the_deadline():
    client = ChatClient(dead_backend(), "m", config=ChatConfig(deadline=1000, connect_budget=0.3, **FAST))
    with pytest.raises(BackendsUnavailable, match=r"no backend accepted a connection .* \(connect budget 0.3s\)"):
        asyncio.run(client.chat(ASK))


def test_client_errors_are_not_retried():
    with ScriptedJudge(lambda req: Fault(401, "bad key")) as judge:
        client = ChatClient(judge.url, "m", config=ChatConfig(**FAST))
        with pytest.raises(BackendRequestError, match="401: bad key"):
            asyncio.run(client.chat(ASK))
        assert judge.count() == 1


def test_api_key_from_the_roles_environment_is_sent_but_never_shown(monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.setenv("TRM_JUDGE_API_KEY", "sk-secret-123")
    assert resolve_api_key(None, "judge") == "sk-secret-123" and resolve_api_key("explicit", "judge") == "explicit"
    with ScriptedJudge(lambda req: "ok") as judge:
        client = ChatClient(judge.url, "m")
        asyncio.run(client.chat(ASK))
        generation = ChatClient(judge.url, "m", role="generation")  # OPENAI_API_KEY only: none set
        asyncio.run(generation.chat(ASK))
        assert [r["_authorization"] for r in judge.requests] == ["Bearer sk-secret-123", None]
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
        client = ChatClient(judge.url, "m", config=ChatConfig(max_concurrency=3))

        async def many():
            return await asyncio.gather(*(client.chat([{"role": "user", "content": str(i)}]) for i in range(12)))

        assert len(asyncio.run(many())) == 12
    assert state["peak"] == 3


def test_one_client_serves_several_event_loops():
    with ScriptedJudge(lambda req: "ok") as judge:
        client = ChatClient(judge.url, "m")
        assert asyncio.run(client.chat([{"role": "user", "content": "a"}])) == ["ok"]
        assert asyncio.run(client.chat([{"role": "user", "content": "b"}])) == ["ok"]
    assert client.usage.requests == 2


def test_an_endpoint_ignoring_n_gets_single_requests():
    with ScriptedJudge(lambda req: f"answer {req.call}", honour_n=False) as judge:
        client = ChatClient(judge.url, "m", config=ChatConfig(**FAST))
        assert asyncio.run(client.chat(ASK, n=3)) == ["answer 0", "answer 1", "answer 2"]
        assert [body.get("n", 1) for body in judge.requests] == [3, 1, 1]


def test_judge_flags_build_the_client():
    import argparse

    from trm.llm.client import add_judge_arguments, client_from_args

    parser = argparse.ArgumentParser()
    add_judge_arguments(parser, default_concurrency=4)
    args = parser.parse_args(["--judge-url", "h:1/v1,h:2", "--judge-model", "m", "--deadline", "5", "--no-n"])
    client = client_from_args(args)
    assert client.pool.backends == ["http://h:1", "http://h:2"] and client.pool.deadline == 5
    assert (client.config.max_concurrency, client.config.use_n, client.pool.connect_budget) == (4, False, 10.0)
