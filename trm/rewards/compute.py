"""The thinking reward for a batch of responses: verify each answer, score the reasoning with the TRM, blend.

    r = v * (1 - alpha + alpha * sigmoid(t))      v in {0, 1} from the verifier, t the raw TRM score

One pipeline serves every caller (``remote_verifier.compute_score``, the verl ``verify`` manager, ``trm reward``, TRL):
1. rule check of the whole batch in the persistent worker pool (math-verify, time-bounded), in rounds of
   ``rule_chunk`` answers so that the network calls of finished rounds overlap the CPU work of the next;
2. per response, at most ``parallelism`` in flight: the LLM verifier where the rule check failed and the data
   source allows it, then the TRM on ``trm_input(user_prompt, response)`` for verified answers (or, at the same
   time as the verifier, for all responses with ``score_all``, for analysis; unverified ones still get 0). Both
   take list requests: the texts of a batch go out coalesced (``verifier_batch_size``, ``rm_batch_size``). The
   scorer is chosen by ``reward_scorer`` (trm.rewards.scorers); with ``alpha`` 0 (verifier only) none is called.
Backend failures raise (after the pool's retries on other backends); they never become a reward.

Settings (:class:`RewardSettings`, declared once; ``trm reward`` derives its flags from it) come from keyword
overrides (verl's ``reward_model.reward_kwargs``, TRL's keywords, compute_score's keywords), then the
``TRM_*_BACKENDS`` environment, then the defaults: the fields', with the backends of the reward file verl loaded
(:func:`use_default_backends`). One :class:`Rewarder` per settings and process (:func:`rewarder`) keeps the backend
pools from batch to batch and closes them at exit.
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import functools
import itertools
import os
import threading
from dataclasses import dataclass, field, fields
from typing import Any, Callable, Sequence

from trm.rewards.blend import DEFAULT_ALPHA, RewardResult, validate_alpha
from trm.rewards.correctness import (
    FAULT_SOURCES,
    Verdict,
    VerifierQuestion,
    VerifyConfig,
    after_verifier,
    before_verifier,
    check_fault_budget,
    check_responses,
)
from trm.rewards.gc_hold import gc_held_off

DEFAULT_VERIFIER_BACKENDS = "127.0.0.1:23888"
DEFAULT_RM_BACKENDS = "127.0.0.1:39999"
BACKENDS_ENV = {"verifier_backends": "TRM_VERIFIER_BACKENDS", "rm_backends": "TRM_RM_BACKENDS"}
_BACKENDS = "HOST:PORT[,...]"
_default_backends: dict[str, str] = {}  # the reward file's constants (use_default_backends)


def use_default_backends(**backends: str) -> None:
    """Make ``verifier_backends`` / ``rm_backends`` this process's defaults. The reward file (remote_verifier.py) calls
    this on import with its DEFAULT_*_BACKENDS: verl imports it before it builds the reward manager, in the same
    process, so the constants a user edits there reach the manager without reaching into verl's wrapper."""
    unknown = set(backends) - set(BACKENDS_ENV)
    if unknown:
        raise TypeError(f"use_default_backends takes {' and '.join(BACKENDS_ENV)}, not {', '.join(sorted(unknown))}")
    _default_backends.update(backends)


def environment_backends() -> dict[str, str]:
    """The backends that TRM_VERIFIER_BACKENDS / TRM_RM_BACKENDS name: they override the defaults."""
    return {name: os.environ[var] for name, var in BACKENDS_ENV.items() if os.environ.get(var)}


@dataclass(frozen=True)
class RewardSettings:
    """Where the verifier and the TRM live and how the reward is computed (frozen: it keys the process's pools)."""

    verifier_backends: str = field(default=DEFAULT_VERIFIER_BACKENDS, metadata={"metavar": _BACKENDS, "help":
        "general-verifier chat servers, comma-separated host:port (or URL); TRM_VERIFIER_BACKENDS replaces the default"})
    rm_backends: str = field(default=DEFAULT_RM_BACKENDS, metadata={"metavar": _BACKENDS, "help":
        "TRM embedding servers (or the baseline scorer's), comma-separated host:port (or URL); TRM_RM_BACKENDS "
        "replaces the default"})
    alpha: float = field(default=DEFAULT_ALPHA, metadata={"help":
        "weight of the thinking reward inside a verified answer's reward (0.2 in the paper); 0: verifier only"})
    parallelism: int = field(default=1024, metadata={"help":
        "most verifier + TRM requests in flight at once for one batch (at most max_concurrency_per_backend each)"})
    score_all: bool = field(default=False, metadata={"help": "also score the reasoning of unverified answers "
        "(analysis; their reward stays 0); off: only verified answers, the only ones the TRM can change"})
    rm_model: str = field(default="RewardModel", metadata={"help": "served model name of the TRM"})
    rm_batch_size: int = field(default=64, metadata={"help": "most TRM texts one embeddings request carries: texts "
        "of concurrent responses are coalesced (a few ms) and fail over together. sglang --is-embedding and vLLM "
        "take a list input of any length (each text within the context); 1: one text per request"})
    reward_scorer: str = field(default="trm", metadata={"help":
        "what scores the reasoning (a name in trm.rewards.scorers.SCORERS): trm (the paper's TRM) or reasonflux (the "
        "ReasonFlux-PRM baseline of Table 2, a vLLM pooling server at the TRM endpoint)"})
    rm_api_key: str | None = field(default=None, metadata={"help": "Bearer key of the TRM servers; unset: "
        "$TRM_API_KEY (trm.client.resolve_api_key)"})
    verifier_api_key: str | None = field(default=None, metadata={"help": "Bearer key of the verifier servers; "
        "unset: $TRM_VERIFIER_API_KEY"})
    max_concurrency_per_backend: int = field(default=256, metadata={"help": "requests one backend gets at a time, "
        "the rest wait for the least-loaded healthy one; more than a server works on at once is good: its queue hides "
        "the client's turnaround (bench/bench_reward_path.py --client-concurrency)"})
    request_timeout_s: float = field(default=300.0, metadata={"help": "seconds one HTTP attempt may take before it "
        "is retried elsewhere"})
    rule_chunk: int = field(default=256, metadata={"help":
        "answers per rule-check round in the worker pool; finished rounds go on to the network while the next runs"})
    deadline_s: float = field(default=900.0, metadata={"help": "seconds one request may take across retries; then "
        "it raises naming the backends"})
    hold_gc: bool = field(default=True, metadata={"help": "hold off Python's automatic garbage collection while a "
        "batch is in flight, resumed after it: a full collection of a trainer's heap stops the process for 0.2 s or "
        "more, and a batch's records bring them on (trm.rewards.gc_hold)"})
    verify: VerifyConfig = field(default_factory=VerifyConfig)  # correctness (rule timeout, LLM-verified sources, ...)

    def __post_init__(self):
        from trm.rewards.scorers import scorer_class

        validate_alpha(self.alpha)
        scorer_class(self.reward_scorer)  # an unknown name fails here, at configuration time
        for name in ("parallelism", "rm_batch_size"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name, kind in (("alpha", float), ("parallelism", int), ("rm_batch_size", int), ("score_all", bool)):
            object.__setattr__(self, name, kind(getattr(self, name)))

    @classmethod
    def resolve(cls, **overrides: Any) -> "RewardSettings":
        """Settings from flat keyword overrides (any field here or of :class:`VerifyConfig`, e.g. verl's
        ``reward_kwargs.llm_data_sources``; None counts as not given), then the environment, then the defaults.
        An unknown name raises TypeError listing the valid ones, so a misspelled reward argument fails loudly."""
        own, verify_names = {f.name for f in fields(cls)} - {"verify"}, {f.name for f in fields(VerifyConfig)}
        unknown = sorted(set(overrides) - own - verify_names)
        if unknown:
            raise TypeError(f"unknown reward setting(s) {', '.join(unknown)}; valid settings: "
                            f"{', '.join(sorted(own | verify_names))}")
        given = {k: v for k, v in overrides.items() if v is not None}
        mine = {**_default_backends, **environment_backends(), **{k: v for k, v in given.items() if k in own}}
        return cls(verify=VerifyConfig(**{k: v for k, v in given.items() if k in verify_names}), **mine)

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


@dataclass(frozen=True, slots=True)
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


def verdict_counts(results: Sequence[RewardResult]) -> str:
    """"exact_match 3, llm_verifier 2, worker_error 1": how the verdicts of a batch were reached, most common
    first, so that timeouts and worker errors show up in logs next to the rewards they produced."""
    from collections import Counter

    counts = Counter(result.verdict.source for result in results)
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


def backend_pool(backends: str, api_key: str | None, role: str, settings: RewardSettings):
    """A :class:`trm.client.BackendPool` with the settings' limits; the key is ``api_key`` or the ``role``'s."""
    from trm.client import BackendPool, resolve_api_key

    return BackendPool(backends, max_concurrency_per_backend=settings.max_concurrency_per_backend,
                       request_timeout=settings.request_timeout_s, deadline=settings.deadline_s,
                       api_key=resolve_api_key(api_key, role))


class _Rounds:
    """A batch in rounds of ``rule_chunk`` responses: each round's requests and rule verdicts, produced one round
    after another in a thread (the rule check in the worker pool; math-verify is CPU-bound) while earlier rounds
    already wait on the verifier and the TRM. ``requests`` may be a lazy sequence that builds a slice when asked
    (the verl manager decodes its token ids so): its slices are taken in that thread too, so building overlaps the
    network calls of earlier rounds."""

    def __init__(self, requests: Sequence[RewardRequest], settings: RewardSettings, given: Sequence[Verdict] | None):
        self.requests, self.settings = requests, settings
        self.size = max(1, settings.rule_chunk)
        self.rounds = [asyncio.get_running_loop().create_future() for _ in range(0, len(requests), self.size)]
        if given is not None:
            if len(given) != len(requests):
                raise ValueError(f"{len(given)} rule verdicts for {len(requests)} requests")
            for n, future in enumerate(self.rounds):
                part = slice(n * self.size, (n + 1) * self.size)
                future.set_result((self.requests[part], list(given[part])))

    def _round(self, n: int) -> tuple[Sequence[RewardRequest], list[Verdict]]:
        part = self.requests[n * self.size : (n + 1) * self.size]
        return part, rule_check_requests(part, self.settings)

    async def produce(self) -> None:
        for n, future in enumerate(self.rounds):
            if future.done():
                continue
            try:
                future.set_result(await asyncio.to_thread(self._round, n))
            except BaseException as error:  # waiting rounds fail with the same error
                for pending in self.rounds[n:]:
                    if not pending.done():
                        pending.set_exception(error)
                raise


class _Batch:
    """One batch's responses on their way through the verifier and the scorer, and its results as they come in.

    Items go to the verifier and the scorer as futures (which those coalesce into list requests) and move on in
    callbacks made once per batch: a finished future finds its response by a dict lookup, and what a response
    carries between stages sits in per-batch lists, so a 4096-response step allocates no task, closure or callback
    per response (the garbage collector's full passes over a trainer's heap grow with such allocations). At most
    ``parallelism`` responses wait on the backends at once; ``done`` resolves with every result, or with the first
    error: a failure ends the batch, it never becomes a result."""

    def __init__(self, rewarder: "Rewarder", size: int, score_all: bool, on_done: Callable[[], None] | None):
        self.settings, self.verifier, self.scorer = rewarder.settings, rewarder.verifier, rewarder.scorer
        self.score_all, self.on_done = score_all, on_done
        self.requests: list[RewardRequest | None] = [None] * size  # while a response waits on the backends
        self.verdicts: list[Verdict | VerifierQuestion | None] = [None] * size  # its verdict or question so far
        self.results: list[RewardResult | None] = [None] * size
        self.left, self.waiting = size, 0
        self.done = asyncio.get_running_loop().create_future()
        self._room = asyncio.Event()
        self._index: dict[asyncio.Future, int] = {}  # future -> the response it belongs to
        self._on_verdict = functools.partial(self._stage_done, self._verified)
        self._on_score = functools.partial(self._stage_done, self._scored)
        self._on_both = functools.partial(self._stage_done, self._verified_and_scored)
        if size == 0:
            self.done.set_result([])

    async def start(self, i: int, request: RewardRequest, rule_verdict: Verdict) -> None:
        """Route response ``i``: settled by the rules, or on to the verifier and/or the scorer."""
        step = before_verifier(rule_verdict, request.ground_truth, data_source=request.data_source,
                               question=request.question, config=self.settings.verify)
        settled = isinstance(step, Verdict)
        if settled and not (self.scorer is not None and (step.correct or self.score_all)):
            self._finish(i, RewardResult.blend(step, None, self.settings.alpha), waited=False)
            return
        if self.waiting < self.limit and not self.done.done():  # the usual case: no suspension
            self.waiting += 1
        else:
            await self._wait_for_room()
        self.requests[i], self.verdicts[i] = request, step
        if settled:  # settled by the rules and scored (a right answer, or any with score_all)
            self._then(self.scorer.submit(request), i, self._on_score)
            return
        asked = self.verifier.submit(step.question, step.ground_truth, step.answer)
        if self.score_all:  # the score does not wait for the verdict: both at once
            self._then(asyncio.gather(asked, self.scorer.submit(request)), i, self._on_both)
        else:
            self._then(asked, i, self._on_verdict)

    @property
    def limit(self) -> int:
        return self.settings.parallelism

    async def _wait_for_room(self) -> None:
        while self.waiting >= self.limit and not self.done.done():
            self._room.clear()
            await self._room.wait()
        if self.done.done():
            self.done.result()  # the batch failed meanwhile: raise its error here too
            raise RuntimeError("the batch finished while a response was still to be sent")
        self.waiting += 1

    # -- stages: step(i, value) -> the response's result, or None when a further stage was started ---------------
    def _verified(self, i: int, verdict: Verdict) -> RewardResult | None:
        verdict = after_verifier(self.verdicts[i], verdict)  # type: ignore[arg-type]
        if self.scorer is None or not verdict.correct:
            return RewardResult.blend(verdict, None, self.settings.alpha)
        self.verdicts[i] = verdict
        self._then(self.scorer.submit(self.requests[i]), i, self._on_score)  # type: ignore[arg-type]
        return None

    def _scored(self, i: int, score: float) -> RewardResult:
        return RewardResult.blend(self.verdicts[i], score, self.settings.alpha)  # type: ignore[arg-type]

    def _verified_and_scored(self, i: int, got: tuple[Verdict, float]) -> RewardResult:
        return RewardResult.blend(after_verifier(self.verdicts[i], got[0]), got[1], self.settings.alpha)  # type: ignore

    def _then(self, future: asyncio.Future, i: int, callback: Callable[[asyncio.Future], None]) -> None:
        self._index[future] = i
        future.add_done_callback(callback)

    def _stage_done(self, step: Callable[[int, Any], RewardResult | None], done: asyncio.Future) -> None:
        i = self._index.pop(done)
        try:
            result = step(i, done.result())
        except BaseException as error:  # a backend error, a cancelled request, a score that cannot be blended
            self.fail(error)
            return
        if result is not None:
            self._finish(i, result, waited=True)

    def _finish(self, i: int, result: RewardResult, waited: bool) -> None:
        self.results[i] = result
        if waited:
            self.requests[i] = self.verdicts[i] = None
            self.waiting -= 1
            self._room.set()
        self.left -= 1
        if self.on_done is not None:
            self.on_done()
        if self.left == 0 and not self.done.done():
            self.done.set_result(self.results)

    def fail(self, error: BaseException) -> None:
        if not self.done.done():
            self.done.cancel() if isinstance(error, asyncio.CancelledError) else self.done.set_exception(error)
        self._room.set()


class Rewarder:
    """The pipeline for one :class:`RewardSettings` with its backend pools, kept for the owner's lifetime.

    Batches run on the rewarder's own event-loop thread, whatever thread or loop calls: a pool's HTTP clients belong
    to one loop (trm.client), so connections and backend health carry over from batch to batch, and :meth:`close`
    closes all of them. :func:`rewarder` keeps one per settings and process.
    """

    def __init__(self, settings: RewardSettings):
        from trm.rewards.scorers import scorer_class

        self.settings = settings
        self.verifier_pool = backend_pool(settings.verifier_backends, settings.verifier_api_key, "verifier", settings)
        self.verifier = settings.verify.verifier(self.verifier_pool)
        self.scorer = scorer_class(settings.reward_scorer)(settings) if settings.uses_scorer else None
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="trm-reward", daemon=True)
        self._thread.start()

    def submit(self, requests: Sequence[RewardRequest], **kwargs: Any) -> concurrent.futures.Future:
        """:meth:`run` on the rewarder's loop: a future of the results (``asyncio.wrap_future`` it on another loop)."""
        if self._loop.is_closed():
            raise RuntimeError("this Rewarder is closed")
        return asyncio.run_coroutine_threadsafe(self.run(requests, **kwargs), self._loop)

    def reward(self, requests: Sequence[RewardRequest], **kwargs: Any) -> list[RewardResult]:
        """:meth:`run` from sync code (also from a thread that runs an event loop: a Ray actor, a notebook)."""
        return self.submit(requests, **kwargs).result()

    async def run(
        self,
        requests: Sequence[RewardRequest],
        *,
        rule_verdicts: Sequence[Verdict] | None = None,
        on_done: Callable[[], None] | None = None,
        score_all: bool | None = None,
    ) -> list[RewardResult]:
        """Rewards for ``requests``, in order (the steps are in the module docstring); runs on the rewarder's loop.

        ``rule_verdicts`` skips step 1 when the caller already rule-checked the batch; ``score_all`` overrides the
        setting for this batch (verl's validation batches) where a scorer is in use. Each round of rule verdicts is
        routed at once (:func:`before_verifier`); the verifier and the scorer get the batch's items as futures,
        which they coalesce into list requests, and each finished item moves on in a callback (:class:`_Batch`).
        """
        with gc_held_off(self.settings.hold_gc):
            return await self._run(requests, rule_verdicts, on_done, score_all)

    async def _run(self, requests: Sequence[RewardRequest], rule_verdicts: Sequence[Verdict] | None,
                   on_done: Callable[[], None] | None, score_all: bool | None) -> list[RewardResult]:
        settings = self.settings
        score_all = self.scorer is not None and (settings.score_all if score_all is None else score_all)
        rounds = _Rounds(requests, settings, rule_verdicts)
        batch = _Batch(self, len(requests), score_all, on_done)
        producer = asyncio.ensure_future(rounds.produce())
        producer.add_done_callback(lambda task: task.cancelled() or task.exception())  # its error reaches the rounds
        try:
            for n, round_ in enumerate(rounds.rounds):
                await asyncio.wait([round_, batch.done], return_when=asyncio.FIRST_COMPLETED)
                if batch.done.done():
                    break
                part, verdicts = round_.result()
                for i, request, rule_verdict in zip(itertools.count(n * rounds.size), part, verdicts):
                    await batch.start(i, request, rule_verdict)
            results = await batch.done
        finally:
            producer.cancel()
            batch.done.cancel()  # no-op when done; else answers still in flight finish into nothing
        check_fault_budget([r.verdict for r in results], settings.verify.max_worker_error_fraction)
        return results

    def close(self) -> None:
        """Close the pools' connections and stop the loop (idempotent)."""
        if self._loop.is_closed():
            return

        async def aclose() -> None:
            await asyncio.gather(self.verifier_pool.aclose(), *([self.scorer.aclose()] if self.scorer else []))

        asyncio.run_coroutine_threadsafe(aclose(), self._loop).result()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()
        self._loop.close()


_rewarders: dict[RewardSettings, Rewarder] = {}
_rewarders_lock = threading.Lock()


def rewarder(settings: RewardSettings) -> Rewarder:
    """This process's :class:`Rewarder` for ``settings``, built on first use: an explicit cache, so that the verl
    manager (which verl pickles into Ray tasks and so holds plain settings), every per-sample ``compute_score`` call
    and TRL reuse their pools instead of building them per batch. Closed at exit; a forked child builds its own."""
    with _rewarders_lock:
        if settings not in _rewarders:
            _rewarders[settings] = Rewarder(settings)
        return _rewarders[settings]


def close_rewarders() -> None:
    """Close every cached :class:`Rewarder` (at exit; the next :func:`rewarder` call builds a fresh one)."""
    with _rewarders_lock:
        closing = list(_rewarders.values())
        _rewarders.clear()
    for each in closing:
        each.close()


atexit.register(close_rewarders)
os.register_at_fork(after_in_child=_rewarders.clear)  # their loop threads do not survive a fork


def reward_batch_sync(
    requests: Sequence[RewardRequest], settings: RewardSettings, on_done: Callable[[], None] | None = None
) -> list[RewardResult]:
    """Rewards for ``requests`` with the process's pools for ``settings`` (:func:`rewarder`)."""
    return rewarder(settings).reward(requests, on_done=on_done)


def compute_score(data_source: str, solution_str: str, ground_truth: Any, extra_info: dict | None = None,
                  **overrides: Any) -> dict:
    """verl's per-sample compute_score contract for one response (settings: :meth:`RewardSettings.resolve`)."""
    request = request_from_sample(data_source, solution_str, ground_truth, extra_info)
    return rewarder(RewardSettings.resolve(**overrides)).reward([request])[0].columns()


async def compute_score_async(data_source: str, solution_str: str, ground_truth: Any, extra_info: dict | None = None,
                              **overrides: Any) -> dict:
    """:func:`compute_score` for a caller that runs an event loop."""
    request = request_from_sample(data_source, solution_str, ground_truth, extra_info)
    future = rewarder(RewardSettings.resolve(**overrides)).submit([request])
    return (await asyncio.wrap_future(future))[0].columns()
