"""`trm data webinstruct`: WebInstruct-verified rows -> verl RL parquet, and validation of processed parquets.

A processed row is what verl's RLHFDataset reads and what the `verify` reward needs:
``data_source``, ``prompt`` (chat messages in the policy's style), ``ability``,
``reward_model = {"style": "rule", "ground_truth": ...}`` and
``extra_info = {"user_prompt", "question", "index", "split", ...}``. ``extra_info.user_prompt`` is the prompt
half of the TRM input (``trm.traces.trm_input``), so it is the user's turn exactly as the policy saw it.
The prompt is a named template (`trm.data.prompts`); by default the paper's prompt for the policy family
(``--family qwen-math``: ``luffy``; ``--family llama``: ``llama-boxed``), which is the whole user turn.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Iterable

from trm.cli import HelpFormatter
from trm.data.prompts import FAMILIES, TEMPLATES, get_template, template_for, template_help
from trm.errors import BadInput
from trm.jsonio import iter_rows

WEBINSTRUCT_SOURCE = "TIGER-Lab/WebInstruct-verified"

# Columns of WebInstruct-verified carried into extra_info when present.
CARRIED_COLUMNS = ("id", "answer_type", "category", "difficulty")


def build_messages(question: str, template: str) -> tuple[list[dict], str]:
    """(chat prompt, user turn text) for a named template; the user turn is what the policy sees as its prompt."""
    chosen = get_template(template)
    return chosen.messages(question), chosen.user_turn(question)


def convert_row(row: dict, *, index: int, split: str, template: str, data_source: str = WEBINSTRUCT_SOURCE) -> dict:
    """One WebInstruct-verified row (question, answer, ...) as a verl RL row. Raises naming a missing field."""
    for field in ("question", "answer"):
        value = row.get(field)
        if not isinstance(value, str) or not value.strip():
            raise BadInput(f"row {index}: field {field!r} is missing or empty")
    messages, user_prompt = build_messages(row["question"], template)
    extra = {"user_prompt": user_prompt, "question": row["question"].strip(), "index": index, "split": split}
    extra.update({name: str(row[name]) for name in CARRIED_COLUMNS if row.get(name) is not None})
    return {
        "data_source": data_source,
        "prompt": messages,
        "ability": str(row.get("category") or "stem"),
        "reward_model": {"style": "rule", "ground_truth": row["answer"].strip()},
        "extra_info": extra,
    }


def write_parquet(rows: list[dict], path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    pq.write_table(pa.Table.from_pylist(rows), tmp)
    tmp.replace(path)  # never leave a half-written parquet where the trainer looks


def _problems_in_row(row: dict, number: int) -> Iterable[str]:
    if not isinstance(row.get("data_source"), str) or not row["data_source"]:
        yield f"row {number}: missing data_source"
    prompt = row.get("prompt")
    if not isinstance(prompt, list) or not prompt:
        yield f"row {number}: prompt must be a non-empty list of chat messages"
    elif any(not isinstance(m, dict) or not m.get("role") or not isinstance(m.get("content"), str) for m in prompt):
        yield f"row {number}: every prompt message needs a role and a text content"
    reward = row.get("reward_model")
    if not isinstance(reward, dict) or not isinstance(reward.get("ground_truth"), str) or not reward["ground_truth"]:
        yield f"row {number}: missing reward_model.ground_truth"
    extra = row.get("extra_info")
    if not isinstance(extra, dict):
        yield f"row {number}: missing extra_info"
        return
    for field in ("user_prompt", "question"):
        if not isinstance(extra.get(field), str) or not extra[field].strip():
            yield f"row {number}: missing extra_info.{field}"
    for field in ("index", "split"):
        if extra.get(field) is None:
            yield f"row {number}: missing extra_info.{field}"


def validate_parquet(path: str | Path, max_problems: int = 50) -> list[str]:
    """Problems that would break RL with the verify reward, each naming the row and field; [] when usable."""
    import pyarrow.parquet as pq

    path = Path(path)
    file = pq.ParquetFile(path)
    columns = set(file.schema_arrow.names)
    missing = [c for c in ("data_source", "prompt", "reward_model", "extra_info") if c not in columns]
    if missing:
        return [f"{path}: missing column(s) {', '.join(missing)} (found: {', '.join(sorted(columns))})"]
    problems: list[str] = []
    number = 0
    for batch in file.iter_batches(batch_size=4096):
        for row in batch.to_pylist():
            problems.extend(_problems_in_row(row, number))
            number += 1
            if len(problems) >= max_problems:
                return problems[:max_problems] + [f"(stopped after {max_problems} problems)"]
    if number == 0:
        problems.append(f"{path}: no rows")
    return problems


def _convert(args) -> int:
    template = template_for(args.family, args.template).name
    rows = []
    for index, row in enumerate(iter_rows(Path(args.input))):
        if args.limit is not None and len(rows) >= args.limit:
            break
        rows.append(convert_row(row, index=index, split=args.split, template=template, data_source=args.data_source))
    write_parquet(rows, Path(args.output))
    print(f"wrote {len(rows)} rows ({template} template, split {args.split}) to {args.output}")
    return 0


def _validate(args) -> int:
    problems = validate_parquet(args.input)
    for problem in problems:
        print(problem, file=sys.stderr)
    if problems:
        return 1
    import pyarrow.parquet as pq

    print(f"{args.input}: {pq.ParquetFile(args.input).metadata.num_rows} rows, all fields present")
    return 0


def main(argv: list[str], prog: str = "trm data webinstruct") -> int:
    parser = argparse.ArgumentParser(prog=prog, description="WebInstruct-verified data for RL with verl.",
                                     formatter_class=HelpFormatter)
    sub = parser.add_subparsers(dest="action", required=True)
    convert = sub.add_parser("convert",
                             help="convert WebInstruct-verified rows (parquet/JSON/JSONL) to verl parquet", formatter_class=HelpFormatter)
    convert.add_argument("--input", required=True, help="rows with question and answer (parquet, JSON or JSONL)")
    convert.add_argument("--output", required=True, help="parquet file to write")
    convert.add_argument("--family", choices=FAMILIES, default="qwen-math",
                         help="policy family; its default --template is the paper's prompt for it "
                              "(qwen-math: luffy, llama: llama-boxed)")
    convert.add_argument("--template", choices=list(TEMPLATES), default=None,
                         help=f"prompt template instead of the family's paper prompt ({template_help()})")
    convert.add_argument("--split", default="train", help="value stored in extra_info.split")
    convert.add_argument("--data-source", default=WEBINSTRUCT_SOURCE, help="value of data_source (selects the verifier)")
    convert.add_argument("--limit", type=int, default=None, help="convert only the first N rows")
    validate = sub.add_parser("validate",
                              help="check a processed parquet; names each missing field and row", formatter_class=HelpFormatter)
    validate.add_argument("input", help="processed parquet, e.g. WebInstruct-Verified-Processed/train.parquet")
    args = parser.parse_args(argv)
    return _convert(args) if args.action == "convert" else _validate(args)
