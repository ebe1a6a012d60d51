"""The thinking reward for a batch of responses: verify each answer, score the reasoning with the TRM, blend.

    r = v * (1 - alpha + alpha * sigmoid(t))      v in {0, 1} from the verifier, t the raw TRM score

One pipeline serves every caller (``remote_verifier.compute_score``, the verl ``verify`` manager, ``trm reward``):
1. rule check of the whole batch in the persistent worker pool (math-verify, time-bounded), in rounds of
   ``rule_chunk`` answers so that the network calls of finished rounds overlap the CPU work of the next;
2. per response, concurrently and bounded by ``parallelism``: the LLM verifier where the rule check failed and the
   data source allows it, then the TRM on ``trm_input(user_prompt, response)`` for verified answers (or for all
   responses with ``score_all``, for analysis; unverified ones still get 0). The scorer is chosen by
   ``reward_scorer`` (trm.rewards.scorers); with ``alpha`` 0 (verifier only) none is called or needed.
Backend failures raise (after the pool's retries on other backends); they never become a reward.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Awaitable, Callable, Sequence, TypeVar

from trm.rewards.correctness import (
    FAULT_SOURCES,
    Verdict,
    VerifyConfig,
    check_fault_budget,
    check_responses,
    verify_response,
)

DEFAULT_VERIFIER_BACKENDS = "127.0.0.1:23888"
DEFAULT_RM_BACKENDS = "127.0.0.1:39999"
VERIFIER_BACKENDS_ENV = "TRM_VERIFIER_BACKENDS"
RM_BACKENDS_ENV = "TRM_RM_BACKENDS"

T = TypeVar("T")


@dataclass
class RewardSettings:
    """Where the verifier and the TRM live and how the reward is computed."""

    verifier_backends: str = DEFAULT_VERIFIER_BACKENDS
    """Comma-separated host:port (or URL) list of general-verifier chat servers."""
    rm_backends: str = DEFAULT_RM_BACKENDS
    """Comma-separated host:port (or URL) list of TRM embedding servers."""
    alpha: float = 0.2
    """Weight of the thinking reward inside a verified answer's reward (0.2 in the paper)."""
    parallelism: int = 1024
    """Most verifier + TRM requests in flight at once for one batch."""
    score_all: bool = False
    """Call the TRM for every response (analysis). Default: only verified answers, the only ones it can change."""
    rm_model: str = "RewardModel"
    """Served model name of the TRM."""
    reward_scorer: str = "trm"
    """What scores the reasoning (a name in ``trm.rewards.scorers.SCORERS``): ``trm`` (the paper's TRM) or
    ``reasonflux`` (the ReasonFlux-PRM baseline of Table 2, a vLLM pooling server at ``rm_backends``)."""
    rm_api_key: str | None = None
    """Bearer key of the TRM servers, if they enforce one."""
    verifier_api_key: str | None = None
    """Bearer key of the verifier servers, if they enforce one."""
    max_concurrency_per_backend: int = 256
    """Requests one backend gets at a time; the rest wait for the least-loaded healthy backend. More than a server
    works on at once is good: its queue hides the client's turnaround (bench/bench_reward_path.py
    --client-concurrency), and the client's cost per request no longer grows with its connections (trm.client)."""
    request_timeout_s: float = 300.0
    """Time one HTTP request may take before it is retried elsewhere."""
    rule_chunk: int = 256
    """Answers per rule-check round in the worker pool; finished rounds go on to the network while the next runs."""
    deadline_s: float = 900.0
    """Total time one call may take across retries; then it raises naming the backends."""
    verify: VerifyConfig = field(default_factory=VerifyConfig)
    """Correctness settings (rule timeout, LLM-verified data sources, verifier model, ...)."""

    def __post_init__(self):
        from trm.rewards.blend import validate_alpha

        validate_alpha(self.alpha)
        from trm.rewards.scorers import scorer_class

        scorer_class(self.reward_scorer)  # an unknown name fails here, at configuration time
        if int(self.parallelism) < 1:
            raise ValueError(f"parallelism must be >= 1, got {self.parallelism}")
        self.alpha, self.parallelism, self.score_all = float(self.alpha), int(self.parallelism), bool(self.score_all)

    @classmethod
    def resolve(
        cls,
        *,
        verifier_backends: str | None = None,
        rm_backends: str | None = None,
        default_verifier_backends: str = DEFAULT_VERIFIER_BACKENDS,
        default_rm_backends: str = DEFAULT_RM_BACKENDS,
        **overrides: Any,
    ) -> "RewardSettings":
        """Settings from keyword overrides, then the TRM_*_BACKENDS environment, then the given defaults.

        Overrides may name any field here or of :class:`VerifyConfig` (e.g. ``llm_data_sources``);
        an unknown name raises TypeError listing the valid ones, so a misspelled reward argument fails loudly.
        """
        own = {f.name for f in fields(cls)} - {"verify", "verifier_backends", "rm_backends"}
        verify_names = {f.name for f in fields(VerifyConfig)}
        unknown = sorted(set(overrides) - own - verify_names)
        if unknown:
            valid = ", ".join(sorted(own | verify_names | {"verifier_backends", "rm_backends"}))
            raise TypeError(f"unknown reward setting(s) {', '.join(unknown)}; valid settings: {valid}")
        verify = VerifyConfig(**{k: v for k, v in overrides.items() if k in verify_names})
        return cls(
            verifier_backends=verifier_backends or os.environ.get(VERIFIER_BACKENDS_ENV) or default_verifier_backends,
            rm_backends=rm_backends or os.environ.get(RM_BACKENDS_ENV) or default_rm_backends,
            verify=verify,
            **{k: v for k, v in overrides.items() if k in own},
        )

    @property
    def uses_scorer(self) -> bool:
        """Whether the reasoning scorer is called at all: not with alpha 0 (the verifier-only baseline), unless
        ``score_all`` asks for scores to log."""
        return self.alpha > 0 or self.score_all

    def describe(self) -> list[str]:
        """Short lines for summaries (the dry run, the reward CLI)."""
        scope = "every response (analysis)" if self.score_all else "verified answers only"
        scorer = "TRM" if self.reward_scorer == "trm" else self.reward_scorer
        if not self.uses_scorer:
            scope = "nothing (alpha 0: verifier only, no reward-model server called)"
        sources = ", ".join(sorted(self.verify.llm_data_sources)) or "none"
        return [
            f"alpha {self.alpha}; parallelism {self.parallelism}; {scorer} scores {scope}",
            f"{scorer} backends {self.rm_backends} (model {self.rm_model})",
            f"verifier backends {self.verifier_backends} (LLM verifier for: {sources})",
        ]


@dataclass(frozen=True)
class RewardRequest:
    """One response to reward, with what its reward depends on."""

    response: str
    ground_truth: str
    data_source: str
    user_prompt: str  # prompt half of the TRM input
    question: str  # what the LLM verifier is shown


def request_from_sample(
    data_source: str, solution_str: str, ground_truth: Any, extra_info: dict | None, where: str = "sample"
) -> RewardRequest:
    """A request from verl's compute_score arguments; ``extra_info['user_prompt']`` is required."""
    extra_info = extra_info or {}
    user_prompt = extra_info.get("user_prompt")
    if not isinstance(user_prompt, str) or not user_prompt:
        raise ValueError(
            f"{where} (data_source {data_source!r}) has no extra_info['user_prompt']: the TRM scores "
            "'<user_prompt>\\n<reasoning>', so every row needs it (convert data with `trm data webinstruct convert`)"
        )
    question = extra_info.get("question") or user_prompt
    return RewardRequest(str(solution_str), str(ground_truth), str(data_source), user_prompt, str(question))


def blend_result(verdict: Verdict, trm_score: float | None, alpha: float) -> dict:
    """The reward and its components for one response."""
    from trm.rewards.blend import thinking_reward

    verified = 1.0 if verdict.correct else 0.0
    if float(alpha) == 0.0:  # verifier only: r = v, and no reasoning score was asked for
        score = verified
    else:
        score = thinking_reward(verified, trm_score, alpha)  # 0 for a wrong answer, whatever the TRM says
    return {
        "score": float(score),
        "verify_score": verified,
        "verify_binary": int(verdict.correct),
        "rm_score_raw": float("nan") if trm_score is None else float(trm_score),
        "has_answer": verdict.source != "no_answer",
        "verdict_source": verdict.source,
        "answer": verdict.answer,
    }


def verdict_counts(results: Sequence[dict]) -> str:
    """"exact_match 3, llm_verifier 2, worker_error 1": how the verdicts of a batch were reached, most common
    first, so that timeouts and worker errors show up in logs next to the rewards they produced."""
    from collections import Counter

    counts = Counter(result["verdict_source"] for result in results)
    line = ", ".join(f"{source} {count}" for source, count in counts.most_common()) or "none"
    faults = sum(counts[source] for source in FAULT_SOURCES)
    if faults:  # checker failures, not wrong answers: say that they count toward the batch's raise limit
        line += (f" ({faults} of {len(results)} are checker faults ({' + '.join(sorted(FAULT_SOURCES))}), "
                 "counted toward the batch's limit)")
    return line


def rule_check_requests(requests: Sequence[RewardRequest], settings: RewardSettings) -> list[Verdict]:
    """Step 1 for a whole batch (blocking; the worker pool bounds each item's time)."""
    return check_responses(
        [r.response for r in requests],
        [r.ground_truth for r in requests],
        settings.verify.answer_format,
        timeout_s=settings.verify.rule_timeout_s,
        max_worker_error_fraction=settings.verify.max_worker_error_fraction,
        deadline_s=settings.verify.rule_batch_deadline_s,
    )


def _pool(backends: str, api_key: str | None, settings: RewardSettings):
    from trm.client import BackendPool, parse_backends

    return BackendPool(
        parse_backends(backends),
        max_concurrency_per_backend=settings.max_concurrency_per_backend,
        request_timeout=settings.request_timeout_s,
        deadline=settings.deadline_s,
        api_key=api_key,
    )


class _RuleVerdicts:
    """Rule verdicts of a batch, produced chunk by chunk in the worker pool while earlier chunks already go on to
    the verifier and the TRM (math-verify is CPU-bound, the rest waits on the network: the two overlap)."""

    def __init__(self, requests: Sequence[RewardRequest], settings: RewardSettings, given: Sequence[Verdict] | None):
        self.requests, self.settings = requests, settings
        self.chunk = max(1, settings.rule_chunk)
        self.chunks = [asyncio.get_running_loop().create_future() for _ in range(0, len(requests), self.chunk)]
        if given is not None:
            if len(given) != len(requests):
                raise ValueError(f"{len(given)} rule verdicts for {len(requests)} requests")
            for n, future in enumerate(self.chunks):
                future.set_result(list(given[n * self.chunk : (n + 1) * self.chunk]))

    async def produce(self) -> None:
        for n, future in enumerate(self.chunks):
            if future.done():
                continue
            part = self.requests[n * self.chunk : (n + 1) * self.chunk]
            try:
                future.set_result(await asyncio.to_thread(rule_check_requests, part, self.settings))
            except BaseException as error:  # waiting items fail with the same error
                for pending in self.chunks[n:]:
                    if not pending.done():
                        pending.set_exception(error)
                raise

    async def get(self, i: int) -> Verdict:
        return (await self.chunks[i // self.chunk])[i % self.chunk]


async def reward_batch(
    requests: Sequence[RewardRequest],
    settings: RewardSettings,
    *,
    rule_verdicts: Sequence[Verdict] | None = None,
    on_done: Callable[[], None] | None = None,
) -> list[dict]:
    """Rewards and components for `requests`, in order (see the module docstring for the steps).

    ``rule_verdicts`` skips step 1 when the caller already rule-checked the batch.
    """
    from trm.rewards.scorers import scorer_class

    rules = _RuleVerdicts(requests, settings, rule_verdicts)
    limit = asyncio.Semaphore(settings.parallelism)
    verifier_pool = _pool(settings.verifier_backends, settings.verifier_api_key, settings)
    scorer = scorer_class(settings.reward_scorer)(settings) if settings.uses_scorer else None
    results: list[dict | None] = [None] * len(requests)
    verdicts: list[Verdict | None] = [None] * len(requests)

    async def one(i: int, request: RewardRequest) -> None:
        verdict = await rules.get(i)
        if not verdict.correct:
            async with limit:
                verdict = await verify_response(
                    request.response,
                    request.ground_truth,
                    data_source=request.data_source,
                    question=request.question,
                    verifier_pool=verifier_pool,
                    config=settings.verify,
                    rule_verdict=verdict,
                )
        trm_score = None
        if scorer is not None and (verdict.correct or settings.score_all):
            async with limit:
                trm_score = await scorer.score(request)
        results[i], verdicts[i] = blend_result(verdict, trm_score, settings.alpha), verdict
        if on_done is not None:
            on_done()

    try:
        async with asyncio.TaskGroup() as group:  # the first failure cancels the rest and propagates
            group.create_task(rules.produce())
            for i, request in enumerate(requests):
                group.create_task(one(i, request))
    except BaseExceptionGroup as failures:
        raise failures.exceptions[0] from None
    finally:
        closing = [verifier_pool.aclose()] + ([scorer.aclose()] if scorer is not None else [])
        await asyncio.gather(*closing, return_exceptions=True)
    check_fault_budget(verdicts, settings.verify.max_worker_error_fraction)  # worker errors + unusable verifier replies
    return results  # type: ignore[return-value]


def run_coroutine(make: Callable[[], Awaitable[T]]) -> T:
    """Run a coroutine to completion from sync code, also where this thread already runs an event loop
    (a Ray async actor, a notebook): then it runs on a private loop in a helper thread."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(make())
    with concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="trm-reward") as executor:
        return executor.submit(lambda: asyncio.run(make())).result()


def reward_batch_sync(
    requests: Sequence[RewardRequest], settings: RewardSettings, on_done: Callable[[], None] | None = None
) -> list[dict]:
    """:func:`reward_batch` from sync code (also where an event loop already runs)."""
    return run_coroutine(lambda: reward_batch(requests, settings, on_done=on_done))


def compute_score(
    data_source: str, solution_str: str, ground_truth: Any, extra_info: dict | None, settings: RewardSettings
) -> dict:
    """verl's per-sample compute_score contract for one response."""
    request = request_from_sample(data_source, solution_str, ground_truth, extra_info)
    return reward_batch_sync([request], settings)[0]


async def compute_score_async(
    data_source: str, solution_str: str, ground_truth: Any, extra_info: dict | None, settings: RewardSettings
) -> dict:
    request = request_from_sample(data_source, solution_str, ground_truth, extra_info)
    return (await reward_batch([request], settings))[0]


def settings_dict(settings: RewardSettings) -> dict:
    """Plain-data view (for logs and JSON output)."""
    data = asdict(settings)
    data["verify"]["llm_data_sources"] = sorted(data["verify"]["llm_data_sources"])
    for key in ("rm_api_key", "verifier_api_key"):
        data[key] = "***" if data[key] else None
    return data
