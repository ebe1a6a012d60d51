"""The one TRM scorer of the commands that score texts (`trm score`, `trm eval rm`, `trm eval bon`).

A :class:`Scorer` scores TRM input texts (:func:`trm.traces.trm_input`) either in this process, through the reward
server's own forward path (:class:`trm.serving.scorer.RewardScorer`), or through running reward servers, with
:class:`trm.client.BackendPool` and :func:`trm.rewards.thinking.score_reasoning` (the embeddings call the RL reward
path makes). Its settings are one dataclass, so the commands share flag names, defaults and help. An endpoint
scorer keeps one pool, and the one event loop that owns the pool's HTTP clients, for its lifetime: backend health
and open connections carry over from call to call until :meth:`Scorer.close`.

It sits at the top of the package rather than in ``trm/rewards``: the local path imports ``trm.serving``, which
already imports ``trm.rewards``, so there it would close a package cycle.
"""

from __future__ import annotations

import asyncio
import dataclasses
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

from trm.errors import BadInput
from trm.rewards.thinking import finite_score, score_reasoning

SOURCE_FIELDS = ("trm_endpoint", "trm_model")


@dataclass(frozen=True)
class ScoringConfig:
    """Where TRM scores come from (exactly one of ``trm_endpoint`` / ``trm_model``) and how they are computed."""

    trm_endpoint: str | None = field(default=None, metadata={
        "help": "running reward server(s): host:port or URL, comma-separated (load is spread)"})
    trm_model: str | None = field(default=None, metadata={"help": "reward model folder, scored in this process"})
    served_model_name: str = field(default="RewardModel", metadata={"help": "model name sent to the servers"})
    api_key: str | None = field(default=None, metadata={"help": "Bearer key for the servers (default: $TRM_API_KEY)"})
    batch_size: int = field(default=16, metadata={"help": "texts per forward pass, or per request to a server"})
    concurrency: int = field(default=8, metadata={"help": "requests in flight per server"})
    timeout: float = field(default=120.0, metadata={"help": "seconds one request may take on one server"})
    deadline: float = field(default=300.0, metadata={
        "help": "seconds one request may take, retries on other servers included, before scoring fails"})
    device: str | None = field(default=None, metadata={
        "help": "local model: cpu, cuda or cuda:N (default: cuda when available)"})
    dtype: str = field(default="auto", metadata={
        "help": "local model: auto (the checkpoint's), float32, bfloat16 or float16"})
    max_length: int | None = field(default=None, metadata={
        "help": "local model: token limit per input, longer inputs fail (default: the model's)"})
    truncation: str | None = field(default=None, metadata={
        "help": "local model: cut over-long inputs from this side instead of failing", "choices": ["left", "right"]})
    trust_remote_code: bool = field(default=False, metadata={"help": "local model: run Python code shipped with it"})


def add_scorer_arguments(parser, *, required: bool = True, title: str = "TRM scorer",
                         defaults: Mapping[str, Any] | None = None) -> None:
    """The flags of :class:`ScoringConfig` (``--trm-endpoint`` and ``--trm-model`` exclusive, old spellings
    ``--endpoint``/``--model`` kept); build the scorer with ``Scorer(dataclass_from_args(ScoringConfig, args))``."""
    from trm.cli import add_alias, add_dataclass_arguments

    defaults = dict(defaults or {})
    others = [f.name for f in dataclasses.fields(ScoringConfig) if f.name not in SOURCE_FIELDS]
    group = parser.add_argument_group(title)
    source = group.add_mutually_exclusive_group(required=required)
    add_dataclass_arguments(source, ScoringConfig, exclude=others)
    add_alias(source, "--endpoint", "--trm-endpoint")
    add_alias(source, "--model", "--trm-model")
    add_dataclass_arguments(group, ScoringConfig, exclude=SOURCE_FIELDS, defaults=defaults)


class Scorer:
    """Raw TRM scores for texts, in input order; a failure raises (it never becomes a number). Also callable, as
    the ``texts -> scores`` function best-of-N selectors take. Use it in a ``with`` block, or call :meth:`close`."""

    def __init__(self, config: ScoringConfig):
        if bool(config.trm_endpoint) == bool(config.trm_model):
            raise BadInput("a scorer needs exactly one of trm_endpoint (--trm-endpoint) or trm_model (--trm-model)")
        if config.batch_size < 1:
            raise BadInput(f"batch_size must be >= 1, got {config.batch_size}")
        self.config = config
        self.pool = self._runner = self._local = None
        self._closed = False
        if config.trm_model:
            from trm.serving.scorer import RewardScorer

            self._local = RewardScorer(config.trm_model, device=config.device, max_length=config.max_length,
                                       truncation=config.truncation, dtype=config.dtype,
                                       trust_remote_code=config.trust_remote_code)
        else:
            from trm.client import BackendPool, resolve_api_key

            self.pool = BackendPool(config.trm_endpoint, api_key=resolve_api_key(config.api_key, "reward"),
                                    max_concurrency_per_backend=config.concurrency, request_timeout=config.timeout,
                                    deadline=config.deadline)
            self._runner = asyncio.Runner()

    def score(self, texts: Sequence[str]) -> list[float]:
        """Raw scores of ``texts``; endpoint requests carry ``batch_size`` texts each and run concurrently."""
        if self._closed:
            raise RuntimeError("this scorer is closed")
        texts = list(texts)
        if self._runner is not None:
            return self._runner.run(score_reasoning(self.pool, texts, model=self.config.served_model_name,
                                                    chunk_size=self.config.batch_size))
        scores = self._local.score(texts, batch_size=self.config.batch_size)
        return [finite_score(score, f"score of text {i}") for i, score in enumerate(scores)]

    __call__ = score

    def close(self) -> None:
        """Close the pool's HTTP clients and its event loop, or drop the local model."""
        if self._closed:
            return
        self._closed, self._local = True, None
        if self._runner is not None:
            try:
                self._runner.run(self.pool.aclose())
            finally:
                self._runner.close()

    def __enter__(self) -> "Scorer":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
