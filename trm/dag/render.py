"""Draw a DAG as a self-contained SVG (no graphviz needed): one row per step in emission order, one column per
branch, nodes labelled "<id> <action>", super-nodes of the merged view drawn as shaded groups, edges coloured by
the action of the child (continue grey, backtrack orange, merge purple). Hovering a node shows its text."""

from __future__ import annotations

import argparse
import sys
from html import escape
from pathlib import Path

from trm.cli import HelpFormatter
from trm.dag.graph import Dag, merged_view, validate_dag
from trm.errors import BadInput
from trm.jsonio import read_records

ROW, COL, NODE_W, NODE_H, MARGIN = 34, 150, 118, 22, 24
COLOURS = {"root": "#4a6fa5", "continue": "#8c8c8c", "backtrack": "#e07b00", "merge": "#7b3fa0"}


def lanes(dag: Dag) -> list[int]:
    """Column per node: continues stay in their parent's column, a backtrack opens a new column, a merge
    continues in the column of its most recent parent."""
    lane = [0] * len(dag.steps)
    used = 0
    for node in range(1, len(dag.steps)):
        action = dag.actions[node]
        if action == "backtrack":
            used += 1
            lane[node] = used
        else:
            lane[node] = lane[max(dag.parents[node])]
    return lane


def render_svg(dag: Dag, title: str = "") -> str:
    lane = lanes(dag)
    n = len(dag.steps)
    width = MARGIN * 2 + (max(lane) + 1) * COL + 160
    top = MARGIN + (24 if title else 0) + 20
    height = top + n * ROW + MARGIN

    def centre(node: int) -> tuple[float, float]:
        return MARGIN + lane[node] * COL + NODE_W / 2, top + node * ROW + NODE_H / 2

    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
        'font-family="Helvetica, Arial, sans-serif" font-size="11">',
        "<style>.super{fill:#eef3fb;stroke:#9db3d6;stroke-dasharray:3 2}.edge{fill:none;stroke-width:1.4}"
        ".node{stroke:#333;stroke-width:0.6}.legend{fill:#eef3fb;stroke:#9db3d6}</style>",
        f'<rect width="{width}" height="{height}" fill="white"/>',
    ]
    if title:
        out.append(f'<text x="{MARGIN}" y="{MARGIN + 6}" font-size="13" font-weight="bold">{escape(title)}</text>')
    for sup in merged_view(dag):  # super-node groups, drawn first so they sit behind the nodes
        first, last = sup.members[0], sup.members[-1]
        x = MARGIN + lane[first] * COL - 4
        y = top + first * ROW - 4
        h = (last - first) * ROW + NODE_H + 8
        out.append(
            f'<rect class="super" x="{x}" y="{y}" width="{NODE_W + 8}" height="{h}" rx="6">'
            f"<title>super-node {sup.id} ({sup.role}): steps {sup.members}</title></rect>"
        )
        out.append(
            f'<text x="{x + NODE_W + 12}" y="{y + 12}" fill="#5b7bb0" font-size="10">S{sup.id} {sup.role}</text>'
        )
    for node in range(1, n):
        x2, y2 = centre(node)
        for parent in dag.parents[node]:
            x1, y1 = centre(parent)
            y2_top = y2 - NODE_H / 2
            action = dag.actions[node]
            if lane[parent] == lane[node]:  # straight down (or around the right side when skipping rows)
                y1 += NODE_H / 2
                bend = max(10.0, (y2_top - y1) / 2)
                start = f"M{x1:.1f},{y1:.1f} C{x1:.1f},{y1 + bend:.1f}"
            else:  # leave from the side facing the child's column, so the edge does not cross the parent's box
                side = NODE_W / 2 if lane[node] > lane[parent] else -NODE_W / 2
                x1 += side
                bend = max(10.0, (y2_top - y1) / 2)
                start = f"M{x1:.1f},{y1:.1f} C{x1 + side / 2:.1f},{y1:.1f}"
            out.append(
                f'<path class="edge {action}" stroke="{COLOURS.get(action, "#000")}" '
                f'd="{start} {x2:.1f},{y2_top - bend:.1f} {x2:.1f},{y2_top:.1f}"/>'
            )
    for node in range(n):
        x, y = MARGIN + lane[node] * COL, top + node * ROW
        action = dag.actions[node]
        colour = COLOURS.get(action, "#000")
        snippet = escape(" ".join(dag.steps[node].split())[:300])
        out.append(
            f"<g><title>step {node}: {snippet}</title>"
            f'<rect class="node" x="{x}" y="{y}" width="{NODE_W}" height="{NODE_H}" rx="4" fill="white" stroke="{colour}"/>'
            f'<rect x="{x}" y="{y}" width="5" height="{NODE_H}" fill="{colour}"/>'
            f'<text x="{x + 12}" y="{y + 15}">{node} {escape(action)}</text></g>'
        )
    legend_x = width - 150
    for k, (name, colour) in enumerate(COLOURS.items()):
        y = top + k * 16
        out.append(f'<line x1="{legend_x}" y1="{y}" x2="{legend_x + 22}" y2="{y}" stroke="{colour}" stroke-width="3"/>')
        out.append(f'<text x="{legend_x + 28}" y="{y + 4}">{name}</text>')
    out.append(
        f'<rect class="super legend" x="{legend_x}" y="{top + 4 * 16 - 6}" width="22" height="12"/>'
        f'<text x="{legend_x + 28}" y="{top + 4 * 16 + 4}">super-node</text>'
    )
    out.append("</svg>")
    return "\n".join(out) + "\n"


def main(argv: list[str], prog: str = "trm dag render") -> int:
    parser = argparse.ArgumentParser(prog=prog, description="Draw one DAG of a `trm dag build` output as SVG.",
                                     formatter_class=HelpFormatter)
    parser.add_argument(
        "--input", required=True, help="`trm dag build` output or `trm preference build` audit (JSONL), or one record"
    )
    parser.add_argument("--output", required=True, help="SVG file to write")
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--index", type=int, default=0, help="record number in the input (default 0)")
    which.add_argument("--id", default=None, help="record whose 'id' field equals this")
    parser.add_argument(
        "--trace", type=int, choices=(0, 1), default=0, help="in an audit line: which trace of the pair"
    )
    parser.add_argument("--title", default=None, help="title drawn above the graph (default: the record id/index)")
    args = parser.parse_args(argv)
    records = read_records(args.input)
    if args.id is not None:
        record = next((r for r in records if str(r.get("id")) == args.id), None)
        if record is None:
            raise BadInput(f"no record with id {args.id!r} in {args.input}")
    elif not 0 <= args.index < len(records):
        raise BadInput(f"--index {args.index} out of range: {args.input} has {len(records)} records")
    else:
        record = records[args.index]
    try:
        if "dag" in record:
            dag = Dag.from_dict(record["dag"])
        elif "views" in record and record["views"]:  # a `trm preference build` audit line
            views = record["views"][args.trace]
            if "dag" not in views:
                raise BadInput("this audit line was written with --no-audit-views: it holds no DAG")
            dag = Dag.from_dict(views["dag"])
        else:
            raise BadInput("record has no 'dag' field: give a `trm dag build` output or a preference audit file")
    except (KeyError, IndexError) as exc:
        raise BadInput(f"not a DAG record: {type(exc).__name__}: {exc}") from None
    problems = validate_dag(dag)
    if problems:
        raise BadInput("invalid DAG: " + "; ".join(problems[:3]))
    title = args.title if args.title is not None else f"DAG of {record.get('id', f'record {args.index}')}"
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(render_svg(dag, title), encoding="utf-8")
    print(f"wrote {args.output} ({len(dag.steps)} steps)", file=sys.stderr)
    return 0
