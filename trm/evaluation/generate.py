"""`trm generate`: N responses per benchmark prompt, written as JSONL with resume and progress.

Output: one JSON line per prompt, in benchmark order:
  {"id", "benchmark", "answer_type", "question", "choices", "answer", "prompt", "model", "backend",
   "sampling": {n, temperature, top_p, max_tokens, seed}, "responses": [N strings]}
Re-running the same command continues after the last complete line (a torn last line is dropped); the
records already written must belong to the same benchmark items in the same order, else it stops with an error.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from trm.evaluation.backends import BACKENDS, SamplingConfig, vllm_usable
from trm.evaluation.benchmarks import BENCHMARKS, Item, load_items
from trm.jsonio import append_jsonl, count_complete_lines, read_records


def build_parser(prog: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=prog, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--benchmark", required=True, help=f"one of: {', '.join(BENCHMARKS)}")
    p.add_argument("--data", help="benchmark file (else $TRM_BENCH_<NAME> or --data-dir)")
    p.add_argument("--data-dir", help="directory holding the benchmark's default file name ($TRM_BENCH_DIR)")
    p.add_argument("--question-field"), p.add_argument("--answer-field"), p.add_argument("--choices-field")
    p.add_argument("--limit", type=int, help="only the first LIMIT questions")
    p.add_argument("--out", required=True, help="output JSONL (resumed if it exists)")
    p.add_argument("--model", required=True, help="model path (vllm/transformers) or served model name (openai)")
    p.add_argument("--backend", choices=["auto", *BACKENDS], default="auto",
                   help="auto: openai if --endpoint is given, else vllm if it imports and a GPU is present, "
                        "else transformers")
    p.add_argument("--endpoint", help="OpenAI-compatible base URL, e.g. http://127.0.0.1:8000/v1")
    p.add_argument("--api-key", help="API key for --endpoint (default: $OPENAI_API_KEY or none)")
    p.add_argument("--api", choices=["chat", "completions"], default="chat", help="endpoint route (openai backend)")
    p.add_argument("--completion-template", default="{prompt}",
                   help="text sent to /v1/completions, {prompt} is replaced by the user prompt")
    p.add_argument("--system", help="optional system message")
    p.add_argument("--n", type=int, default=1, help="responses per prompt")
    p.add_argument("--temperature", type=float, default=0.6)
    p.add_argument("--top-p", type=float, default=0.95)
    p.add_argument("--max-tokens", type=int, default=32768)
    p.add_argument("--seed", type=int, default=0, help="base seed; prompt i uses seed+i (-1: unseeded)")
    p.add_argument("--batch-size", type=int, default=8, help="prompts per backend call (and per write)")
    p.add_argument("--concurrency", type=int, default=8, help="parallel requests (openai backend)")
    p.add_argument("--max-retries", type=int, default=3, help="client retries per request (openai backend)")
    p.add_argument("--request-timeout", type=float, default=3600.0, help="seconds per request (openai backend)")
    p.add_argument("--tensor-parallel-size", type=int, default=1, help="vllm backend")
    p.add_argument("--device", help="transformers backend device (default cuda if available, else cpu)")
    p.add_argument("--trust-remote-code", action="store_true")
    return p


def choose_backend(args) -> str:
    if args.backend != "auto":
        return args.backend
    if args.endpoint:
        return "openai"
    return "vllm" if vllm_usable() else "transformers"


def make_backend(name: str, args):
    if name == "openai":
        if not args.endpoint:
            raise SystemExit("--backend openai needs --endpoint URL")
        import os

        return BACKENDS["openai"](args.endpoint, args.model, api_key=args.api_key or os.environ.get("OPENAI_API_KEY"),
                                  mode=args.api, system=args.system, completion_template=args.completion_template,
                                  concurrency=args.concurrency, timeout=args.request_timeout,
                                  max_retries=args.max_retries)
    if name == "vllm":
        return BACKENDS["vllm"](args.model, system=args.system, tensor_parallel_size=args.tensor_parallel_size,
                                trust_remote_code=args.trust_remote_code)
    return BACKENDS["transformers"](args.model, system=args.system, device=args.device,
                                    trust_remote_code=args.trust_remote_code)


def check_resume(out: Path, items: list[Item]) -> int:
    """Number of items already done; refuses to continue a file written for other items."""
    done = count_complete_lines(out)
    if not done:
        return 0
    if done > len(items):
        raise SystemExit(f"{out} has {done} records but the benchmark has only {len(items)} questions; "
                         f"use another --out or the same --limit")
    for position, (record, item) in enumerate(zip(read_records(out), items)):
        if record.get("id") != item.id or record.get("benchmark") != item.benchmark:
            raise SystemExit(f"{out}: record {position} is {record.get('benchmark')}/{record.get('id')}, expected "
                             f"{item.benchmark}/{item.id}; it was written for other data. Use another --out.")
    return done


def record_for(item: Item, responses: list[str], model: str, backend: str, cfg: SamplingConfig) -> dict:
    return {
        "id": item.id, "benchmark": item.benchmark, "answer_type": item.answer_type, "question": item.question,
        "choices": item.choices, "answer": item.answer, "prompt": item.prompt, "model": model, "backend": backend,
        "sampling": cfg.to_dict(), "responses": responses,
    }


def generate(items: list[Item], backend, out: Path, cfg: SamplingConfig, model: str, batch_size: int = 8,
             progress: bool = True) -> int:
    """Sample the items not yet in `out`; returns how many were written now."""
    from tqdm import tqdm

    start = check_resume(out, items)
    todo = list(range(start, len(items)))
    written = 0
    with tqdm(total=len(items), initial=start, desc=f"generate {items[0].benchmark if items else ''}",
              unit="prompt", file=sys.stderr, disable=not progress) as bar:
        for offset in range(0, len(todo), max(1, batch_size)):
            indices = todo[offset : offset + batch_size]
            batch = [items[i] for i in indices]
            results = backend.sample([it.prompt for it in batch], indices, cfg)
            if len(results) != len(batch) or any(len(r) != cfg.n for r in results):
                raise RuntimeError(f"backend {backend.name} returned a wrong number of responses")
            append_jsonl(out, [record_for(it, r, model, backend.name, cfg) for it, r in zip(batch, results)])
            written += len(batch)
            bar.update(len(batch))
    return written


def main(argv: list[str], prog: str = "trm generate") -> int:
    args = build_parser(prog).parse_args(argv)
    if args.n < 1:
        raise SystemExit("--n must be at least 1")
    overrides = {"question": args.question_field, "answer": args.answer_field, "choices": args.choices_field}
    try:
        items = load_items(args.benchmark, args.data, args.data_dir, args.limit, overrides)
    except (FileNotFoundError, KeyError, ValueError) as exc:
        raise SystemExit(f"{prog}: {exc}") from None
    cfg = SamplingConfig(args.n, args.temperature, args.top_p, args.max_tokens, None if args.seed < 0 else args.seed)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    if check_resume(out, items) == len(items):
        print(f"{out}: all {len(items)} prompts already done", file=sys.stderr)
        return 0
    name = choose_backend(args)
    backend = make_backend(name, args)
    written = generate(items, backend, out, cfg, args.model, args.batch_size)
    print(f"wrote {written} records ({cfg.n} responses each) to {out}", file=sys.stderr)
    return 0
