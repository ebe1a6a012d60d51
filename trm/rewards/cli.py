"""`trm reward`: rewards and their components for a small batch of responses, through the real servers.

The same pipeline as training (``trm.rewards.compute``): rule check, LLM verifier where allowed, TRM on verified
answers, blend. Useful to check that the servers behind DEFAULT_*_BACKENDS answer before launching train.sh.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

from trm.cli import HelpFormatter, add_alias
from trm.jsonio import read_rows
from trm.rewards.compute import RewardSettings, request_from_sample, reward_batch_sync, verdict_counts


def load_rows(path: Path) -> list[dict]:
    """verl RL rows (parquet from `trm data webinstruct convert`, or the same fields as JSON/JSONL)."""
    return read_rows(path)


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


def _fmt(value: float) -> str:
    return "-" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.4f}"


def table(pairs: list[tuple[dict, dict]], results: list[dict]) -> str:
    header = f"{'#':>3} {'index':>5} {'expected':>8} {'answer':>14} {'verdict':>13} {'v':>1} {'trm raw':>8} {'reward':>7}"
    lines = [header, "-" * len(header)]
    for number, ((row, record), result) in enumerate(zip(pairs, results)):
        answer = (result["answer"] or "-").replace("\n", " ")
        answer = answer if len(answer) <= 14 else answer[:13] + "…"
        index = record.get("index", record.get("row", ""))
        lines.append(
            f"{number:>3} {index!s:>5} {record.get('expected', ''):>8} {answer:>14} {result['verdict_source']:>13} "
            f"{result['verify_binary']:>1} {_fmt(result['rm_score_raw']):>8} {_fmt(result['score']):>7}"
        )
    return "\n".join(lines)


def main(argv: list[str], prog: str = "trm reward") -> int:
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Compute thinking rewards r = v * (1 - alpha + alpha * sigmoid(t)) for responses to rows of a "
        "verl RL dataset, through the verifier and TRM servers, and print every component.",
        formatter_class=HelpFormatter,
    )
    parser.add_argument("--data", required=True, help="verl RL rows: parquet (trm data webinstruct convert), JSON or JSONL")
    parser.add_argument("--responses", required=True,
                        help="JSON/JSONL records {'index': extra_info.index | 'row': position, 'response': text}")
    parser.add_argument("--trm-endpoint", dest="rm_backends", metavar="HOST:PORT[,...]", help="TRM servers, host:port[,host:port] (default $TRM_RM_BACKENDS or 127.0.0.1:39999)")
    parser.add_argument("--verifier-endpoint", dest="verifier_backends", metavar="HOST:PORT[,...]",
                        help="verifier servers (default $TRM_VERIFIER_BACKENDS or 127.0.0.1:23888)")
    parser.add_argument("--alpha", type=float, default=0.2, help="weight of the thinking reward (default 0.2)")
    parser.add_argument("--score-all", action="store_true", help="also score the reasoning of unverified answers")
    parser.add_argument("--parallelism", type=int, default=64, help="requests in flight at once (default 64)")
    parser.add_argument("--rm-model", default="RewardModel", help="served model name of the TRM")
    parser.add_argument("--reward-scorer", default="trm",
                        help="what scores the reasoning: trm (default) or reasonflux (the ReasonFlux-PRM baseline, a "
                        "vLLM pooling server at --trm-endpoint); with --alpha 0 none is called (verifier only)")
    parser.add_argument("--rm-api-key", help="API key of the TRM servers")
    parser.add_argument("--verifier-api-key", help="API key of the verifier servers")
    parser.add_argument("--deadline", type=float, default=120.0, help="seconds one call may take, retries included")
    parser.add_argument("--output", help="also write one JSON record per response (components + response) here")
    add_alias(parser, "--rm-backends", "--trm-endpoint")
    add_alias(parser, "--verifier-backends", "--verifier-endpoint")
    args = parser.parse_args(argv)

    try:
        settings = RewardSettings.resolve(
            rm_backends=args.rm_backends, verifier_backends=args.verifier_backends, alpha=args.alpha,
            score_all=args.score_all, parallelism=args.parallelism, rm_model=args.rm_model, reward_scorer=args.reward_scorer,
            rm_api_key=args.rm_api_key, verifier_api_key=args.verifier_api_key, deadline_s=args.deadline,
        )
        from trm.jsonio import read_records

        pairs = pair_responses(load_rows(Path(args.data)), read_records(args.responses))
        requests = [
            request_from_sample(row["data_source"], record["response"], row["reward_model"]["ground_truth"],
                                row.get("extra_info"), f"response {number}")
            for number, (row, record) in enumerate(pairs)
        ]
    except (ValueError, TypeError, OSError, KeyError) as error:
        print(f"{prog}: {error}", file=sys.stderr)
        return 2
    for line in settings.describe():
        print(line, file=sys.stderr)
    try:
        results = reward_batch_sync(requests, settings)
    except Exception as error:  # a dead backend or a rejected request: report it, never print a reward for it
        print(f"{prog}: {type(error).__name__}: {error}", file=sys.stderr)
        return 1
    print(table(pairs, results))
    print(f"verdicts: {verdict_counts(results)}")
    verified = sum(r["verify_binary"] for r in results)
    scored = sum(not math.isnan(r["rm_score_raw"]) for r in results)
    print(f"{len(results)} responses, {verified} verified, {scored} TRM calls "
          f"({len(results) - scored} saved by scoring verified answers only)" if not settings.score_all else
          f"{len(results)} responses, {verified} verified, {scored} TRM calls")
    if args.output:
        from trm.jsonio import append_jsonl

        Path(args.output).unlink(missing_ok=True)
        append_jsonl(args.output, [
            {**{k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in result.items()},
             "index": record.get("index"), "response": record["response"], "ground_truth": row["reward_model"]["ground_truth"]}
            for (row, record), result in zip(pairs, results)
        ])
        print(f"wrote {len(results)} records to {args.output}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
