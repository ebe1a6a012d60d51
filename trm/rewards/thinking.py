"""Raw TRM scores for reasoning traces through a pool of reward servers (embeddings API).

The servers (``trm serve reward`` or sglang ``--is-embedding``) answer ``POST /v1/embeddings`` with one
``[raw score]`` embedding per input. Long lists are sent in chunks, concurrently, over the pool.
"""

from __future__ import annotations

import asyncio
import functools
import math

from trm.traces import trm_input

DEFAULT_CHUNK_SIZE = 32
MAX_ABS_SCORE = 1e6
"""Largest raw score taken as real. A trained head's logits stay within tens; a value like 1e308 means a broken
backend (wrong model, corrupted weights), and it would overflow the sums of per-step metrics."""


async def score_reasoning(pool, texts: list[str], model: str = "RewardModel", chunk_size: int = DEFAULT_CHUNK_SIZE) -> list[float]:
    """Raw scores for TRM input texts (build them with :func:`trm.traces.trm_input`), in input order.

    ``pool`` is a :class:`trm.client.BackendPool`. Backend failures raise (after the pool's retries). An answer of
    the wrong shape (count, index, type, non-finite or absurd value) counts as a failure of that backend: the pool
    retries elsewhere and, at its deadline, raises naming what was wrong.
    """
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    texts = list(texts)
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise TypeError(f"text {i} is {type(text).__name__}, expected str")
    chunks = [texts[start : start + chunk_size] for start in range(0, len(texts), chunk_size)]
    answers = await asyncio.gather(*(
        pool.post_json("/v1/embeddings", {"model": model, "input": chunk}, parse=functools.partial(_scores_from_answer, expected=len(chunk)))
        for chunk in chunks
    ))
    return [score for chunk_scores in answers for score in chunk_scores]


async def score_responses(pool, prompts: list[str], responses: list[str], model: str = "RewardModel", **kwargs) -> list[float]:
    """Raw scores of the reasoning in ``responses`` to ``prompts`` (the TRM input is built here)."""
    if len(prompts) != len(responses):
        raise ValueError(f"{len(prompts)} prompts but {len(responses)} responses")
    return await score_reasoning(pool, [trm_input(p, r) for p, r in zip(prompts, responses)], model=model, **kwargs)


def finite_score(value, what: str) -> float:
    """A JSON number as a finite float of plausible size; anything else is a malformed answer (ValueError)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{what} is {type(value).__name__} {str(value)[:40]!r}, expected a number")
    number = float(value)
    if not math.isfinite(number) or abs(number) > MAX_ABS_SCORE:
        raise ValueError(f"{what} {number!r} is not a finite number within +-{MAX_ABS_SCORE:g}")
    return number


def pooled_items(answer, expected: int, field: str) -> list:
    """``answer["data"][i][field]`` in input order, after checking the OpenAI list shape strictly: exactly one
    item per input, each with an integer ``index``, the indices a permutation of ``range(expected)``.

    Shared by the embeddings (TRM) and pooling (PRM) answers; violations raise ValueError, which the backend pool
    treats as a fault of the backend (see :meth:`trm.client.BackendPool.post_json`).
    """
    data = answer.get("data") if isinstance(answer, dict) else None
    if not isinstance(data, list) or len(data) != expected:
        got = len(data) if isinstance(data, list) else "no"
        raise ValueError(f"answer has {got} items for {expected} inputs: {str(answer)[:300]}")
    ordered = [None] * expected
    for item in data:
        index = item.get("index") if isinstance(item, dict) else None
        if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < expected:
            raise ValueError(f"item index {index!r} is not an integer in [0, {expected}): {str(item)[:200]}")
        if ordered[index] is not None:
            raise ValueError(f"item index {index} appears twice")
        if field not in item:
            raise ValueError(f"item {index} has no {field!r}: {str(item)[:200]}")
        ordered[index] = item[field]
    return ordered


def _scores_from_answer(answer, expected: int) -> list[float]:
    """Raw scores from an embeddings answer; each embedding must be exactly ``[score]`` (a one-label head)."""
    scores = []
    for i, embedding in enumerate(pooled_items(answer, expected, "embedding")):
        if not isinstance(embedding, list) or len(embedding) != 1:
            raise ValueError(f"embeddings item {i} is {str(embedding)[:200]}, expected [score]: without a score")
        scores.append(finite_score(embedding[0], f"score of item {i}"))
    return scores
