"""Best-of-N selectors (a registry, name -> class): pick one candidate out of a subset of a question's responses.

`prepare(records)` sees every candidate once (so scorers are called once per response, not once per subset);
`choose(question, subset, rng)` returns the chosen candidate index. Scores come from a `Scorer`, any callable
`list[str] -> list[float]` over TRM inputs (`trm.traces.trm_input(prompt, response)`).
"""

from __future__ import annotations

import random
import re
from typing import Callable, Sequence

from trm.traces import extract_answer, reasoning, trm_input

Scorer = Callable[[list[str]], list[float]]


class Selector:
    name = "base"

    def prepare(self, records: list[dict]) -> None:
        self.records = records

    def choose(self, question: int, subset: Sequence[int], rng: random.Random) -> int:
        raise NotImplementedError


class ScoreSelector(Selector):
    """Highest score wins (the TRM, or any other reward model); ties go to the earliest candidate in the subset."""

    name = "trm"

    def __init__(self, scorer: Scorer | None = None, scores: list[list[float]] | None = None, prompt_field: str = "prompt",
                 name: str | None = None):
        if scorer is None and scores is None:
            raise ValueError("a score selector needs a scorer or precomputed scores")
        self.scorer, self.scores, self.prompt_field = scorer, scores, prompt_field
        if name:
            self.name = name

    def prepare(self, records: list[dict]) -> None:
        super().prepare(records)
        if self.scores is None:
            texts = [trm_input(str(r[self.prompt_field]), resp) for r in records for resp in r["responses"]]
            flat = list(self.scorer(texts))
            if len(flat) != len(texts):
                raise RuntimeError(f"scorer returned {len(flat)} scores for {len(texts)} texts")
            self.scores, at = [], 0
            for r in records:
                self.scores.append(flat[at : at + len(r["responses"])])
                at += len(r["responses"])
        if len(self.scores) != len(records) or any(len(s) != len(r["responses"]) for s, r in zip(self.scores, records)):
            raise ValueError("scores do not match the candidates (one list per question, one score per response)")

    def choose(self, question, subset, rng):
        row = self.scores[question]
        return max(subset, key=lambda j: (row[j], -subset.index(j)))


_SPACES = re.compile(r"\s+")


def answer_key(answer: str | None) -> str | None:
    """A light normal form for voting: no spaces, $, \\left/\\right, \\text{} wrapper or trailing period."""
    if answer is None:
        return None
    text = answer.replace("\\left", "").replace("\\right", "").replace("\\!", "").replace("$", "")
    text = _SPACES.sub("", text).rstrip(".")
    if text.startswith("\\text{") and text.endswith("}"):
        text = text[6:-1]
    return text.lower() or None


class MajorityVote(Selector):
    """The most frequent final answer; ties go to the answer seen first in the subset; no-answer never votes."""

    name = "majority"

    def prepare(self, records):
        super().prepare(records)
        self.keys = [[answer_key(extract_answer(resp)) for resp in r["responses"]] for r in records]

    def choose(self, question, subset, rng):
        keys = self.keys[question]
        counts: dict[str, int] = {}
        for j in subset:
            if keys[j] is not None:
                counts[keys[j]] = counts.get(keys[j], 0) + 1
        if not counts:
            return subset[0]
        best = max(counts.values())
        for j in subset:
            if keys[j] is not None and counts[keys[j]] == best:
                return j
        raise AssertionError("unreachable")


class RandomSelector(Selector):
    """A uniformly random candidate: the N=1 baseline at every N."""

    name = "random"

    def choose(self, question, subset, rng):
        return subset[rng.randrange(len(subset))]


class ShortestTrace(Selector):
    """The candidate with the shortest reasoning trace (characters)."""

    name = "shortest"

    def prepare(self, records):
        super().prepare(records)
        self.lengths = [[len(reasoning(resp)) for resp in r["responses"]] for r in records]

    def choose(self, question, subset, rng):
        return min(subset, key=lambda j: self.lengths[question][j])


class Oracle(Selector):
    """A correct candidate whenever the subset has one: the pass@N ceiling (needs graded records)."""

    name = "oracle"

    def choose(self, question, subset, rng):
        correct = self.records[question]["correct"]
        for j in subset:
            if correct[j]:
                return j
        return subset[0]


SELECTORS: dict[str, type[Selector]] = {
    "trm": ScoreSelector,
    "reward": ScoreSelector,
    "majority": MajorityVote,
    "random": RandomSelector,
    "shortest": ShortestTrace,
    "oracle": Oracle,
}
