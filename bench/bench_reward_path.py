"""Reward-path throughput: one GRPO step's batch against loopback fake backends, and the client over a grid.

Fake backends (fault-injection servers from trm_testing, in a separate process) model a server of fixed capacity:
each *text* (an embeddings input, a verifier prompt) takes ``latency`` seconds in one of ``capacity`` slots, so a
request of 32 texts costs the server what 32 single requests cost. With T texts to one service of B backends no
client can finish before ceil(T / (B * capacity)) * latency; the verifier and the TRM are separate services working
in parallel, so the network bound of a batch is the larger of the two. Coalescing texts into one request saves the
client's (and the server's) per-request overhead, never server work.

1. The step: N responses (default 4096 = 512 prompts x 8 rollouts, half right) through the verl ``verify`` manager
   exactly as in training (decode, rule check in the math-verify worker pool, LLM verifier for the wrong WebInstruct
   answers, TRM for the verified ones). Its bound is the network bound or the rule check alone, whichever is larger:
   the rule check is CPU work in the worker pool (seconds per thousand wrong answers here, on 2 shared cores), no
   client can beat it, and the network calls overlap it chunk by chunk.
2. The grid: the network path alone (the same rewarder with the step's rule verdicts given) for each latency x
   capacity, verified-only and score_all, for this client (one pool per service kept across batches, balanced by
   texts in flight, TRM texts and verifier prompts coalesced into list requests) and for a baseline modelled on the original release's client design (a new HTTP client per
   request, one text per request, round-robin over backends; by default only at the step's latency and capacity: its
   new SSL context per request costs tens of ms of CPU). The ratio is bound / wall (1.0: the backends, not the
   client, set the pace). ``--full-grid`` runs 4096 responses, capacities 32, 64, 256, the baseline everywhere.

Each timed step also reports the garbage collector's full passes during it, and those between the steps: one stops
the process for ~0.2 s here (it scans the heap of torch, transformers and verl). ``--no-hold-gc`` measures the reward
path without ``RewardSettings.hold_gc`` (trm.rewards.gc_hold). The step's median is over ``--rounds`` (5) alternating
rounds.

    .venv/bin/python bench/bench_reward_path.py [--latency 0.05] [--capacity 64] [--backends 2] [--full-grid]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import hashlib
import heapq
import itertools
import math
import multiprocessing
import statistics
import sys
import tempfile
import time
from pathlib import Path

WEBINSTRUCT = "TIGER-Lab/WebInstruct-verified"


# -- fake backends (separate process) ----------------------------------------------------------------------------
def _fake_score(text: str) -> float:
    return int(hashlib.sha1(text.encode()).hexdigest()[:6], 16) / 0xFFFFFF * 4.0 - 2.0


async def _serve(ports: dict[str, list[int]], ready) -> None:
    """Fault-injection backends (trm_testing.fault_server) answering after a per-text slot schedule (module doc)."""
    from trm_testing.fault_server import FaultServer, verifier_prompts, verifier_reply

    config = {"latency": 1.0, "capacity": 32}
    counts = {port: [0, 0] for port in itertools.chain(*ports.values())}  # requests, texts
    slots = {port: [0.0] * config["capacity"] for port in counts}  # per backend: when its slots free up (a heap)
    servers: list[FaultServer] = []

    def finish(port: int, texts: int) -> float:
        """Seconds until a request of ``texts`` texts arriving now is done: each text takes the earliest free slot."""
        now, done, heap = time.monotonic(), 0.0, slots[port]
        for _ in range(texts):
            start = max(now, heapq.heappop(heap))
            done = max(done, start + config["latency"])
            heapq.heappush(heap, start + config["latency"])
        return done - now

    def script(port: int, kind: str):
        def answer(index, request):
            if request.path == "/stats":
                return ("status", 200, {str(p): c for p, c in counts.items()})
            if request.path == "/config":
                config.update(request.json())
                for p in slots:
                    slots[p] = [0.0] * config["capacity"]
                for server in servers:
                    server.requests.clear()
                    server.actions.clear()
                return ("status", 200, config)
            if kind == "trm" and request.path == "/v1/embeddings":
                texts = request.json()["input"]
                texts = texts if isinstance(texts, list) else [texts]
                reply = {"object": "list", "usage": {"prompt_tokens": 1},
                         "data": [{"object": "embedding", "index": i, "embedding": [_fake_score(t)]} for i, t in enumerate(texts)]}
            elif kind == "verifier" and request.path in ("/v1/completions", "/v1/chat/completions"):
                texts = verifier_prompts(request)
                reply = verifier_reply(request, lambda prompt: "They differ.\nFinal Decision: No")[2]
            else:
                return ("status", 404, {"error": {"message": f"no route {request.path}"}})
            counts[port][0] += 1
            counts[port][1] += len(texts)
            return ("delay", finish(port, len(texts)), ("status", 200, reply))

        return answer

    for kind, kind_ports in ports.items():
        for port in kind_ports:
            servers.append(FaultServer(script(port, kind)))
            await servers[-1].start(port, backlog=4096)
    ready.set()
    await asyncio.Event().wait()


def _fake_process(ports, ready) -> None:
    asyncio.run(_serve(ports, ready))


def _control(port: int, path: str, body: dict | None = None) -> dict:
    import httpx

    return httpx.post(f"http://127.0.0.1:{port}{path}", json=body or {}, timeout=30).json()


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


# -- the baseline client: the original release's design, as a mode of this bench ----------------------------------
async def baseline_run(requests, verdicts, backends: dict[str, str], settings, score_all: bool) -> list[float]:
    """Rewards with a new HTTP client per request, one text per request, round-robin over the backends."""
    import httpx

    from trm.client import parse_backends
    from trm.protocol import general_verifier_input
    from trm.rewards.blend import RewardResult
    from trm.rewards.llm_verifier import parse_decision
    from trm.traces import trm_input

    turn = {kind: itertools.cycle(parse_backends(spec)) for kind, spec in backends.items()}
    limit = asyncio.Semaphore(settings.parallelism)

    async def post(kind: str, path: str, payload: dict) -> dict:
        async with limit, httpx.AsyncClient(timeout=settings.request_timeout_s, trust_env=False) as client:
            response = await client.post(next(turn[kind]) + path, json=payload)
            response.raise_for_status()
            return response.json()

    async def one(request, verdict) -> float:
        correct = verdict.correct
        if not correct and verdict.answer and request.data_source in settings.verify.llm_data_sources:
            text = general_verifier_input(request.question, request.ground_truth, verdict.answer)
            reply = await post("verifier", "/v1/chat/completions", {"model": settings.verify.verifier_model,
                               "messages": [{"role": "user", "content": text}], "temperature": 0.0})
            correct = bool(parse_decision(reply["choices"][0]["message"]["content"]))
        if correct or score_all:
            answer = await post("trm", "/v1/embeddings",
                                {"model": settings.rm_model, "input": trm_input(request.user_prompt, request.response)})
            t = answer["data"][0]["embedding"][0]
            return RewardResult.blend(verdict.__class__(correct, "x", None, ""), t, settings.alpha).score
        return 0.0

    return await asyncio.gather(*(one(r, v) for r, v in zip(requests, verdicts)))


# -- measuring ------------------------------------------------------------------------------------------------------
class FullCollections:
    """Counts the garbage collector's full passes (generation 2) and their pauses: they stop the client's thread for
    a time that grows with the whole heap (a trainer's imports), so a step that meets one is slower by about it."""

    def __init__(self):
        self.pauses: list[float] = []
        self.steps: dict[bool, list[int]] = {False: [], True: []}  # passes inside each timed step, per mode
        self.between = 0  # passes outside the timed steps (what a batch defers lands there, in a trainer's other work)
        self._counted = 0
        self._started = 0.0
        gc.callbacks.append(self._callback)

    def _callback(self, phase: str, info: dict) -> None:
        if info["generation"] == 2:
            if phase == "start":
                self._started = time.perf_counter()
            else:
                self.pauses.append(time.perf_counter() - self._started)

    def since_last(self) -> int:
        """Full passes since the previous call."""
        passes, self._counted = len(self.pauses) - self._counted, len(self.pauses)
        return passes

    def mean_pause(self) -> float:
        return statistics.mean(self.pauses) if self.pauses else 0.0


class Bench:
    def __init__(self, args):
        from trm_testing.serving import free_port

        self.args = args
        self.ports = {"trm": [free_port() for _ in range(args.backends)],
                      "verifier": [free_port() for _ in range(args.backends)]}
        self.backends = {k: ",".join(f"127.0.0.1:{p}" for p in v) for k, v in self.ports.items()}
        ctx = multiprocessing.get_context("spawn")
        ready = ctx.Event()
        self.fake = ctx.Process(target=_fake_process, args=(self.ports, ready), daemon=True)
        self.fake.start()
        if not ready.wait(60):
            raise RuntimeError("fake backends did not start")

    def configure(self, latency: float, capacity: int) -> None:
        _control(self.ports["trm"][0], "/config", {"latency": latency, "capacity": capacity})

    def measure(self, run, latency: float, capacity: int) -> tuple[int, int, int, int, float, float]:
        """(TRM texts, TRM requests, verifier texts, verifier requests, bound, wall) of ``run()``."""
        self.configure(latency, capacity)
        before = _control(self.ports["trm"][0], "/stats")
        started = time.perf_counter()
        run()
        wall = time.perf_counter() - started
        after = _control(self.ports["trm"][0], "/stats")
        delta = lambda kind, k: sum(after[str(p)][k] - before[str(p)][k] for p in self.ports[kind])  # noqa: E731
        texts, verifier = delta("trm", 1), delta("verifier", 1)
        total = capacity * self.args.backends
        bound = max(math.ceil(texts / total), math.ceil(verifier / total)) * latency
        return texts, delta("trm", 0), verifier, delta("verifier", 0), bound, wall


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--responses", type=int, default=4096, help="responses of the step through the manager")
    parser.add_argument("--latency", type=float, default=0.05, help="seconds each fake text takes (the step)")
    parser.add_argument("--capacity", type=int, default=64, help="texts one fake backend serves at once (the step)")
    parser.add_argument("--backends", type=int, default=2, help="fake backends per service (TRM, verifier)")
    parser.add_argument("--parallelism", type=int, default=1024)
    parser.add_argument("--client-concurrency", type=int, default=None,
                        help="requests the client keeps in flight per backend (default: the reward settings')")
    parser.add_argument("--grid-responses", type=int, default=1024, help="responses per grid cell")
    parser.add_argument("--full-grid", action="store_true", help="grid of 4096 responses, capacities 32, 64, 256")
    parser.add_argument("--no-grid", action="store_true")
    parser.add_argument("--hold-gc", action=argparse.BooleanOptionalAction, default=True,
                        help="RewardSettings.hold_gc of the managers (automatic GC held off during a batch)")
    parser.add_argument("--rounds", type=int, default=5,
                        help="measurements of the step and of each grid cell per mode (median wall)")
    args = parser.parse_args()

    from transformers import AutoTokenizer

    from trm.rewards.compute import request_from_sample, rule_check_requests
    from trm.rewards.verl_manager import VerifyRewardManager
    from trm.tiny import build_tiny_models
    from trm_testing.rollout import rollout_batch

    bench = Bench(args)
    with tempfile.TemporaryDirectory() as tmp:
        tokenizer = AutoTokenizer.from_pretrained(build_tiny_models(Path(tmp), seed=0)["chat"])
    samples = make_samples(args.responses)
    batch = rollout_batch(tokenizer, samples)
    requests = [request_from_sample(s.data_source, s.response, s.ground_truth, s.extra_info) for s in samples]
    managers = {
        score_all: VerifyRewardManager(tokenizer, 0, None, parallelism=args.parallelism, score_all=score_all,
                                       hold_gc=args.hold_gc,
                                       rm_backends=bench.backends["trm"], verifier_backends=bench.backends["verifier"],
                                       **({"max_concurrency_per_backend": args.client_concurrency}
                                          if args.client_concurrency else {}))
        for score_all in (False, True)}
    settings = managers[False].settings
    bench.configure(args.latency, args.capacity)
    for manager in managers.values():  # untimed warm-up, a whole step each: worker pool, imports, connections, as
        manager(batch)                 # every training step after the first finds them
    started = time.perf_counter()
    verdicts = rule_check_requests(requests, settings)
    rule_alone = time.perf_counter() - started
    gc.collect()  # the set-up's garbage (tokenizer, batch, the verdicts above) is not the first timed step's to collect
    full_passes = FullCollections()
    walls: dict[bool, list[float]] = {score_all: [] for score_all in managers}
    rows = {}
    for _ in range(args.rounds):  # the two modes alternate round by round; each reports its median wall
        for score_all, manager in managers.items():
            holder = {}
            full_passes.between += full_passes.since_last()
            rows[score_all] = bench.measure(lambda: holder.setdefault("out", manager(batch, return_dict=True)),
                                            args.latency, args.capacity)
            full_passes.steps[score_all].append(full_passes.since_last())
            rewards = holder["out"]["reward_tensor"].sum(-1)
            assert int((rewards > 0).sum()) == (args.responses + 1) // 2, "half the answers are right"
            walls[score_all].append(rows[score_all][-1])
    step_rows = [("score_all" if score_all else "verified only (default)", (*rows[score_all][:-1],
                  statistics.median(walls[score_all]))) for score_all in managers]

    print(f"reward path: {args.backends}+{args.backends} fake backends, parallelism {args.parallelism}, client "
          f"concurrency {settings.max_concurrency_per_backend} per backend, TRM batch {settings.rm_batch_size} texts; "
          "2 shared CPU cores (noisy)")
    print(f"\n1. one GRPO step through the verl manager: {args.responses} responses (half right), latency "
          f"{args.latency}s, capacity {args.capacity}; rule check alone {rule_alone:.2f}s; median wall of "
          f"{args.rounds} rounds (walls: " + "; ".join(f"{'score_all' if k else 'verified only'} "
          + " ".join(f"{w:.2f}" for w in v) for k, v in walls.items()) + ")")
    print(f"full garbage collections of the process during the timed steps: "
          + "; ".join(f"{'score_all' if k else 'verified only'} {' '.join(map(str, v))}" for k, v in full_passes.steps.items())
          + f"; between them {full_passes.between} (a pass stops the process {full_passes.mean_pause():.2f}s here; "
          f"hold_gc {settings.hold_gc})")
    print(f"{'mode':<26}{'TRM texts':>10}{'reqs':>6}{'verifier texts':>15}{'reqs':>6}{'net bound':>10}{'bound s':>9}"
          f"{'wall s':>8}{'bound/wall':>11}")
    for mode, (texts, trm_requests, verifier, verifier_requests, net_bound, wall) in step_rows:
        bound = max(net_bound, rule_alone)
        print(f"{mode:<26}{texts:>10}{trm_requests:>6}{verifier:>15}{verifier_requests:>6}{net_bound:>10.2f}"
              f"{bound:>9.2f}{wall:>8.2f}{bound / wall:>11.3f}")
    if args.no_grid:
        bench.fake.terminate()
        return 0

    n = args.responses if args.full_grid else min(args.grid_responses, args.responses)
    capacities = sorted({32, 64, 256} if args.full_grid else {32, args.capacity})
    grid_requests, grid_verdicts = requests[:n], verdicts[:n]
    print(f"\n2. network path alone (rule verdicts given), {n} responses; ratio bound / median wall of {args.rounds} "
          "rounds (the baseline: one round)")
    print(f"{'latency s':>10}{'capacity':>9}{'client':>10}{'verified only':>15}{'score_all':>11}")
    worst = 1.0
    for latency, capacity in itertools.product((1.0, 0.2, 0.05), capacities):
        baseline = args.full_grid or (latency, capacity) == (args.latency, args.capacity)
        for client in ("pool", "baseline") if baseline else ("pool",):
            bounds, walls = {}, {score_all: [] for score_all in managers}
            for _ in range(args.rounds if client == "pool" else 1):  # modes alternate; the median wall counts
                for score_all, manager in managers.items():
                    if client == "pool":
                        run = lambda: manager.rewarder.reward(grid_requests, rule_verdicts=grid_verdicts)  # noqa: E731
                    else:
                        run = lambda: asyncio.run(baseline_run(grid_requests, grid_verdicts,  # noqa: E731
                                                               bench.backends, manager.settings, score_all))
                    *_, bounds[score_all], wall = bench.measure(run, latency, capacity)
                    walls[score_all].append(wall)
            ratios = [bounds[score_all] / statistics.median(walls[score_all]) for score_all in managers]
            worst = min(worst, *ratios) if client == "pool" else worst
            print(f"{latency:>10g}{capacity:>9}{client:>10}{ratios[0]:>15.3f}{ratios[1]:>11.3f}")
    print(f"worst ratio of this client over the grid: {worst:.3f}")
    bench.fake.terminate()
    return 0


if __name__ == "__main__":
    sys.exit(main())
