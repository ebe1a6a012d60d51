"""`trm generate`: N responses per benchmark prompt, written as JSONL with resume and progress.

Output: one JSON line per prompt, in benchmark order:
  {"id", "benchmark", "answer_type", "question", "choices", "answer", "template", "system", "prompt", "model",
   "backend", "sampling": {n, temperature, top_p, max_tokens, seed}, "responses": [N strings]}
"prompt" is the user turn sent. `--template benchmark` uses the benchmark's own instruction; an RL checkpoint is
evaluated with the prompt it was trained with (`--template luffy` / `llama-boxed` / ..., see `trm.data.prompts`).
Re-running the same command resumes: records already written are matched by benchmark and id
(`trm.resumable`); one written with another prompt or n, or torn, is set aside into `<out>.set-aside`.
--max-tokens is kept inside the model's context when the model is a local folder (see `resolve_max_tokens`): its
default is what that context leaves after the longest prompt, and a value that does not fit is an error; for a
served model name the default is SamplingConfig's, assumed to fit (the server refuses what does not).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from trm.cli import HelpFormatter, add_alias, add_dataclass_arguments, dataclass_from_args
from trm.client import API_KEY_ENV
from trm.data.prompts import TEMPLATES, get_template, template_help
from trm.errors import BadInput
from trm.evaluation.backends import BACKENDS, SamplingConfig, vllm_usable
from trm.evaluation.benchmarks import BENCHMARKS, LETTERS, Item, load_items
from trm.llm.client import ChatConfig
from trm.resumable import ResumableOutput

BENCHMARK_TEMPLATE = "benchmark"  # the benchmark's own prompt (question, options, answer-format instruction)


def build_parser(prog: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=prog, description=__doc__, formatter_class=HelpFormatter)
    p.add_argument("--benchmark", required=True, help=f"one of: {', '.join(BENCHMARKS)}")
    p.add_argument("--data", help="benchmark file (else $TRM_BENCH_<NAME> or --data-dir)")
    p.add_argument("--data-dir", help="directory holding the benchmark's default file name ($TRM_BENCH_DIR)")
    p.add_argument("--question-field"), p.add_argument("--answer-field"), p.add_argument("--choices-field")
    p.add_argument("--limit", type=int, help="only the first LIMIT questions")
    p.add_argument("--output", dest="out", required=True, help="output JSONL (resumed if it exists)")
    p.add_argument("--model", required=True, help="model path (vllm/transformers) or served model name (openai)")
    p.add_argument("--backend", choices=["auto", *BACKENDS], default="auto",
                   help="auto: openai if --endpoint is given, else vllm if it imports and a GPU is present, "
                        "else transformers")
    p.add_argument("--endpoint", help="OpenAI-compatible base URL, e.g. http://127.0.0.1:8000/v1")
    p.add_argument("--api-key", help=f"API key for --endpoint (default: ${API_KEY_ENV['generation'][0]} or none)")
    p.add_argument("--api", choices=["chat", "completions"], default="chat", help="endpoint route (openai backend)")
    p.add_argument("--completion-template", default="{prompt}",
                   help="text sent to /v1/completions, {prompt} is replaced by the user prompt")
    p.add_argument("--template", choices=[BENCHMARK_TEMPLATE, *TEMPLATES], default=BENCHMARK_TEMPLATE,
                   help="prompt: 'benchmark' (its own instruction) or the template an RL checkpoint was trained "
                        f"with ({template_help()})")
    p.add_argument("--system", help="optional system message (not with a template that has its own)")
    # --max-tokens None: fitted to a local model's context (resolve_max_tokens); --seed -1: None (unseeded)
    add_dataclass_arguments(p, SamplingConfig, defaults={"max_tokens": None})
    p.add_argument("--batch-size", type=int, default=8, help="prompts per backend call (and per write)")
    endpoint = p.add_argument_group("endpoint client (openai backend)")
    add_dataclass_arguments(endpoint, ChatConfig, defaults={"max_concurrency": 8, "request_timeout": 3600.0,
                                                            "deadline": 3 * 3600.0},
                            flags={"max_concurrency": "--concurrency"},
                            exclude=("backoff_base", "backoff_max", "use_n"))
    p.add_argument("--tensor-parallel-size", type=int, default=1, help="vllm backend")
    p.add_argument("--device", help="transformers backend device (default cuda if available, else cpu)")
    p.add_argument("--trust-remote-code", action="store_true")
    add_alias(p, "--out", "--output")
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
            raise BadInput("--backend openai needs --endpoint URL")
        return BACKENDS["openai"](args.endpoint, args.model, api_key=args.api_key, mode=args.api, system=args.system,
                                  completion_template=args.completion_template,
                                  config=dataclass_from_args(ChatConfig, args))
    if name == "vllm":
        return BACKENDS["vllm"](args.model, system=args.system, tensor_parallel_size=args.tensor_parallel_size,
                                trust_remote_code=args.trust_remote_code)
    return BACKENDS["transformers"](args.model, system=args.system, device=args.device,
                                    trust_remote_code=args.trust_remote_code)


def prompt_of(item: Item, template: str, system: str | None = None) -> tuple[str | None, str]:
    """(system turn, user turn) of an item under a template name."""
    if template == BENCHMARK_TEMPLATE:
        return system, item.prompt
    chosen = get_template(template)
    if chosen.system and system:
        raise BadInput(f"--template {template} has its own system turn; drop --system")
    problem = item.question.strip()
    if item.choices:  # the options belong to the problem; the template says how to answer
        problem += "\n\n" + "\n".join(f"{LETTERS[i]}) {c}" for i, c in enumerate(item.choices))
    return chosen.system or system, chosen.user_turn(problem)


def model_context(model: str) -> int | None:
    """Positions of a local model folder (what vLLM would accept as max_model_len); None when not local."""
    config = Path(model) / "config.json"
    if not config.is_file():
        return None
    from trm.model_context import vllm_positions

    return vllm_positions(json.loads(config.read_text(encoding="utf-8")))


def prompt_lengths(model: str, system: str | None, prompts: list[str], api: str, completion_template: str,
                   trust_remote_code: bool = False) -> list[int]:
    """Tokens of each prompt as the model receives it (chat template with generation prompt, or the raw text)."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model, trust_remote_code=trust_remote_code)
    if api == "completions":
        return [len(tokenizer(completion_template.format(prompt=p))["input_ids"]) for p in prompts]
    if tokenizer.chat_template is None:
        raise BadInput(f"{model}: the tokenizer has no chat template; generation needs one to build prompts")
    turns = [{"role": "system", "content": system}] if system else []
    return [len(tokenizer.apply_chat_template(turns + [{"role": "user", "content": p}], tokenize=True,
                                              add_generation_prompt=True)) for p in prompts]


def resolve_max_tokens(requested: int | None, context: int | None, longest_prompt: int) -> int:
    """New tokens per response such that prompt + response fits the context; raises when a requested value does not.

    Failing (not clamping) keeps the recorded sampling settings what the user asked for; the default fills the
    context. Without a known context the request (or the SamplingConfig default) is taken as it is.
    """
    if context is None:
        return SamplingConfig.max_tokens if requested is None else requested
    room = context - longest_prompt
    if room < 1:
        raise BadInput(f"the longest prompt has {longest_prompt} tokens but the model's context is {context} "
                         "positions: no room for a response")
    if requested is None:
        return room
    if requested > room:
        raise BadInput(f"--max-tokens {requested} does not fit: the longest prompt has {longest_prompt} tokens and "
                         f"the model's context is {context} positions (prompt + max_tokens = "
                         f"{longest_prompt + requested}); pass --max-tokens {room} or less")
    return requested


def record_for(item: Item, responses: list[str], model: str, backend: str, cfg: SamplingConfig,
               template: str = BENCHMARK_TEMPLATE, system: str | None = None, prompt: str | None = None) -> dict:
    return {
        "id": item.id, "benchmark": item.benchmark, "answer_type": item.answer_type, "question": item.question,
        "choices": item.choices, "answer": item.answer, "template": template, "system": system,
        "prompt": item.prompt if prompt is None else prompt, "model": model, "backend": backend,
        "sampling": cfg.to_dict(), "responses": responses,
    }


def open_output(out: Path, items: list[Item], n: int, prompts: list[tuple[str | None, str]],
                template: str) -> ResumableOutput:
    """The output with the records already there matched to the items (by benchmark and id)."""

    def check(record: dict, index: int) -> str | None:
        responses = record.get("responses")
        if not isinstance(responses, list) or len(responses) != n or not all(isinstance(r, str) for r in responses):
            return f"'responses' is not a list of {n} strings"
        system, prompt = prompts[index]
        if (record.get("template", BENCHMARK_TEMPLATE), record.get("prompt"), record.get("system")) != \
                (template, prompt, system):
            return f"written with another prompt (template {record.get('template', BENCHMARK_TEMPLATE)!r})"
        return None

    return ResumableOutput(out, [(it.benchmark, it.id) for it in items],
                           key_of=lambda r: (r["benchmark"], r["id"]), check=check).open()


def generate(items: list[Item], backend, output: ResumableOutput, cfg: SamplingConfig, model: str,
             batch_size: int = 8, progress: bool = True, template: str = BENCHMARK_TEMPLATE,
             prompts: list[tuple[str | None, str]] | None = None) -> int:
    """Sample the items `output` lacks, writing each batch as it finishes; returns how many were written now.

    ``prompts`` are the (system, user) turns per item; the backend must have been built with that system turn.
    """
    from tqdm import tqdm

    prompts = prompts or [(None, it.prompt) for it in items]
    todo = output.todo
    written = 0
    with tqdm(total=len(items), initial=len(items) - len(todo), desc=f"generate {items[0].benchmark if items else ''}",
              unit="prompt", file=sys.stderr, disable=not progress) as bar:
        for offset in range(0, len(todo), max(1, batch_size)):
            indices = todo[offset : offset + batch_size]
            results = backend.sample([prompts[i][1] for i in indices], indices, cfg)
            if len(results) != len(indices) or any(len(r) != cfg.n for r in results):
                raise RuntimeError(f"backend {backend.name} returned a wrong number of responses")
            output.append((i, record_for(items[i], r, model, backend.name, cfg, template, *prompts[i]))
                          for i, r in zip(indices, results))
            written += len(indices)
            bar.update(len(indices))
    output.finish()
    return written


def main(argv: list[str], prog: str = "trm generate") -> int:
    args = build_parser(prog).parse_args(argv)
    if args.n < 1:
        raise BadInput("--n must be at least 1")
    overrides = {"question": args.question_field, "answer": args.answer_field, "choices": args.choices_field}
    items = load_items(args.benchmark, args.data, args.data_dir, args.limit, overrides)
    prompts = [prompt_of(item, args.template, args.system) for item in items]
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    output = open_output(out, items, args.n, prompts, args.template)
    if not output.todo:
        output.finish()
        print(f"{out}: all {len(items)} prompts already done", file=sys.stderr)
        return 0
    system = prompts[0][0] if prompts else None
    context = model_context(args.model)
    longest = 0
    if context is not None:
        longest = max(prompt_lengths(args.model, system, [p for _, p in prompts], args.api,
                                     args.completion_template, args.trust_remote_code))
    max_tokens = resolve_max_tokens(args.max_tokens, context, longest)
    if context is None and args.max_tokens is None:
        print(f"{prog}: the context of {args.model!r} is unknown here (not a local model folder): assumed "
              f"--max-tokens {max_tokens} fits", file=sys.stderr)
    cfg = dataclass_from_args(SamplingConfig, args, max_tokens=max_tokens, seed=None if args.seed < 0 else args.seed)
    name = choose_backend(args)
    args.system = system  # the template's system turn, if it has one
    backend = make_backend(name, args)
    written = generate(items, backend, output, cfg, args.model, args.batch_size, template=args.template,
                       prompts=prompts)
    print(f"wrote {written} records ({cfg.n} responses each) to {out}", file=sys.stderr)
    return 0
