"""Table-2-shaped output: one row per checkpoint (policy, reward), one column per benchmark, STEM and Math averages."""

from __future__ import annotations

import csv
import io
from typing import Sequence

from trm.evaluation.benchmarks import BENCHMARKS, MATH, STEM

COLUMNS = STEM + MATH


def with_averages(values: dict[str, float]) -> dict[str, float | None]:
    """Add "stem_avg" and "math_avg" (None unless every benchmark of the group has a value)."""
    out: dict[str, float | None] = dict(values)
    for key, group in (("stem_avg", STEM), ("math_avg", MATH)):
        present = [values[b] for b in group if values.get(b) is not None]
        out[key] = sum(present) / len(present) if len(present) == len(group) else None
    return out


def _cell(value: float | None) -> str:
    return "–" if value is None else f"{value:.1f}"


def header() -> list[str]:
    titles = [BENCHMARKS[b].title for b in STEM] + ["STEM avg"] + [BENCHMARKS[b].title for b in MATH] + ["Math avg"]
    return ["Policy", "Reward"] + titles


def row_cells(row: dict) -> list[str]:
    values = with_averages(row["values"])
    cells = [_cell(values.get(b)) for b in STEM] + [_cell(values["stem_avg"])]
    cells += [_cell(values.get(b)) for b in MATH] + [_cell(values["math_avg"])]
    return cells


def markdown(rows: Sequence[dict], reference: Sequence[dict] = (), note: str = "") -> str:
    """Rows (and optional reference rows, marked "(paper)") as a Markdown table; the policy is shown once per group."""
    head = header()
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    previous = None
    for row in list(rows) + [dict(r, reward=f"{r['reward']} (paper)") for r in reference]:
        policy = row["policy"] if row["policy"] != previous else ""
        previous = row["policy"]
        lines.append("| " + " | ".join([policy, row["reward"]] + row_cells(row)) + " |")
    if note:
        lines += ["", note]
    return "\n".join(lines) + "\n"


def to_csv(rows: Sequence[dict], reference: Sequence[dict] = ()) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["source"] + header())
    for source, group in (("measured", rows), ("paper", reference)):
        for row in group:
            writer.writerow([source, row["policy"], row["reward"]] + [c if c != "–" else "" for c in row_cells(row)])
    return buffer.getvalue()
