"""Pairwise ME² judging of two correct responses, with position-bias control.

One *judgement* of an ordered pair (Trace 1, Trace 2) is four dimension comparisons (macro dimensions on the
macro views, micro dimensions on the dominant paths) and one aggregation call that weighs them. A pair is
judged in both orders, ``repetitions`` times per order (the four dimension requests of an order ask for
``repetitions`` samples at once, so R repetitions cost 4 requests plus R aggregation requests per order).

Consistency rule (which labels are kept): each aggregated verdict is mapped back from positions to responses.
With ``min_agreement = 1.0`` (default) a label is kept only if all 2R verdicts were parsed, none is a tie, and
all name the same response. With a lower value, the winner must be the majority in each order separately and
hold at least that share of all 2R verdicts. A dropped pair gets one reason, checked in this order:
``unparsable`` (some verdict had no decision), ``position_bias`` (each order's majority is the same
*position*, so the verdicts follow the slot, not the trace), ``tie`` (ties kept the winner below the bar),
``inconsistent`` (anything else). Every judgement, with its rationale, stays in the outcome for audit.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import dataclass, field

from trm.dag.build import DagConfig
from trm.llm.client import ChatClient, Usage
from trm.preference.prompts import DIMENSIONS, aggregation_messages, decision_words, pairwise_messages, parse_decision
from trm.preference.views import TraceViews, ViewConfig, build_views

DROP_REASONS = ("unparsable", "position_bias", "tie", "inconsistent")


@dataclass
class PairwiseConfig:
    """How a pair is judged; the one declaration of these settings, whose flags `trm preference build` and
    `trm eval winrate` derive (trm.preference.build_cli.add_pairwise_arguments)."""

    repetitions: int = field(default=3, metadata={"help": "judgements per order (both orders are judged)"})
    min_agreement: float = field(default=1.0, metadata={
        "help": "share of all verdicts the winner needs (1.0 = unanimous)"})
    temperature: float = field(default=0.7, metadata={
        "help": "judge sampling temperature (> 0 so that repetitions are real re-samples)"})
    top_p: float = field(default=0.95, metadata={"help": "judge nucleus sampling"})
    max_tokens: int = field(default=1024, metadata={"help": "judge answer budget per verdict"})
    view_chars: int = field(default=12000, metadata={"help": "clip each view a dimension judge reads to this length"})
    parse_retries: int = field(default=2, metadata={"help": "re-asks when a verdict has no <|decision|>"})


@dataclass
class Verdict:
    decision: str | None  # positional: "1", "2", "tie", or None (unparsable)
    prefers: int | str | None  # the response it favours: 1, 2, "tie", or None
    rationale: str
    attempts: int = 1

    def to_dict(self) -> dict:
        return {
            "decision": self.decision,
            "prefers": self.prefers,
            "rationale": self.rationale,
            "attempts": self.attempts,
        }


@dataclass
class Judgement:
    """One repetition in one order: four dimension verdicts and the aggregated verdict."""

    order: tuple[int, int]  # which response sits in position 1 and 2
    repetition: int
    dimensions: dict[str, Verdict]
    aggregate: Verdict

    def to_dict(self) -> dict:
        return {
            "order": list(self.order),
            "repetition": self.repetition,
            "dimensions": {name: verdict.to_dict() for name, verdict in self.dimensions.items()},
            "aggregate": self.aggregate.to_dict(),
        }


@dataclass
class PairOutcome:
    """``label`` is 1 or 2 (the better response) or None; ``reason`` says why (``consistent`` when kept)."""

    label: int | None
    reason: str
    votes: dict[str, int]
    judgements: list[Judgement]
    views: tuple[TraceViews, TraceViews]
    usage: Usage = field(default_factory=Usage)

    def to_dict(self, include_views: bool = True) -> dict:
        out = {
            "label": self.label,
            "reason": self.reason,
            "votes": self.votes,
            "judgements": [j.to_dict() for j in self.judgements],
            "usage": self.usage.to_dict(),
        }
        if include_views:
            out["views"] = [v.to_dict() for v in self.views]
        return out


def _position_to_response(decision: str | None, order: tuple[int, int]) -> int | str | None:
    if decision in ("1", "2"):
        return order[int(decision) - 1]
    return decision  # "tie" or None


def consistency_label(
    verdicts: list[tuple[tuple[int, int], int | str | None]], min_agreement: float = 1.0
) -> tuple[int | None, str]:
    """Apply the consistency rule to (order, preferred response) verdicts; returns (label, reason)."""
    if not verdicts or any(prefers is None for _, prefers in verdicts):
        return None, "unparsable"
    by_order: dict[tuple[int, int], Counter] = {}
    for order, prefers in verdicts:
        by_order.setdefault(order, Counter())[prefers] += 1
    majorities = {}
    for order, counts in by_order.items():
        top = counts.most_common()
        unique = len(top) == 1 or top[0][1] > top[1][1]
        majorities[order] = top[0][0] if unique else None
    total = Counter(prefers for _, prefers in verdicts)
    for winner in (1, 2):
        per_order_ok = len(majorities) == 2 and all(m == winner for m in majorities.values())
        if per_order_ok and total[winner] >= min_agreement * len(verdicts) - 1e-9:
            return winner, "consistent"
    positions = {order.index(m) if m in order else None for order, m in majorities.items()}
    if len(majorities) == 2 and len(positions) == 1 and None not in positions:
        return None, "position_bias"
    if total["tie"]:
        return None, "tie"
    return None, "inconsistent"


async def _ask(judge, messages, n, config, usage) -> list[Verdict]:
    """``n`` parsed verdicts; unparsable answers are re-asked up to ``parse_retries`` times each."""
    answers = await judge.chat(
        messages, n=n, temperature=config.temperature, top_p=config.top_p, max_tokens=config.max_tokens, usage=usage
    )
    verdicts = []
    for answer in answers:
        decision, rationale = parse_decision(answer)
        attempts = 1
        while decision is None and attempts <= config.parse_retries:
            (answer,) = await judge.chat(
                messages,
                n=1,
                temperature=config.temperature,
                top_p=config.top_p,
                max_tokens=config.max_tokens,
                usage=usage,
            )
            decision, rationale = parse_decision(answer)
            attempts += 1
        verdicts.append(Verdict(decision, None, rationale, attempts))
    return verdicts


async def _judge_order(
    judge: ChatClient,
    question: str,
    first: TraceViews,
    second: TraceViews,
    order: tuple[int, int],
    config: PairwiseConfig,
    usage: Usage,
) -> list[Judgement]:
    reps = config.repetitions

    async def dimension(dim):
        view = (lambda v: v.macro) if dim.view == "macro" else (lambda v: v.micro)
        messages = pairwise_messages(dim, question, view(first), view(second), config.view_chars)
        return await _ask(judge, messages, reps, config, usage)

    per_dimension = await asyncio.gather(*(dimension(dim) for dim in DIMENSIONS))

    async def aggregate(rep: int) -> Verdict:
        verdicts = [
            (dim, decision_words(per_dimension[k][rep].decision), per_dimension[k][rep].rationale)
            for k, dim in enumerate(DIMENSIONS)
        ]
        messages = aggregation_messages(question, ((first.macro, first.micro), (second.macro, second.micro)), verdicts)
        return (await _ask(judge, messages, 1, config, usage))[0]

    aggregates = await asyncio.gather(*(aggregate(rep) for rep in range(reps)))
    judgements = []
    for rep in range(reps):
        dims = {}
        for k, dim in enumerate(DIMENSIONS):
            verdict = per_dimension[k][rep]
            verdict.prefers = _position_to_response(verdict.decision, order)
            dims[dim.name] = verdict
        agg = aggregates[rep]
        agg.prefers = _position_to_response(agg.decision, order)
        judgements.append(Judgement(order, rep, dims, agg))
    return judgements


async def judge_pair(
    judge: ChatClient, question: str, views_1: TraceViews, views_2: TraceViews, config: PairwiseConfig | None = None
) -> PairOutcome:
    """Both orders x R repetitions on prepared views, then the consistency rule."""
    config = config or PairwiseConfig()
    usage = Usage()
    forward, backward = await asyncio.gather(
        _judge_order(judge, question, views_1, views_2, (1, 2), config, usage),
        _judge_order(judge, question, views_2, views_1, (2, 1), config, usage),
    )
    judgements = forward + backward
    verdicts = [(j.order, j.aggregate.prefers) for j in judgements]
    label, reason = consistency_label(verdicts, config.min_agreement)
    votes = Counter(str(prefers) for _, prefers in verdicts)
    return PairOutcome(label, reason, dict(votes), judgements, (views_1, views_2), usage)


async def compare_responses(
    judge: ChatClient,
    question: str,
    response_1: str | TraceViews,
    response_2: str | TraceViews,
    *,
    repetitions: int = PairwiseConfig.repetitions,
    config: PairwiseConfig | None = None,
    dag_config: DagConfig | None = None,
    view_config: ViewConfig | None = None,
    keywords: frozenset[str] | None = None,
) -> PairOutcome:
    """Which of two responses reasons better: DAGs, views, four ME² judgements + aggregation, both orders.

    Responses may be given as text or as :class:`TraceViews` already built (e.g. a trace compared several times).
    ``outcome.usage`` includes the cost of building views made here.
    """
    config = config or PairwiseConfig(repetitions=repetitions)  # a given config's own repetitions win

    async def views(response):
        if isinstance(response, TraceViews):
            return response, Usage()
        built = await build_views(judge, question, response, dag_config, view_config, keywords)
        return built, built.usage

    (views_1, usage_1), (views_2, usage_2) = await asyncio.gather(views(response_1), views(response_2))
    outcome = await judge_pair(judge, question, views_1, views_2, config)
    outcome.usage.add(usage_1)
    outcome.usage.add(usage_2)
    return outcome
