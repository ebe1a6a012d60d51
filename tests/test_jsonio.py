"""Record files: JSON / JSON list / JSONL reading, and torn-line handling for resumable outputs."""

from __future__ import annotations

import json

import pytest

from trm.jsonio import append_jsonl, count_complete_lines, read_records


def test_reads_object_list_and_jsonl(tmp_path):
    (tmp_path / "o.json").write_text(json.dumps({"a": 1}, indent=2))
    (tmp_path / "l.json").write_text(json.dumps([{"a": 1}, {"a": 2}]))
    (tmp_path / "r.jsonl").write_text('{"a": 1}\n\n{"a": 2}\n')
    assert read_records(tmp_path / "o.json") == [{"a": 1}]
    assert read_records(tmp_path / "l.json") == [{"a": 1}, {"a": 2}]
    assert read_records(tmp_path / "r.jsonl") == [{"a": 1}, {"a": 2}]


def test_bad_line_is_named(tmp_path):
    (tmp_path / "bad.jsonl").write_text('{"a": 1}\n{"a": \n')
    with pytest.raises(ValueError, match="bad.jsonl:2"):
        read_records(tmp_path / "bad.jsonl")
    (tmp_path / "scalar.json").write_text("[1]")
    with pytest.raises(ValueError, match="item 0"):
        read_records(tmp_path / "scalar.json")


def test_torn_tail_is_dropped_so_resume_appends_cleanly(tmp_path):
    out = tmp_path / "out.jsonl"
    append_jsonl(out, [{"i": 0}, {"i": 1}])
    with open(out, "a") as handle:
        handle.write('{"i": 2, "partial"')
    assert count_complete_lines(out) == 2
    append_jsonl(out, [{"i": 2}])
    assert [r["i"] for r in read_records(out)] == [0, 1, 2]
    assert count_complete_lines(tmp_path / "missing.jsonl") == 0


def test_rows_come_from_parquet_and_json_alike(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    from trm.jsonio import read_rows

    rows = [{"a": i, "b": {"c": [i, i + 1]}} for i in range(5)]
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "r.parquet")
    append_jsonl(tmp_path / "r.jsonl", rows)
    assert read_rows(tmp_path / "r.parquet") == rows == read_rows(tmp_path / "r.jsonl")
