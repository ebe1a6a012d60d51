"""`trm eval rm`: pairwise accuracy of a reward model on a TRM-Preference file, beside simple baselines.

A pair is correct when the chosen input scores strictly higher than the rejected one; equal scores are ties
and count as wrong (as in the paper's Table 1, where a tie is not a win). The same pairs are also judged by
two baselines that need no model: "shorter trace wins" (reasoning length in characters; equal lengths tie)
and a seeded coin flip. Prints a JSON object on stdout and the Markdown table on stderr.

    trm eval rm --data data/toy_preferences_test.jsonl --trm-model runs/trm-toy
    trm eval rm --data pairs.parquet --trm-endpoint 127.0.0.1:39999 --scores scores.jsonl
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Sequence

from trm.cli import HelpFormatter, dataclass_from_args
from trm.data.pairs import preference_texts, trace_lengths
from trm.scoring import Scorer, ScoringConfig, add_scorer_arguments


@dataclass
class PairwiseResult:
    """Counts of one method on the same pairs; ties are wrong in `accuracy`."""

    method: str
    pairs: int
    correct: int
    tie: int
    wrong: int

    @property
    def accuracy(self) -> float:
        return self.correct / self.pairs if self.pairs else 0.0

    @property
    def accuracy_without_ties(self) -> float | None:
        decided = self.correct + self.wrong
        return self.correct / decided if decided else None

    def as_dict(self) -> dict:
        return {**asdict(self), "accuracy": self.accuracy, "accuracy_without_ties": self.accuracy_without_ties}


def pairwise_result(method: str, chosen: Sequence[float], rejected: Sequence[float]) -> PairwiseResult:
    """Count chosen > rejected (correct), == (tie), < (wrong)."""
    if len(chosen) != len(rejected):
        raise ValueError(f"{len(chosen)} chosen scores but {len(rejected)} rejected scores")
    correct = sum(c > r for c, r in zip(chosen, rejected))
    tie = sum(c == r for c, r in zip(chosen, rejected))
    return PairwiseResult(method, len(chosen), correct, tie, len(chosen) - correct - tie)


def shorter_trace_baseline(records: list[dict]) -> PairwiseResult:
    """The shorter reasoning trace is predicted better (score = minus its length)."""
    lengths = [trace_lengths(r) for r in records]
    return pairwise_result("shorter trace wins", [-c for c, _ in lengths], [-r for _, r in lengths])


def random_baseline(n: int, seed: int) -> PairwiseResult:
    """A seeded fair coin per pair (never a tie)."""
    rng = random.Random(seed)
    flips = [rng.random() < 0.5 for _ in range(n)]
    return pairwise_result(f"random (seed {seed})", [1.0 if f else 0.0 for f in flips], [0.0 if f else 1.0 for f in flips])


def markdown_table(results: list[PairwiseResult]) -> str:
    lines = [
        "| Method | Accuracy | Correct | Tie | Wrong | Accuracy w/o ties |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        no_ties = "n/a" if r.accuracy_without_ties is None else f"{100 * r.accuracy_without_ties:.1f}%"
        lines.append(f"| {r.method} | {100 * r.accuracy:.1f}% ({r.correct}/{r.pairs}) | {r.correct} | {r.tie} | {r.wrong} | {no_ties} |")
    return "\n".join(lines)


def evaluate_pairs(records: list[dict], scores: list[float], seed: int = 0) -> dict:
    """The report: model counts, baselines on the same pairs, all as one JSON-able dict."""
    n = len(records)
    if len(scores) != 2 * n:
        raise ValueError(f"expected {2 * n} scores for {n} pairs, got {len(scores)}")
    model = pairwise_result("reward model", scores[0::2], scores[1::2])
    baselines = [shorter_trace_baseline(records), random_baseline(n, seed)]
    return {
        **{k: v for k, v in model.as_dict().items() if k != "method"},
        "baselines": {"shorter_trace": baselines[0].as_dict(), "random": baselines[1].as_dict()},
        "table": markdown_table([model, *baselines]),
    }


def build_parser(prog: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description=__doc__, formatter_class=HelpFormatter)
    parser.add_argument("--data", required=True, help="preference pairs (.json, .jsonl or .parquet)")
    parser.add_argument("--limit", type=int, default=None, help="evaluate only the first N pairs")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random baseline")
    parser.add_argument("--scores", default=None, help="write per-pair scores here (JSONL: row, chosen, rejected)")
    parser.add_argument("--output", default=None, help="also write the JSON report to this file")
    parser.add_argument("--table", action="store_true", help="print the Markdown table on stdout instead of JSON")
    add_scorer_arguments(parser)
    return parser


def main(argv: list[str], prog: str = "trm eval rm") -> int:
    from trm.data.preference import load_valid_records

    args = build_parser(prog).parse_args(argv)
    records = load_valid_records(args.data)
    if args.limit is not None:
        records = records[: args.limit]
    texts = [text for record in records for text in preference_texts(record)]  # chosen, rejected, chosen, ...
    with Scorer(dataclass_from_args(ScoringConfig, args)) as scorer:
        scores = scorer.score(texts)
    report = evaluate_pairs(records, scores, seed=args.seed)
    report.update({"data": str(args.data), "scorer": args.trm_model or args.trm_endpoint})
    table = report.pop("table")
    if args.scores:
        with open(args.scores, "w", encoding="utf-8") as handle:
            for row, (c, r) in enumerate(zip(scores[0::2], scores[1::2])):
                handle.write(json.dumps({"row": row, "chosen": c, "rejected": r}) + "\n")
    if args.output:
        Path(args.output).write_text(json.dumps(report, indent=2) + "\n")
    print(table, file=sys.stderr)
    print(table if args.table else json.dumps(report, indent=2))
    return 0
