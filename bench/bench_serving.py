"""Serving benchmarks, each a ratio of two rates measured side by side in this run (CPU is fine).

1. Dynamic batching: scores/s for 64 concurrent clients (one text per request) against a reward server with
   batching on vs. the same server with --max-batch-size 1. Target >= 3x.
2. Server overhead: scores/s through HTTP (requests of B texts, two in flight, server batch size B) vs. the same
   texts scored in-process by RewardScorer with batch size B, on the "small" tiny model with 512-token inputs.
   Target >= 0.8.

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
sys.path.insert(0, str(REPO))


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Server:
    """`trm serve reward` in a child process, up until the `with` block ends."""

    def __init__(self, model: Path, *extra: str):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.args = [sys.executable, "-m", "trm", "serve", "reward", "--model", str(model), "--port", str(self.port),
                     "--log-level", "warning", "--torch-threads", str(THREADS), *extra]

    def __enter__(self):
        self.proc = subprocess.Popen(self.args, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
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
    parser.add_argument("--only", choices=["batching", "overhead"], default=None, help="run one benchmark")
    parser.add_argument("--rounds", type=int, default=2, help="alternating measurement rounds (best of each)")
    parser.add_argument("--batch-model", choices=["tiny", "small"], default="small",
                        help="model of the batching benchmark (default small: the model, not HTTP, is the bottleneck)")
    parser.add_argument("--batch-tokens", type=int, default=16, help="tokens per text in the batching benchmark")
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
    return 0


if __name__ == "__main__":
    sys.exit(main())
