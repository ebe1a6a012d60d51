"""A synthetic candidate pool in `trm generate`'s format, for the CPU walk-through and figure tests.

Tiny CPU models cannot solve anything, so to show what `trm bon`, `trm eval` and `trm figures` produce, this
writes N scripted responses per question of a bundled fixture: each question gets a difficulty, correct
responses box the reference answer, wrong ones box one of a few distractors (so majority voting has something
to work with). Records say `"model": "synthetic"`; nothing here is a model's output.

    python -m trm.evaluation.toy --benchmark aime24 --data-dir data/benchmarks --n 16 --out runs/toy/gen.jsonl
"""

from __future__ import annotations

import argparse
import random
from pathlib import Path

from trm.evaluation.benchmarks import LETTERS, load_items
from trm.jsonio import append_jsonl

FILLER = ["First, restate what is asked.", "Set up the quantities involved.", "Compute the intermediate value.",
          "Wait, check that step again.", "Alternatively, try a different route.", "So the pieces fit together."]


def distractors(answer: str, answer_type: str, choices: list[str] | None, rng: random.Random) -> list[str]:
    if answer_type == "choice" and choices:
        return [LETTERS[i] for i in range(len(choices)) if LETTERS[i] != answer]
    try:
        value = float(answer)
        return [f"{value + d:g}" for d in (1, -1, 2)]
    except ValueError:
        return [f"not {answer}", "unknown", f"{answer}{answer}"]


def synthetic_records(items, n: int, seed: int = 0, accuracy: tuple[float, float] = (0.15, 0.85)) -> list[dict]:
    rng = random.Random(seed)
    records = []
    for index, item in enumerate(items):
        p = accuracy[0] + (accuracy[1] - accuracy[0]) * (index / max(1, len(items) - 1))
        wrong = distractors(item.answer, item.answer_type, item.choices, rng)
        responses = []
        for _ in range(n):
            ok = rng.random() < p
            steps = rng.sample(FILLER, rng.randint(2, len(FILLER)))
            final = item.answer if ok else rng.choice(wrong)
            responses.append("<think>\n" + "\n\n".join(steps) + "\n</think>\n" + f"The answer is \\boxed{{{final}}}.")
        records.append({"id": item.id, "benchmark": item.benchmark, "answer_type": item.answer_type,
                        "question": item.question, "choices": item.choices, "answer": item.answer,
                        "prompt": item.prompt, "model": "synthetic", "backend": "toy",
                        "sampling": {"n": n, "seed": seed}, "responses": responses})
    return records


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--benchmark", required=True), p.add_argument("--data"), p.add_argument("--data-dir")
    p.add_argument("--n", type=int, default=16), p.add_argument("--seed", type=int, default=0)
    p.add_argument("--repeat-items", type=int, default=1, help="use each fixture item this many times (more questions)")
    p.add_argument("--out", required=True)
    args = p.parse_args(argv)
    items = load_items(args.benchmark, args.data, args.data_dir)
    if args.repeat_items > 1:
        from dataclasses import replace

        items = [replace(it, id=f"{it.id}#{k}") for k in range(args.repeat_items) for it in items]
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("")
    append_jsonl(out, synthetic_records(items, args.n, args.seed))
    print(f"wrote {len(items)} synthetic records with {args.n} responses each to {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
