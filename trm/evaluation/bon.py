"""`trm eval bon`: best-of-N accuracy against N for several selectors, averaged over repeated random subsets.

For each N and repetition, every question gets a random subset of N of its candidates (the same subsets for
every selector, so selectors are compared on identical draws); each selector picks one and the accuracy of
the picks is averaged over questions. Each point is the mean (and standard deviation) over repetitions.
Generate more candidates than the largest N (e.g. 32 or 64) so the largest N still varies between repetitions.
Reference rows: mean accuracy (what a random pick converges to) and the unbiased pass@N (what an oracle reaches).
Reward scores (`trm.scoring.Scorer`, local or through endpoints) are cached in a JSONL file keyed by question id
(`trm.resumable`), so an expensive scoring pass survives interruptions and is reused across runs.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sys
from dataclasses import replace
from pathlib import Path
from typing import Sequence

from trm.cli import HelpFormatter, add_alias, dataclass_from_args
from trm.errors import BadInput
from trm.evaluation.grading import correctness_matrix, grade_records
from trm.evaluation.metrics import mean, pass_at_k
from trm.evaluation.selectors import SELECTORS, Scorer as ScoreFunction, ScoreSelector, Selector
from trm.resumable import ResumableOutput
from trm.scoring import Scorer, ScoringConfig, add_scorer_arguments
from trm.traces import trm_input

DEFAULT_NS = (1, 2, 4, 8, 16)


def _rng(seed: int, *parts) -> random.Random:
    return random.Random(f"{seed}/" + "/".join(map(str, parts)))


def best_of_n(records: list[dict], selectors: dict[str, Selector], ns: Sequence[int] = DEFAULT_NS,
              repeats: int = 5, seed: int = 0) -> dict:
    """Accuracy (%) per selector and N, averaged over `repeats` seeded subset draws. Records must be graded."""
    correct = correctness_matrix(records)
    if not correct:
        raise ValueError("no questions")
    pool = min(len(c) for c in correct)
    too_big = [n for n in ns if n > pool]
    if too_big:
        raise ValueError(f"N={too_big} exceeds the {pool} candidates available for some question; "
                         f"generate more with `trm generate --n` or drop those N values")
    for selector in selectors.values():
        selector.prepare(records)
    result = {
        "n_values": list(ns), "repeats": repeats, "seed": seed, "questions": len(records),
        "candidates_per_question": pool,
        "mean_accuracy": 100.0 * mean([mean(c) for c in correct]),
        "pass@n": [100.0 * mean([pass_at_k(len(c), sum(c), n) for c in correct]) for n in ns],
        "selectors": {},
    }
    for name, selector in selectors.items():
        runs = []
        for n in ns:
            per_rep = []
            for rep in range(repeats):
                subset_rng, pick_rng = _rng(seed, n, rep, "subset"), _rng(seed, n, rep, "pick", name)
                hits = []
                for q, flags in enumerate(correct):
                    subset = subset_rng.sample(range(len(flags)), n)
                    choice = selector.choose(q, subset, pick_rng)
                    if choice not in subset:
                        raise RuntimeError(f"selector {name} picked {choice}, outside its subset")
                    hits.append(flags[choice])
                per_rep.append(100.0 * mean(hits))
            runs.append(per_rep)
        means = [mean(r) for r in runs]
        stds = [(mean([(x - m) ** 2 for x in r])) ** 0.5 for r, m in zip(runs, means)]
        result["selectors"][name] = {"mean": means, "std": stds, "runs": runs}
    return result


def markdown_table(result: dict, title: str | None = None) -> str:
    ns = result["n_values"]
    lines = [f"### {title}", ""] if title else []
    lines += ["| selector | " + " | ".join(f"N={n}" for n in ns) + " |", "|---|" + "---|" * len(ns)]
    for name, row in result["selectors"].items():
        cells = [f"{m:.1f} ± {s:.1f}" for m, s in zip(row["mean"], row["std"])]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines.append("| pass@N (ceiling) | " + " | ".join(f"{v:.1f}" for v in result["pass@n"]) + " |")
    lines.append("| mean accuracy | " + " | ".join(f"{result['mean_accuracy']:.1f}" for _ in ns) + " |")
    lines += ["", f"{result['questions']} questions, {result['candidates_per_question']} candidates each, "
                  f"{result['repeats']} repetitions (seed {result['seed']}); mean ± std over repetitions, accuracy %."]
    return "\n".join(lines) + "\n"


def plot(result: dict, path: str | Path, title: str) -> Path:
    from trm.evaluation.plotting import plot_lines

    ns = result["n_values"]
    series = {name: (ns, row["mean"], row["std"]) for name, row in result["selectors"].items()}
    reference = {"pass@N": (ns, result["pass@n"]), "mean accuracy": (ns, [result["mean_accuracy"]] * len(ns))}
    return plot_lines(series, path, title, reference=reference)


def score_records(records: list[dict], scorer: ScoreFunction, cache: str | Path | None = None,
                  prompt_field: str = "prompt", questions_per_call: int = 8, progress: bool = True) -> list[list[float]]:
    """One raw score per response of every record, with an optional JSONL cache keyed by question id.

    Questions are scored a few at a time (one scorer call each group, so endpoints see large batches) and
    each finished question is appended to the cache, so an interrupted pass resumes where it stopped.
    """
    from tqdm import tqdm

    def check(row: dict, index: int) -> str | None:
        scores, want = row.get("scores"), len(records[index]["responses"])
        if not isinstance(scores, list) or len(scores) != want or not all(_finite(s) for s in scores):
            return f"'scores' is not a list of {want} finite numbers"
        return None

    output = None
    cached: dict[int, list[float]] = {}
    if cache is not None:
        output = ResumableOutput(cache, [str(r["id"]) for r in records], key_of=lambda row: str(row["id"]),
                                 check=check, keep_foreign=True).open()
        cached = {index: [float(s) for s in row["scores"]] for index, row in output.done.items()}
    todo = [i for i in range(len(records)) if i not in cached]
    with tqdm(total=len(records), initial=len(records) - len(todo), desc="score", unit="question", file=sys.stderr,
              disable=not progress) as bar:
        for start in range(0, len(todo), max(1, questions_per_call)):
            group = todo[start : start + questions_per_call]
            texts = [trm_input(str(records[i][prompt_field]), resp) for i in group for resp in records[i]["responses"]]
            scores = [float(s) for s in scorer(texts)]
            if len(scores) != len(texts):
                raise RuntimeError(f"scorer returned {len(scores)} scores for {len(texts)} texts")
            at = 0
            for index in group:
                k = len(records[index]["responses"])
                cached[index] = scores[at : at + k]
                at += k
            if output is not None:
                output.append((i, {"id": str(records[i]["id"]), "scores": cached[i]}) for i in group)
            bar.update(len(group))
    if output is not None:
        output.finish()
    return [cached[i] for i in range(len(records))]


def _finite(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def build_parser(prog: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=prog, description=__doc__, formatter_class=HelpFormatter)
    p.add_argument("--generations", required=True, help="`trm generate` output (graded or not)")
    p.add_argument("--output-dir", dest="out_dir", required=True, help="writes bon.json, bon.md, bon.png (and scores caches) here")
    p.add_argument("--selectors", nargs="+", default=["trm", "majority", "random", "shortest", "oracle"],
                   choices=list(SELECTORS), help="trm/reward need a scorer; oracle is the pass@N ceiling")
    p.add_argument("--n-values", type=int, nargs="+", default=list(DEFAULT_NS))
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--title", help="plot and table title (default: benchmark and file name)")
    p.add_argument("--save-graded", help="also write the graded generations here (JSONL)")
    add_scorer_arguments(p, required=False, title="TRM scorer (selector 'trm'; the settings also apply to 'reward')")
    add_alias(p, "--trm-name", "--served-model-name")
    g = p.add_argument_group("another reward model (selector 'reward')")
    g.add_argument("--reward-endpoint", help="its server(s), as --trm-endpoint")
    g.add_argument("--reward-model", help="its folder, as --trm-model")
    g.add_argument("--reward-name", default="RewardModel", help="its served model name")
    add_alias(p, "--out-dir", "--output-dir")
    return p


def _scorer(args, name: str) -> Scorer:
    config = dataclass_from_args(ScoringConfig, args)
    if name == "reward":
        config = replace(config, trm_endpoint=args.reward_endpoint, trm_model=args.reward_model,
                         served_model_name=args.reward_name)
    if bool(config.trm_endpoint) == bool(config.trm_model):
        raise BadInput(f"selector {name!r} needs exactly one of --{name}-endpoint or --{name}-model")
    return Scorer(config)


def main(argv: list[str], prog: str = "trm eval bon") -> int:
    from trm.jsonio import read_records

    args = build_parser(prog).parse_args(argv)
    out_dir = Path(args.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    records = read_records(args.generations)
    if not records:
        raise BadInput(f"{args.generations}: no records")
    grade_records(records)
    if args.save_graded:
        Path(args.save_graded).write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))
    selectors: dict[str, Selector] = {}
    for name in args.selectors:
        if name in ("trm", "reward"):
            with _scorer(args, name) as scorer:
                scores = score_records(records, scorer, cache=out_dir / f"scores_{name}.jsonl")
            selectors[name] = ScoreSelector(scores=scores, name=name)
        else:
            selectors[name] = SELECTORS[name]()
    result = best_of_n(records, selectors, args.n_values, args.repeats, args.seed)
    benchmark = records[0].get("benchmark", "")
    title = args.title or f"best-of-N on {benchmark} ({Path(args.generations).name})"
    result.update({"title": title, "generations": str(args.generations), "benchmark": benchmark,
                   "model": records[0].get("model")})
    (out_dir / "bon.json").write_text(json.dumps(result, indent=2))
    table = markdown_table(result, title)
    (out_dir / "bon.md").write_text(table)
    plot(result, out_dir / "bon.png", title)
    print(table)
    print(f"wrote {out_dir / 'bon.json'}, {out_dir / 'bon.md'}, {out_dir / 'bon.png'}", file=sys.stderr)
    return 0
