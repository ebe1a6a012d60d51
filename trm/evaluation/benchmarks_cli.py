"""`trm eval accuracy`: per-benchmark accuracy, avg@k and unbiased pass@k, and a Table-2-shaped table over checkpoints.

Each `--run LABEL=FILE[,FILE...]` is one checkpoint; LABEL is "policy/reward" (e.g. "Qwen2.5-Math-7B/TRM") to
fill Table 2's two first columns. Files are `trm generate` outputs, any benchmarks mixed. The Table 2 cell of a
benchmark is avg@n over all samples of that run (accuracy when n=1; the paper's AIME cells are avg@32).
An RL checkpoint is evaluated with the prompt it was trained with: each run's prompt template (the "template"
field `trm generate --template` writes) must be one per run, and `--template NAME` requires it of every run.
"""

from __future__ import annotations

import argparse
import glob
import json
import sys
from pathlib import Path

from trm.cli import HelpFormatter, add_alias
from trm.data.prompts import TEMPLATES
from trm.errors import BadInput
from trm.evaluation import tables
from trm.evaluation.generate import BENCHMARK_TEMPLATE
from trm.evaluation.grading import correctness_matrix, grade_records
from trm.evaluation.metrics import benchmark_metrics
from trm.jsonio import read_records


def parse_run(spec: str) -> tuple[str, list[Path]]:
    if "=" not in spec:
        raise BadInput(f"--run expects LABEL=FILE[,FILE...], got {spec!r}")
    label, files = spec.split("=", 1)
    paths: list[Path] = []
    for pattern in files.split(","):
        matched = sorted(glob.glob(pattern)) or [pattern]
        paths += [Path(m) for m in matched]
    missing = [str(p) for p in paths if not p.exists()]
    if missing:
        raise BadInput(f"--run {label}: no such file(s): {', '.join(missing)}")
    return label.strip(), paths


def split_label(label: str) -> tuple[str, str]:
    policy, _, reward = label.partition("/")
    return policy.strip(), reward.strip()


def run_template(label: str, files: dict[Path, list[dict]], wanted: str | None = None) -> str:
    """The one prompt template of a run's generation records; raises if they mix prompts or differ from ``wanted``."""
    used: dict[str, Path] = {}
    for path, records in files.items():
        for record in records:
            used.setdefault(record.get("template", BENCHMARK_TEMPLATE), path)
    if len(used) > 1:
        raise BadInput(f"--run {label}: its generations use different prompts ("
                         + ", ".join(f"{name} in {path}" for name, path in used.items()) + "); one checkpoint, one prompt")
    template = next(iter(used), BENCHMARK_TEMPLATE)
    if wanted is not None and template != wanted:
        raise BadInput(f"--run {label}: generated with --template {template} ({used.get(template)}), "
                         f"not {wanted}; regenerate with `trm generate --template {wanted}`")
    return template


def evaluate_run(paths: list[Path], ks: list[int], save_graded: Path | None = None,
                 files: dict[Path, list[dict]] | None = None) -> dict[str, dict]:
    """Metrics per benchmark for one checkpoint's generation files (``files``: their records, if already read)."""
    by_benchmark: dict[str, list[dict]] = {}
    for path in paths:
        records = grade_records(files[path] if files is not None else read_records(path))
        if save_graded is not None:
            save_graded.mkdir(parents=True, exist_ok=True)
            (save_graded / path.name).write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))
        for record in records:
            by_benchmark.setdefault(record.get("benchmark", path.stem), []).append(record)
    return {name: benchmark_metrics(correctness_matrix(recs), ks) for name, recs in by_benchmark.items()}


def table_value(metrics: dict) -> float:
    n = int(metrics["samples_per_question"])
    return metrics[f"avg@{n}"]


def metrics_markdown(results: dict[str, dict[str, dict]]) -> str:
    keys: list[str] = []
    for per_bench in results.values():
        for m in per_bench.values():
            keys += [k for k in m if k not in keys and k not in ("questions", "samples_per_question")]
    lines = ["| run | benchmark | questions | n | " + " | ".join(keys) + " |", "|" + "---|" * (4 + len(keys))]
    for label, per_bench in results.items():
        for bench, m in per_bench.items():
            cells = [f"{m[k]:.1f}" if k in m else "–" for k in keys]
            lines.append(f"| {label} | {bench} | {int(m['questions'])} | {int(m['samples_per_question'])} | "
                         + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def build_parser(prog: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=prog, description=__doc__, formatter_class=HelpFormatter)
    p.add_argument("--run", action="append", required=True, metavar="LABEL=FILES",
                   help="a checkpoint: 'policy/reward=gen1.jsonl,gen2.jsonl' (globs allowed); repeat per checkpoint")
    p.add_argument("--output-dir", dest="out_dir", required=True, help="writes eval.json, metrics.md, table2.md, table2.csv here")
    p.add_argument("--ks", type=int, nargs="+", default=[1, 4, 16, 32], help="pass@k values (k <= samples)")
    p.add_argument("--paper", action="store_true", help="add the paper's published Table 2 rows as reference")
    p.add_argument("--paper-policy", nargs="*", help="only these policies' paper rows (default: matching run "
                                                      "policies, else all)")
    p.add_argument("--save-graded", action="store_true", help="write graded copies under OUT_DIR/graded/<run>/")
    p.add_argument("--template", choices=[BENCHMARK_TEMPLATE, *TEMPLATES],
                   help="require every run to have been generated with this prompt (the one its policy was "
                        "trained with, e.g. luffy for the paper's Qwen2.5-Math runs)")
    add_alias(p, "--out-dir", "--output-dir")
    return p


def main(argv: list[str], prog: str = "trm eval accuracy") -> int:
    from trm.evaluation.paper import table2_rows

    args = build_parser(prog).parse_args(argv)
    out_dir = Path(args.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    results: dict[str, dict[str, dict]] = {}
    templates: dict[str, str] = {}
    rows = []
    for spec in args.run:
        label, paths = parse_run(spec)
        files = {path: read_records(path) for path in paths}
        templates[label] = run_template(label, files, args.template)
        graded_dir = out_dir / "graded" / label.replace("/", "_") if args.save_graded else None
        results[label] = evaluate_run(paths, args.ks, graded_dir, files)
        policy, reward = split_label(label)
        rows.append({"policy": policy, "reward": reward,
                     "values": {b: table_value(m) for b, m in results[label].items()}})
    reference = []
    if args.paper:
        wanted = set(args.paper_policy or [r["policy"] for r in rows])
        reference = [r for r in table2_rows() if r["policy"] in wanted] or table2_rows()
    note = ("Cells: avg@n over each run's samples (accuracy %); averages need every benchmark of the group. "
            "Rows marked (paper) are the paper's published numbers.")
    table = tables.markdown(rows, reference, note)
    (out_dir / "eval.json").write_text(json.dumps({"runs": results, "templates": templates, "table2": rows}, indent=2))
    (out_dir / "metrics.md").write_text(metrics_markdown(results))
    (out_dir / "table2.md").write_text(table)
    (out_dir / "table2.csv").write_text(tables.to_csv(rows, reference))
    print(metrics_markdown(results))
    print(table)
    print("prompts: " + ", ".join(f"{label}: {name}" for label, name in templates.items()), file=sys.stderr)
    print(f"wrote eval.json, metrics.md, table2.md, table2.csv under {out_dir}", file=sys.stderr)
    return 0
