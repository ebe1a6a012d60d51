"""`trm eval figures`: regenerate every table and figure under assets/ from result files and the paper's numbers.

Looks under each --results directory (recursively) for the files the other commands write:
  bon.json      (`trm eval bon`)       -> <out>/bon_<dirs>.png and .md    (runs/toy/bon/bon.json -> bon_toy.png)
  eval.json     (`trm eval accuracy`)  -> <out>/table2_<dirs>.md, .csv and .png (STEM / Math averages)
  winrate.json  (`trm eval winrate`)   -> <out>/winrate_<results dir>.png and .md (all comparisons in one chart)
and, unless --no-paper, draws the paper's published numbers: paper_table2.{md,csv,png}, paper_bon.png,
paper_winrate.png. Nothing is hand-drawn; re-running overwrites the same files.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

from trm.cli import HelpFormatter, add_alias
from trm.errors import BadInput
from trm.evaluation import bon, paper, tables, winrate
from trm.evaluation.plotting import plot_bar_panels, plot_lines


def _name(kind: str, path: Path, root: Path, drop: tuple[str, ...]) -> str:
    """Output name from the result's folder path below the results root's parent, minus generic folder names:
    runs/toy/bon/bon.json -> bon_toy."""
    parts = [p for p in path.parent.relative_to(root.resolve().parent).parts if p not in drop]
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "_", "_".join(parts)).strip("_")
    return f"{kind}_{slug}" if slug else kind


def table2_figure(rows: list[dict], path: Path, title: str) -> Path:
    """STEM and Math averages per policy (groups) and reward (bars), side by side."""
    policies = list(dict.fromkeys(r["policy"] for r in rows))
    rewards = list(dict.fromkeys(r["reward"] for r in rows))
    panels = []
    for key, name in (("stem_avg", "STEM avg"), ("math_avg", "Math avg")):
        bars = {}
        for reward in rewards:
            values = []
            for policy in policies:
                match = [tables.with_averages(r["values"]) for r in rows if r["policy"] == policy and r["reward"] == reward]
                values.append(match[0][key] if match else None)  # missing stays missing: no bar, never 0
            bars[reward or "-"] = values
        panels.append((name, policies, bars))
    return plot_bar_panels(panels, path, "accuracy (%)", title)


def paper_figures(out: Path) -> list[Path]:
    rows = paper.table2_rows()
    note = "The paper's published Table 2 (accuracy %; AIME columns avg@32); averages recomputed from the columns."
    written = [out / "paper_table2.md", out / "paper_table2.csv"]
    written[0].write_text(tables.markdown(rows, note=note))
    written[1].write_text(tables.to_csv(rows))
    written.append(table2_figure(rows, out / "paper_table2.png", "Paper, Table 2: RL with different rewards"))
    series = {f"{model} ({bench.upper()})": (paper.BON_N, ys, None) for (model, bench), ys in paper.BON_CURVES.items()}
    dotted = []
    for (model, bench), points in paper.BON_ENDPOINTS.items():
        xs = sorted(points)
        dotted.append(f"{model} ({bench.upper()}, end points only)")
        series[dotted[-1]] = (xs, [points[x] for x in xs], None)
    written.append(plot_lines(series, out / "paper_bon.png", "Paper: best-of-N with the TRM as selector", dotted=dotted))
    summaries = [{"group": policy, "a": "TRM", "b": baseline, "win_rate": rate, "ci_low": rate, "ci_high": rate}
                 for (policy, baseline), rate in paper.WINRATES.items()]
    written.append(winrate.plot(summaries, out / "paper_winrate.png",
                                "Paper (approx.): reasoning win rate of the TRM policy"))
    return written


def result_figures(results: Path, out: Path) -> list[Path]:
    written: list[Path] = []
    results = results.resolve()
    for path in sorted(results.rglob("bon.json")):
        result = json.loads(path.read_text())
        name = _name("bon", path, results, ("bon",))
        title = result.get("title") or name
        (out / f"{name}.md").write_text(bon.markdown_table(result, title))
        written += [out / f"{name}.md", bon.plot(result, out / f"{name}.png", title)]
    for path in sorted(results.rglob("eval.json")):
        data = json.loads(path.read_text())
        name = _name("table2", path, results, ("eval", "table2"))
        rows = data["table2"]
        (out / f"{name}.md").write_text(tables.markdown(rows))
        (out / f"{name}.csv").write_text(tables.to_csv(rows))
        written += [out / f"{name}.md", out / f"{name}.csv",
                    table2_figure(rows, out / f"{name}.png", f"Table 2 shape: {name.removeprefix('table2_')}")]
    summaries = [json.loads(p.read_text()) for p in sorted(results.rglob("winrate.json"))]
    if summaries:
        name = f"winrate_{results.name}"
        (out / f"{name}.md").write_text("\n".join(winrate.markdown(s) for s in summaries))
        written += [out / f"{name}.md", winrate.plot(summaries, out / f"{name}.png")]
    return written


def build_parser(prog: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=prog, description=__doc__, formatter_class=HelpFormatter)
    p.add_argument("--results", nargs="*", default=[], help="directories with bon.json / eval.json / winrate.json")
    p.add_argument("--output-dir", dest="out", default="assets", help="output directory")
    p.add_argument("--no-paper", action="store_true", help="skip the figures of the paper's published numbers")
    add_alias(p, "--out", "--output-dir")
    return p


def main(argv: list[str], prog: str = "trm eval figures") -> int:
    args = build_parser(prog).parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = [] if args.no_paper else paper_figures(out)
    for results in args.results:
        root = Path(results)
        if not root.is_dir():
            raise BadInput(f"--results {root} is not a directory")
        found = result_figures(root, out)
        if not found:
            print(f"{prog}: nothing found under {root} (expected bon.json, eval.json or winrate.json)", file=sys.stderr)
        written += found
    for path in written:
        print(path)
    return 0
