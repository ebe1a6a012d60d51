"""Is the answer in a response right? Rule check first, then (only where allowed) the LLM verifier.

The rule check is the original release's (reference/protocol.md section 4), in its order:
1. no extractable answer -> wrong ("no_answer");
2. the length guard: an answer whose length differs from the ground truth's by more than 50 characters is not
   rule-checked ("length_guard"); this also bounds the text any later step works on;
3. exact match after light normalisation -> right ("exact_match"); two plain integers that neither worker stage
   could call equal -> wrong here ("numeric"), the bulk of a batch's wrong answers and 12 ms of worker time each;
4. math-verify on the ``$x$`` and bare forms of both sides, in a worker process with a hard time bound ->
   right ("math_verify"), or "timeout" if it hung;
5. verl's ``prime_math`` scorer, in its own time-bounded worker call, for what math-verify did not accept ->
   right ("prime_math");
an answer whose worker dies is retried once on another worker; if it kills that one too it is wrong
("worker_error", logged), unless too many answers of the batch did that: then :class:`RuleCheckUnavailable`.
Then, for answers the rule check did not accept:
6. an answer much longer than the ground truth -> wrong ("length_rule"), before any LLM call;
7. only for data sources in ``VerifyConfig.llm_data_sources``: the LLM verifier ("llm_verifier"; a reply that
   is empty or cut off before its decision is "verifier_unusable", a fault like "worker_error").
Backend failures in step 7 raise; they never become a wrong verdict.

``Verdict.source`` names the step that settled the verdict and ``Verdict.also`` the other steps that applied. A
fault ("timeout", "worker_error") or the length guard is never replaced by the length rule, which is then only
listed in ``also``: the batch's counts must show every fault.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import math
import re
import time
from dataclasses import dataclass, field
from typing import Sequence

from trm.errors import RunFailed
from trm.protocol import GENERAL_VERIFIER_ANSWER_TAIL_CHARS, GENERAL_VERIFIER_MAX_TOKENS
from trm.rewards.math_rules import LENGTH_GUARD_CHARS, SETTLED_SOURCES
from trm.rewards.verdict import Verdict
from trm.rewards.worker_pool import PoolStalled, WorkerStartError, get_pool
from trm.traces import LENIENT, STRICT, all_boxed, answer_parts, extract

RULE_CHECK_FUNCTION = "trm.rewards.math_rules:check_item"
# Per stage (math-verify, then prime_math) and answer; see VerifyConfig.rule_timeout_s.
DEFAULT_RULE_TIMEOUT_S = 1.5
DEFAULT_MAX_WORKER_ERROR_FRACTION = 0.1
# Time allowed for rule-check workers to start (import math-verify, sympy and prime_math) within a batch deadline.
WORKER_START_ALLOWANCE_S = 60.0
WEBINSTRUCT_VERIFIED = "TIGER-Lab/WebInstruct-verified"
# Verdict sources that mean "the checker failed", not "the answer is wrong"; they count toward a batch's limit.
FAULT_SOURCES = frozenset({"worker_error", "verifier_unusable"})
# Sources the length rule never replaces (it is listed in Verdict.also instead).
_KEPT_BEFORE_LENGTH_RULE = frozenset({"timeout", "worker_error", "length_guard"})

log = logging.getLogger(__name__)


class VerificationUnavailable(RunFailed):
    """Too many answers of one batch got no real verdict (their checker failed): raised instead of verdicts."""


class RuleCheckUnavailable(VerificationUnavailable):
    """Rule-check workers failed on too many answers of one batch, or did not start (out of memory, a broken
    install, workers killed from outside): the checker, not the answers, is broken."""


class VerifierUnusable(VerificationUnavailable):
    """Too many verifier replies of one batch were empty or cut off before their decision (together with rule-check
    worker errors): the verifier deployment, not the answers, is broken (context too short, max tokens too low)."""


@dataclass(frozen=True)
class VerifyConfig:
    """How :func:`verify_response` decides correctness (frozen: reward settings key the per-process backend pools)."""

    llm_data_sources: frozenset[str] = field(default_factory=lambda: frozenset({WEBINSTRUCT_VERIFIED}))
    """Data sources whose rule-check failures are re-judged by the LLM verifier (others stay rule-only)."""
    rule_timeout_s: float = DEFAULT_RULE_TIMEOUT_S
    """Hard time bound per answer for each worker stage of the rule check (math-verify, then prime_math); a hung
    check is wrong with source "timeout". The release allows math-verify 0.5 s to parse and 1 s to verify, and
    prime_math 1 s (2.5 s in all): 1.5 s per stage (3 s at most for an answer both stages look at) keeps that order
    of magnitude, so an answer the release gave up on is not accepted here after a longer wait, while leaving room
    for the worker round trip on a busy host (a simple answer takes about 0.1 s)."""
    rule_batch_deadline_s: float | None = None
    """Most seconds one rule-check batch may take before :class:`RuleCheckUnavailable` names what stalled it
    (workers hung or killed while importing). None: 60 s for workers to start plus four times the batch's
    worst case (two stages, one retry each, of ``rule_timeout_s`` per answer over the workers)."""
    max_worker_error_fraction: float = DEFAULT_MAX_WORKER_ERROR_FRACTION
    """Answers whose rule-check worker dies twice (source "worker_error") or whose verifier reply is unusable
    (source "verifier_unusable") are wrong and logged, so that one pathological answer cannot stop an RL run; but
    when at least max(2, this fraction of the batch) answers do so, the batch raises (:class:`RuleCheckUnavailable`,
    :class:`VerifierUnusable`) instead."""
    length_rule: bool = True
    """Apply the paper's length rule (answer much longer than the ground truth is wrong) before the LLM."""
    verifier_model: str = "TIGER-Lab/general-verifier"
    """Model name sent to the verifier backends (the served model name)."""
    verifier_max_tokens: int = GENERAL_VERIFIER_MAX_TOKENS
    """Generation budget of the verifier (the release's 512); it writes its reasoning before the decision tag."""
    answer_tail_chars: int = GENERAL_VERIFIER_ANSWER_TAIL_CHARS
    """The student answer is cut to its last this-many characters before it goes to the verifier (the release's)."""
    verifier_api: str = "completions"
    """How the verifier is asked (trm.rewards.llm_verifier.VERIFIER_APIS): "completions" (the protocol text as the
    prompt, answers coalesced into list requests) or "chat" (one user message per request, as the release)."""
    verifier_batch_size: int = 64
    """Most prompts one verifier completions request carries (vLLM and sglang take a list prompt of any length;
    `trm serve chat` up to its --max-rows-per-request, 256); 1: one answer per request."""
    answer_format: str = STRICT
    """Extraction policy (trm.traces.extract): "strict" needs a box or an answer marker, as the release (RL rewards);
    "lenient" also reads answers written in free text (evaluation tables use it)."""

    def __post_init__(self):
        sources = self.llm_data_sources
        if isinstance(sources, str):  # "a,b" from a command line or a Hydra override, not a set of characters
            sources = [name.strip() for name in sources.split(",") if name.strip()]
        object.__setattr__(self, "llm_data_sources", frozenset(sources))
        if self.rule_timeout_s <= 0:
            raise ValueError(f"rule_timeout_s must be > 0, got {self.rule_timeout_s}")
        if self.rule_batch_deadline_s is not None and self.rule_batch_deadline_s <= 0:
            raise ValueError(f"rule_batch_deadline_s must be > 0 or None, got {self.rule_batch_deadline_s}")
        if self.answer_format not in (STRICT, LENIENT):
            raise ValueError(f"answer_format must be {STRICT!r} or {LENIENT!r}, got {self.answer_format!r}")
        from trm.rewards.llm_verifier import check_verifier_api

        check_verifier_api(self.verifier_api)
        if self.verifier_batch_size < 1:
            raise ValueError(f"verifier_batch_size must be >= 1, got {self.verifier_batch_size}")
        if not 0 <= self.max_worker_error_fraction <= 1:
            raise ValueError(f"max_worker_error_fraction must be within [0, 1], got {self.max_worker_error_fraction}")

    def verifier(self, pool):
        """The :class:`trm.rewards.llm_verifier.GeneralVerifier` behind ``pool`` with these settings."""
        from trm.rewards.llm_verifier import GeneralVerifier

        return GeneralVerifier(pool, self.verifier_model, max_tokens=self.verifier_max_tokens,
                               answer_tail_chars=self.answer_tail_chars, api=self.verifier_api,
                               batch_size=self.verifier_batch_size)


def clean_ground_truth(ground_truth: str) -> str:
    """Ground truths are sometimes stored boxed; compare against what is inside the box (all boxes, joined with
    ", ", when a multi-part answer has several: keeping only the last would grade half of it)."""
    ground_truth = str(ground_truth).strip()
    boxes = all_boxed(ground_truth) if "\\boxed" in ground_truth or "\\fbox" in ground_truth else []
    return ", ".join(boxes) if boxes else ground_truth


def too_long(answer: str, ground_truth: str) -> bool:
    """The paper's length rule: len(answer) - len(gt) >= max(0.5 * len(gt), 10) means wrong."""
    return len(answer) - len(ground_truth) >= max(0.5 * len(ground_truth), 10)


def fails_length_guard(answer: str, ground_truth: str) -> bool:
    """The release's length guard: lengths more than 50 characters apart are not rule-checked."""
    return abs(len(answer) - len(ground_truth)) > LENGTH_GUARD_CHARS


def _precheck(answer: str | None, ground_truth: str, rung: str = "") -> Verdict | None:
    """Decisions that need no worker: no answer, the length guard, an exact match, two different plain integers (in
    that order: the guard bounds the text the later steps and the workers see to the ground truth's length plus 50).
    A response tail (rung "tail") is bounded by the ladder; the worker extracts its answer and applies the guard."""
    from trm.rewards.math_rules import exact_match

    if answer is None or not answer.strip():
        return Verdict(False, "no_answer", None, "no final answer found in the response")
    if rung == "tail":
        return None
    if fails_length_guard(answer, ground_truth):
        return Verdict(False, "length_guard", answer, f"answer has {len(answer)} characters, ground truth "
                       f"{len(ground_truth)}: more than {LENGTH_GUARD_CHARS} apart, not rule-checked")
    if exact_match(answer, ground_truth):
        return Verdict(True, "exact_match", answer, "equal after normalisation")
    return _integer_mismatch(answer, ground_truth)


# Plain integers exactly representable as floats (prime_math compares numbers as floats).
_PLAIN_INTEGER_RE = re.compile(r"-?[0-9]{1,15}")


def _integer_mismatch(answer: str, ground_truth: str) -> Verdict | None:
    """Wrong, when both sides are plain integers outside prime_math's acceptance (relative tolerance 1e-4 of the
    ground truth, or of it times or divided by 100); anything else ("007" for "7", "500" for "5") goes to the workers."""
    a, g = answer.strip(), ground_truth.strip()
    if not (_PLAIN_INTEGER_RE.fullmatch(a) and _PLAIN_INTEGER_RE.fullmatch(g)):
        return None
    a_value, g_value = int(a), int(g)
    if any(math.isclose(a_value, target, rel_tol=1e-4) for target in (g_value, g_value * 100, g_value / 100)):
        return None
    return Verdict(False, "numeric", answer, f"plain integers: answer {a_value}, ground truth {g_value}: not equal "
                   "(not within prime_math's tolerance of it, or of it as a percentage)")


def worker_error_limit(batch_size: int, max_fraction: float = DEFAULT_MAX_WORKER_ERROR_FRACTION) -> int:
    """Faults (worker errors, unusable verifier replies) in a batch of ``batch_size`` answers at which it raises."""
    return max(2, math.ceil(max_fraction * batch_size))


def is_fault(verdict: Verdict) -> bool:
    """Did a checker fail on this answer (whatever settled it afterwards)?"""
    return verdict.source in FAULT_SOURCES or not FAULT_SOURCES.isdisjoint(verdict.also)


def check_fault_budget(verdicts: Sequence[Verdict], max_fraction: float = DEFAULT_MAX_WORKER_ERROR_FRACTION) -> None:
    """Raise when too many answers of a batch got no real verdict; log the faults otherwise.

    Worker errors and unusable verifier replies count together: both mean a checker, not the answer, failed.
    """
    faulty = [(i, v) for i, v in enumerate(verdicts) if is_fault(v)]
    if not faulty:
        return
    counts: dict[str, int] = {}
    for _, verdict in faulty:
        for source in [verdict.source, *verdict.also]:
            if source in FAULT_SOURCES:
                counts[source] = counts.get(source, 0) + 1
    summary = ", ".join(f"{source} {count}" for source, count in sorted(counts.items()))
    examples = "; ".join(f"item {i} (answer {str(v.answer)[:60]!r}): {v.source}: {v.detail[:200]}" for i, v in faulty[:3])
    limit = worker_error_limit(len(verdicts), max_fraction)
    if len(faulty) >= limit:
        error = VerifierUnusable if "verifier_unusable" in counts else RuleCheckUnavailable
        raise error(
            f"the checkers failed on {len(faulty)} of {len(verdicts)} answers ({summary}; limit {limit}: "
            f"max(2, {max_fraction:g} x batch)), so a checker, not the answers, looks broken (out of memory? killed "
            f"from outside? verifier context or max tokens too small?); no verdicts returned. First: {examples}"
        )
    log.warning("%d of %d answers marked wrong because their checker failed (%s): %s", len(faulty), len(verdicts),
                summary, examples)


def rule_batch_deadline(batch_size: int, timeout_s: float, workers: int) -> float:
    """Default seconds for one rule-check batch (see ``VerifyConfig.rule_batch_deadline_s``)."""
    return WORKER_START_ALLOWANCE_S + 4 * math.ceil(batch_size / workers) * timeout_s


def _stage(pool, stage: str, items: dict[int, tuple[str, str, str]], timeout_s: float, deadline: float) -> tuple[dict, set]:
    """Outcomes of one worker stage for ``items`` (index -> (answer, gold, rung)); an item whose worker dies is
    retried once. Returns (outcomes by index, indices that crashed once)."""
    order = list(items)

    def message(i: int) -> list:
        answer, gold, rung = items[i]
        return [answer, gold, stage, rung] if rung else [answer, gold, stage]

    outcomes = dict(zip(order, pool.map([message(i) for i in order], timeout_s, deadline)))
    crashed = {i for i in order if outcomes[i].status == "crash"}
    if crashed:  # the dead worker is replaced; a second death on the same answer is the answer's doing
        again = sorted(crashed)
        outcomes.update(zip(again, pool.map([message(i) for i in again], timeout_s, deadline)))
    return outcomes, crashed


def _step(outcome, stage: str, crashed: bool) -> Verdict:
    """One stage's outcome as a verdict (answer filled in by the caller)."""
    if outcome.status == "ok":
        value = outcome.value
        return Verdict(bool(value["correct"]), value["source"], None, value["detail"])
    if outcome.status == "timeout":
        return Verdict(False, "timeout", None, f"{stage}: {outcome.detail}")
    again = " (also on its retry)" if crashed else ""  # "crash" twice, or "error": the check itself raised
    return Verdict(False, "worker_error", None, f"{stage}: {outcome.detail}{again}")


def _combine(answer: str | None, steps: list[Verdict], rung: str = "") -> Verdict:
    """The rule verdict from its stages: the accepting stage if any; else the first fault, else the first stage."""
    accepted = [s for s in steps if s.correct]
    faults = [s for s in steps if s.source in ("timeout", "worker_error")]
    settled = accepted[0] if accepted else faults[0] if faults else steps[0]
    others = tuple(s.source for s in steps if s is not settled)
    detail = "; ".join(s.detail for s in [settled, *(s for s in steps if s is not settled)])
    return Verdict(settled.correct, settled.source, answer, detail, others, rung)


def rule_check_batch(
    answers: list[str | None],
    ground_truths: list[str],
    timeout_s: float = DEFAULT_RULE_TIMEOUT_S,
    workers: int | None = None,
    max_worker_error_fraction: float = DEFAULT_MAX_WORKER_ERROR_FRACTION,
    deadline_s: float | None = None,
    rungs: Sequence[str] | None = None,
) -> list[Verdict]:
    """Rule-check extracted answers against ground truths, in order; safe from any thread.

    ``rungs`` (from :func:`trm.traces.extract`, one per answer) are recorded in the verdicts; an answer of rung "tail"
    is a response's tail, whose answer the worker extracts (math-verify's extraction) before checking it.

    The worker stages run in the process-wide persistent worker pool (sized to the machine, created on first
    use); each item gets ``timeout_s`` seconds of worker time per stage, a worker that overruns is killed and
    replaced (source "timeout"). An item whose worker dies is retried once on another worker; if it fails again
    it is wrong with source "worker_error" and a warning is logged. When that happens to
    ``worker_error_limit(len(answers), max_worker_error_fraction)`` items or more, the workers are what is
    broken: raises :class:`RuleCheckUnavailable` rather than pass their failures off as wrong answers. It also
    raises when the batch passes ``deadline_s`` (default :func:`rule_batch_deadline`) or the workers cannot start.
    """
    from trm.rewards.math_rules import MATH_VERIFY, PRIME_MATH

    if len(answers) != len(ground_truths):
        raise ValueError(f"{len(answers)} answers but {len(ground_truths)} ground truths")
    answers = [None if a is None else str(a) for a in answers]
    golds = [clean_ground_truth(gt) for gt in ground_truths]
    rungs = list(rungs) if rungs is not None else [""] * len(answers)
    if len(rungs) != len(answers):
        raise ValueError(f"{len(answers)} answers but {len(rungs)} rungs")
    verdicts: list[Verdict | None] = [_precheck(a, g, r) for a, g, r in zip(answers, golds, rungs)]
    verdicts = [v if v is None or not rungs[i] else Verdict(v.correct, v.source, v.answer, v.detail, v.also, rungs[i])
                for i, v in enumerate(verdicts)]  # the constructor: dataclasses.replace costs ~10x as much per item
    todo = {i: (answers[i], golds[i], rungs[i] if rungs[i] == "tail" else "") for i, v in enumerate(verdicts) if v is None}
    if not todo:
        return verdicts  # type: ignore[return-value]
    pool = get_pool(RULE_CHECK_FUNCTION, workers)
    if deadline_s is None:
        deadline_s = rule_batch_deadline(len(todo), timeout_s, pool.size)
    deadline = time.monotonic() + deadline_s
    steps: dict[int, list[Verdict]] = {i: [] for i in todo}
    try:
        for stage in (MATH_VERIFY, PRIME_MATH):
            outcomes, crashed = _stage(pool, stage, todo, timeout_s, deadline)
            for i, outcome in outcomes.items():
                steps[i].append(_step(outcome, stage, i in crashed))
                if outcome.status == "ok" and "answer" in outcome.value:  # extracted from a tail by the worker
                    answers[i] = outcome.value["answer"]
            # the next stage sees what this one neither accepted nor settled (a worker error, a unit mismatch, ...);
            # a tail's answer is known now
            todo = {i: (answers[i], golds[i], "") for i in todo
                    if steps[i][-1].source not in ("worker_error", *SETTLED_SOURCES) and not steps[i][-1].correct}
            if not todo:
                break
    except (PoolStalled, WorkerStartError) as error:
        pool.shutdown()  # workers that hang while starting go with it; the next batch starts a fresh pool
        when = f" within its batch deadline of {deadline_s:g}s" if isinstance(error, PoolStalled) else ""
        raise RuleCheckUnavailable(f"the rule check could not run{when}: {error}") from error
    for i, item_steps in steps.items():
        verdicts[i] = _combine(answers[i], item_steps, rungs[i])
    failed = [v for v in verdicts if v.source == "worker_error"]  # type: ignore[union-attr]
    if failed:
        check_fault_budget([v for v in verdicts if v is not None], max_worker_error_fraction)
    return verdicts  # type: ignore[return-value]


def check_responses(
    responses: Sequence[str],
    ground_truths: Sequence[str],
    format: str = STRICT,
    **kwargs,
) -> list[Verdict]:
    """Extract each response's answer with the ladder (``format``: "strict" or "lenient", see
    :func:`trm.traces.extract`; a multi-part ground truth takes that many boxes) and rule-check it
    (:func:`rule_check_batch`, whose keyword arguments pass through). Each verdict names its rung."""
    if len(responses) != len(ground_truths):
        raise ValueError(f"{len(responses)} responses but {len(ground_truths)} ground truths")
    found = [extract(str(r), format, answer_parts(str(g))) for r, g in zip(responses, ground_truths)]
    return rule_check_batch([f.text for f in found], list(ground_truths), rungs=[f.rung for f in found], **kwargs)


def rule_check(answer: str | None, ground_truth: str, timeout_s: float = DEFAULT_RULE_TIMEOUT_S) -> Verdict:
    """Rule-check one extracted answer (same path and time bound as :func:`rule_check_batch`)."""
    return rule_check_batch([answer], [ground_truth], timeout_s=timeout_s)[0]


def _after_length_rule(rule_verdict: Verdict, answer: str, gold: str) -> Verdict:
    """The verdict when the length rule applies: it settles a plain "not equal", never a fault or the guard."""
    why = f"length rule: answer has {len(answer)} characters, ground truth {len(gold)}"
    if rule_verdict.source in _KEPT_BEFORE_LENGTH_RULE:
        return dataclasses.replace(rule_verdict, detail=f"{rule_verdict.detail}; {why}",
                                   also=(*rule_verdict.also, "length_rule"))
    return Verdict(False, "length_rule", answer, f"{why}; before: {rule_verdict.detail}",
                   (rule_verdict.source, *rule_verdict.also))


@dataclass(frozen=True, slots=True)
class VerifierQuestion:
    """An answer the rules did not accept and the LLM verifier is to judge (:func:`before_verifier`)."""

    question: str
    ground_truth: str  # cleaned (clean_ground_truth)
    answer: str
    rule_verdict: Verdict


def before_verifier(rule_verdict: Verdict, ground_truth: str, *, data_source: str, question: str,
                    config: VerifyConfig, verifier_available: bool = True) -> Verdict | VerifierQuestion:
    """The verdict when the rules settle an answer (accepted, no answer, the length rule, a source the LLM verifier
    does not judge); else the question to put to the verifier. Pure: a batch routes its answers with it at once."""
    if rule_verdict.correct or rule_verdict.source == "no_answer":
        return rule_verdict
    answer = rule_verdict.answer or ""
    gold = clean_ground_truth(ground_truth)
    if config.length_rule and too_long(answer, gold):
        return _after_length_rule(rule_verdict, answer, gold)
    if not verifier_available or data_source not in config.llm_data_sources:
        return rule_verdict
    return VerifierQuestion(question, gold, answer, rule_verdict)


def after_verifier(asked: VerifierQuestion, verdict: Verdict) -> Verdict:
    """The verifier's verdict, with the rule steps that came before it recorded in ``also``."""
    before = asked.rule_verdict
    return Verdict(verdict.correct, verdict.source, verdict.answer, verdict.detail,
                   (before.source, *before.also, *verdict.also), verdict.rung)


async def verify_response(
    response: str,
    ground_truth: str,
    *,
    data_source: str,
    question: str,
    verifier=None,
    config: VerifyConfig | None = None,
    rule_verdict: Verdict | None = None,
) -> Verdict:
    """Full verdict for one response: rule check (or the given ``rule_verdict``), length rule, LLM verifier.

    ``rule_verdict`` lets a caller rule-check a whole batch at once with :func:`rule_check_batch` and pass
    each item's verdict here. The LLM verifier runs only when the rule check failed (a timeout counts as failed),
    ``data_source`` is in ``config.llm_data_sources`` and a ``verifier`` (a
    :class:`trm.rewards.llm_verifier.GeneralVerifier`, :meth:`VerifyConfig.verifier`) is given; its backend errors
    propagate.
    """
    config = config or VerifyConfig()
    if rule_verdict is None:
        (rule_verdict,) = await asyncio.to_thread(check_responses, [response], [ground_truth], config.answer_format,
                                                  timeout_s=config.rule_timeout_s)
    step = before_verifier(rule_verdict, ground_truth, data_source=data_source, question=question, config=config,
                           verifier_available=verifier is not None)
    if isinstance(step, Verdict):
        return step
    return after_verifier(step, await verifier.verify(step.question, step.ground_truth, step.answer))
