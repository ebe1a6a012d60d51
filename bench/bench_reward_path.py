"""Reward-path throughput: one GRPO step's batch through the verl `verify` manager against loopback fake backends.

A batch of N responses (default 4096 = 512 prompts x 8 rollouts, half of them right) goes through
``VerifyRewardManager.__call__`` exactly as in training: decode, rule check (math-verify worker pool), LLM
verifier for the wrong WebInstruct answers, TRM for the verified ones. The backends are fault-injection fakes in a
separate process: every request is answered after a fixed latency, each backend serves at most ``capacity``
requests at once. With W requests to one service of B backends, no client can finish before
ceil(W / (B * capacity)) * latency; the verifier and the TRM are separate services working in parallel, so the
lower bound of the step is the larger of the two. We report bound / wall time (target >= 0.85), side by side for
the default (TRM on verified answers only) and `score_all`, plus the TRM calls the default saves. The client
keeps the reward settings' requests per backend in flight (256 by default, more than the capacity: the queue
at the server hides the client's turnaround, as with real servers); --client-concurrency changes that.

    .venv/bin/python bench/bench_reward_path.py [--responses 4096] [--latency 1.0] [--capacity 32] [--backends 2] [--client-concurrency N]
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import math
import multiprocessing
import sys
import tempfile
import time
from pathlib import Path

WEBINSTRUCT = "TIGER-Lab/WebInstruct-verified"


# -- fake backends (separate process) ----------------------------------------------------------------------------
def _fake_score(text: str) -> float:
    return int(hashlib.sha1(text.encode()).hexdigest()[:6], 16) / 0xFFFFFF * 4.0 - 2.0


async def _serve(ports: dict[str, list[int]], latency: float, capacity: int, ready) -> None:
    """Fault-injection backends (trm_testing.fault_server): a fixed latency inside a fixed capacity."""
    from trm_testing.fault_server import FaultServer, chat_completion

    counts: dict[int, int] = {}
    verdict = chat_completion("They differ.\nFinal Decision: No")

    def script(port: int, kind: str):
        def answer(index, request):
            if request.path == "/stats":
                return ("status", 200, {str(p): c for p, c in counts.items()})
            counts[port] = counts.get(port, 0) + 1
            if kind == "trm" and request.path == "/v1/embeddings":
                texts = request.json()["input"]
                texts = texts if isinstance(texts, list) else [texts]
                reply = {"object": "list", "usage": {"prompt_tokens": 1},
                         "data": [{"object": "embedding", "index": i, "embedding": [_fake_score(t)]} for i, t in enumerate(texts)]}
                return ("delay", latency, ("status", 200, reply))
            if kind == "verifier" and request.path == "/v1/chat/completions":
                return ("delay", latency, ("status", 200, verdict))
            return ("status", 404, {"error": {"message": f"no route {request.path}"}})

        return answer

    for kind, kind_ports in ports.items():
        for port in kind_ports:
            await FaultServer(script(port, kind), capacity=capacity).start(port, backlog=4096)
    ready.set()
    await asyncio.Event().wait()


def _fake_process(ports, latency, capacity, ready) -> None:
    asyncio.run(_serve(ports, latency, capacity, ready))


def _stats(port: int) -> dict[str, int]:
    import httpx

    return {int(k): v for k, v in httpx.get(f"http://127.0.0.1:{port}/stats", timeout=10).json().items()}


# -- the batch -----------------------------------------------------------------------------------------------------
def make_samples(n: int, group: int = 8):
    from trm_testing.rollout import RolloutSample

    samples = []
    for i in range(n):
        q = i // group
        a, b = 3 + q % 50, 7 + q % 13
        question = f"A box holds {a} rows of {b} marbles. How many marbles are there?"
        truth = str(a * b)
        right = i % 2 == 0
        answer = truth if right else str(a * b + 1 + i % 5)
        steps = " ".join(f"Step {k}: count row {k} and keep a running total." for k in range(6))
        response = f"<think>\n{steps}\nSo {a} times {b} is {answer}.\n</think>\nThere are \\boxed{{{answer}}} marbles."
        samples.append(RolloutSample(question, response, truth, WEBINSTRUCT,
                                     {"user_prompt": question, "question": question, "index": q, "split": "train"},
                                     uid=f"p{q}"))
    return samples


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--responses", type=int, default=4096)
    parser.add_argument("--latency", type=float, default=1.0, help="seconds each fake request takes")
    parser.add_argument("--capacity", type=int, default=32, help="concurrent requests one fake backend serves")
    parser.add_argument("--backends", type=int, default=2, help="fake backends per service (TRM, verifier)")
    parser.add_argument("--parallelism", type=int, default=1024)
    parser.add_argument("--client-concurrency", type=int, default=None,
                        help="requests the client keeps in flight per backend (default: the reward settings' "
                             "max_concurrency_per_backend, as in training)")
    args = parser.parse_args()

    from trm.rewards.verl_manager import VerifyRewardManager
    from trm.tiny import build_tiny_models
    from trm_testing.rollout import rollout_batch
    from trm_testing.serving import free_port

    ports = {"trm": [free_port() for _ in range(args.backends)], "verifier": [free_port() for _ in range(args.backends)]}
    ctx = multiprocessing.get_context("spawn")
    ready = ctx.Event()
    fake = ctx.Process(target=_fake_process, args=(ports, args.latency, args.capacity, ready), daemon=True)
    fake.start()
    if not ready.wait(60):
        raise RuntimeError("fake backends did not start")

    with tempfile.TemporaryDirectory() as tmp:
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(build_tiny_models(Path(tmp), seed=0)["chat"])
    samples = make_samples(args.responses)
    batch = rollout_batch(tokenizer, samples)
    backends = {k: ",".join(f"127.0.0.1:{p}" for p in v) for k, v in ports.items()}
    capacity_total = args.capacity * args.backends

    from trm.rewards.compute import rule_check_requests, request_from_sample

    requests = [request_from_sample(s.data_source, s.response, s.ground_truth, s.extra_info) for s in samples]
    rows = []
    for score_all in (None, False, True):  # None: an untimed warm-up (worker pool, imports, connections)
        manager = VerifyRewardManager(tokenizer, 0, None, parallelism=args.parallelism, score_all=bool(score_all),
                                      rm_backends=backends["trm"], verifier_backends=backends["verifier"],
                                      **({"max_concurrency_per_backend": args.client_concurrency}
                                         if args.client_concurrency else {}))
        before = _stats(ports["trm"][0])
        started = time.perf_counter()
        result = manager(batch if score_all is not None else rollout_batch(tokenizer, samples[:256]), return_dict=True)
        wall = time.perf_counter() - started
        after = _stats(ports["trm"][0])
        trm_calls = sum(after.get(p, 0) - before.get(p, 0) for p in ports["trm"])
        verifier_calls = sum(after.get(p, 0) - before.get(p, 0) for p in ports["verifier"])
        bound = max(math.ceil(trm_calls / capacity_total), math.ceil(verifier_calls / capacity_total)) * args.latency
        if score_all is None:
            continue
        rewards = result["reward_tensor"].sum(-1)
        assert int((rewards > 0).sum()) == args.responses // 2 + args.responses % 2, "half the answers are right"
        rows.append((("verified only (default)" if not score_all else "score_all"), trm_calls, verifier_calls, bound, wall))

    started = time.perf_counter()
    rule_check_requests(requests, manager.settings)
    rule_alone = time.perf_counter() - started
    fake.terminate()

    print(f"reward path: {args.responses} responses (half right), {args.backends}+{args.backends} fake backends, "
          f"capacity {args.capacity} each, latency {args.latency}s, parallelism {args.parallelism}, "
          f"client concurrency {manager.settings.max_concurrency_per_backend} per backend")
    print(f"{'mode':<26}{'TRM calls':>10}{'verifier':>10}{'bound s':>9}{'wall s':>9}{'bound/wall':>12}")
    for mode, trm_calls, verifier_calls, bound, wall in rows:
        print(f"{mode:<26}{trm_calls:>10}{verifier_calls:>10}{bound:>9.2f}{wall:>9.2f}{bound / wall:>12.3f}")
    saved = rows[1][1] - rows[0][1]
    print(f"TRM calls saved by scoring verified answers only: {saved} of {rows[1][1]} ({saved / rows[1][1]:.0%}); "
          f"step time {rows[0][4]:.2f}s vs {rows[1][4]:.2f}s ({rows[1][4] / rows[0][4]:.2f}x)")
    print(f"rule check alone (whole batch, this machine): {rule_alone:.2f}s (overlapped with the network in the runs "
          f"above)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
