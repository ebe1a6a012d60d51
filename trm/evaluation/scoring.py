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
                    chunk_size: int = 16, max_concurrency_per_backend: int = 4, deadline: float | None = None) -> Scorer:
    """Scores through `trm.client.BackendPool` + `trm.rewards.thinking.score_reasoning` (errors raise).

    `deadline` bounds each scoring call in seconds, retries included (None: the pool's default).
    """
    from trm.client import BackendPool, parse_backends
    from trm.rewards.thinking import score_reasoning

    urls = parse_backends(backends)

    def score(texts: list[str]) -> list[float]:
        async def run() -> list[float]:
            extra = {} if deadline is None else {"deadline": deadline}
            pool = BackendPool(urls, max_concurrency_per_backend=max_concurrency_per_backend, api_key=api_key, **extra)
            try:
                return await score_reasoning(pool, texts, model=model, chunk_size=chunk_size)
            finally:
                await pool.aclose()

        return asyncio.run(run())

    return score


def local_scorer(model_path: str, device: str | None = None, max_length: int | None = None,
                 truncation: str | None = None, batch_size: int = 8) -> Scorer:
    """Scores in-process with `trm.serving.scorer.RewardScorer` (the same code path as the reward server)."""
    from trm.serving.scorer import RewardScorer

    scorer = RewardScorer(model_path, device=device, max_length=max_length, truncation=truncation)
    return lambda texts: scorer.score(texts, batch_size=batch_size)


def score_records(records: list[dict], scorer: Scorer, cache: str | Path | None = None,
                  prompt_field: str = "prompt", questions_per_call: int = 8, progress: bool = True) -> list[list[float]]:
    """One raw score per response of every record, with an optional JSONL cache keyed by question id.

    Questions are scored a few at a time (one scorer call each group, so endpoints see large batches) and
    each finished question is appended to the cache, so an interrupted pass resumes where it stopped.
    """
    from tqdm import tqdm

    cached: dict[str, list[float]] = {}
    if cache is not None:
        count_complete_lines(cache)  # drop a torn last line before reading
        if Path(cache).exists() and Path(cache).stat().st_size:
            for row in read_records(cache):
                cached[str(row["id"])] = [float(s) for s in row["scores"]]
    todo = [r for r in records if len(cached.get(str(r["id"]), ())) != len(r["responses"])]
    with tqdm(total=len(records), initial=len(records) - len(todo), desc="score", unit="question", file=sys.stderr,
              disable=not progress) as bar:
        for start in range(0, len(todo), max(1, questions_per_call)):
            group = todo[start : start + questions_per_call]
            texts = [trm_input(str(r[prompt_field]), resp) for r in group for resp in r["responses"]]
            scores = [float(s) for s in scorer(texts)]
            if len(scores) != len(texts):
                raise RuntimeError(f"scorer returned {len(scores)} scores for {len(texts)} texts")
            rows, at = [], 0
            for record in group:
                key, k = str(record["id"]), len(record["responses"])
                cached[key] = scores[at : at + k]
                rows.append({"id": key, "scores": cached[key]})
                at += k
            if cache is not None:
                append_jsonl(cache, rows)
            bar.update(len(group))
    return [cached[str(r["id"])] for r in records]
