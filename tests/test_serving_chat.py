"""The embedded chat server through the official openai client: greedy equals transformers, limits, batching."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re

import httpx
import openai
import pytest

from trm_testing.serving import ReferenceCausalLM, spawn, stop, trm_command
from trm_testing.serving import free_port

NAME = "tiny-chat"


@pytest.fixture(scope="module")
def chat_server(tiny_models, tmp_path_factory):
    port = free_port()
    server = spawn(trm_command("serve", "chat", "--model", str(tiny_models["chat"]), "--port", str(port),
                               "--served-model-name", NAME, "--max-length", "256"),
                   port, tmp_path_factory.mktemp("chat"))
    yield server
    stop(server.proc)


@pytest.fixture(scope="module")
def reference(tiny_models):
    return ReferenceCausalLM(tiny_models["chat"])


def _client(url):
    return openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0)


MESSAGES = [{"role": "system", "content": "You check answers."}, {"role": "user", "content": "Is 91 the answer?"}]


def test_greedy_completion_matches_transformers_and_respects_max_tokens(chat_server, reference):
    client = _client(chat_server.url)
    first = client.chat.completions.create(model=NAME, messages=MESSAGES, temperature=0, max_tokens=12)
    again = client.chat.completions.create(model=NAME, messages=MESSAGES, temperature=0, max_tokens=12)
    assert first.choices[0].message.content == again.choices[0].message.content  # temperature 0 is deterministic
    expected_text, expected_tokens = reference.greedy_chat(MESSAGES, 12)
    assert first.choices[0].message.content == expected_text
    assert first.choices[0].message.role == "assistant"
    assert first.usage.completion_tokens <= 12
    assert first.usage.prompt_tokens == len(reference.chat_ids(MESSAGES))
    short = client.chat.completions.create(model=NAME, messages=MESSAGES, temperature=0, max_tokens=3)
    assert short.usage.completion_tokens == 3 and short.choices[0].finish_reason == "length"
    assert reference.tokenizer.decode(expected_tokens[:3], skip_special_tokens=True) == short.choices[0].message.content


def test_stop_strings_cut_the_text(chat_server, reference):
    text, _ = reference.greedy_chat(MESSAGES, 12)
    stop = text[len(text) // 2 : len(text) // 2 + 2]
    assert stop.strip(), text
    result = _client(chat_server.url).chat.completions.create(model=NAME, messages=MESSAGES, temperature=0,
                                                              max_tokens=12, stop=[stop])
    assert result.choices[0].message.content == text[: text.find(stop)]
    assert result.choices[0].finish_reason == "stop"


@pytest.fixture(scope="module")
def generator(tiny_models):
    """The server's in-process generator, with a forward hook counting decoding steps."""
    from trm.serving.generator import ChatGenerator

    generator = ChatGenerator(tiny_models["chat"])
    generator.forward_calls = 0

    def count(*_):
        generator.forward_calls += 1

    generator.model.register_forward_hook(count)
    return generator


def _generate(generator, items):
    """(results, decoding steps) of one batched generate call."""
    generator.forward_calls = 0
    results = generator.generate(items)
    return results, generator.forward_calls


def test_generation_halts_at_a_stop_string_per_row(generator):
    from trm.serving.generator import GenerationItem, Sampling

    greedy = Sampling(temperature=0)
    prompt = generator.encode_chat(MESSAGES)
    other = generator.encode_chat([{"role": "user", "content": "question 3: why why"}])
    (full,), steps = _generate(generator, [GenerationItem(prompt, 24, [], greedy)])
    assert full.finish_reason == "length" and full.completion_tokens == steps == 24
    stop = full.text[len(full.text) // 3 : len(full.text) // 3 + 2]
    assert stop.strip() and full.text.find(stop) > 0, full.text

    (cut,), steps = _generate(generator, [GenerationItem(prompt, 24, [stop], greedy)])
    assert cut.text == full.text[: full.text.find(stop)] and cut.finish_reason == "stop"
    assert cut.completion_tokens < 24
    assert steps == cut.completion_tokens  # generation ended on the token that completed the stop string

    # one batch, rows with their own stop strings and max_tokens: each row equals its solo run
    (alone,), _ = _generate(generator, [GenerationItem(other, 24, [], greedy)])
    mixed, steps = _generate(generator, [GenerationItem(prompt, 24, [stop], greedy),
                                         GenerationItem(other, 24, [], greedy),
                                         GenerationItem(prompt, 5, [], greedy)])
    assert mixed[0] == cut and mixed[1] == alone and steps == 24
    assert mixed[2].finish_reason == "length" and mixed[2].completion_tokens == 5
    assert full.text.startswith(mixed[2].text)
    early, steps = _generate(generator, [GenerationItem(prompt, 24, [stop], greedy),
                                         GenerationItem(prompt, 5, [], greedy)])
    assert early == [cut, mixed[2]]
    assert steps == max(cut.completion_tokens, 5) < 24  # the batch ends once every row has stopped


def test_n_samples_and_concurrent_requests_are_batched(chat_server, reference):
    client = _client(chat_server.url)
    two = client.chat.completions.create(model=NAME, messages=MESSAGES, temperature=0, max_tokens=6, n=2)
    assert [c.index for c in two.choices] == [0, 1]
    assert two.choices[0].message.content == two.choices[1].message.content == reference.greedy_chat(MESSAGES, 6)[0]
    sampled = client.chat.completions.create(model=NAME, messages=MESSAGES, temperature=1.0, max_tokens=6, n=3)
    assert len(sampled.choices) == 3 and sampled.usage.completion_tokens <= 3 * 6
    assert all(isinstance(c.message.content, str) for c in sampled.choices)

    prompts = [[{"role": "user", "content": f"question {i}: " + "why " * i}] for i in range(8)]
    before = httpx.get(f"{chat_server.url}/health").json()

    async def run():
        aclient = openai.AsyncOpenAI(base_url=f"{chat_server.url}/v1", api_key="unused", max_retries=0)
        answers = await asyncio.gather(*(aclient.chat.completions.create(model=NAME, messages=m, temperature=0,
                                                                         max_tokens=8) for m in prompts))
        await aclient.close()
        return [a.choices[0].message.content for a in answers]

    assert asyncio.run(run()) == [reference.greedy_chat(m, 8)[0] for m in prompts]  # left padding does not change greedy text
    after = httpx.get(f"{chat_server.url}/health").json()
    assert after["items"] - before["items"] == 8
    assert after["batches"] - before["batches"] < 8


PROMPT = "Question: is 91 prime?\nAnswer:"


def _stop_in(text: str) -> str:
    """A stop string that occurs past the start of `text` (letters only: the tiny model also emits partial bytes)."""
    found = re.search(r"[A-Za-z]{2,}", text[3:])
    assert found, text
    return found.group()


def test_completions_greedy_is_transformers_on_the_raw_prompt(chat_server, reference):
    client = _client(chat_server.url)
    reply = client.completions.create(model=NAME, prompt=PROMPT, temperature=0, max_tokens=12)
    text, tokens = reference.greedy_text(PROMPT, 12)
    (choice,) = reply.choices
    assert reply.object == "text_completion" and reply.model == NAME and reply.id.startswith("cmpl-")
    assert choice.text == text and choice.index == 0
    assert reply.usage.prompt_tokens == len(reference.text_ids(PROMPT))  # raw text with BOS, no chat template
    ended = len(tokens) < 12
    assert (choice.finish_reason, reply.usage.completion_tokens) == (("stop", len(tokens) + 1) if ended else ("length", 12))
    assert reply.usage.total_tokens == reply.usage.prompt_tokens + reply.usage.completion_tokens

    default = client.completions.create(model=NAME, prompt=PROMPT, temperature=0)  # OpenAI's default: 16 tokens
    long_text, long_tokens = reference.greedy_text(PROMPT, 20)
    assert len(long_tokens) == 20, "pick a PROMPT the tiny model continues past 16 tokens"
    assert default.choices[0].text == reference.greedy_text(PROMPT, 16)[0] != long_text
    assert default.usage.completion_tokens == 16 and default.choices[0].finish_reason == "length"

    short = client.completions.create(model=NAME, prompt=PROMPT, temperature=0, max_tokens=3)
    assert short.choices[0].text == reference.tokenizer.decode(long_tokens[:3], skip_special_tokens=True)
    assert short.usage.completion_tokens == 3 and short.choices[0].finish_reason == "length"

    stop = _stop_in(long_text)
    cut = client.completions.create(model=NAME, prompt=PROMPT, temperature=0, max_tokens=20, stop=stop)
    assert cut.choices[0].text == long_text[: long_text.find(stop)] and cut.choices[0].finish_reason == "stop"
    assert cut.usage.completion_tokens < 20


def test_completions_list_prompts_keep_their_order_in_one_batch(chat_server, reference):
    prompts = [PROMPT, "a", "b b b b b", "The answer is 42 because"]
    before = httpx.get(f"{chat_server.url}/health").json()
    reply = _client(chat_server.url).completions.create(model=NAME, prompt=prompts, temperature=0, max_tokens=8, n=2)
    after = httpx.get(f"{chat_server.url}/health").json()
    assert [c.index for c in reply.choices] == list(range(8))  # prompt-major: prompt i's samples are 2i, 2i+1
    assert [c.text for c in reply.choices] == [reference.greedy_text(p, 8)[0] for p in prompts for _ in range(2)]
    assert reply.usage.prompt_tokens == sum(len(reference.text_ids(p)) for p in prompts)
    lengths = [len(reference.greedy_text(p, 8)[1]) for p in prompts]
    assert reply.usage.completion_tokens == 2 * sum(8 if n == 8 else n + 1 for n in lengths)  # + end token
    # one request's rows are queued together, so they run as one left-padded batch
    assert after["items"] - before["items"] == 8 and after["batches"] - before["batches"] == 1


BAD_CHAT = [
    ("no messages", {"model": NAME}, 400, "'messages' must be a non-empty list"),
    ("message without role", {"model": NAME, "messages": [{"content": "hi"}]}, 400, "string 'role'"),
    ("content not text", {"model": NAME, "messages": [{"role": "user", "content": 5}]}, 400, "must be a string"),
    ("stream", {"model": NAME, "messages": MESSAGES, "stream": True}, 400, "streaming is not supported"),
    ("temperature type", {"model": NAME, "messages": MESSAGES, "temperature": "hot"}, 400, "'temperature' must be a number"),
    ("n too large", {"model": NAME, "messages": MESSAGES, "n": 1000}, 400, "at most 16"),
    ("max_tokens zero", {"model": NAME, "messages": MESSAGES, "max_tokens": 0}, 400, "'max_tokens' must be at least 1"),
    ("over context", {"model": NAME, "messages": MESSAGES, "max_tokens": 250}, 400, "context length of 256"),
    ("prompt alone over context", {"model": NAME, "messages": [{"role": "user", "content": "why " * 300}]}, 400,
     re.compile(r"has \d{3} prompt tokens, which leaves no room to generate within the context length of 256 tokens "
                r"\(max_tokens not set\)")),
    ("a text over the character bound", {"model": NAME, "messages": [{"role": "user", "content": "why " * 100_000}]},
     400, re.compile(r"body\['messages'\]\[0\]\['content'\] has 400000 characters; any text over \d+ characters "
                     r"has more tokens than this server's limit")),
    ("messages over the character bound", {"model": NAME, "messages": [{"role": "user", "content": "why " * 3000}] * 5},
     400, re.compile(r"the messages: 60000 characters, and any prompt over \d+ characters has more than the "
                     r"context length of 256 tokens")),
    ("logprobs", {"model": NAME, "messages": MESSAGES, "logprobs": True}, 400, "'logprobs' is not supported"),
    ("top_logprobs", {"model": NAME, "messages": MESSAGES, "top_logprobs": 2}, 400, "'top_logprobs' is not supported"),
    ("tools", {"model": NAME, "messages": MESSAGES, "tools": [{"type": "function", "function": {"name": "f"}}]}, 400,
     "'tools' (tool/function calling) is not supported"),
    ("tool_choice", {"model": NAME, "messages": MESSAGES, "tool_choice": "auto"}, 400, "'tool_choice' is not supported"),
    ("response_format", {"model": NAME, "messages": MESSAGES, "response_format": {"type": "json_object"}}, 400,
     "'response_format' is not supported"),
    ("tool role", {"model": NAME, "messages": [*MESSAGES, {"role": "tool", "content": "42"}]}, 400,
     "messages[2].role is 'tool'"),
    ("made-up role", {"model": NAME, "messages": [{"role": "wizard", "content": "hi"}]}, 400,
     "messages[0].role is 'wizard'; this server takes the roles system, user, assistant"),
    ("bad stop", {"model": NAME, "messages": MESSAGES, "stop": 3}, 400, "'stop' must be"),
    ("unknown model", {"model": "RewardModel", "messages": MESSAGES}, 404, f"served models: {NAME}"),
]
BAD_COMPLETIONS = [
    ("no prompt", {"model": NAME}, 400, "'prompt' must be a string or a non-empty list of strings"),
    ("empty prompt list", {"model": NAME, "prompt": []}, 400, "non-empty list of strings"),
    ("token-id prompt", {"model": NAME, "prompt": [1, 2, 3]}, 400, "token-id prompts are not supported"),
    ("stream", {"model": NAME, "prompt": PROMPT, "stream": True}, 400, "streaming is not supported"),
    ("echo", {"model": NAME, "prompt": PROMPT, "echo": True}, 400, "'echo' is not supported"),
    ("logprobs", {"model": NAME, "prompt": PROMPT, "logprobs": 2}, 400, "'logprobs' is not supported"),
    ("suffix", {"model": NAME, "prompt": PROMPT, "suffix": "done"}, 400, "'suffix' (insertion) is not supported"),
    ("best_of", {"model": NAME, "prompt": PROMPT, "best_of": 3}, 400, "'best_of' is not supported"),
    ("top_p zero", {"model": NAME, "prompt": PROMPT, "top_p": 0}, 400, "'top_p' must be greater than 0"),
    ("n too large", {"model": NAME, "prompt": PROMPT, "n": 17}, 400, "at most 16"),
    ("max_tokens zero", {"model": NAME, "prompt": PROMPT, "max_tokens": 0}, 400, "'max_tokens' must be at least 1"),
    ("over context", {"model": NAME, "prompt": PROMPT, "max_tokens": 250}, 400,
     re.compile(r"the prompt has (\d+) prompt tokens and max_tokens is 250: \d+ tokens, more than the context "
                r"length of 256 tokens")),
    ("prompts x n", {"model": NAME, "prompt": [PROMPT] * 17, "n": 16}, 400,
     "17 prompts x n=16 is 272 completions, more than 256 per request"),
    ("one long prompt of a list", {"model": NAME, "prompt": [PROMPT, "why " * 300], "max_tokens": 4}, 400,
     "prompt 1 has"),
    ("bad stop", {"model": NAME, "prompt": PROMPT, "stop": [1]}, 400, "'stop' must be"),
    ("unknown model", {"model": "RewardModel", "prompt": PROMPT}, 404, f"served models: {NAME}"),
]
BAD = [("/v1/chat/completions", *case) for case in BAD_CHAT] + [("/v1/completions", *case) for case in BAD_COMPLETIONS]
OK = {"/v1/chat/completions": {"model": NAME, "messages": MESSAGES, "max_tokens": 2, "temperature": 0},
      "/v1/completions": {"model": NAME, "prompt": PROMPT, "max_tokens": 2, "temperature": 0}}


@pytest.mark.parametrize("route,name,body,status,message", BAD, ids=[f"{b[0].split('/')[-1]}: {b[1]}" for b in BAD])
def test_bad_requests_get_a_message_and_the_server_goes_on(chat_server, route, name, body, status, message):
    response = httpx.post(f"{chat_server.url}{route}", json=body, timeout=30)
    assert response.status_code == status, response.text
    error = response.json()["error"]
    if isinstance(message, re.Pattern):
        assert message.search(error["message"]), error["message"]
        assert not re.search(r"-\d", error["message"])  # no negative token counts
    else:
        assert message in error["message"]
    assert httpx.get(f"{chat_server.url}/health").status_code == 200
    assert httpx.post(f"{chat_server.url}{route}", json=OK[route], timeout=30).status_code == 200


@contextlib.asynccontextmanager
async def in_process(generator, **config):
    """The chat app on the test's generator, lifespan running, behind an httpx client (no port, no model reload)."""
    from trm.serving.chat_server import ChatServerConfig, build_app

    app = build_app(generator, ChatServerConfig(served_model_names=[NAME], **config))
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://chat") as client:
            yield client


def test_completions_share_auth_and_body_limit_with_chat(generator):
    async def run():
        async with in_process(generator, api_key="s3cret", max_body_bytes=4096) as client:
            for route in OK:
                missing = await client.post(route, json=OK[route])
                assert missing.status_code == 401 and "missing API key" in missing.json()["error"]["message"]
                wrong = await client.post(route, json=OK[route], headers={"Authorization": "Bearer nope"})
                assert wrong.status_code == 401 and "invalid API key" in wrong.json()["error"]["message"]
                key = {"Authorization": "Bearer s3cret"}
                assert (await client.post(route, json=OK[route], headers=key)).status_code == 200
                big = await client.post(route, json={**OK[route], "padding": "x" * 5000}, headers=key)
                assert big.status_code == 413 and "4096 bytes" in big.json()["error"]["message"]
            assert (await client.get("/health")).status_code == 200

    asyncio.run(run())


def test_chat_and_completion_requests_share_batches(generator, reference, monkeypatch):
    """A chat request and a completions request that queue while the model is busy run as rows of one batch."""
    import time

    batches = []
    original = generator.generate

    def slow_generate(items):  # every batch holds the worker 0.5 s longer (injected): the next one gathers
        batches.append(list(items))
        time.sleep(0.5)
        return original(items)

    monkeypatch.setattr(generator, "generate", slow_generate)
    chat = {"model": NAME, "messages": MESSAGES, "max_tokens": 5, "temperature": 0}
    plain = {"model": NAME, "prompt": PROMPT, "max_tokens": 5, "temperature": 0}

    async def run():
        async with in_process(generator) as client:
            first = asyncio.create_task(client.post("/v1/completions", json={**plain, "prompt": "a"}))
            deadline = asyncio.get_running_loop().time() + 30
            while True:  # poll until the first request has left the queue for the (delayed) worker
                health = (await client.get("/health")).json()
                if health["in_flight"] == 1 and health["queued"] == 0:
                    break
                assert asyncio.get_running_loop().time() < deadline, f"the first batch never started: {health}"
                await asyncio.sleep(0.01)
            answers = await asyncio.gather(client.post("/v1/chat/completions", json=chat),
                                           client.post("/v1/completions", json=plain), first)
            return [a.json() for a in answers]

    chat_reply, plain_reply, _ = asyncio.run(run())
    assert chat_reply["choices"][0]["message"]["content"] == reference.greedy_chat(MESSAGES, 5)[0]
    assert plain_reply["choices"][0]["text"] == reference.greedy_text(PROMPT, 5)[0]
    assert len(batches) == 2
    assert sorted(item.prompt_ids for item in batches[1]) == sorted([reference.chat_ids(MESSAGES),
                                                                    reference.text_ids(PROMPT)])


async def _post_then_disconnect(app, path: str, body: dict, gone: asyncio.Event) -> list[dict]:
    """Drive the ASGI app as a server does for a client that sends its request and closes the connection once
    `gone` is set; returns what the app sent (nobody would read it)."""
    raw = json.dumps(body).encode()
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "http",
             "path": path, "raw_path": path.encode(), "query_string": b"", "root_path": "",
             "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(raw)).encode())],
             "client": ("127.0.0.1", 50000), "server": ("chat", 80)}
    sent = []

    async def receive():
        if not receive.body_sent:
            receive.body_sent = True
            return {"type": "http.request", "body": raw, "more_body": False}
        await gone.wait()
        return {"type": "http.disconnect"}

    receive.body_sent = False

    async def send(message):
        sent.append(message)

    await app(scope, receive, send)
    return sent


def test_a_disconnected_clients_samples_are_never_generated(generator, monkeypatch):
    """The chat server drops the queued rows (prompts x n) of a client that went away."""
    import threading

    from trm.serving.batching import BatcherConfig
    from trm.serving.chat_server import ChatServerConfig, build_app

    entered, gate, batches = threading.Event(), threading.Event(), []
    original = generator.generate

    def gated(items):
        batches.append(len(items))
        entered.set()
        gate.wait(30)
        return original(items)

    monkeypatch.setattr(generator, "generate", gated)
    app = build_app(generator, ChatServerConfig(served_model_names=[NAME], batcher=BatcherConfig(max_batch_size=1)))
    plain = {"model": NAME, "prompt": PROMPT, "max_tokens": 2, "temperature": 0}

    async def run():
        async with app.router.lifespan_context(app):
            async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://chat") as client:
                first = asyncio.create_task(client.post("/v1/completions", json=plain))
                assert await asyncio.to_thread(entered.wait, 30)
                gone = asyncio.Event()
                abandoned = asyncio.create_task(_post_then_disconnect(app, "/v1/completions", {**plain, "n": 4}, gone))
                deadline = asyncio.get_running_loop().time() + 30
                while (await client.get("/health")).json()["queued"] < 4:  # poll until its four rows wait
                    assert asyncio.get_running_loop().time() < deadline
                    await asyncio.sleep(0.01)
                gone.set()
                sent = await abandoned
                health = (await client.get("/health")).json()
                gate.set()
                answers = [await first, await client.post("/v1/completions", json=plain)]
                return sent, health, answers

    sent, health, answers = asyncio.run(run())
    assert sent[0]["status"] == 499
    assert health["queued"] == 0 and health["cancelled"] == 4
    assert [a.status_code for a in answers] == [200, 200]
    assert batches == [1, 1]  # the first request and the one after; the abandoned rows never ran
