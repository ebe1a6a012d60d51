"""A synthetic candidate pool in `trm generate`'s format, for the CPU walk-through and figure tests.

Tiny CPU models cannot solve anything, so to show what `trm eval bon`, `trm eval accuracy` and `trm eval figures`
produce, this writes N scripted responses per question of a bundled fixture: each question gets a difficulty, correct
responses box the reference answer, wrong ones box one of a few distractors (so majority voting has something
to work with). Records say `"model": "synthetic"`; nothing here is a model's output.

The reasoning of each response is a toy trace from `trm.data.toy_traces`, the generator of the toy preference
pairs the tiny TRM is trained on (it works a small word problem, not the benchmark question). The toy
assumption that makes a TRM useful here: wrong answers tend to come with defective thinking. A correct
response carries ME² defects with probability `--defect-rate-correct` (default 0.2), a wrong one with
`--defect-rate-wrong` (default 0.8); clean and defective traces have matched lengths. So a TRM that spots the
defects picks correct answers more often than chance, but is no oracle (clean wrong and defective correct
responses exist), and picking the shortest response does not help. Equal rates make the reasoning carry no
signal about correctness. Each record lists the defects of each response in `toy_defects` (empty: clean).

    python -m trm.evaluation.toy --benchmark aime24 --data-dir data/benchmarks --n 16 --output runs/toy/gen.jsonl
"""

from __future__ import annotations

import argparse
import random
from pathlib import Path

from trm.cli import HelpFormatter, add_alias
from trm.data.toy_traces import think_block, trace_pair
from trm.evaluation.benchmarks import LETTERS, load_items
from trm.jsonio import append_jsonl

DEFECT_RATE_CORRECT = 0.2
DEFECT_RATE_WRONG = 0.8


def distractors(answer: str, answer_type: str, choices: list[str] | None, rng: random.Random) -> list[str]:
    if answer_type == "choice" and choices:
        return [LETTERS[i] for i in range(len(choices)) if LETTERS[i] != answer]
    try:
        value = float(answer)
        return [f"{value + d:g}" for d in (1, -1, 2)]
    except ValueError:
        return [f"not {answer}", "unknown", f"{answer}{answer}"]


def synthetic_records(items, n: int, seed: int = 0, accuracy: tuple[float, float] = (0.15, 0.85),
                      defect_rate_correct: float = DEFECT_RATE_CORRECT,
                      defect_rate_wrong: float = DEFECT_RATE_WRONG) -> list[dict]:
    """N responses per item; item i is answered correctly with a probability rising linearly over `accuracy`."""
    for name, rate in (("defect_rate_correct", defect_rate_correct), ("defect_rate_wrong", defect_rate_wrong)):
        if not 0.0 <= rate <= 1.0:
            raise ValueError(f"{name} must be a probability in [0, 1], got {rate}")
    rng = random.Random(seed)
    records = []
    for index, item in enumerate(items):
        p = accuracy[0] + (accuracy[1] - accuracy[0]) * (index / max(1, len(items) - 1))
        wrong = distractors(item.answer, item.answer_type, item.choices, rng)
        responses, defects = [], []
        for _ in range(n):
            ok = rng.random() < p
            defective = rng.random() < (defect_rate_correct if ok else defect_rate_wrong)
            pair = trace_pair(rng)
            final = item.answer if ok else rng.choice(wrong)
            steps = pair.defective if defective else pair.clean
            responses.append(f"{think_block(steps)}\n\nThe answer is \\boxed{{{final}}}.")
            defects.append(list(pair.defects) if defective else [])
        records.append({"id": item.id, "benchmark": item.benchmark, "answer_type": item.answer_type,
                        "question": item.question, "choices": item.choices, "answer": item.answer,
                        "prompt": item.prompt, "model": "synthetic", "backend": "toy",
                        "sampling": {"n": n, "seed": seed, "defect_rate_correct": defect_rate_correct,
                                     "defect_rate_wrong": defect_rate_wrong},
                        "responses": responses, "toy_defects": defects})
    return records


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=HelpFormatter)
    p.add_argument("--benchmark", required=True), p.add_argument("--data"), p.add_argument("--data-dir")
    p.add_argument("--n", type=int, default=16), p.add_argument("--seed", type=int, default=0)
    p.add_argument("--repeat-items", type=int, default=1, help="use each fixture item this many times (more questions)")
    p.add_argument("--defect-rate-correct", type=float, default=DEFECT_RATE_CORRECT,
                   help="probability that a correct response's reasoning carries ME² defects")
    p.add_argument("--defect-rate-wrong", type=float, default=DEFECT_RATE_WRONG,
                   help="probability that a wrong response's reasoning carries ME² defects")
    p.add_argument("--output", dest="out", required=True, help="pool JSONL to write")
    add_alias(p, "--out", "--output")
    args = p.parse_args(argv)
    for flag in ("defect_rate_correct", "defect_rate_wrong"):
        if not 0.0 <= getattr(args, flag) <= 1.0:
            p.error(f"--{flag.replace('_', '-')} must be a probability in [0, 1]")
    items = load_items(args.benchmark, args.data, args.data_dir)
    if args.repeat_items > 1:
        from dataclasses import replace

        items = [replace(it, id=f"{it.id}#{k}") for k in range(args.repeat_items) for it in items]
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("")
    append_jsonl(out, synthetic_records(items, args.n, args.seed, defect_rate_correct=args.defect_rate_correct,
                                        defect_rate_wrong=args.defect_rate_wrong))
    print(f"wrote {len(items)} synthetic records with {args.n} responses each to {out} "
          f"(defect rate {args.defect_rate_correct:g} for correct, {args.defect_rate_wrong:g} for wrong responses)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
