"""`trm preference build`: verified traces in; TRM-Preference JSONL, an audit JSONL and a stats JSON out.

Reruns resume from the audit file (one line per judged pair) without redoing finished pairs.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path

from trm.cli import HelpFormatter, add_dataclass_arguments, dataclass_from_args
from trm.dag.build_cli import add_dag_arguments, dag_config_from_args, judge_failures
from trm.dag.partition import resolve_keywords
from trm.llm.batch import run_ordered
from trm.llm.client import add_judge_arguments, client_from_args
from trm.preference.pairwise import PairwiseConfig
from trm.preference.pipeline import (
    PipelineConfig,
    ViewCache,
    form_pairs,
    iter_jsonl,
    judge_task,
    load_dags,
    load_traces,
    summarise_audit,
)
from trm.errors import BadInput
from trm.preference.views import ViewConfig
from trm.resumable import ResumableOutput


# PairwiseConfig's flags are --judge-*, but for these names, which say what they are without it
PAIRWISE_FLAGS = {"repetitions": "--repetitions", "min_agreement": "--min-agreement",
                  "parse_retries": "--parse-retries"}


def add_pairwise_arguments(parser: argparse.ArgumentParser) -> None:
    """PairwiseConfig's fields as flags (``args.judge_*``), shared by `trm preference build` and `trm eval winrate`."""
    add_dataclass_arguments(parser.add_argument_group("pairwise judging"), PairwiseConfig, prefix="judge_",
                            flags=PAIRWISE_FLAGS)


def build_parser(prog: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog,
        description=(
            "Pair correct traces per prompt, judge each pair in both orders with the ME2 criteria, and write the "
            "consistently preferred pairs as TRM-Preference records. Input lines: "
            '{"prompt": str, "model": str, "response": str, "correct": bool, "prompt_id": optional}.'
        ),
        formatter_class=HelpFormatter,
    )
    parser.add_argument("--input", required=True, help="JSONL (or JSON list) of verified responses")
    parser.add_argument("--output", required=True, help="TRM-Preference JSONL (kept pairs)")
    parser.add_argument("--audit", default=None, help="per-pair audit JSONL (default: OUTPUT with .audit.jsonl)")
    parser.add_argument("--stats", default=None, help="stats JSON (default: OUTPUT with .stats.json)")
    parser.add_argument(
        "--dags",
        default=None,
        help="reuse DAGs from `trm dag build` run on this same input file (skips DAG construction)",
    )
    parser.add_argument("--max-pairs-per-prompt", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0, help="seed of the per-prompt pair sample")
    parser.add_argument("--cross-model-only", action="store_true", help="only pair responses of different models")
    parser.add_argument("--concurrency", type=int, default=4, help="pairs in flight at once")
    # the nested configs get their own flags below; keywords come from --keywords (a family name or a word list)
    add_dataclass_arguments(parser, PipelineConfig, exclude=("dag", "views", "pairwise", "keywords"))
    add_pairwise_arguments(parser)
    add_dataclass_arguments(parser.add_argument_group("super-node summaries"), ViewConfig, prefix="summary_")
    group = parser.add_argument_group("cost estimate")
    group.add_argument("--price-input-per-mtok", type=float, default=None, help="USD per million prompt tokens")
    group.add_argument("--price-output-per-mtok", type=float, default=None, help="USD per million completion tokens")
    add_judge_arguments(parser)
    add_dag_arguments(parser)
    return parser


def pipeline_config_from_args(args) -> PipelineConfig:
    return dataclass_from_args(PipelineConfig, args, dag=dag_config_from_args(args),
                               keywords=resolve_keywords(args.keywords),
                               views=dataclass_from_args(ViewConfig, args, prefix="summary_"),
                               pairwise=dataclass_from_args(PairwiseConfig, args, prefix="judge_"))


def _sibling(output: Path, suffix: str) -> Path:
    name = output.name
    stem = name[: -len(output.suffix)] if output.suffix else name
    return output.with_name(stem + suffix)


def main(argv: list[str], prog: str = "trm preference build") -> int:
    args = build_parser(prog).parse_args(argv)
    output = Path(args.output)
    audit_path = Path(args.audit) if args.audit else _sibling(output, ".audit.jsonl")
    stats_path = Path(args.stats) if args.stats else _sibling(output, ".stats.json")
    if args.judge_repetitions < 1 or args.max_pairs_per_prompt < 1 or not 0.5 < args.judge_min_agreement <= 1.0:
        raise BadInput("need --repetitions >= 1, --max-pairs-per-prompt >= 1, 0.5 < --min-agreement <= 1")
    config = pipeline_config_from_args(args)
    records = load_traces(args.input)
    tasks, pairing = form_pairs(records, args.max_pairs_per_prompt, args.seed, args.cross_model_only)
    audit_out = ResumableOutput(audit_path, [task.ident for task in tasks], key_of=lambda line: line["pair_id"],
                                check=_check_audit_line).open()
    dags = load_dags(args.dags, records) if args.dags else None
    judge = client_from_args(args)
    print(
        f"{pairing.prompts} prompts, {pairing.correct} correct responses, {len(tasks)} pairs to judge",
        file=sys.stderr,
    )

    async def run() -> None:
        cache = ViewCache(judge, records, [tasks[i] for i in audit_out.todo], config, dags)
        try:
            await run_ordered(
                tasks,
                lambda index, task: judge_task(judge, records, task, cache, config),
                audit_out,
                window=args.concurrency,
                desc="pairs",
            )
        finally:
            await judge.aclose()

    with judge_failures("pair", f"Judged pairs are kept in {audit_path}"):
        asyncio.run(run())
    output.parent.mkdir(parents=True, exist_ok=True)
    audit = iter_jsonl(audit_path) if audit_path.exists() else iter(())
    with open(output, "w", encoding="utf-8") as handle:  # rewritten whole from the audit, so always consistent
        stats = summarise_audit(
            audit,
            pairing,
            args.price_input_per_mtok,
            args.price_output_per_mtok,
            kept_sink=lambda record: handle.write(json.dumps(record, ensure_ascii=False) + "\n"),
        )
    stats.update(output=str(output), audit=str(audit_path))
    stats_path.write_text(json.dumps(stats, indent=2) + "\n", encoding="utf-8")
    print(
        f"kept {stats['pairs_kept']} of {stats['pairs_judged']} pairs -> {output}; dropped {stats['dropped']}; "
        f"judge tokens {stats['judge_usage']['total_tokens']}; stats in {stats_path}",
        file=sys.stderr,
    )
    return 0


def _check_audit_line(line: dict, index: int) -> str | None:
    """Why an audit line is not a finished judgement (None when it is)."""
    if "label" not in line or "record" not in line:
        return "no 'label' and 'record' (not a finished judgement)"
    return None
