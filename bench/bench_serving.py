"""Serving benchmarks, each a ratio of two rates measured side by side in this run (CPU is fine).

1. Dynamic batching: scores/s for 64 concurrent clients (one text per request) against a reward server with
   batching on vs. the same server with --max-batch-size 1. Target >= 3x.
2. Server overhead: scores/s through HTTP (requests of B texts, two in flight, server batch size B) vs. the same
   texts scored in-process by RewardScorer with batch size B, on the "small" tiny model with 512-token inputs.
   Target >= 0.8.
3. Server at the model's limit (--only limit): scores/s for 64 concurrent clients (one text per request, texts of
   10-130 words) against the real in-process limit on the same texts: RewardScorer, texts sorted by token length,
   the best batch size of a small sweep. Server and baseline each get one torch thread on core 0, the load
   generator runs on core 1; rounds alternate, the ratio is the median of the per-round ratios. Target >= 0.8.
4. Health under abuse (--only health): GET /health latency, probed every 10 ms from another thread, while nothing
   else happens, while maximum-size requests (one text filling the 32 MiB body limit) are sent and rejected, and
   while 100 clients each send 256 texts and disconnect before their answer. Target: max < 100 ms in every phase;
   also reports how many of the abandoned items were computed anyway and the server's RSS around the big requests.

Run: .venv/bin/python bench/bench_serving.py [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]
THREADS = 1  # torch threads on both sides: the client, the server and the in-process scorer share a small box


def pin(cpus: set[int] | None) -> None:
    """Run this process on `cpus` from now on (None: leave it where it is)."""
    if cpus is not None and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, cpus)


SERVER_CPUS = {0}  # the server and the in-process baseline
CLIENT_CPUS = {1}  # the load generator


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Server:
    """`trm serve reward` in a child process, up until the `with` block ends."""

    def __init__(self, model: Path, *extra: str, cpus: set[int] | None = None):
        self.cpus = cpus
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.args = [sys.executable, "-m", "trm", "serve", "reward", "--model", str(model), "--port", str(self.port),
                     "--log-level", "warning", "--torch-threads", str(THREADS), *extra]

    def __enter__(self):
        self.proc = subprocess.Popen(self.args, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                     preexec_fn=(lambda: pin(self.cpus)) if self.cpus else None)
        deadline = time.monotonic() + 180
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited: {self.proc.stderr.read().decode()[-2000:]}")
            try:
                if httpx.get(f"{self.url}/health", timeout=2).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("server did not become healthy")
            time.sleep(0.2)  # polling with a deadline

    def __exit__(self, *exc):
        self.proc.terminate()
        self.proc.wait(timeout=60)


def make_texts(tokenizer, n: int, tokens: int, seed: int) -> list[str]:
    """n distinct reasoning-like texts of about `tokens` tokens each (BOS included)."""
    rng = random.Random(seed)
    words = ("so wait but therefore let check the sum of squares equals 91 then next step compute prime "
             "factor root answer hence because maybe actually hmm").split()
    texts = []
    for _ in range(n):
        text = " ".join(rng.choice(words) for _ in range(tokens * 2))
        ids = tokenizer(text)["input_ids"][1:tokens]
        texts.append(tokenizer.decode(ids))
    return texts


def make_word_texts(n: int, low: int, high: int, seed: int) -> list[str]:
    """n distinct reasoning-like texts of `low`..`high` words each (uniform), in random length order."""
    rng = random.Random(seed)
    words = ("so wait but therefore let check the sum of squares equals 91 then next step compute prime "
             "factor root answer hence because maybe actually hmm").split()
    return [f"{i}: " + " ".join(rng.choice(words) for _ in range(rng.randint(low, high))) for i in range(n)]


async def http_rate(url: str, texts: list[str], per_request: int, concurrency: int) -> float:
    """Scores/s with `concurrency` clients, each sending requests of `per_request` texts in turn.

    aiohttp (installed with ray) is the lighter client, so the figures measure the server, not the client.
    """
    import aiohttp

    requests = [texts[i : i + per_request] for i in range(0, len(texts), per_request)]
    queue: asyncio.Queue = asyncio.Queue()
    for request in requests:
        queue.put_nowait(request)
    connector = aiohttp.TCPConnector(limit=concurrency + 4)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=600)) as session:
        async def post(batch):
            async with session.post(f"{url}/v1/embeddings", json={"model": "RewardModel", "input": batch}) as response:
                response.raise_for_status()
                assert len((await response.json())["data"]) == len(batch)

        async def worker():
            while not queue.empty():
                await post(queue.get_nowait())

        await post(texts[:per_request])  # warm-up
        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return len(texts) / (time.perf_counter() - started)


PROBE = """
import json, select, sys, time
import httpx
samples = []
with httpx.Client(timeout=30) as client:
    while not select.select([sys.stdin], [], [], 0.01)[0]:  # every 10 ms until the parent closes stdin
        started = time.monotonic()
        assert client.get(sys.argv[1] + "/health").status_code == 200
        samples.append((started, (time.monotonic() - started) * 1000))
print(json.dumps(samples))
"""


class HealthProbe:
    """GET /health every 10 ms on one keep-alive connection from a child process (so the load this process makes
    cannot delay the probe's own code); latencies (ms) sorted into the phases marked with `phase()`."""

    def __init__(self, url: str):
        self.url, self.marks = url, [("idle", time.monotonic())]

    def phase(self, name: str) -> None:
        self.marks.append((name, time.monotonic()))  # CLOCK_MONOTONIC: the same clock in both processes

    def __enter__(self):
        self.proc = subprocess.Popen([sys.executable, "-c", PROBE, self.url], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True)
        return self

    def __exit__(self, *exc):
        import json

        out, _ = self.proc.communicate("", timeout=60)
        self.samples = {}
        for started, latency in json.loads(out):
            phase = [name for name, at in self.marks if at <= started][-1] if started >= self.marks[0][1] else "idle"
            self.samples.setdefault(phase, []).append(latency)

    def report(self, phase: str) -> float:
        values = sorted(self.samples.get(phase, []))
        if not values:
            print(f"  {phase:<28}: no probes")
            return float("nan")
        pick = lambda q: values[min(len(values) - 1, int(q * len(values)))]  # noqa: E731
        print(f"  {phase:<28}: {len(values):5d} probes, p50 {pick(0.5):6.1f} ms, p99 {pick(0.99):6.1f} ms, "
              f"max {values[-1]:6.1f} ms")
        return values[-1]


def _cpu_seconds(pid: int) -> float:
    """User + system CPU seconds a process (all its threads) has used."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def _abandon(port: int, clients: int, texts_per_client: int, url: str) -> tuple[int, float]:
    """`clients` connections each POST `texts_per_client` texts and close once everything is queued; returns the
    items queued at the moment they closed and the seconds the server took to settle (queue empty, pass done)."""
    import json

    writers = []
    for c in range(clients):
        body = json.dumps({"model": "RewardModel",
                           "input": [f"client {c} text {i}: so the sum is {i * 7}" for i in range(texts_per_client)]})
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"POST /v1/embeddings HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\n"
                     b"Content-Length: %d\r\n\r\n" % len(body) + body.encode())
        await writer.drain()
        writers.append(writer)
    total = clients * texts_per_client
    async with httpx.AsyncClient(timeout=30) as client:
        deadline = time.monotonic() + 120
        while True:  # poll until every abandoned request is queued or already answered
            health = (await client.get(f"{url}/health")).json()
            if health["in_flight"] + health["items"] >= total or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.01)
        queued = health["in_flight"]
        closed = time.perf_counter()
        for writer in writers:
            writer.close()
        while True:
            health = (await client.get(f"{url}/health")).json()
            if health["in_flight"] == 0 and health["running"] == 0:
                return queued, time.perf_counter() - closed
            await asyncio.sleep(0.01)


def best_batch_size(scorer, texts: list[str], sizes=(8, 16, 32, 64, 128)) -> tuple[int, dict[int, float]]:
    """The batch size at which length-sorted in-process scoring is fastest (one pass per size after a warm-up)."""
    scorer.score(texts[:64], batch_size=64)  # warm-up
    rates = {}
    for size in sizes:
        started = time.perf_counter()
        scorer.score(texts, batch_size=size)
        rates[size] = len(texts) / (time.perf_counter() - started)
    return max(rates, key=rates.get), rates


def bench_limit(args, model: Path) -> None:
    """The server under 64 one-text clients vs the sorted in-process limit; rounds alternate, median ratio."""
    import statistics

    import torch

    from trm.serving.scorer import RewardScorer

    texts = make_word_texts(int(512 * args.scale), 10, 130, seed=3)
    pin(SERVER_CPUS)
    torch.set_num_threads(THREADS)
    scorer = RewardScorer(model, device="cpu")
    lengths = [len(row) for row in scorer.encode(texts)]
    best, sweep = best_batch_size(scorer, texts)
    print(f"[limit] sweep (sorted, in-process, 1 thread): "
          + ", ".join(f"{size}: {rate:.0f}/s" for size, rate in sweep.items()) + f" -> batch size {best}", flush=True)
    ratios, limits, served, cpu_limit, cpu_server = [], [], [], 0.0, 0.0
    with Server(model, "--device", "cpu", *args.server_args, cpus=SERVER_CPUS) as server:
        pin(CLIENT_CPUS)
        asyncio.run(http_rate(server.url, texts[:128], per_request=1, concurrency=64))  # warm-up
        for round_ in range(args.rounds):
            pin(SERVER_CPUS)
            started, cpu_started = time.perf_counter(), time.process_time()
            scorer.score(texts, batch_size=best)
            limit = len(texts) / (time.perf_counter() - started)
            cpu_limit += time.process_time() - cpu_started
            pin(CLIENT_CPUS)
            cpu_started = _cpu_seconds(server.proc.pid)
            rate = asyncio.run(http_rate(server.url, texts, per_request=1, concurrency=64))
            cpu_server += _cpu_seconds(server.proc.pid) - cpu_started
            limits.append(limit)
            served.append(rate)
            ratios.append(rate / limit)
            print(f"  round {round_ + 1}: limit {limit:.1f}/s, server {rate:.1f}/s, ratio {rate / limit:.2f}",
                  flush=True)
        stats = httpx.get(f"{server.url}/health").json()
    pin(None)
    scored = len(texts) * args.rounds
    print(f"[limit] small model, {len(texts)} texts of 10-130 words ({min(lengths)}-{max(lengths)} tokens), "
          f"64 concurrent clients of one text, {args.rounds} alternating rounds, server + baseline on CPU "
          f"{sorted(SERVER_CPUS)}, load generator on CPU {sorted(CLIENT_CPUS)}")
    print(f"  in-process limit: {statistics.median(limits):8.1f} scores/s (median; sorted, batch size {best})")
    print(f"  server          : {statistics.median(served):8.1f} scores/s (median; mean batch "
          f"{stats['items'] / max(stats['batches'], 1):.1f}, largest {stats['largest_batch']}, padding "
          f"{stats['padded_tokens'] / max(stats['tokens'], 1) - 1:.1%} of the tokens)")
    print(f"  server / limit  : {statistics.median(ratios):.2f} (median of {', '.join(f'{r:.2f}' for r in ratios)}; "
          "target >= 0.8)")
    print(f"  per CPU second  : limit {scored / cpu_limit:.1f}, server {scored / cpu_server:.1f} scores "
          f"(ratio {cpu_limit / cpu_server:.2f}; the server's CPU includes HTTP, JSON and tokenizing; less sensitive "
          "to other load on the machine than the wall-clock rates)")


def bench_health(args, model: Path) -> None:
    """/health latency while a maximum-size request is rejected and while 100 clients disconnect mid-request."""
    body_limit = 32 * 1024 * 1024
    envelope = b'{"model": "RewardModel", "input": ""}'
    huge = envelope[:-2] + b"a" * (body_limit - len(envelope)) + envelope[-2:]
    clients, per_client = 100, 256
    with Server(model, "--max-queue", str(clients * per_client)) as server:
        port = int(server.url.rsplit(":", 1)[1])
        with HealthProbe(server.url) as probe:
            time.sleep(2)  # idle baseline: two seconds of probes (the child starts within them)
            probe.phase("max-size request rejected")
            rss_before = _rss_mb(server.proc.pid)
            rejections = []
            for _ in range(int(6 * args.scale)):
                started = time.perf_counter()
                answer = httpx.post(f"{server.url}/v1/embeddings", content=huge, timeout=120,
                                    headers={"Content-Type": "application/json"})
                rejections.append(time.perf_counter() - started)
                assert answer.status_code == 400 and "characters" in answer.text, answer.text
            rss_after = _rss_mb(server.proc.pid)
            before = httpx.get(f"{server.url}/health").json()
            probe.phase("100 clients disconnect")
            queued, settle = asyncio.run(_abandon(port, clients, per_client, server.url))
            after = httpx.get(f"{server.url}/health").json()
            probe.phase("after")
        print(f"[health] tiny model, body limit {body_limit >> 20} MiB, /health probed every 10 ms from a child process")
        worst = max(probe.report("idle"), probe.report("max-size request rejected"),
                    probe.report("100 clients disconnect"))
        print(f"  max-size request: {len(huge) / 2**20:.1f} MiB body rejected with 400 in "
              f"{min(rejections) * 1000:.0f}-{max(rejections) * 1000:.0f} ms; server RSS {rss_before:.0f} MB before, "
              f"{rss_after:.0f} MB after {len(rejections)} of them")
        computed = after["items"] - before["items"]
        print(f"  disconnects: {clients} x {per_client} = {clients * per_client} texts sent, {queued} queued when the "
              f"clients closed; {computed} computed, {after['cancelled'] - before['cancelled']} dropped; server "
              f"settled {settle * 1000:.0f} ms after the disconnect")
        print(f"  worst /health latency: {worst:.1f} ms (target < 100 ms)")


def bench_batching(args, model: Path, label: str) -> None:
    """64 concurrent clients, one text per request, batching on vs off; rounds alternate, best of each."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model)
    texts = make_texts(tokenizer, int(512 * args.scale), args.batch_tokens, seed=1)
    with Server(model) as on, Server(model, "--max-batch-size", "1") as off:
        batched, unbatched = 0.0, 0.0
        for round_ in range(args.rounds):
            rate_on = asyncio.run(http_rate(on.url, texts, per_request=1, concurrency=64))
            rate_off = asyncio.run(http_rate(off.url, texts[: len(texts) // 2], per_request=1, concurrency=64))
            print(f"  round {round_ + 1}: batching on {rate_on:.1f}/s, off {rate_off:.1f}/s", flush=True)
            batched, unbatched = max(batched, rate_on), max(unbatched, rate_off)
        stats = httpx.get(f"{on.url}/health").json()
    print(f"[batching] {label} model, {args.batch_tokens}-token texts, 64 concurrent clients, "
          f"best of {args.rounds} alternating rounds")
    print(f"  batching on : {batched:8.1f} scores/s (mean batch {stats['items'] / max(stats['batches'], 1):.1f}, "
          f"largest {stats['largest_batch']})")
    print(f"  batching off: {unbatched:8.1f} scores/s (batch size 1)")
    print(f"  ratio on/off: {batched / unbatched:.2f}x (target >= 3x)")


def bench_overhead(args, model: Path) -> None:
    """HTTP vs in-process, same batch size, 512-token texts; rounds alternate, best of each."""
    from transformers import AutoTokenizer

    from trm.serving.scorer import RewardScorer

    batch = 16
    tokenizer = AutoTokenizer.from_pretrained(model)
    texts = make_texts(tokenizer, int(128 * args.scale), 512, seed=2)
    lengths = [len(tokenizer(t)["input_ids"]) for t in texts]
    scorer = RewardScorer(model, device="cpu")
    scorer.score(texts[:batch], batch_size=batch)  # warm-up
    in_process, over_http = 0.0, 0.0
    with Server(model, "--max-batch-size", str(batch), "--device", "cpu") as server:
        for round_ in range(args.rounds):
            started = time.perf_counter()
            scorer.score(texts, batch_size=batch)
            local = len(texts) / (time.perf_counter() - started)
            remote = asyncio.run(http_rate(server.url, texts, per_request=batch, concurrency=2))
            print(f"  round {round_ + 1}: in-process {local:.1f}/s, HTTP {remote:.1f}/s", flush=True)
            in_process, over_http = max(in_process, local), max(over_http, remote)
    print(f"[overhead] small model, {min(lengths)}-{max(lengths)}-token texts, batch size {batch}, "
          f"{len(texts)} texts, best of {args.rounds} alternating rounds")
    print(f"  in-process  : {in_process:8.1f} scores/s")
    print(f"  over HTTP   : {over_http:8.1f} scores/s (requests of {batch}, 2 in flight)")
    print(f"  ratio http/in-process: {over_http / in_process:.2f} (target >= 0.8)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer texts (a smoke run, noisier figures)")
    parser.add_argument("--only", choices=["batching", "overhead", "limit", "health"], default=None,
                        help="run one benchmark")
    parser.add_argument("--rounds", type=int, default=2, help="alternating measurement rounds (best of each)")
    parser.add_argument("--batch-model", choices=["tiny", "small"], default="small",
                        help="model of the batching benchmark (default small: the model, not HTTP, is the bottleneck)")
    parser.add_argument("--batch-tokens", type=int, default=16, help="tokens per text in the batching benchmark")
    parser.add_argument("--server-arg", action="append", dest="server_args", default=[], metavar="ARG",
                        help="extra flag for the limit benchmark's server, e.g. --server-arg=--max-batch-size=32")
    args = parser.parse_args()
    args.scale = 0.5 if args.quick else 1.0
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

    import torch

    from trm.tiny import build_tiny_models

    torch.set_num_threads(THREADS)
    with tempfile.TemporaryDirectory() as tmp:
        models = {size: build_tiny_models(Path(tmp) / size, seed=0, size=size)["reward"] for size in ("tiny", "small")}
        if args.only in (None, "batching"):
            bench_batching(args, models[args.batch_model], args.batch_model)
        if args.only in (None, "overhead"):
            bench_overhead(args, models["small"])
        if args.only in (None, "limit"):
            bench_limit(args, models["small"])
        if args.only in (None, "health"):
            bench_health(args, models["tiny"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
