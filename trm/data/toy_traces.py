"""Toy reasoning traces for small word problems: clean ones, and ones with ME² thinking defects.

One generator feeds two toys: the TRM-Preference pairs in `data/toy_preferences_*.jsonl` (written by
`scripts/make_toy_preferences.py`) and the synthetic best-of-N pool of `trm.evaluation.toy`. Every trace
solves a two-step question correctly; a defective trace also carries one or two defects from the ME² principle:

- redundant restart   (macro-efficiency): abandons finished work and starts over;
- paraphrase loop     (micro-efficiency): restates a step in other words without progress;
- filler              (micro-efficiency): hedging and throat-clearing that does no work;
- contradicted step   (micro-effectiveness): states a wrong intermediate value, then takes it back.

There is no length shortcut: a clean trace is padded with *useful* steps (a check, a justification) until it
is about as long as its defective twin, and which of the two is longer is a coin flip. The defects use
distinctive words (wait, hmm, again, other words, ...) so a 2-layer model with a few hundred tokens of
vocabulary learns them in seconds; that is the point of a toy set.

The order of random draws is part of the contract: the committed toy pairs are reproduced byte for byte from
a seed, so changing what is drawn when changes those files.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

NAMES = ("Ada", "Ben", "Cleo", "Dev", "Eli", "Fay", "Gus", "Hana")
ITEMS = ("pencils", "apples", "stamps", "marbles", "books", "cards")


def question(rng: random.Random) -> dict:
    """A two-step question with its intermediate value and answer."""
    name, item = rng.choice(NAMES), rng.choice(ITEMS)
    a, b, c = rng.randint(2, 40), rng.randint(2, 9), rng.randint(3, 19)
    product, total = b * c, a + b * c
    text = f"{name} has {a} {item} and buys {b} packs of {c} {item}. How many {item} does {name} have now?"
    return {"text": text, "a": a, "b": b, "c": c, "product": product, "total": total, "item": item, "name": name}


def core_steps(q: dict) -> list[str]:
    return [
        f"Each pack has {q['c']} {q['item']}, so {q['b']} packs hold {q['b']} * {q['c']} = {q['product']}.",
        f"Adding the {q['a']} {q['item']} from the start gives {q['a']} + {q['product']} = {q['total']}.",
    ]


def useful_steps(q: dict) -> list[str]:
    """Sentences that do real work (checks, justifications); used to lengthen a trace without defects."""
    return [
        f"Check the product: {q['product']} / {q['c']} = {q['b']}, which is the number of packs.",
        f"Check the sum: {q['total']} - {q['a']} = {q['product']}, matching the bought {q['item']}.",
        f"The packs are bought on top of what {q['name']} had, so the two amounts add.",
        f"Multiplication comes first because every pack holds the same count of {q['item']}.",
        f"As an estimate, {q['b']} packs of about {q['c']} is close to {q['product']}, so the size is right.",
        f"Both counts are whole {q['item']}, so the total must be a whole number too.",
    ]


def _restart(q: dict, rng: random.Random) -> str:
    opener = rng.choice(("Wait, let me start over from the beginning.", "Hmm, wait, I will redo this all again."))
    return f"{opener} {core_steps(q)[0]}"


def _paraphrase(q: dict, rng: random.Random) -> str:
    return rng.choice((
        f"In other words, {q['b']} packs of {q['c']} means {q['product']} {q['item']}. "
        f"Put in other words again, {q['product']} is {q['b']} times {q['c']}.",
        f"So again, in other words, the packs give {q['product']}. "
        f"Said again in other words, {q['b']} times {q['c']} is {q['product']}.",
    ))


def _filler(q: dict, rng: random.Random) -> str:
    return rng.choice((
        "Hmm, okay, so, hmm, let me just think about this for a moment, maybe, hmm.",
        "Okay, hmm, so basically, maybe, I just need to, hmm, think about it again.",
    ))


def _contradiction(q: dict, rng: random.Random) -> str:
    wrong = q["product"] + rng.choice((-3, -2, -1, 1, 2, 3)) * q["b"]
    return (
        f"So {q['b']} * {q['c']} = {wrong}, hmm, no, wait, that is wrong, "
        f"actually {q['b']} * {q['c']} = {q['product']}."
    )


DEFECTS = {
    "redundant_restart": _restart,
    "paraphrase_loop": _paraphrase,
    "filler": _filler,
    "contradicted_step": _contradiction,
}
"""Defect name -> function(question, rng) returning the defective sentence."""


def think_block(steps: list[str]) -> str:
    body = "\n".join(steps)
    return f"<think>\n{body}\n</think>"


def render(q: dict, steps: list[str]) -> str:
    """A full response: the reasoning, then the question's answer in a box."""
    return f"{think_block(steps)}\n\n{q['name']} has \\boxed{{{q['total']}}} {q['item']}."


@dataclass(frozen=True)
class TracePair:
    """Two traces for one question; rendered with `render`, they differ in length by at most 12%."""

    question: dict
    """The question both traces solve (see `question`)."""
    clean: list[str]
    """Reasoning steps without defects."""
    defective: list[str]
    """Reasoning steps carrying the defects below."""
    defects: list[str]
    """Names (keys of `DEFECTS`) of the defects in `defective`, one or two."""


def trace_pair(rng: random.Random, max_tries: int = 200) -> TracePair:
    """A clean and a defective trace of similar length; which one is longer is a coin flip."""
    clean_longer = rng.random() < 0.5
    for _ in range(max_tries):
        q = question(rng)
        useful = useful_steps(q)
        rng.shuffle(useful)
        core = core_steps(q)
        defect_names = rng.sample(sorted(DEFECTS), rng.choice((1, 2)))
        # Defective: core steps, maybe one useful step, the defects placed between or after the core steps.
        defective = list(core)
        if rng.random() < 0.5:
            defective.insert(rng.randint(1, len(defective)), useful.pop())
        for name in defect_names:
            defective.insert(rng.randint(1, len(defective)), DEFECTS[name](q, rng))
        # Clean: core steps plus useful steps until its length is near the defective one.
        target = sum(len(s) for s in defective)
        clean = list(core)
        while useful and sum(len(s) for s in clean) < target * (1.0 if clean_longer else 0.88):
            clean.insert(rng.randint(1, len(clean)), useful.pop())
        clean_chars, defective_chars = len(render(q, clean)), len(render(q, defective))
        if 0.88 <= clean_chars / defective_chars <= 1.12 and (clean_chars > defective_chars) == clean_longer:
            return TracePair(q, clean, defective, defect_names)
    raise RuntimeError("could not build a length-matched pair; widen the tolerance")


def make_pair(rng: random.Random) -> dict:
    """One TRM-Preference record: the clean trace is chosen, the defective one rejected."""
    pair = trace_pair(rng)
    q = pair.question
    return {
        "prompt": [{"role": "user", "content": q["text"]}],
        "chosen": [{"role": "assistant", "content": render(q, pair.clean)}],
        "rejected": [{"role": "assistant", "content": render(q, pair.defective)}],
        "defects": pair.defects,
    }


def make_pairs(n: int, seed: int) -> list[dict]:
    rng = random.Random(seed)
    return [make_pair(rng) for _ in range(n)]
