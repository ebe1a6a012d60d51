"""Raw TRM scores for reasoning traces through a pool of reward servers (embeddings API).

The servers (``trm serve reward`` or sglang ``--is-embedding``) answer ``POST /v1/embeddings`` with one
``[raw score]`` embedding per input. Long lists are sent in chunks, concurrently, over the pool.
"""

from __future__ import annotations

import asyncio
import math

from trm.traces import trm_input

DEFAULT_CHUNK_SIZE = 32


async def score_reasoning(pool, texts: list[str], model: str = "RewardModel", chunk_size: int = DEFAULT_CHUNK_SIZE) -> list[float]:
    """Raw scores for TRM input texts (build them with :func:`trm.traces.trm_input`), in input order.

    ``pool`` is a :class:`trm.client.BackendPool`. Backend failures raise (after the pool's retries);
    an answer of the wrong shape raises ``ValueError`` naming what was wrong.
    """
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    texts = list(texts)
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise TypeError(f"text {i} is {type(text).__name__}, expected str")
    chunks = [texts[start : start + chunk_size] for start in range(0, len(texts), chunk_size)]
    answers = await asyncio.gather(*(pool.post_json("/v1/embeddings", {"model": model, "input": chunk}) for chunk in chunks))
    scores: list[float] = []
    for chunk, answer in zip(chunks, answers):
        scores.extend(_scores_from_answer(answer, len(chunk)))
    return scores


async def score_responses(pool, prompts: list[str], responses: list[str], model: str = "RewardModel", **kwargs) -> list[float]:
    """Raw scores of the reasoning in ``responses`` to ``prompts`` (the TRM input is built here)."""
    if len(prompts) != len(responses):
        raise ValueError(f"{len(prompts)} prompts but {len(responses)} responses")
    return await score_reasoning(pool, [trm_input(p, r) for p, r in zip(prompts, responses)], model=model, **kwargs)


def _scores_from_answer(answer: dict, expected: int) -> list[float]:
    data = answer.get("data") if isinstance(answer, dict) else None
    if not isinstance(data, list) or len(data) != expected:
        got = len(data) if isinstance(data, list) else "no"
        raise ValueError(f"embeddings answer has {got} items for {expected} inputs: {str(answer)[:300]}")
    ordered = sorted(data, key=lambda item: item.get("index", 0)) if all("index" in item for item in data) else data
    scores = []
    for item in ordered:
        embedding = item.get("embedding")
        if not isinstance(embedding, list) or not embedding:
            raise ValueError(f"embeddings item without a score: {str(item)[:200]}")
        score = float(embedding[0])
        if not math.isfinite(score):
            raise ValueError(f"reward server returned a non-finite score {score}")
        scores.append(score)
    return scores
