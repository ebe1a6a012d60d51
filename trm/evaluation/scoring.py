"""Reward scores for best-of-N: from reward endpoints (the project's pooled client) or a local model.

Both return a `Scorer` (texts -> raw scores, in order). Scores can be cached in a JSONL file keyed by question
id (`trm.resumable`), so an expensive scoring pass over thousands of traces survives interruptions and is reused
across runs; entries of other questions are kept, unusable lines set aside.
"""

from __future__ import annotations

import asyncio
import math
import sys
from pathlib import Path
from typing import Callable

from trm.resumable import ResumableOutput
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

    def check(row: dict, index: int) -> str | None:
        scores, want = row.get("scores"), len(records[index]["responses"])
        if not isinstance(scores, list) or len(scores) != want or not all(_finite(s) for s in scores):
            return f"'scores' is not a list of {want} finite numbers"
        return None

    output = None
    cached: dict[int, list[float]] = {}
    if cache is not None:
        output = ResumableOutput(cache, [str(r["id"]) for r in records], key_of=lambda row: str(row["id"]),
                                 check=check, keep_foreign=True).open()
        cached = {index: [float(s) for s in row["scores"]] for index, row in output.done.items()}
    todo = [i for i in range(len(records)) if i not in cached]
    with tqdm(total=len(records), initial=len(records) - len(todo), desc="score", unit="question", file=sys.stderr,
              disable=not progress) as bar:
        for start in range(0, len(todo), max(1, questions_per_call)):
            group = todo[start : start + questions_per_call]
            texts = [trm_input(str(records[i][prompt_field]), resp) for i in group for resp in records[i]["responses"]]
            scores = [float(s) for s in scorer(texts)]
            if len(scores) != len(texts):
                raise RuntimeError(f"scorer returned {len(scores)} scores for {len(texts)} texts")
            at = 0
            for index in group:
                k = len(records[index]["responses"])
                cached[index] = scores[at : at + k]
                at += k
            if output is not None:
                output.append((i, {"id": str(records[i]["id"]), "scores": cached[i]}) for i in group)
            bar.update(len(group))
    if output is not None:
        output.finish()
    return [cached[i] for i in range(len(records))]


def _finite(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
