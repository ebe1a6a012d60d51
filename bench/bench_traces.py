"""Answer extraction cost on adversarial inputs, as a ratio to a plain linear scan of the same text.

A ratio that stays flat as the input grows shows the extraction is linear (no quadratic re-scans of
unbalanced braces); the absolute times are printed for context only.
Run: .venv/bin/python bench/bench_traces.py
"""

from __future__ import annotations

import time

from trm.traces import extract_answer


def best_of(fn, repeats: int = 5) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    cases = {
        "10k nested braces + filler": lambda n: "a" * n + "\\boxed{" + "{" * 10_000 + "x" + "}" * 10_000 + "}",
        "10k unbalanced \\boxed{ + filler": lambda n: "\\boxed{" * 10_000 + "y" * n,
        "marker lines only": lambda n: "Answer: 1\n" * (n // 10),
    }
    print(f"{'case':<34}{'size':>10}{'extract s':>12}{'scan s':>10}{'ratio':>8}")
    for name, make in cases.items():
        for size in (250_000, 1_000_000):
            text = make(size)
            extract = best_of(lambda: extract_answer(text))
            scan = best_of(lambda: sum(1 for c in text if c == "{"))  # one pure-Python pass over the text
            print(f"{name:<34}{len(text):>10}{extract:>12.4f}{scan:>10.4f}{extract / scan:>8.2f}")


if __name__ == "__main__":
    main()
