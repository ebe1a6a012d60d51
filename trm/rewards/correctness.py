"""Is the answer in a response right? Rule check first, then (only where allowed) the LLM verifier.

Order for one response (every verdict records which step decided it, in ``Verdict.source``):
1. no extractable answer -> wrong ("no_answer");
2. exact match after light normalisation -> right ("exact_match");
3. math-verify in a worker process with a hard time bound -> right ("math_verify"), or "timeout" if it hung;
   an answer whose worker dies is retried once on another worker; if it kills that one too it is wrong
   ("worker_error", logged), unless too many answers of the batch did that: then :class:`RuleCheckUnavailable`;
4. an answer much longer than the ground truth -> wrong ("length_rule"), before any LLM call;
5. only for data sources in ``VerifyConfig.llm_data_sources``: the LLM verifier ("llm_verifier").
Backend failures in step 5 raise; they never become a wrong verdict.
"""

from __future__ import annotations

import asyncio
import logging
import math
from dataclasses import dataclass, field

from trm.rewards.worker_pool import get_pool
from trm.traces import extract_answer, last_boxed

RULE_CHECK_FUNCTION = "trm.rewards.math_rules:check_item"
DEFAULT_RULE_TIMEOUT_S = 5.0
DEFAULT_MAX_WORKER_ERROR_FRACTION = 0.1
WEBINSTRUCT_VERIFIED = "TIGER-Lab/WebInstruct-verified"

log = logging.getLogger(__name__)


class RuleCheckUnavailable(RuntimeError):
    """Rule-check workers failed on too many answers of one batch: the checker, not the answers, is broken
    (out of memory, a broken install, workers killed from outside). Raised instead of returning verdicts."""


@dataclass(frozen=True)
class Verdict:
    """A correctness decision and why it was taken."""

    correct: bool
    source: str  # exact_match | math_verify | llm_verifier | length_rule | no_answer | timeout | worker_error
    answer: str | None = None  # the extracted answer that was judged
    detail: str = ""  # human-readable reason (parsed forms, verifier decision, error text)


@dataclass
class VerifyConfig:
    """How :func:`verify_response` decides correctness."""

    llm_data_sources: frozenset[str] = field(default_factory=lambda: frozenset({WEBINSTRUCT_VERIFIED}))
    """Data sources whose rule-check failures are re-judged by the LLM verifier (others stay rule-only)."""
    rule_timeout_s: float = DEFAULT_RULE_TIMEOUT_S
    """Hard time bound per answer for the math-verify check; a hung check is wrong with source "timeout"."""
    max_worker_error_fraction: float = DEFAULT_MAX_WORKER_ERROR_FRACTION
    """Answers whose rule-check worker dies twice (or whose check raises) are wrong with source "worker_error"
    and logged, so that one pathological answer cannot stop an RL run; but when at least max(2, this fraction
    of the batch) answers do so, :func:`rule_check_batch` raises :class:`RuleCheckUnavailable` instead."""
    length_rule: bool = True
    """Apply the paper's length rule (answer much longer than the ground truth is wrong) before the LLM."""
    verifier_model: str = "TIGER-Lab/general-verifier"
    """Model name sent to the verifier backends (the served model name)."""
    verifier_max_tokens: int = 512
    """Generation budget of the verifier; it writes its reasoning before the decision tag."""
    answer_tail_chars: int = 2000
    """The student answer is cut to its last this-many characters before it goes to the verifier."""

    def __post_init__(self):
        sources = self.llm_data_sources
        if isinstance(sources, str):  # "a,b" from a command line or a Hydra override, not a set of characters
            sources = [name.strip() for name in sources.split(",") if name.strip()]
        self.llm_data_sources = frozenset(sources)
        if self.rule_timeout_s <= 0:
            raise ValueError(f"rule_timeout_s must be > 0, got {self.rule_timeout_s}")
        if not 0 <= self.max_worker_error_fraction <= 1:
            raise ValueError(f"max_worker_error_fraction must be within [0, 1], got {self.max_worker_error_fraction}")


def clean_ground_truth(ground_truth: str) -> str:
    """Ground truths are sometimes stored boxed; compare against what is inside the box."""
    ground_truth = str(ground_truth).strip()
    boxed = last_boxed(ground_truth) if "\\boxed" in ground_truth or "\\fbox" in ground_truth else None
    return boxed if boxed is not None else ground_truth


def too_long(answer: str, ground_truth: str) -> bool:
    """The paper's length rule: len(answer) - len(gt) >= max(0.5 * len(gt), 10) means wrong."""
    return len(answer) - len(ground_truth) >= max(0.5 * len(ground_truth), 10)


def _precheck(answer: str | None, ground_truth: str) -> Verdict | None:
    """Decisions that need no worker: no answer, or an exact match."""
    from trm.rewards.math_rules import exact_match

    if answer is None or not str(answer).strip():
        return Verdict(False, "no_answer", None, "no final answer found in the response")
    if exact_match(answer, ground_truth):
        return Verdict(True, "exact_match", answer, "equal after normalisation")
    return None


def worker_error_limit(batch_size: int, max_fraction: float = DEFAULT_MAX_WORKER_ERROR_FRACTION) -> int:
    """Worker errors in a batch of ``batch_size`` answers at which :func:`rule_check_batch` raises."""
    return max(2, math.ceil(max_fraction * batch_size))


def rule_check_batch(
    answers: list[str | None],
    ground_truths: list[str],
    timeout_s: float = DEFAULT_RULE_TIMEOUT_S,
    workers: int | None = None,
    max_worker_error_fraction: float = DEFAULT_MAX_WORKER_ERROR_FRACTION,
) -> list[Verdict]:
    """Rule-check extracted answers against ground truths, in order; safe from any thread.

    math-verify runs in the process-wide persistent worker pool (sized to the machine, created on first
    use); each item gets ``timeout_s`` seconds of worker time, a worker that overruns is killed and replaced
    (the item is wrong, source "timeout"). An item whose worker dies is retried once on another worker; if it
    fails again it is wrong with source "worker_error" and a warning is logged. When that happens to
    ``worker_error_limit(len(answers), max_worker_error_fraction)`` items or more, the workers are what is
    broken: raises :class:`RuleCheckUnavailable` rather than pass their failures off as wrong answers.
    """
    if len(answers) != len(ground_truths):
        raise ValueError(f"{len(answers)} answers but {len(ground_truths)} ground truths")
    answers = [None if a is None else str(a) for a in answers]
    golds = [clean_ground_truth(gt) for gt in ground_truths]
    verdicts: list[Verdict | None] = [_precheck(a, g) for a, g in zip(answers, golds)]
    todo = [i for i, verdict in enumerate(verdicts) if verdict is None]
    if not todo:
        return verdicts  # type: ignore[return-value]
    pool = get_pool(RULE_CHECK_FUNCTION, workers)
    outcomes = dict(zip(todo, pool.map([[answers[i], golds[i]] for i in todo], timeout_s)))
    crashed = [i for i in todo if outcomes[i].status == "crash"]
    if crashed:  # the dead worker is replaced; a second death on the same answer is the answer's doing
        outcomes.update(zip(crashed, pool.map([[answers[i], golds[i]] for i in crashed], timeout_s)))
    failed = []
    for i in todo:
        outcome = outcomes[i]
        if outcome.status == "ok":
            value = outcome.value
            verdicts[i] = Verdict(bool(value["correct"]), value["source"], answers[i], value["detail"])
        elif outcome.status == "timeout":
            verdicts[i] = Verdict(False, "timeout", answers[i], outcome.detail)
        else:  # "crash" twice, or "error": the check itself raised
            again = " (also on its retry)" if i in crashed else ""
            verdicts[i] = Verdict(False, "worker_error", answers[i], f"{outcome.detail}{again}")
            failed.append(i)
    if failed:
        limit = worker_error_limit(len(answers), max_worker_error_fraction)
        examples = "; ".join(f"item {i} (answer {str(answers[i])[:60]!r}): {verdicts[i].detail}" for i in failed[:3])
        if len(failed) >= limit:
            raise RuleCheckUnavailable(
                f"the rule check failed on {len(failed)} of {len(answers)} answers (limit {limit}: "
                f"max(2, {max_worker_error_fraction:g} x batch)), so its workers, not the answers, look broken "
                f"(out of memory? killed from outside?); no verdicts returned. First: {examples}"
            )
        log.warning("rule check: %d of %d answers marked wrong (source worker_error) because their check failed "
                    "twice: %s", len(failed), len(answers), examples)
    return verdicts  # type: ignore[return-value]


def rule_check(answer: str | None, ground_truth: str, timeout_s: float = DEFAULT_RULE_TIMEOUT_S) -> Verdict:
    """Rule-check one extracted answer (same path and time bound as :func:`rule_check_batch`)."""
    return rule_check_batch([answer], [ground_truth], timeout_s=timeout_s)[0]


def shutdown_rule_check_pool() -> None:
    """Stop the rule-check workers of this process (they also stop at interpreter exit)."""
    from trm.rewards.worker_pool import shutdown_pools

    shutdown_pools()


async def verify_response(
    response: str,
    ground_truth: str,
    *,
    data_source: str,
    question: str,
    verifier_pool=None,
    config: VerifyConfig | None = None,
    rule_verdict: Verdict | None = None,
) -> Verdict:
    """Full verdict for one response: rule check (or the given ``rule_verdict``), length rule, LLM verifier.

    ``rule_verdict`` lets a caller rule-check a whole batch at once with :func:`rule_check_batch` and pass
    each item's verdict here. The LLM verifier runs only when the rule check failed (a timeout counts as failed),
    ``data_source`` is in ``config.llm_data_sources`` and a ``verifier_pool`` (a
    :class:`trm.client.BackendPool`) is given; its backend errors propagate.
    """
    config = config or VerifyConfig()
    if rule_verdict is None:
        answer = extract_answer(response)
        rule_verdict = await asyncio.to_thread(rule_check, answer, ground_truth, config.rule_timeout_s)
    if rule_verdict.correct or rule_verdict.source == "no_answer":
        return rule_verdict
    answer = rule_verdict.answer or ""
    gold = clean_ground_truth(ground_truth)
    if config.length_rule and too_long(answer, gold):
        return Verdict(False, "length_rule", answer, f"answer has {len(answer)} characters, ground truth {len(gold)}")
    if verifier_pool is None or data_source not in config.llm_data_sources:
        return rule_verdict
    from trm.rewards.llm_verifier import llm_verify

    return await llm_verify(
        verifier_pool,
        question,
        gold,
        answer,
        model=config.verifier_model,
        max_tokens=config.verifier_max_tokens,
        answer_tail_chars=config.answer_tail_chars,
    )
