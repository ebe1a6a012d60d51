"""The chat server: OpenAI chat completions and plain completions over a causal LM (the verifier, a judge, a
policy), non-streaming.

Both routes differ only in how the prompt becomes tokens (chat template vs raw text); concurrent requests of
either kind with the same sampling settings share one left-padded `generate` call, and `n` > 1 samples (and the
prompts of a list) are rows of that batch.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass, field
from typing import Callable

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from trm.serving.batching import BatcherConfig, DynamicBatcher
from trm.serving.generator import ChatGenerator, GenerationItem, GenerationResult, Sampling
from trm.serving.http import (
    DEFAULT_MAX_BODY_BYTES,
    ApiError,
    check_model,
    read_json_object,
    serving_app,
    unless_disconnected,
)
from trm.serving.scorer import char_limit


@dataclass
class ChatServerConfig:
    """What the chat server exposes and its limits."""

    served_model_names: list[str] = field(default_factory=lambda: ["chat"], metadata={
        "help": "names clients may put in 'model'; others get 404. The first is the default"})
    api_key: str | None = field(default=None, metadata={
        "help": "require 'Authorization: Bearer KEY' on every route but /health"})
    max_body_bytes: int = field(default=DEFAULT_MAX_BODY_BYTES, metadata={"help": "larger request bodies get 413"})
    max_length: int | None = field(default=None, metadata={
        "help": "token limit of prompt + max_tokens (default: the model's max_position_embeddings)"})
    default_max_tokens: int = field(default=1024, metadata={
        "help": "chat max_tokens for requests that do not set it (capped by the room left in the context)"})
    default_completion_max_tokens: int = field(default=16, metadata={
        "help": "/v1/completions max_tokens for requests that do not set it: OpenAI's (capped like the chat one)"})
    max_n: int = field(default=16, metadata={"help": "most samples per request"})
    max_rows_per_request: int = field(default=256, metadata={
        "help": "most prompts x n per /v1/completions request: each is a row of generation, so a small request "
                "cannot ask for thousands of them"})
    batcher: BatcherConfig = field(default_factory=BatcherConfig)  # what `trm serve chat` always used


def _number(body: dict, name: str, default: float, low: float, high: float) -> float:
    value = body.get(name)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ApiError(400, f"'{name}' must be a number, got {type(value).__name__}", param=name)
    if not low <= value <= high:
        raise ApiError(400, f"'{name}' must be between {low} and {high}, got {value}", param=name)
    return float(value)


def _integer(body: dict, name: str, default: int | None, low: int) -> int | None:
    value = body.get(name)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int):
        raise ApiError(400, f"'{name}' must be an integer, got {type(value).__name__}", param=name)
    if value < low:
        raise ApiError(400, f"'{name}' must be at least {low}, got {value}", param=name)
    return value


ROLES = ("system", "user", "assistant")


def _messages(body: dict) -> list[dict]:
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise ApiError(400, "'messages' must be a non-empty list of {\"role\", \"content\"} objects", param="messages")
    clean = []
    for index, message in enumerate(messages):
        if not isinstance(message, dict) or not isinstance(message.get("role"), str):
            raise ApiError(400, f"messages[{index}] must be an object with a string 'role'", param="messages")
        if message["role"] not in ROLES:
            raise ApiError(400, f"messages[{index}].role is {message['role']!r}; this server takes the roles "
                                f"{', '.join(ROLES)} (no tool or function messages)", param="messages")
        content = message.get("content")
        if isinstance(content, list):  # OpenAI content parts: keep the text parts
            if not all(isinstance(part, dict) and part.get("type") == "text" and isinstance(part.get("text"), str)
                       for part in content):
                raise ApiError(400, f"messages[{index}].content parts must all be {{\"type\": \"text\", \"text\": str}}",
                               param="messages")
            content = "".join(part["text"] for part in content)
        if content is None:
            content = ""
        if not isinstance(content, str):
            raise ApiError(400, f"messages[{index}].content must be a string, got {type(content).__name__}",
                           param="messages")
        clean.append({"role": message["role"], "content": content})
    return clean


def _stop(body: dict) -> list[str]:
    stop = body.get("stop")
    if stop is None:
        return []
    if isinstance(stop, str):
        return [stop]
    if isinstance(stop, list) and all(isinstance(s, str) for s in stop) and len(stop) <= 16:
        return stop
    raise ApiError(400, "'stop' must be a string or a list of at most 16 strings", param="stop")


@dataclass
class RequestSettings:
    """What both routes read the same way: the model name, sampling, samples per prompt, length and stop strings."""

    model: str
    sampling: Sampling
    n: int
    max_tokens: int | None
    """None: the route's default (capped by the room left in the context)."""
    stop: list[str]


def _settings(body: dict, config: ChatServerConfig, max_tokens_fields: tuple[str, ...]) -> RequestSettings:
    model = check_model(body, config.served_model_names)
    if body.get("stream"):
        raise ApiError(400, "streaming is not supported by the embedded chat server; send stream=false",
                       param="stream")
    sampling = Sampling(temperature=_number(body, "temperature", 1.0, 0.0, 2.0),
                        top_p=_number(body, "top_p", 1.0, 0.0, 1.0))
    if sampling.top_p == 0:
        raise ApiError(400, "'top_p' must be greater than 0", param="top_p")
    n = _integer(body, "n", 1, 1)
    if n > config.max_n:
        raise ApiError(400, f"'n' is {n}; this server samples at most {config.max_n} per request", param="n")
    max_tokens = None
    for name in max_tokens_fields:  # later names win (chat: max_tokens over max_completion_tokens)
        max_tokens = _integer(body, name, max_tokens, 1)
    return RequestSettings(model, sampling, n, max_tokens, _stop(body))


def _completion_prompts(body: dict) -> list[str]:
    prompt = body.get("prompt")
    if isinstance(prompt, str):
        return [prompt]
    if isinstance(prompt, list) and prompt and all(isinstance(p, str) for p in prompt):
        return prompt
    raise ApiError(400, "'prompt' must be a string or a non-empty list of strings (token-id prompts are not "
                        "supported)", param="prompt")


def _reject_chat_options(body: dict) -> None:
    """Fail loudly on chat options this server cannot honour, instead of answering as if they were applied."""
    if body.get("logprobs"):
        raise ApiError(400, "'logprobs' is not supported by the embedded chat server; leave it out", param="logprobs")
    if body.get("top_logprobs") is not None:
        raise ApiError(400, "'top_logprobs' is not supported by the embedded chat server; leave it out",
                       param="top_logprobs")
    for name in ("tools", "functions"):
        if body.get(name):
            raise ApiError(400, f"'{name}' (tool/function calling) is not supported by the embedded chat server; "
                                "leave it out", param=name)
    for name in ("tool_choice", "function_call"):
        if body.get(name) not in (None, "none"):
            raise ApiError(400, f"'{name}' is not supported by the embedded chat server (no tool calling); leave it "
                                "out", param=name)
    response_format = body.get("response_format")
    if response_format is not None and response_format != {"type": "text"}:
        raise ApiError(400, "'response_format' is not supported by the embedded chat server (it cannot constrain "
                            "output to JSON); leave it out or send {\"type\": \"text\"}", param="response_format")
    if body.get("logit_bias"):
        raise ApiError(400, "'logit_bias' is not supported by the embedded chat server; leave it out",
                       param="logit_bias")


def _reject_completion_options(body: dict, n: int) -> None:
    """Fail loudly on /v1/completions options this server cannot honour, instead of ignoring them."""
    if body.get("echo"):
        raise ApiError(400, "'echo' is not supported; send echo=false and prepend the prompt yourself", param="echo")
    if body.get("logprobs") is not None:
        raise ApiError(400, "'logprobs' is not supported by the embedded chat server; leave it out", param="logprobs")
    if body.get("suffix"):
        raise ApiError(400, "'suffix' (insertion) is not supported; leave it out", param="suffix")
    best_of = body.get("best_of")
    if best_of is not None and best_of != n:
        raise ApiError(400, "'best_of' is not supported (it needs logprobs to rank samples); leave it out or "
                            "set it equal to n", param="best_of")


def build_app(generator: ChatGenerator, config: ChatServerConfig) -> Starlette:
    batcher = DynamicBatcher(generator.generate, config.batcher, name="chat")
    context = config.max_length or generator.context_length
    max_chars = char_limit(context, generator.token_chars) if context else None

    def check_chars(chars: int, which: str, param: str) -> None:
        """Refuse a prompt that surely exceeds the context before tokenizing it (see scorer.char_limit)."""
        if max_chars is not None and chars > max_chars:
            raise ApiError(400, f"{which}: {chars} characters, and any prompt over {max_chars} characters has more "
                                f"than the context length of {context} tokens with this tokenizer, so it was refused "
                                f"without tokenizing; shorten the {param}", param=param)

    async def generate(request: Request, prompts: list[list[int]], settings: RequestSettings,
                       default_max_tokens: int, param: str) -> list[GenerationResult]:
        """n results per prompt, prompt-major, all in one batcher submission (so they can share batches); dropped
        from the queue if the client disconnects."""
        items = []
        for index, prompt_ids in enumerate(prompts):
            which = f"prompt {index}" if len(prompts) > 1 else "the prompt"
            if not prompt_ids:
                raise ApiError(400, f"{which} is empty after tokenization; send some text", param=param)
            room = context - len(prompt_ids) if context else None
            max_tokens = settings.max_tokens
            if max_tokens is None:
                max_tokens = default_max_tokens if room is None else min(default_max_tokens, room)
            if room is not None and room < 1 and settings.max_tokens is None:
                raise ApiError(400, f"{which} has {len(prompt_ids)} prompt tokens, which leaves no room to generate "
                                    f"within the context length of {context} tokens (max_tokens not set); shorten "
                                    f"the {param}", param=param)
            if room is not None and max_tokens > room:
                raise ApiError(400, f"{which} has {len(prompt_ids)} prompt tokens and max_tokens is {max_tokens}: "
                                    f"{len(prompt_ids) + max_tokens} tokens, more than the context length of "
                                    f"{context} tokens; shorten the {param} or lower max_tokens", param=param)
            items += [GenerationItem(prompt_ids=prompt_ids, max_tokens=max_tokens, stop=settings.stop,
                                     sampling=settings.sampling)] * settings.n
        return await unless_disconnected(request, batcher.submit(
            items, [len(i.prompt_ids) + i.max_tokens for i in items], [settings.sampling] * len(items)))

    def reply(kind: str, id_prefix: str, model: str, prompts: list[list[int]], results: list[GenerationResult],
              choice: Callable[[GenerationResult], dict]) -> JSONResponse:
        """The OpenAI response body; `choice` gives each result's route-specific fields (message or text)."""
        prompt_tokens = sum(len(p) for p in prompts)
        completion = sum(r.completion_tokens for r in results)
        return JSONResponse({
            "id": f"{id_prefix}-{uuid.uuid4().hex}",
            "object": kind,
            "created": int(time.time()),
            "model": model,
            "choices": [{"index": i, **choice(r), "finish_reason": r.finish_reason, "logprobs": None}
                        for i, r in enumerate(results)],
            "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion,
                      "total_tokens": prompt_tokens + completion},
        })

    async def chat_completions(request: Request) -> JSONResponse:
        body = await read_json_object(request, config.max_body_bytes, max_chars)
        settings = _settings(body, config, ("max_completion_tokens", "max_tokens"))
        _reject_chat_options(body)
        messages = _messages(body)
        check_chars(sum(len(m["content"]) for m in messages), "the messages", "messages")
        try:
            prompt_ids = await asyncio.to_thread(generator.encode_chat, messages)
        except Exception as exc:  # template errors are the request's fault (e.g. a role the template refuses)
            raise ApiError(400, f"the chat template could not render these messages: {exc}", param="messages") from None
        results = await generate(request, [prompt_ids], settings, config.default_max_tokens, "messages")
        return reply("chat.completion", "chatcmpl", settings.model, [prompt_ids], results,
                     lambda r: {"message": {"role": "assistant", "content": r.text}})

    async def completions(request: Request) -> JSONResponse:
        body = await read_json_object(request, config.max_body_bytes, max_chars)
        settings = _settings(body, config, ("max_tokens",))
        _reject_completion_options(body, settings.n)
        texts = _completion_prompts(body)
        if len(texts) * settings.n > config.max_rows_per_request:
            raise ApiError(400, f"{len(texts)} prompts x n={settings.n} is {len(texts) * settings.n} completions, "
                                f"more than {config.max_rows_per_request} per request; split the request",
                           param="prompt")
        for index, text in enumerate(texts):
            check_chars(len(text), f"prompt {index}" if len(texts) > 1 else "the prompt", "prompt")
        prompts = await asyncio.to_thread(generator.encode_text, texts)
        results = await generate(request, prompts, settings, config.default_completion_max_tokens, "prompt")
        return reply("text_completion", "cmpl", settings.model, prompts, results, lambda r: {"text": r.text})

    return serving_app("chat", generator.model_path, batcher, config.served_model_names, config.api_key, context,
                       Route("/v1/chat/completions", chat_completions, methods=["POST"]),
                       Route("/v1/completions", completions, methods=["POST"]))
