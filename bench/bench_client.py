"""Throughput of the reward path's building blocks, measured side by side in one run.

1. Backend pool: N single-text scoring calls against loopback backends (separate processes) that answer
   after a fixed latency with a fixed capacity; wall time vs. the lower bound ceil(N / (live * capacity)) *
   latency, with all backends live and with one extra dead backend in the list.
2. Rule check: a batch through the persistent worker pool vs. the same checks one by one in this process.

    .venv/bin/python bench/bench_client.py [--calls 2000] [--latency 0.05] [--capacity 16] [--rule-items 1000] [--repeats 3]
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx

from trm_testing.fault_server import FaultServer
from trm_testing.serving import free_port

REPO = Path(__file__).resolve().parents[1]


def serve_fake(port: int, latency: float, capacity: int) -> None:
    """A backend answering /v1/embeddings after `latency` seconds, at most `capacity` requests at a time."""
    reply = {"data": [{"index": 0, "embedding": [0.5]}]}
    server = FaultServer(lambda i, req: ("delay", latency, ("status", 200, reply)), capacity=capacity)

    async def main():
        listener = await server.start(port, backlog=4096)
        async with listener:
            await listener.serve_forever()

    asyncio.run(main())


def start_fakes(count: int, latency: float, capacity: int) -> tuple[list[str], list[subprocess.Popen]]:
    urls, procs = [], []
    for _ in range(count):
        port = free_port()
        procs.append(subprocess.Popen([sys.executable, __file__, "--serve-fake", str(port), "--latency", str(latency),
                                       "--capacity", str(capacity)]))
        urls.append(f"http://127.0.0.1:{port}")
    deadline = time.monotonic() + 60
    for url in urls:
        while True:
            try:
                httpx.post(f"{url}/v1/embeddings", json={"input": ["x"]}, timeout=5)
                break
            except httpx.HTTPError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"fake backend {url} did not start")
                time.sleep(0.1)  # polling with a deadline
    return urls, procs


def bench_pool(urls: list[str], calls: int, capacity: int) -> float:
    from trm.client import BackendPool
    from trm.rewards.thinking import score_reasoning

    async def run() -> float:
        pool = BackendPool(urls, max_concurrency_per_backend=capacity, deadline=600)
        try:
            await score_reasoning(pool, ["warm-up"])
            started = time.perf_counter()
            results = await asyncio.gather(*(score_reasoning(pool, [f"text {i}"]) for i in range(calls)))
            wall = time.perf_counter() - started
        finally:
            await pool.aclose()
        assert all(r == [0.5] for r in results)
        return wall

    return asyncio.run(run())


def bench_rule_check(items: int) -> tuple[float, float, float, int]:
    from trm.rewards.correctness import rule_check_batch
    from trm.rewards.math_rules import PRIME_MATH, SETTLED_SOURCES, check_item, warm_up
    from trm.rewards.worker_pool import default_workers

    base = [("0.5", "\\frac{1}{2}"), ("x^2+1", "1+x^2"), ("[1,2)", "(1,2]"), ("\\{3,2,1\\}", "1, 2, 3"),
            ("3.14", "\\pi"), ("10 \\text{ cm}", "10"), ("\\sqrt{8}", "2\\sqrt{2}"), ("-2", "2")]
    pairs = [(f"{a}+{i}-{i}" if i % 2 else a, g) for i in range(items) for a, g in [base[i % len(base)]]]
    rule_check_batch(["1"], ["2"])  # start the workers outside the timing
    rule_check_batch(["1"], ["2"], workers=1)
    warm_up()
    started = time.perf_counter()
    pooled = rule_check_batch([a for a, _ in pairs], [g for _, g in pairs])
    pool_wall = time.perf_counter() - started
    started = time.perf_counter()
    rule_check_batch([a for a, _ in pairs], [g for _, g in pairs], workers=1)
    one_worker_wall = time.perf_counter() - started
    started = time.perf_counter()
    inline = [check_item([a, g]) for a, g in pairs]  # the pool's two stages: prime_math where math-verify did not settle
    inline = [r if r["correct"] or r["source"] in SETTLED_SOURCES else check_item([a, g, PRIME_MATH])
              for r, (a, g) in zip(inline, pairs)]
    inline_wall = time.perf_counter() - started
    mismatched = sum(p.correct != i["correct"] for p, i in zip(pooled, inline))
    assert mismatched == 0, f"{mismatched} pooled verdicts differ from the in-process ones"
    return pool_wall, one_worker_wall, inline_wall, default_workers()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--latency", type=float, default=0.05)
    parser.add_argument("--capacity", type=int, default=16)
    parser.add_argument("--backends", type=int, default=2)
    parser.add_argument("--rule-items", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=3, help="runs per pool scenario; the best is reported")
    parser.add_argument("--serve-fake", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_fake is not None:
        serve_fake(args.serve_fake, args.latency, args.capacity)
        return 0

    urls, procs = start_fakes(args.backends, args.latency, args.capacity)
    try:
        bound = math.ceil(args.calls / (args.backends * args.capacity)) * args.latency
        dead = f"http://127.0.0.1:{free_port()}"
        live_runs, dead_runs = [], []
        for _ in range(args.repeats):  # interleaved, best of N: the least disturbed run of each
            live_runs.append(bench_pool(urls, args.calls, args.capacity))
            dead_runs.append(bench_pool([dead] + urls, args.calls, args.capacity))
        live, with_dead = min(live_runs), min(dead_runs)
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait()
    print(f"backend pool: {args.calls} calls, {args.backends} backends x capacity {args.capacity}, "
          f"latency {args.latency * 1000:.0f} ms; lower bound {bound:.2f}s; best of {args.repeats} "
          f"(load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs)")
    print(f"  all live:          {live:.2f}s  bound/wall = {bound / live:.2f}")
    print(f"  plus a dead one:   {with_dead:.2f}s  bound/wall = {bound / with_dead:.2f}")
    if args.rule_items:
        pool_wall, one_worker_wall, inline_wall, workers = bench_rule_check(args.rule_items)
        print(f"rule check: {args.rule_items} answers; in-process one by one {inline_wall:.2f}s (no time bound)")
        print(f"  worker pool, {workers} workers: {pool_wall:.2f}s  speed-up {inline_wall / pool_wall:.2f}x "
              f"(os.cpu_count()={os.cpu_count()}, load average {os.getloadavg()[0]:.1f})")
        print(f"  worker pool, 1 worker:  {one_worker_wall:.2f}s  overhead of the time bound "
              f"{one_worker_wall / inline_wall:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
