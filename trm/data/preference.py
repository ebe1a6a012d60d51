"""`trm data trm-preference`: validate, describe, split and convert TRM-Preference files.

Files are JSON (an object or a list), JSONL or parquet; every command reads all three. Records follow
TRL's conversational preference format with an explicit prompt (see `trm.data.pairs`). Errors name the
row (0-based index in the file; for JSONL also the line) and the field, so a bad record in a 100K-row file
can be found and fixed; nothing is written when the input is invalid.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from pathlib import Path
from typing import Any, Iterable

from trm.cli import HelpFormatter
from trm.jsonio import read_rows
from trm.data.pairs import RecordError, preference_parts
from trm.errors import BadInput

FORMATS = ("json", "jsonl", "parquet")


class PreferenceDataError(BadInput):
    """A preference file that cannot be used; the message lists the problems (row and field)."""


def file_format(path: str | Path) -> str:
    """json | jsonl | parquet, from the file name."""
    suffix = Path(path).suffix.lower().lstrip(".")
    if suffix in ("jsonl", "ndjson"):
        return "jsonl"
    if suffix in ("parquet", "pq"):
        return "parquet"
    if suffix == "json":
        return "json"
    raise PreferenceDataError(f"{path}: unknown file type {suffix!r}; use .json, .jsonl or .parquet")


def load_records(path: str | Path) -> list[dict]:
    """Records from JSON, JSONL or parquet (parquet rows become plain dicts/lists)."""
    path = Path(path)
    if not path.exists():
        raise PreferenceDataError(f"{path}: no such file")
    try:
        return read_rows(path)
    except ValueError as exc:
        raise PreferenceDataError(str(exc)) from None


def save_records(records: list[dict], path: str | Path) -> None:
    """Write records as JSON (a list), JSONL or parquet, chosen by the file name."""
    path = Path(path)
    fmt = file_format(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    if fmt == "parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        pq.write_table(pa.Table.from_pylist(records), tmp)
    else:
        with open(tmp, "w", encoding="utf-8") as handle:
            if fmt == "json":
                json.dump(records, handle, ensure_ascii=False)
                handle.write("\n")
            else:
                for record in records:
                    handle.write(json.dumps(record, ensure_ascii=False) + "\n")
    tmp.replace(path)  # never leave a half-written output under the final name


def validate_records(records: Iterable[Any], max_errors: int | None = None) -> list[str]:
    """One message per malformed record, naming its row and field; empty when all are usable."""
    errors: list[str] = []
    count = 0
    for row, record in enumerate(records):
        count += 1
        try:
            preference_parts(record)
        except RecordError as exc:
            errors.append(f"row {row}: {exc}")
            if max_errors is not None and len(errors) >= max_errors:
                break
    if count == 0:
        errors.append("no records: the file is empty")
    return errors


def load_valid_records(path: str | Path, max_shown: int = 20) -> list[dict]:
    """Load and validate; raise PreferenceDataError listing the first problems (row and field)."""
    records = load_records(path)
    errors = validate_records(records)
    if errors:
        shown = "\n  ".join(errors[:max_shown])
        more = f"\n  ... and {len(errors) - max_shown} more" if len(errors) > max_shown else ""
        raise PreferenceDataError(
            f"{path}: {len(errors)} malformed record(s) (rows are 0-based):\n  {shown}{more}\n"
            f"Each record needs 'prompt' (user messages or a string) and 'chosen'/'rejected' "
            f"(assistant messages or strings); run `trm data trm-preference validate {path}` for all problems."
        )
    return records


def split_records(records: list[dict], validation_size: float, seed: int) -> tuple[list[dict], list[dict]]:
    """Seeded random split; validation_size is a fraction (< 1) or a count (>= 1)."""
    n = len(records)
    count = int(round(validation_size * n)) if validation_size < 1 else int(validation_size)
    if not 0 < count < n:
        raise PreferenceDataError(f"validation size {validation_size} gives {count} of {n} records; need 1..{n - 1}")
    order = list(range(n))
    random.Random(seed).shuffle(order)
    held = set(order[:count])
    train = [r for i, r in enumerate(records) if i not in held]
    validation = [r for i, r in enumerate(records) if i in held]
    return train, validation


def _percentiles(values: list[int], points=(0, 50, 90, 99, 100)) -> dict[str, float]:
    import numpy as np

    if not values:
        return {}
    array = np.asarray(values)
    return {f"p{p}": float(np.percentile(array, p)) for p in points}


def describe_records(records: list[dict], tokenizer=None) -> dict:
    """Counts and length percentiles (characters, and tokens when a tokenizer is given) of the TRM inputs."""
    from trm.data.pairs import preference_texts, trace_lengths

    texts = [preference_texts(r) for r in records]
    lengths = [trace_lengths(r) for r in records]
    summary: dict[str, Any] = {
        "pairs": len(records),
        "chosen_trace_shorter": sum(c < r for c, r in lengths),
        "equal_trace_length": sum(c == r for c, r in lengths),
        "chars": {
            "chosen_input": _percentiles([len(c) for c, _ in texts]),
            "rejected_input": _percentiles([len(r) for _, r in texts]),
        },
    }
    if tokenizer is not None:
        flat = [t for pair in texts for t in pair]
        ids = tokenizer(flat)["input_ids"]
        summary["tokens"] = {
            "chosen_input": _percentiles([len(x) for x in ids[0::2]]),
            "rejected_input": _percentiles([len(x) for x in ids[1::2]]),
            "longest_of_pair": _percentiles([max(len(a), len(b)) for a, b in zip(ids[0::2], ids[1::2])]),
        }
    return summary


def _cmd_validate(args) -> int:
    records = load_records(args.file)
    errors = validate_records(records)
    for message in errors[: args.max_errors]:
        print(f"{args.file}: {message}", file=sys.stderr)
    if len(errors) > args.max_errors:
        print(f"... and {len(errors) - args.max_errors} more", file=sys.stderr)
    print(json.dumps({"file": str(args.file), "records": len(records), "malformed": len(errors)}))
    return 1 if errors else 0


def _cmd_describe(args) -> int:
    records = load_valid_records(args.file)
    tokenizer = None
    if args.tokenizer:
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(args.tokenizer, trust_remote_code=args.trust_remote_code)
    print(json.dumps(describe_records(records, tokenizer), indent=2))
    return 0


def _cmd_split(args) -> int:
    records = load_valid_records(args.file)
    train, validation = split_records(records, args.validation_size, args.seed)
    save_records(train, args.train_out)
    save_records(validation, args.validation_out)
    print(json.dumps({"train": len(train), "validation": len(validation), "seed": args.seed}))
    return 0


def _cmd_convert(args) -> int:
    records = load_valid_records(args.file) if not args.no_validate else load_records(args.file)
    save_records(records, args.output)
    print(json.dumps({"records": len(records), "output": str(args.output)}))
    return 0


def build_parser(prog: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description=__doc__, formatter_class=HelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("validate",
                       help="report malformed records (row and field); exit 1 if any", formatter_class=HelpFormatter)
    p.add_argument("file")
    p.add_argument("--max-errors", type=int, default=50, help="how many problems to print")
    p.set_defaults(func=_cmd_validate)

    p = sub.add_parser("describe",
                       help="pair count and length percentiles of the TRM inputs", formatter_class=HelpFormatter)
    p.add_argument("file")
    p.add_argument("--tokenizer", help="tokenizer (model folder) for token-length percentiles")
    p.add_argument("--trust-remote-code", action="store_true", help="allow custom tokenizer code (off by default)")
    p.set_defaults(func=_cmd_describe)

    p = sub.add_parser("split", formatter_class=HelpFormatter, help="split off a seeded random validation set")
    p.add_argument("file")
    p.add_argument("--validation-size", type=float, default=0.05, help="fraction (<1) or number of records (>=1)")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--train-out", required=True, help="output file (.json, .jsonl or .parquet)")
    p.add_argument("--validation-out", required=True, help="output file (.json, .jsonl or .parquet)")
    p.set_defaults(func=_cmd_split)

    p = sub.add_parser("convert",
                       help="convert between JSON, JSONL and parquet (by file name)", formatter_class=HelpFormatter)
    p.add_argument("file")
    p.add_argument("output")
    p.add_argument("--no-validate", action="store_true", help="copy records without checking them")
    p.set_defaults(func=_cmd_convert)
    return parser


def main(argv: list[str], prog: str = "trm data trm-preference") -> int:
    args = build_parser(prog).parse_args(argv)
    return int(args.func(args) or 0)
