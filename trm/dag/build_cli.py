"""`trm dag build`: JSONL of traces in, JSONL of DAGs out (input order kept, resumable, with progress)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys

from trm.cli import HelpFormatter, add_dataclass_arguments, dataclass_from_args
from trm.client import BackendError
from trm.dag.build import DagConfig, build_dag, cap_steps, fallback_counts, steps_of
from trm.dag.graph import merged_view
from trm.dag.partition import KEYWORD_SETS, resolve_keywords
from trm.errors import BadInput, RunFailed
from trm.jsonio import read_records
from trm.llm.batch import run_ordered
from trm.llm.client import Usage, add_judge_arguments, client_from_args
from trm.resumable import RecordFailed, ResumableOutput

# A capable judge answers in the format for nearly every step (the scripted demo judge for all of them); one whose
# answers are rejected for more than this share of the steps is the wrong model, prompt or token budget.
MAX_FALLBACK_RATE = 0.1

# Input fields consumed here; all other fields are copied to the output record unchanged.
_TEXT_FIELDS = ("trace", "steps", "response")


# DagConfig's flags are --dag-*, but for the names they had before the judge's sampling got its --dag- prefix
DAG_FLAGS = {"main_path_window": "--main-path-window", "max_open_leaves": "--max-open-leaves",
             "step_chars": "--step-chars", "max_steps": "--max-steps"}


def add_dag_arguments(parser: argparse.ArgumentParser) -> None:
    """Structuring options shared by `trm dag build` and `trm preference build`: DagConfig's fields (``args.dag_*``)."""
    group = parser.add_argument_group("DAG construction")
    group.add_argument("--keywords", default="default",
                       help=f"step keywords: a family ({', '.join(KEYWORD_SETS)}) or a comma-separated word list")
    # a tuple has no derived flag: comma-separated here, parsed by dag_config_from_args
    group.add_argument("--rounds", default=",".join(map(str, DagConfig.rounds)),
                       help=DagConfig.__dataclass_fields__["rounds"].metadata["help"])
    add_dataclass_arguments(group, DagConfig, prefix="dag_", flags=DAG_FLAGS, exclude=("rounds",))


def dag_config_from_args(args) -> DagConfig:
    try:
        rounds = tuple(int(x) for x in args.rounds.split(",") if x.strip())
    except ValueError:
        raise BadInput(f"--rounds must be comma-separated integers, got {args.rounds!r}") from None
    if not rounds or min(rounds) < 1:
        raise BadInput("--rounds needs at least one round of at least one sample")
    return dataclass_from_args(DagConfig, args, prefix="dag_", rounds=rounds)


def build_parser(prog: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog,
        description=(
            "Turn reasoning traces into DAGs. Each input line needs 'prompt' and one of 'trace' (text, split into "
            "steps here), 'steps' (list of strings, used as given) or 'response' (its reasoning is used)."
        ),
        formatter_class=HelpFormatter,
    )
    parser.add_argument("--input", required=True, help="JSONL (or JSON list) of trace records")
    parser.add_argument("--output", required=True, help="JSONL written one record per trace; reruns resume")
    parser.add_argument("--concurrency", type=int, default=8, help="traces in flight at once")
    parser.add_argument("--max-fallback-rate", type=float, default=MAX_FALLBACK_RATE,
                        help="exit 1 when more than this share of the steps in the output fell back to 'continue' "
                             "because no judge answer was valid (a judge that fails that often is not structuring "
                             "anything); 1 accepts any")
    add_judge_arguments(parser)
    add_dag_arguments(parser)
    return parser


def main(argv: list[str], prog: str = "trm dag build") -> int:
    args = build_parser(prog).parse_args(argv)
    keywords = resolve_keywords(args.keywords)
    records = read_records(args.input)
    for number, record in enumerate(records):
        if not isinstance(record.get("prompt"), str):
            raise BadInput(f"{args.input}: record {number} has no 'prompt' string")
        steps_of(record, keywords)  # fail before any judge call, not halfway through
    config = dag_config_from_args(args)
    output = ResumableOutput(args.output, [(i, r["prompt"]) for i, r in enumerate(records)],
                             key_of=lambda out: (out["index"], out["prompt"]), check=_check_dag_record).open()
    judge = client_from_args(args)
    from tqdm import tqdm

    step_total = sum(max(0, len(cap_steps(steps_of(records[i], keywords), config.max_steps)) - 1) for i in output.todo)
    step_bar = tqdm(total=step_total, desc="dag steps", unit="step", file=sys.stderr, dynamic_ncols=True, position=1)

    async def work(index: int, record: dict) -> dict:
        usage = Usage()
        dag = await build_dag(judge, record["prompt"], steps_of(record, keywords), config, usage,
                              on_step=lambda: step_bar.update(1))
        out = {key: value for key, value in record.items() if key not in _TEXT_FIELDS}
        out.update(
            index=index,
            dag=dag.to_dict(),
            merged=[node.to_dict() for node in merged_view(dag)],
            usage=usage.to_dict(),
        )
        return out

    async def run() -> int:
        try:
            return await run_ordered(records, work, output, window=args.concurrency, desc="dag build")
        finally:
            await judge.aclose()

    with step_bar, judge_failures("record", f"Finished records are kept in {args.output}"):
        written = asyncio.run(run())
    print(
        f"wrote {written} DAG records to {args.output} (judge: {judge.usage.requests} requests, "
        f"{judge.usage.total_tokens} tokens this run)",
        file=sys.stderr,
    )
    fallbacks, decided = fallback_counts(read_records(args.output))
    rate = fallbacks / decided if decided else 0.0
    print(f"{prog}: {fallbacks} of {decided} steps fell back to 'continue' (no valid judge answer): {rate:.1%} "
          f"(limit --max-fallback-rate {args.max_fallback_rate:g})", file=sys.stderr)
    if rate > args.max_fallback_rate:
        raise RunFailed(f"fallback rate {rate:.1%} is above {args.max_fallback_rate:.1%}: the judge's answers were "
                        f"rejected (see 'errors' in {args.output}); use a stronger judge, a larger --dag-max-tokens, or "
                        "--max-fallback-rate 1 to accept the output")
    return 0


@contextlib.contextmanager
def judge_failures(item: str, kept: str):
    """A judge that fails (BackendError, also inside RecordFailed) ends the run as RunFailed naming the item."""
    try:
        yield
    except (RecordFailed, BackendError) as exc:
        cause = exc.cause if isinstance(exc, RecordFailed) else exc
        if not isinstance(cause, BackendError):
            raise
        where = f"at {item} {exc.index} (0-based)" if isinstance(exc, RecordFailed) else "at start"
        raise RunFailed(f"judge failed {where}: {cause}\n{kept}; rerun to resume.") from exc


def _check_dag_record(record: dict, index: int) -> str | None:
    """Why a written record is not a finished DAG (None when it is)."""
    if not isinstance(record.get("dag"), dict) or not isinstance(record.get("merged"), list):
        return "no 'dag' object and 'merged' list"
    return None
