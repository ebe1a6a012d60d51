"""The embedded reward server: scores equal plain transformers forwards, batching, bad input, auth, SIGTERM."""

from __future__ import annotations

import array
import asyncio
import base64
import signal
import threading
import time

import httpx
import openai
import pytest

from trm_testing.serving import ReferenceRewardModel, spawn, stop, trm_command
from trm_testing.serving import free_port
from trm_testing.slow_model import slow_reward_command

TEXTS = [
    "What is 2+2?\nWe add two and two, so the answer is 4.",
    "x",
    "Let me think. " * 40 + "Therefore the sum is 91.",
    "so wait, maybe the prime factorisation helps: 36 = 2^2 * 3^2",
    "héllo ünïcode ∑ 数学 \\boxed{7}",
]
API_KEY = "test-key-123"
MAX_LENGTH = 48


@pytest.fixture(scope="module")
def reference(tiny_models):
    return ReferenceRewardModel(tiny_models["reward"])


@pytest.fixture(scope="module")
def strict_server(tiny_models, tmp_path_factory):
    """API key, a short --max-length and a 16 KiB body limit."""
    port = free_port()
    server = spawn(trm_command("serve", "reward", "--model", str(tiny_models["reward"]), "--port", str(port),
                               "--max-length", str(MAX_LENGTH), "--max-body-mb", str(16 / 1024)),
                   port, tmp_path_factory.mktemp("strict"), env={"TRM_API_KEY": API_KEY})
    yield server
    stop(server.proc)


@pytest.fixture(scope="module")
def slow_server(tiny_models, tmp_path_factory):
    """Every batch takes 0.4 s longer (injected latency), so coalescing and draining are observable."""
    port = free_port()
    server = spawn(slow_reward_command(0.4, "--model", str(tiny_models["reward"]), "--port", str(port)),
                   port, tmp_path_factory.mktemp("slow"))
    yield server
    stop(server.proc)


# --- scores ------------------------------------------------------------------------------------------------
def test_openai_client_scores_equal_plain_forward(reward_server, reference):
    client = openai.OpenAI(base_url=f"{reward_server}/v1", api_key="unused")
    for text in TEXTS[:3]:
        result = client.embeddings.create(model="RewardModel", input=text)
        assert len(result.data) == 1 and len(result.data[0].embedding) == 1
        assert result.data[0].embedding[0] == pytest.approx(reference.score(text), abs=1e-4)
        assert result.usage.prompt_tokens == reference.n_tokens(text)


def test_list_input_keeps_order_and_base64_works(reward_server, reference):
    client = openai.OpenAI(base_url=f"{reward_server}/v1", api_key="unused")
    expected = [reference.score(t) for t in TEXTS]
    # the client asks for base64 by default and decodes it; "float" is plain JSON numbers
    for kwargs in ({}, {"encoding_format": "float"}):
        result = client.embeddings.create(model="RewardModel", input=TEXTS, **kwargs)
        assert [d.index for d in result.data] == list(range(len(TEXTS)))
        got = [d.embedding[0] for d in result.data]
        assert got == pytest.approx(expected, abs=1e-4)
    raw = client.embeddings.create(model="RewardModel", input=TEXTS, encoding_format="base64")
    decoded = [array.array("f", base64.b64decode(d.embedding))[0] for d in raw.data]
    assert decoded == pytest.approx(expected, abs=1e-4)
    assert result.usage.total_tokens == sum(reference.n_tokens(t) for t in TEXTS)
    # token ids are accepted too (as sglang does), and give the same score as the text
    ids = reference.tokenizer(TEXTS[0])["input_ids"]
    answer = httpx.post(f"{reward_server}/v1/embeddings", json={"model": "RewardModel", "input": ids}).json()
    assert answer["data"][0]["embedding"][0] == pytest.approx(expected[0], abs=1e-4)


def test_padded_batch_equals_unpadded_forwards(tiny_models, reference):
    from trm.serving.scorer import RewardScorer

    scorer = RewardScorer(tiny_models["reward"])
    batch_scores = scorer.score(TEXTS, batch_size=len(TEXTS))  # one right-padded forward
    assert batch_scores == pytest.approx([reference.score(t) for t in TEXTS], abs=1e-4)


def test_explicit_truncation_keeps_the_requested_side(tiny_models, reference):
    from trm.serving.scorer import InputTooLong, RewardScorer

    long_text = TEXTS[2]
    ids = reference.tokenizer(long_text)["input_ids"]
    assert len(ids) > MAX_LENGTH
    with pytest.raises(InputTooLong, match=rf"{len(ids)} tokens.*{MAX_LENGTH}"):
        RewardScorer(tiny_models["reward"], max_length=MAX_LENGTH).score([long_text])
    left = RewardScorer(tiny_models["reward"], max_length=MAX_LENGTH, truncation="left")
    right = RewardScorer(tiny_models["reward"], max_length=MAX_LENGTH, truncation="right")
    assert len(left.encode([long_text])[0]) == MAX_LENGTH
    assert left.encode([long_text])[0][-5:] == ids[-5:]  # left truncation keeps the end of the trace
    assert right.encode([long_text])[0][:5] == ids[:5]
    assert left.score([long_text])[0] != pytest.approx(right.score([long_text])[0], abs=1e-6)


def test_concurrent_requests_get_their_own_scores_in_shared_batches(slow_server, reference):
    texts = [f"problem {i}: " + "step " * (i % 7) + f"answer {i * 3}" for i in range(32)]
    expected = [reference.score(t) for t in texts]
    before = httpx.get(f"{slow_server.url}/health").json()

    async def run():
        client = openai.AsyncOpenAI(base_url=f"{slow_server.url}/v1", api_key="unused", max_retries=0)
        results = await asyncio.gather(*(client.embeddings.create(model="RewardModel", input=t) for t in texts))
        await client.close()
        return [r.data[0].embedding[0] for r in results]

    assert asyncio.run(run()) == pytest.approx(expected, abs=1e-4)
    after = httpx.get(f"{slow_server.url}/health").json()
    assert after["items"] - before["items"] == 32
    assert after["batches"] - before["batches"] <= 8, after  # coalesced, not one forward per request
    assert after["largest_batch"] >= 4


# --- bad input ---------------------------------------------------------------------------------------------
def _post(url, body=None, content=None, headers=None, path="/v1/embeddings"):
    headers = {"Authorization": f"Bearer {API_KEY}", **(headers or {})}
    return httpx.post(f"{url}{path}", json=body, content=content, headers=headers, timeout=30)


BAD_REQUESTS = [
    ("malformed json", dict(content=b'{"model": "RewardModel", "input": ["a",'), 400, "not valid JSON"),
    ("empty body", dict(content=b""), 400, "empty"),
    ("json list body", dict(body=["a", "b"]), 400, "must be a JSON object"),
    ("missing input", dict(body={"model": "RewardModel"}), 400, "missing 'input'"),
    ("number input", dict(body={"model": "RewardModel", "input": 3.5}), 400, "must be a string or a list"),
    ("mixed list", dict(body={"model": "RewardModel", "input": ["ok", 7]}), 400, "input[1] is int"),
    ("empty list", dict(body={"model": "RewardModel", "input": []}), 400, "empty list"),
    ("empty token list", dict(body={"model": "RewardModel", "input": [[]]}), 400, "non-empty lists of integers"),
    ("token out of vocab", dict(body={"model": "RewardModel", "input": [5, 10**9]}), 400, "outside the vocabulary"),
    ("unknown model", dict(body={"model": "gpt-4", "input": "a"}), 404, "served models: RewardModel"),
    ("model not a string", dict(body={"model": 5, "input": "a"}), 400, "'model' must be a string"),
    ("bad encoding", dict(body={"model": "RewardModel", "input": "a", "encoding_format": "int8"}), 400,
     "encoding_format"),
    ("too long", dict(body={"model": "RewardModel", "input": ["short", TEXTS[2]]}), 400,
     "input[1] has {n_tokens} tokens, more than the limit of " + str(MAX_LENGTH)),
    ("body too large", dict(body={"model": "RewardModel", "input": "x" * 20000}), 413, "over the server limit"),
]


@pytest.mark.parametrize("name,request_kwargs,status,message", BAD_REQUESTS, ids=[case[0] for case in BAD_REQUESTS])
def test_bad_requests_get_clear_errors_and_server_keeps_serving(strict_server, reference, name, request_kwargs,
                                                                status, message):
    message = message.replace("{n_tokens}", str(reference.n_tokens(TEXTS[2])))  # both counts, the real one
    response = _post(strict_server.url, **request_kwargs)
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert message in error["message"]
    assert error["code"] == status
    assert httpx.get(f"{strict_server.url}/health").status_code == 200
    good = _post(strict_server.url, body={"model": "RewardModel", "input": "still serving"})
    assert good.status_code == 200
    assert good.json()["data"][0]["embedding"][0] == pytest.approx(reference.score("still serving"), abs=1e-4)


def test_unknown_route_and_wrong_method_are_json_errors(strict_server):
    assert _post(strict_server.url, body={}, path="/v1/nothing").status_code == 404
    wrong = httpx.get(f"{strict_server.url}/v1/embeddings", headers={"Authorization": f"Bearer {API_KEY}"})
    assert wrong.status_code == 405 and "not allowed" in wrong.json()["error"]["message"]


# --- auth --------------------------------------------------------------------------------------------------
def test_api_key_is_required_everywhere_but_health(strict_server, reference):
    url = strict_server.url
    body = {"model": "RewardModel", "input": "a"}
    missing = httpx.post(f"{url}/v1/embeddings", json=body)
    assert missing.status_code == 401 and "missing API key" in missing.json()["error"]["message"]
    wrong = httpx.post(f"{url}/v1/embeddings", json=body, headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401 and "invalid API key" in wrong.json()["error"]["message"]
    assert httpx.get(f"{url}/v1/models").status_code == 401
    assert httpx.get(f"{url}/health").status_code == 200
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=f"{url}/v1", api_key="nope", max_retries=0).embeddings.create(model="RewardModel",
                                                                                            input="a")
    client = openai.OpenAI(base_url=f"{url}/v1", api_key=API_KEY)
    assert client.embeddings.create(model="RewardModel", input="a").data[0].embedding[0] == pytest.approx(
        reference.score("a"), abs=1e-4)
    assert [m.id for m in client.models.list().data] == ["RewardModel"]


# --- shutdown (last: it stops the slow server) ---------------------------------------------------------------
def test_sigterm_finishes_in_flight_requests_then_exits(slow_server, reference):
    texts = ["drain me " * 5, "and me too"]
    outcome = {}

    def request():
        outcome["response"] = httpx.post(f"{slow_server.url}/v1/embeddings",
                                         json={"model": "RewardModel", "input": texts}, timeout=60)

    thread = threading.Thread(target=request)
    thread.start()
    deadline = time.monotonic() + 30
    while httpx.get(f"{slow_server.url}/health").json()["in_flight"] < 2:  # the request reached the batcher
        assert time.monotonic() < deadline
        time.sleep(0.01)  # polling with a deadline
    slow_server.proc.send_signal(signal.SIGTERM)
    thread.join(timeout=60)
    assert outcome["response"].status_code == 200, outcome["response"].text
    scores = [d["embedding"][0] for d in outcome["response"].json()["data"]]
    assert scores == pytest.approx([reference.score(t) for t in texts], abs=1e-4)
    assert slow_server.proc.wait(timeout=30) == 0  # a drained SIGTERM is a clean stop, not a death by signal
    assert "Application shutdown complete" in slow_server.log()
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{slow_server.url}/health")
