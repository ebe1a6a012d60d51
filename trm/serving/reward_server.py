"""The reward server: OpenAI embeddings API over a TRM, the wire format of sglang `--is-embedding`.

``POST /v1/embeddings {"model": "RewardModel", "input": str | [str] | [int] | [[int]]}`` answers
``data[i].embedding == [raw score]`` in input order; concurrent requests share forward passes.
"""

from __future__ import annotations

import array
import asyncio
import base64
import contextlib
import math
from dataclasses import dataclass, field

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from trm.serving.batching import BatcherConfig, DynamicBatcher, default_batch_tokens
from trm.serving.http import (
    DEFAULT_MAX_BODY_BYTES,
    ApiError,
    FastJSONResponse,
    check_model,
    read_json_object,
    serving_app,
    unless_disconnected,
)
from trm.serving.scorer import InputTooLong, RewardScorer, TokenizerBusy


# Requests with at most this many texts and characters are tokenized on the event loop (well under a millisecond)
# unless the tokenizer is busy; others in a thread: 100 requests of 256 texts each tokenized inline would hold
# /health for as long. The event loop never waits for the tokenizer.
INLINE_TOKENIZE_CHARS = 2048
INLINE_TOKENIZE_TEXTS = 16


@dataclass
class RewardServerConfig:
    """What the reward server exposes and how it batches."""

    served_model_names: list[str] = field(default_factory=lambda: ["RewardModel"], metadata={
        "help": "names clients may put in 'model'; others get 404. The first is the default"})
    api_key: str | None = field(default=None, metadata={
        "help": "require 'Authorization: Bearer KEY' on every route but /health"})
    max_body_bytes: int = field(default=DEFAULT_MAX_BODY_BYTES, metadata={"help": "larger request bodies get 413"})
    max_inputs_per_request: int = field(default=4096, metadata={
        "help": "more inputs in one request get 400 (split the request)"})
    batcher: BatcherConfig = field(default_factory=BatcherConfig)


def _parse_inputs(body: dict) -> tuple[list[str] | None, list[list[int]] | None]:
    """(texts, None) or (None, token id lists) from the OpenAI `input` field, with messages naming the fault."""
    if "input" not in body:
        raise ApiError(400, "missing 'input': send a string or a list of strings", param="input")
    value = body["input"]
    if isinstance(value, str):
        return [value], None
    if not isinstance(value, list):
        raise ApiError(400, f"'input' must be a string or a list of strings, got {type(value).__name__}",
                       param="input")
    if not value:
        raise ApiError(400, "'input' is an empty list; send at least one string", param="input")
    if all(isinstance(item, str) for item in value):
        return value, None
    if all(isinstance(item, int) and not isinstance(item, bool) for item in value):
        return None, [value]
    if all(isinstance(item, list) for item in value):
        if any(not row or not all(isinstance(t, int) and not isinstance(t, bool) for t in row) for row in value):
            raise ApiError(400, "token-id inputs must be non-empty lists of integers", param="input")
        return None, value
    for index, item in enumerate(value):
        if not isinstance(item, str):
            raise ApiError(400, f"input[{index}] is {type(item).__name__}; every item of 'input' must be a string",
                           param="input")
    raise ApiError(400, "'input' mixes strings and token ids", param="input")  # pragma: no cover


def _encode_embedding(values: list[float], encoding_format: str):
    if encoding_format == "base64":
        return base64.b64encode(array.array("f", values).tobytes()).decode("ascii")
    return values


def build_app(scorer: RewardScorer, config: RewardServerConfig) -> Starlette:
    batcher = DynamicBatcher(scorer.forward, config.batcher, name="reward",
                             default_tokens=default_batch_tokens(scorer.device))
    max_chars = None if scorer.truncation else scorer.char_limit  # truncation keeps long texts (cut to a window)

    async def embeddings(request: Request) -> JSONResponse:
        body = await read_json_object(request, config.max_body_bytes, max_chars)
        model = check_model(body, config.served_model_names)
        encoding_format = body.get("encoding_format") or "float"
        if encoding_format not in ("float", "base64"):
            raise ApiError(400, f"encoding_format must be 'float' or 'base64', got {encoding_format!r}",
                           param="encoding_format")
        if body.get("dimensions") not in (None, scorer.num_labels):
            raise ApiError(400, f"this reward model returns {scorer.num_labels} value(s) per input; "
                                "drop 'dimensions'", param="dimensions")
        texts, ids = _parse_inputs(body)
        count = len(texts if texts is not None else ids)
        if count > config.max_inputs_per_request:
            raise ApiError(400, f"{count} inputs in one request, over the limit of "
                                f"{config.max_inputs_per_request}; split the request", param="input")
        try:
            if texts is not None:
                ids = None
                if len(texts) <= INLINE_TOKENIZE_TEXTS and sum(len(text) for text in texts) <= INLINE_TOKENIZE_CHARS:
                    with contextlib.suppress(TokenizerBusy):
                        ids = scorer.encode(texts, wait=False)  # cheaper than a thread hand-off
                if ids is None:
                    ids = await asyncio.to_thread(scorer.encode, texts)
            else:
                vocab = len(scorer.tokenizer)
                bad = next((t for row in ids for t in row if not 0 <= t < vocab), None)
                if bad is not None:
                    raise ApiError(400, f"token id {bad} is outside the vocabulary (0..{vocab - 1})", param="input")
                ids = scorer.fit_ids(ids)
        except InputTooLong as exc:
            raise ApiError(400, str(exc), param="input") from None
        except ValueError as exc:
            raise ApiError(400, str(exc), param="input") from None
        logits = await unless_disconnected(request, batcher.submit(ids, [len(row) for row in ids]))
        tokens = sum(len(row) for row in ids)
        finite = all(math.isfinite(value) for row in logits for value in row)
        response = FastJSONResponse if finite else JSONResponse  # the latter refuses NaN/inf: a 500, not a null
        return response({
            "object": "list",
            "model": model,
            "data": [{"object": "embedding", "index": i, "embedding": _encode_embedding(row, encoding_format)}
                     for i, row in enumerate(logits)],
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        })

    return serving_app("reward", scorer.model_path, batcher, config.served_model_names, config.api_key,
                       scorer.max_length, Route("/v1/embeddings", embeddings, methods=["POST"]))
