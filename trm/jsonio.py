"""Reading and writing records: JSON, JSON lists, JSONL and parquet, with errors that name the line.

JSONL is written with ``ensure_ascii=False`` and read back split on "\n" only: ``str.splitlines`` would also
split inside records holding U+2028, U+2029, U+0085 and the like. Batch commands write one record at a time
(flushed) and resume through `trm.resumable.ResumableOutput`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterable, Iterator

from trm.errors import BadInput


def read_records(path: str | Path) -> list[dict]:
    """Records from a JSON object, a JSON list of objects, or JSONL."""
    path = Path(path)
    text = path.read_bytes().decode("utf-8")  # no newline translation: lines are split on "\n" only
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        return list(_read_jsonl(path, text))
    records = data if isinstance(data, list) else [data]
    for index, record in enumerate(records):
        if not isinstance(record, dict):
            raise BadInput(f"{path}: item {index} is {type(record).__name__}, expected a JSON object")
    return records


def iter_rows(path: str | Path) -> Iterator[dict]:
    """Rows of a parquet file (streamed in batches, so large files stay cheap) or of a JSON/JSONL file."""
    path = Path(path)
    if path.suffix.lower() == ".parquet":
        import pyarrow.parquet as pq

        for batch in pq.ParquetFile(path).iter_batches(batch_size=4096):
            yield from batch.to_pylist()
    else:
        yield from read_records(path)


def read_rows(path: str | Path) -> list[dict]:
    """All rows of a parquet, JSON or JSONL file."""
    return list(iter_rows(path))


def _read_jsonl(path: Path, text: str) -> Iterator[dict]:
    for number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise BadInput(f"{path}:{number}: not valid JSON ({exc.msg})") from None
        if not isinstance(record, dict):
            raise BadInput(f"{path}:{number}: expected a JSON object, got {type(record).__name__}")
        yield record


def append_jsonl(path: str | Path, records: Iterable[dict]) -> None:
    """Append records as JSONL, flushing after each so progress survives an interruption."""
    with open(path, "a", encoding="utf-8") as handle:
        for record in records:
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")
            handle.flush()
