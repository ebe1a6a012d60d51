"""`trm reward`: rewards and their components for a small batch of responses, through the real servers.

The same pipeline as training (``trm.rewards.compute``): rule check, LLM verifier where allowed, TRM on verified
answers, blend. Useful to check that the servers behind DEFAULT_*_BACKENDS answer before launching train.sh.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from trm.cli import HelpFormatter, add_alias, add_dataclass_arguments, dataclass_from_args
from trm.errors import BadInput
from trm.jsonio import read_rows
from trm.rewards.blend import RewardResult
from trm.rewards.compute import RewardSettings, environment_backends, request_from_sample, reward_batch_sync, verdict_counts

# Where `trm reward` differs from training's defaults (RewardSettings), on purpose: it is an interactive check of the
# servers, so a stuck request is reported after 2 minutes instead of training's 15 (there, verl retries the whole
# batch and a spurious failure ends the run). Parallelism is training's: for the small batches this command is for
# it does not bind, and the per-backend limit is what protects the servers.
CLI_DEFAULTS = {"deadline_s": 120.0}
FLAGS = {"rm_backends": "--trm-endpoint", "verifier_backends": "--verifier-endpoint", "deadline_s": "--deadline"}


def pair_responses(rows: list[dict], responses: list[dict]) -> list[tuple[dict, dict]]:
    """Each response record with its data row: by ``index`` (= extra_info.index) or ``row`` (position)."""
    by_index = {}
    for position, row in enumerate(rows):
        index = (row.get("extra_info") or {}).get("index", position)
        by_index.setdefault(index, row)
    pairs = []
    for number, record in enumerate(responses):
        if not isinstance(record.get("response"), str):
            raise ValueError(f"responses record {number}: needs a text field 'response'")
        if "row" in record:
            if not 0 <= int(record["row"]) < len(rows):
                raise ValueError(f"responses record {number}: row {record['row']} is outside the data ({len(rows)} rows)")
            pairs.append((rows[int(record["row"])], record))
        elif "index" in record:
            if record["index"] not in by_index:
                raise ValueError(f"responses record {number}: no data row has extra_info.index {record['index']!r}")
            pairs.append((by_index[record["index"]], record))
        else:
            raise ValueError(f"responses record {number}: needs 'index' (extra_info.index) or 'row' (position)")
    return pairs


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


def table(pairs: list[tuple[dict, dict]], results: list[RewardResult]) -> str:
    header = f"{'#':>3} {'index':>5} {'expected':>8} {'answer':>14} {'verdict':>13} {'v':>1} {'trm raw':>8} {'reward':>7}"
    lines = [header, "-" * len(header)]
    for number, ((row, record), result) in enumerate(zip(pairs, results)):
        answer = (result.verdict.answer or "-").replace("\n", " ")
        answer = answer if len(answer) <= 14 else answer[:13] + "…"
        index = record.get("index", record.get("row", ""))
        lines.append(
            f"{number:>3} {index!s:>5} {record.get('expected', ''):>8} {answer:>14} {result.verdict.source:>13} "
            f"{int(result.verdict.correct):>1} {_fmt(result.trm_score):>8} {_fmt(result.score):>7}"
        )
    return "\n".join(lines)


def build_parser(prog: str = "trm reward") -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Compute thinking rewards r = v * (1 - alpha + alpha * sigmoid(t)) for responses to rows of a "
        "verl RL dataset, through the verifier and TRM servers, and print every component.",
        formatter_class=HelpFormatter,
    )
    parser.add_argument("--data", required=True, help="verl RL rows: parquet (trm data webinstruct convert), JSON or JSONL")
    parser.add_argument("--responses", required=True,
                        help="JSON/JSONL records {'index': extra_info.index | 'row': position, 'response': text}")
    add_dataclass_arguments(parser, RewardSettings, exclude=("verify",), flags=FLAGS,
                            defaults={**CLI_DEFAULTS, **environment_backends()})
    parser.add_argument("--output", help="also write one JSON record per response (components + response) here")
    add_alias(parser, "--rm-backends", "--trm-endpoint")
    add_alias(parser, "--verifier-backends", "--verifier-endpoint")
    return parser


def main(argv: list[str], prog: str = "trm reward") -> int:
    args = build_parser(prog).parse_args(argv)

    try:
        settings = dataclass_from_args(RewardSettings, args)
        from trm.jsonio import read_records

        pairs = pair_responses(read_rows(Path(args.data)), read_records(args.responses))
        requests = [
            request_from_sample(row["data_source"], record["response"], row["reward_model"]["ground_truth"],
                                row.get("extra_info"), f"response {number}")
            for number, (row, record) in enumerate(pairs)
        ]
    except (TypeError, KeyError, ValueError) as error:  # a setting out of range, a row without the verl fields
        raise error if isinstance(error, BadInput) else BadInput(f"{type(error).__name__}: {error}") from None
    for line in settings.describe():
        print(line, file=sys.stderr)
    results = reward_batch_sync(requests, settings)  # a dead backend raises (exit 1), never a reward
    print(table(pairs, results))
    print(f"verdicts: {verdict_counts(results)}")
    verified = sum(r.verdict.correct for r in results)
    scored = sum(r.trm_score is not None for r in results)
    print(f"{len(results)} responses, {verified} verified, {scored} TRM calls "
          f"({len(results) - scored} saved by scoring verified answers only)" if not settings.score_all else
          f"{len(results)} responses, {verified} verified, {scored} TRM calls")
    if args.output:
        from trm.jsonio import append_jsonl

        Path(args.output).unlink(missing_ok=True)
        append_jsonl(args.output, [
            {**result.columns(unscored=None), "index": record.get("index"), "response": record["response"],
             "ground_truth": row["reward_model"]["ground_truth"]}
            for (row, record), result in zip(pairs, results)
        ])
        print(f"wrote {len(results)} records to {args.output}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
