"""Per-step metrics of the thinking reward (the curves of the paper's Fig. 6), from a verl training batch.

verl 0.6.0's trainer copies the reward manager's ``reward_extra_info`` into ``batch.non_tensor_batch`` on every
step, but no metric function reads it. :func:`reward_metrics` does, and :func:`install` adds it to the function
``fit()`` calls for its data metrics right before ``logger.log(metrics, step)`` (see ``trm.rl.train`` for why this
seam). Keys, all under ``thinking_reward/``:

- ``rm_score_raw/mean|min|max``: the raw reasoning score (TRM, or the baseline scorer) of the responses it scored;
  absent in a step where none was scored (alpha 0), never a NaN.
- ``acc``: share of responses judged correct; ``reward/mean``: mean final reward.
- ``verdict/<source>``: share of responses whose correctness was decided by each source (exact_match,
  llm_verifier, no_answer, timeout, worker_error, ...), as in the batch's verdict line.
- ``rm_calls``: responses sent to the reasoning scorer in this step (one request each).
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np

PREFIX = "thinking_reward"


def reward_metrics(batch: Any) -> dict[str, float]:
    """The metrics above from ``batch.non_tensor_batch``; empty for batches another reward manager scored."""
    extra = batch.non_tensor_batch
    if "verdict_source" not in extra:
        return {}
    sources = [str(source) for source in extra["verdict_source"]]
    n = len(sources)
    scored = np.asarray(extra["trm_scored"], dtype=bool)
    metrics: dict[str, float] = {
        f"{PREFIX}/acc": float(np.mean(np.asarray(extra["acc"], dtype=float))),
        f"{PREFIX}/reward/mean": float(np.mean(np.asarray(extra["score"], dtype=float))),
        f"{PREFIX}/rm_calls": int(scored.sum()),
    }
    if "rm_score_raw" in extra and scored.any():
        raw = np.asarray(extra["rm_score_raw"], dtype=float)[scored]
        metrics.update({f"{PREFIX}/rm_score_raw/mean": float(raw.mean()), f"{PREFIX}/rm_score_raw/min": float(raw.min()),
                        f"{PREFIX}/rm_score_raw/max": float(raw.max())})
    for source, count in sorted(Counter(sources).items()):
        metrics[f"{PREFIX}/verdict/{source}"] = count / n
    return metrics


def install() -> None:
    """Make verl's ``ray_trainer.compute_data_metrics`` (the name ``fit()`` calls each step) also return
    :func:`reward_metrics`. Idempotent; affects only the process it runs in."""
    from verl.trainer.ppo import ray_trainer

    verl_metrics = ray_trainer.compute_data_metrics
    if getattr(verl_metrics, "adds_thinking_reward_metrics", False):
        return

    def compute_data_metrics(batch, use_critic: bool = True) -> dict[str, Any]:
        return {**verl_metrics(batch=batch, use_critic=use_critic), **reward_metrics(batch)}

    compute_data_metrics.adds_thinking_reward_metrics = True
    ray_trainer.compute_data_metrics = compute_data_metrics
