"""The embedded chat server through the official openai client: greedy equals transformers, limits, batching."""

from __future__ import annotations

import asyncio

import httpx
import openai
import pytest

from _serving_support import spawn, stop, trm_command
from conftest import free_port

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
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_models["chat"])
    model = AutoModelForCausalLM.from_pretrained(tiny_models["chat"]).eval()

    def greedy(messages, max_tokens):
        """(text, tokens) of plain transformers greedy decoding, one prompt, no padding."""
        import torch

        ids = tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt")
        with torch.inference_mode():
            out = model.generate(ids, max_new_tokens=max_tokens, do_sample=False, pad_token_id=tokenizer.pad_token_id)
        new = out[0, ids.shape[1]:].tolist()
        for i, token in enumerate(new):
            if token in model.generation_config.eos_token_id:
                new = new[:i]
                break
        return tokenizer.decode(new, skip_special_tokens=True), new

    greedy.tokenizer = tokenizer
    return greedy


def _client(url):
    return openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0)


MESSAGES = [{"role": "system", "content": "You check answers."}, {"role": "user", "content": "Is 91 the answer?"}]


def test_greedy_completion_matches_transformers_and_respects_max_tokens(chat_server, reference):
    client = _client(chat_server.url)
    first = client.chat.completions.create(model=NAME, messages=MESSAGES, temperature=0, max_tokens=12)
    again = client.chat.completions.create(model=NAME, messages=MESSAGES, temperature=0, max_tokens=12)
    assert first.choices[0].message.content == again.choices[0].message.content  # temperature 0 is deterministic
    expected_text, expected_tokens = reference(MESSAGES, 12)
    assert first.choices[0].message.content == expected_text
    assert first.choices[0].message.role == "assistant"
    assert first.usage.completion_tokens <= 12
    assert first.usage.prompt_tokens == len(reference.tokenizer.apply_chat_template(MESSAGES, add_generation_prompt=True))
    short = client.chat.completions.create(model=NAME, messages=MESSAGES, temperature=0, max_tokens=3)
    assert short.usage.completion_tokens == 3 and short.choices[0].finish_reason == "length"
    assert reference.tokenizer.decode(expected_tokens[:3], skip_special_tokens=True) == short.choices[0].message.content


def test_stop_strings_cut_the_text(chat_server, reference):
    text, _ = reference(MESSAGES, 12)
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
    assert two.choices[0].message.content == two.choices[1].message.content == reference(MESSAGES, 6)[0]
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

    assert asyncio.run(run()) == [reference(m, 8)[0] for m in prompts]  # left padding does not change greedy text
    after = httpx.get(f"{chat_server.url}/health").json()
    assert after["items"] - before["items"] == 8
    assert after["batches"] - before["batches"] < 8


BAD = [
    ("no messages", {"model": NAME}, 400, "'messages' must be a non-empty list"),
    ("message without role", {"model": NAME, "messages": [{"content": "hi"}]}, 400, "string 'role'"),
    ("content not text", {"model": NAME, "messages": [{"role": "user", "content": 5}]}, 400, "must be a string"),
    ("stream", {"model": NAME, "messages": MESSAGES, "stream": True}, 400, "streaming is not supported"),
    ("temperature type", {"model": NAME, "messages": MESSAGES, "temperature": "hot"}, 400, "'temperature' must be a number"),
    ("n too large", {"model": NAME, "messages": MESSAGES, "n": 1000}, 400, "at most 16"),
    ("max_tokens zero", {"model": NAME, "messages": MESSAGES, "max_tokens": 0}, 400, "'max_tokens' must be at least 1"),
    ("over context", {"model": NAME, "messages": MESSAGES, "max_tokens": 250}, 400, "context length of 256"),
    ("bad stop", {"model": NAME, "messages": MESSAGES, "stop": 3}, 400, "'stop' must be"),
    ("unknown model", {"model": "RewardModel", "messages": MESSAGES}, 404, f"served models: {NAME}"),
]


@pytest.mark.parametrize("name,body,status,message", BAD, ids=[b[0] for b in BAD])
def test_bad_chat_requests(chat_server, name, body, status, message):
    response = httpx.post(f"{chat_server.url}/v1/chat/completions", json=body, timeout=30)
    assert response.status_code == status, response.text
    assert message in response.json()["error"]["message"]
    assert httpx.get(f"{chat_server.url}/health").status_code == 200
    ok = httpx.post(f"{chat_server.url}/v1/chat/completions", timeout=30,
                    json={"model": NAME, "messages": MESSAGES, "max_tokens": 2, "temperature": 0})
    assert ok.status_code == 200
