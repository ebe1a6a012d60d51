"""Judge-side costs of the ME² pipeline, measured side by side in one run against the scripted loopback judge
(each request answered after a fixed delay, standing in for LLM latency):

1. n samples in one request vs repeated single requests, for DAG steps that need every re-sampling round.
2. Traces structured concurrently (--concurrency) vs one at a time.

    .venv/bin/python bench/bench_judge.py [--latency-ms 20] [--traces 12] [--steps 8]
"""

from __future__ import annotations

import argparse
import asyncio
import threading
import time

from trm.dag.build import build_dag
from trm.llm.client import ChatClient, ChatConfig
from trm_testing.judge import ScriptedJudge


def run_case(
    latency_s: float, traces: int, steps: int, use_n: bool, concurrency: int, answer: str
) -> tuple[float, int]:
    pause = threading.Event()

    def policy(req):
        if req.choice == 0:
            pause.wait(latency_s)  # one delay per HTTP request, whatever n is
        return answer

    with ScriptedJudge(policy) as judge:
        client = ChatClient(judge.url, "bench", config=ChatConfig(use_n=use_n, max_concurrency=64))
        texts = [[f"step {i}" for i in range(steps)] for _ in range(traces)]

        async def main():
            gate = asyncio.Semaphore(concurrency)

            async def one(steps_):
                async with gate:
                    return await build_dag(client, "Q", steps_)

            return await asyncio.gather(*(one(t) for t in texts))

        start = time.perf_counter()
        asyncio.run(main())
        return time.perf_counter() - start, judge.count()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--latency-ms", type=float, default=20)
    parser.add_argument("--traces", type=int, default=12)
    parser.add_argument("--steps", type=int, default=8)
    args = parser.parse_args()
    lat = args.latency_ms / 1000
    print(f"scripted judge, {args.latency_ms:.0f} ms per request, {args.traces} traces x {args.steps} steps")
    bad = "no marker here"  # every step needs all five rounds (1+3+4+4+4 = 16 samples)
    t_n, r_n = run_case(lat, args.traces, args.steps, True, 8, bad)
    t_1, r_1 = run_case(lat, args.traces, args.steps, False, 8, bad)
    print(
        f"[n per request]  worst-case steps: n-samples {r_n} requests {t_n:.2f}s | single calls {r_1} requests "
        f"{t_1:.2f}s | requests x{r_1 / r_n:.1f}, time x{t_1 / t_n:.2f}"
    )
    good = "ok\n<|action|>continue"
    t_c, r_c = run_case(lat, args.traces, args.steps, True, 8, good)
    t_s, r_s = run_case(lat, args.traces, args.steps, True, 1, good)
    print(
        f"[concurrency]    8 traces in flight {t_c:.2f}s | 1 at a time {t_s:.2f}s ({r_s} requests) | "
        f"speed-up x{t_s / t_c:.1f}"
    )


if __name__ == "__main__":
    main()
