"""Answer checking against real graders' labels: this project's rule check vs plain math-verify, side by side.

On the labelled cases of tests/data/answer_cases.jsonl (gold, response, label, category, origin), prints how often
each checker agrees with the label, overall and per category, for
- ours: ``trm.rewards.correctness.check_responses`` (extraction ladder, rule check in the worker pool; ``lenient``
  as the evaluation tables use it, and ``strict`` as RL rewards use it), and
- plain: ``math_verify.verify(math_verify.parse(gold), math_verify.parse(response))`` in this process,
then cases per second of both, measured in alternating rounds (ours first in odd rounds, plain first in even ones),
and the median of the per-round ratio ours/plain. The worker pool is started before the timing (a one-off cost).
Run: .venv/bin/python bench/bench_answer_check.py [--rounds 5] [--cases tests/data/answer_cases.jsonl]
"""

from __future__ import annotations

import argparse
import logging
import statistics
import time
from collections import defaultdict
from pathlib import Path

from trm.jsonio import read_rows

DEFAULT_CASES = Path(__file__).resolve().parent.parent / "tests" / "data" / "answer_cases.jsonl"


def plain_math_verify(gold: str, response: str) -> bool:
    """What a user gets from math-verify alone (its own extraction and timeouts; an error counts as "not equal")."""
    from math_verify import parse, verify

    try:
        return bool(verify(parse(gold), parse(response)))
    except Exception:
        return False


def ours(cases: list[dict], answer_format: str) -> list:
    from trm.rewards.correctness import check_responses

    return check_responses([c["response"] for c in cases], [c["gold"] for c in cases], answer_format)


def agreement_table(cases: list[dict], columns: dict[str, list[bool]]) -> str:
    by_category: dict[str, list[int]] = defaultdict(list)
    for i, case in enumerate(cases):
        by_category[case["category"]].append(i)
    names = list(columns)
    lines = [f"{'category':<20}{'cases':>6}" + "".join(f"{name:>14}" for name in names)]
    for category, rows in sorted(by_category.items()) + [("overall", list(range(len(cases))))]:
        shares = [sum(columns[name][i] == cases[i]["label"] for i in rows) / len(rows) for name in names]
        lines.append(f"{category:<20}{len(rows):>6}" + "".join(f"{share:>14.3f}" for share in shares))
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=Path, default=DEFAULT_CASES)
    parser.add_argument("--rounds", type=int, default=5, help="timed rounds per side (alternating order)")
    args = parser.parse_args()
    logging.getLogger("math_verify").setLevel(logging.ERROR)
    cases = read_rows(args.cases)

    lenient = ours(cases, "lenient")  # also starts the worker pool, outside the timing below
    strict = ours(cases, "strict")
    plain = [plain_math_verify(c["gold"], c["response"]) for c in cases]
    print(f"{len(cases)} labelled cases from {args.cases}")
    print(agreement_table(cases, {"ours lenient": [v.correct for v in lenient], "ours strict": [v.correct for v in strict],
                                  "plain mv": plain}))
    sources = defaultdict(int)
    for verdict in lenient + strict:
        sources[verdict.source] += 1
    bounded = sources["timeout"] + sources["worker_error"]
    print(f"verdict sources (both formats): {dict(sorted(sources.items()))}; hit the per-answer bound or crashed: {bounded}")

    ratios, ours_rates, plain_rates = [], [], []
    for round_index in range(args.rounds):
        timings = {}
        order = ("ours", "plain") if round_index % 2 == 0 else ("plain", "ours")
        for side in order:
            start = time.perf_counter()
            if side == "ours":
                ours(cases, "lenient")
            else:
                for c in cases:
                    plain_math_verify(c["gold"], c["response"])
            timings[side] = time.perf_counter() - start
        ours_rates.append(len(cases) / timings["ours"])
        plain_rates.append(len(cases) / timings["plain"])
        ratios.append(ours_rates[-1] / plain_rates[-1])
        print(f"round {round_index + 1} ({order[0]} first): ours {ours_rates[-1]:.1f} cases/s, "
              f"plain {plain_rates[-1]:.1f} cases/s, ratio {ratios[-1]:.2f}")
    print(f"median cases/s: ours {statistics.median(ours_rates):.1f}, plain {statistics.median(plain_rates):.1f}; "
          f"median ratio ours/plain {statistics.median(ratios):.2f} (>= 1: ours at least as fast per case)")


if __name__ == "__main__":
    main()
