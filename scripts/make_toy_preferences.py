#!/usr/bin/env python3
"""Write toy TRM-Preference pairs: two correct traces per question, the rejected one with ME² defects.

Both traces of a pair solve the same small arithmetic question and box the same (correct) answer. The
chosen trace is clean; the rejected trace carries one or two thinking defects from the ME² principle:

- redundant restart   (macro-efficiency): abandons finished work and starts over;
- paraphrase loop     (micro-efficiency): restates a step in other words without progress;
- filler              (micro-efficiency): hedging and throat-clearing that does no work;
- contradicted step   (micro-effectiveness): states a wrong intermediate value, then takes it back.

There is no length shortcut: the chosen trace is padded with *useful* steps (a check, a justification) until
both traces have similar lengths, and which of the two is longer is a coin flip per pair, so "the shorter
trace wins" scores about 50%. The defects use distinctive words (wait, hmm, again, other words, ...) so a
2-layer model with a few hundred tokens of vocabulary can learn them in seconds; that is the point of a toy set.

    python scripts/make_toy_preferences.py --train 400 --test 100 --seed 0 --out data/toy_preferences
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

NAMES = ("Ada", "Ben", "Cleo", "Dev", "Eli", "Fay", "Gus", "Hana")
ITEMS = ("pencils", "apples", "stamps", "marbles", "books", "cards")


def _question(rng: random.Random) -> dict:
    """A two-step question with its intermediate value and answer."""
    name, item = rng.choice(NAMES), rng.choice(ITEMS)
    a, b, c = rng.randint(2, 40), rng.randint(2, 9), rng.randint(3, 19)
    product, total = b * c, a + b * c
    text = f"{name} has {a} {item} and buys {b} packs of {c} {item}. How many {item} does {name} have now?"
    return {"text": text, "a": a, "b": b, "c": c, "product": product, "total": total, "item": item, "name": name}


def _core_steps(q: dict) -> list[str]:
    return [
        f"Each pack has {q['c']} {q['item']}, so {q['b']} packs hold {q['b']} * {q['c']} = {q['product']}.",
        f"Adding the {q['a']} {q['item']} from the start gives {q['a']} + {q['product']} = {q['total']}.",
    ]


def _useful_steps(q: dict) -> list[str]:
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
    return f"{opener} {_core_steps(q)[0]}"


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


def _render(q: dict, steps: list[str]) -> str:
    body = "\n".join(steps)
    return f"<think>\n{body}\n</think>\n\n{q['name']} has \\boxed{{{q['total']}}} {q['item']}."


def make_pair(rng: random.Random, max_tries: int = 200) -> dict:
    """One record; the two reasoning traces differ in length by at most 12% and either may be longer."""
    chosen_longer = rng.random() < 0.5
    for _ in range(max_tries):
        q = _question(rng)
        useful = _useful_steps(q)
        rng.shuffle(useful)
        core = _core_steps(q)
        defect_names = rng.sample(sorted(DEFECTS), rng.choice((1, 2)))
        # Rejected: core steps, maybe one useful step, the defects placed between or after the core steps.
        rejected_steps = list(core)
        if rng.random() < 0.5:
            rejected_steps.insert(rng.randint(1, len(rejected_steps)), useful.pop())
        for name in defect_names:
            rejected_steps.insert(rng.randint(1, len(rejected_steps)), DEFECTS[name](q, rng))
        # Chosen: core steps plus useful steps until its length is near the rejected one.
        target = sum(len(s) for s in rejected_steps)
        chosen_steps = list(core)
        while useful and sum(len(s) for s in chosen_steps) < target * (1.0 if chosen_longer else 0.88):
            chosen_steps.insert(rng.randint(1, len(chosen_steps)), useful.pop())
        chosen, rejected = _render(q, chosen_steps), _render(q, rejected_steps)
        ratio = len(chosen) / len(rejected)
        if 0.88 <= ratio <= 1.12 and (len(chosen) > len(rejected)) == chosen_longer:
            return {
                "prompt": [{"role": "user", "content": q["text"]}],
                "chosen": [{"role": "assistant", "content": chosen}],
                "rejected": [{"role": "assistant", "content": rejected}],
                "defects": defect_names,
            }
    raise RuntimeError("could not build a length-matched pair; widen the tolerance")


def make_pairs(n: int, seed: int) -> list[dict]:
    rng = random.Random(seed)
    return [make_pair(rng) for _ in range(n)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--train", type=int, default=400, help="number of training pairs")
    parser.add_argument("--test", type=int, default=100, help="number of held-out pairs (different seed stream)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="data/toy_preferences", help="prefix: writes PREFIX_train.jsonl, PREFIX_test.jsonl")
    args = parser.parse_args(argv)
    rows = make_pairs(args.train + args.test, args.seed)
    for split, part in (("train", rows[: args.train]), ("test", rows[args.train :])):
        path = Path(f"{args.out}_{split}.jsonl")
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "w", encoding="utf-8") as handle:
            for row in part:
                handle.write(json.dumps(row, ensure_ascii=False) + "\n")
        print(f"wrote {len(part)} pairs to {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
