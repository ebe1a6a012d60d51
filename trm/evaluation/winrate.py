"""`trm eval winrate`: how often model A's reasoning beats model B's on the same questions, by the ME² pairwise judge.

Pairs: for every question present in both generation files (matched by benchmark and id), the i-th response of A
against the i-th response of B, for i < --samples-per-question. Each pair goes through
`trm.preference.pairwise.compare_responses` (both orders, repeated judgements, consistency rule); a pair whose
outcome has no label (tie, inconsistent, position bias) is excluded from the rate and counted as a tie.
Win rate = wins / (wins + losses), with a Wilson 95% interval. Every outcome is appended to an audit JSONL
(resumable: pairs already there are matched by pair id and not judged again; unusable lines are set aside).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections import Counter
from pathlib import Path

from trm.cli import HelpFormatter, add_alias, dataclass_from_args
from trm.errors import BadInput
from trm.evaluation.metrics import wilson_interval
from trm.jsonio import read_records
from trm.llm.client import add_judge_arguments, client_from_args
from trm.preference.build_cli import add_pairwise_arguments
from trm.preference.pairwise import PairwiseConfig, compare_responses
from trm.resumable import ResumableOutput


def load_generations(paths: list[str]) -> dict[tuple[str, str], dict]:
    out: dict[tuple[str, str], dict] = {}
    for path in paths:
        for record in read_records(path):
            if "responses" not in record or "id" not in record:
                raise BadInput(f"{path}: records need 'id' and 'responses' (a `trm generate` file)")
            out[(str(record.get("benchmark", "")), str(record["id"]))] = record
    return out


def make_pairs(a: dict, b: dict, samples_per_question: int = 1, limit: int | None = None) -> list[dict]:
    """Aligned (A, B) response pairs on shared questions, in A's order."""
    pairs = []
    for key, rec_a in a.items():
        rec_b = b.get(key)
        if rec_b is None:
            continue
        for i in range(min(samples_per_question, len(rec_a["responses"]), len(rec_b["responses"]))):
            pairs.append({"pair_id": f"{key[0]}/{key[1]}/{i}", "benchmark": key[0], "id": key[1], "sample": i,
                          "question": rec_a.get("question") or rec_a.get("prompt", ""),
                          "response_a": rec_a["responses"][i], "response_b": rec_b["responses"][i]})
    return pairs[:limit] if limit else pairs


def summarise(outcomes: list[dict], label_a: str = "A", label_b: str = "B") -> dict:
    """Wins, losses, ties and the win rate of A with ties excluded, plus a Wilson interval."""
    labels = Counter(o["label"] for o in outcomes)
    wins, losses = labels.get(1, 0), labels.get(2, 0)
    decided = wins + losses
    low, high = wilson_interval(wins, decided)
    return {
        "a": label_a, "b": label_b, "pairs": len(outcomes), "wins": wins, "losses": losses,
        "ties": len(outcomes) - decided, "decided": decided,
        "win_rate": wins / decided if decided else None, "ci_low": low, "ci_high": high, "ci_level": 0.95,
        "reasons": dict(Counter(o.get("reason", "") for o in outcomes if o["label"] is None)),
        "per_benchmark": {
            bench: {"wins": sum(o["label"] == 1 for o in outcomes if o["benchmark"] == bench),
                    "losses": sum(o["label"] == 2 for o in outcomes if o["benchmark"] == bench)}
            for bench in sorted({o["benchmark"] for o in outcomes})
        },
    }


async def judge_pairs(judge, pairs: list[dict], audit: Path, config: PairwiseConfig | None = None,
                      concurrency: int = 4, keep_views: bool = False, progress: bool = True) -> list[dict]:
    """Judge the pairs not yet in `audit`; returns every outcome (old and new) in pair order."""
    from tqdm import tqdm

    # pairs of other runs into the same audit (another --limit) are kept: the audit is a cache of judgements
    output = ResumableOutput(audit, [p["pair_id"] for p in pairs], key_of=lambda row: row["pair_id"],
                             check=_check_outcome, keep_foreign=True).open()
    todo = output.todo
    gate = asyncio.Semaphore(max(1, concurrency))
    bar = tqdm(total=len(pairs), initial=len(pairs) - len(todo), desc="winrate", unit="pair", file=sys.stderr,
               disable=not progress)

    async def one(index: int) -> None:
        pair = pairs[index]
        async with gate:
            outcome = await compare_responses(judge, pair["question"], pair["response_a"], pair["response_b"],
                                              config=config)
        row = {k: pair[k] for k in ("pair_id", "benchmark", "id", "sample")}
        row.update(label=outcome.label, reason=outcome.reason, votes=outcome.votes,
                   audit=outcome.to_dict(include_views=keep_views))
        output.append([(index, row)])  # one line per finished pair, so an interrupted run loses nothing
        bar.update(1)

    try:
        await asyncio.gather(*(one(i) for i in todo))
    finally:
        bar.close()
    output.finish()
    return output.records()


def _check_outcome(row: dict, index: int) -> str | None:
    """Why an audit line is not a finished outcome (None when it is)."""
    if row.get("label") not in (1, 2, None) or "label" not in row or not isinstance(row.get("reason"), str):
        return "no 'label' (1, 2 or null) and 'reason'"
    return None


def markdown(summary: dict) -> str:
    rate = "–" if summary["win_rate"] is None else f"{summary['win_rate']:.3f}"
    return (
        "| A | B | win rate of A | 95% CI | wins | losses | ties (excluded) | pairs |\n"
        "|---|---|---|---|---|---|---|---|\n"
        f"| {summary['a']} | {summary['b']} | {rate} | [{summary['ci_low']:.3f}, {summary['ci_high']:.3f}] | "
        f"{summary['wins']} | {summary['losses']} | {summary['ties']} | {summary['pairs']} |\n"
    )


def plot(summaries: list[dict], path: str | Path, title: str = "reasoning win rate (ties excluded)") -> Path:
    """Bars grouped by policy (`group`), one bar per opponent, Wilson intervals as error bars, 0.5 line."""
    from trm.evaluation.plotting import plot_grouped_bars

    groups = list(dict.fromkeys(s.get("group") or s["a"] for s in summaries))
    opponents = list(dict.fromkeys(f"vs {s['b']}" for s in summaries))
    bars, errors = {}, {}
    for opponent in opponents:
        values, errs = [], []
        for group in groups:
            match = [s for s in summaries if (s.get("group") or s["a"]) == group and f"vs {s['b']}" == opponent]
            s = match[0] if match else None
            rate = s["win_rate"] if s else None  # no comparison (or no decided pair): no bar, never a 0
            values.append(rate)
            errs.append((s["ci_low"], s["ci_high"]) if rate is not None else None)
        bars[opponent] = values
        if any(err is not None and err[0] != err[1] for err in errs):  # published rates come without intervals
            errors[opponent] = errs
    return plot_grouped_bars(groups, bars, path, title, "win rate", errors=errors or None, hline=0.5, ylim=(0, 1.05))


def build_parser(prog: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=prog, description=__doc__, formatter_class=HelpFormatter)
    p.add_argument("--a", nargs="+", required=True, help="generation files of model A (e.g. the TRM-trained policy)")
    p.add_argument("--b", nargs="+", required=True, help="generation files of model B (the baseline)")
    p.add_argument("--a-label", default="A"), p.add_argument("--b-label", default="B")
    p.add_argument("--group", help="bar group in the figure (e.g. the policy name); default: --a-label")
    p.add_argument("--samples-per-question", type=int, default=1)
    p.add_argument("--limit", type=int, help="at most this many pairs")
    p.add_argument("--concurrency", type=int, default=4, help="pairs judged at once")
    p.add_argument("--keep-views", action="store_true", help="keep DAG views in the audit file (large)")
    p.add_argument("--output-dir", dest="out_dir", required=True, help="writes pairs.jsonl (audit), winrate.json, winrate.md, winrate.png")
    add_alias(p, "--out-dir", "--output-dir")
    add_judge_arguments(p)
    add_pairwise_arguments(p)
    return p


def main(argv: list[str], prog: str = "trm eval winrate") -> int:
    args = build_parser(prog).parse_args(argv)
    out_dir, config = Path(args.out_dir), dataclass_from_args(PairwiseConfig, args, prefix="judge_")
    out_dir.mkdir(parents=True, exist_ok=True)
    pairs = make_pairs(load_generations(args.a), load_generations(args.b), args.samples_per_question, args.limit)
    if not pairs:
        raise BadInput(f"no question is present in both --a and --b (matched by benchmark and id)")

    async def run() -> list[dict]:
        judge = client_from_args(args)
        try:
            return await judge_pairs(judge, pairs, out_dir / "pairs.jsonl", config, args.concurrency, args.keep_views)
        finally:
            await judge.aclose()

    outcomes = asyncio.run(run())
    summary = summarise(outcomes, args.a_label, args.b_label)
    summary["group"] = args.group or args.a_label
    (out_dir / "winrate.json").write_text(json.dumps(summary, indent=2))
    (out_dir / "winrate.md").write_text(markdown(summary))
    plot([summary], out_dir / "winrate.png", f"{args.a_label} vs {args.b_label}: reasoning win rate")
    print(markdown(summary))
    return 0
