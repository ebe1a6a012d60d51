"""Reward scores for best-of-N: from reward endpoints (the project's pooled client) or a local model.

Both return a `Scorer` (texts -> raw scores, in order). Scores can be cached in a JSONL file keyed by question
id, so an expensive scoring pass over thousands of traces survives interruptions and is reused across runs.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Callable

from trm.jsonio import append_jsonl, count_complete_lines, read_records
from trm.traces import trm_input

Scorer = Callable[[list[str]], list[float]]


def endpoint_scorer(backends: str | list[str], model: str = "RewardModel", api_key: str | None = None,
                    chunk_size: int = 16, max_concurrency_per_backend: int = 4) -> Scorer:
    """Scores through `trm.client.BackendPool` + `trm.rewards.thinking.score_reasoning` (errors raise)."""
    from trm.client import BackendPool, parse_backends
    from trm.rewards.thinking import score_reasoning

    urls = parse_backends(backends)

    def score(texts: list[str]) -> list[float]:
        async def run() -> list[float]:
            pool = BackendPool(urls, max_concurrency_per_backend=max_concurrency_per_backend, api_key=api_key)
            try:
                chunks = [texts[i : i + chunk_size] for i in range(0, len(texts), chunk_size)]
                results = await asyncio.gather(*(score_reasoning(pool, chunk, model=model) for chunk in chunks))
            finally:
                await pool.aclose()
            return [s for chunk in results for s in chunk]

        return asyncio.run(run())

    return score


def local_scorer(model_path: str, device: str | None = None, max_length: int | None = None,
                 truncation: str | None = None, batch_size: int = 8) -> Scorer:
    """Scores in-process with `trm.serving.scorer.RewardScorer` (the same code path as the reward server)."""
    from trm.serving.scorer import RewardScorer

    scorer = RewardScorer(model_path, device=device, max_length=max_length, truncation=truncation)
    return lambda texts: scorer.score(texts, batch_size=batch_size)


def score_records(records: list[dict], scorer: Scorer, cache: str | Path | None = None,
                  prompt_field: str = "prompt", progress: bool = True) -> list[list[float]]:
    """One raw score per response of every record, scored question by question with an optional JSONL cache."""
    from tqdm import tqdm

    cached: dict[str, list[float]] = {}
    if cache is not None:
        count_complete_lines(cache)  # drop a torn last line before reading
        if Path(cache).exists() and Path(cache).stat().st_size:
            for row in read_records(cache):
                cached[str(row["id"])] = [float(s) for s in row["scores"]]
    out = []
    for record in tqdm(records, desc="score", unit="question", file=sys.stderr, disable=not progress):
        key = str(record["id"])
        scores = cached.get(key)
        if scores is None or len(scores) != len(record["responses"]):
            texts = [trm_input(str(record[prompt_field]), resp) for resp in record["responses"]]
            scores = [float(s) for s in scorer(texts)]
            if len(scores) != len(texts):
                raise RuntimeError(f"scorer returned {len(scores)} scores for {len(texts)} responses of {key}")
            if cache is not None:
                append_jsonl(cache, [{"id": key, "scores": scores}])
        out.append(scores)
    return out
