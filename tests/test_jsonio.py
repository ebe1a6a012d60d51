"""Record files: JSON / JSON list / JSONL reading, and `trm.resumable.ResumableOutput` (resume without loss)."""

from __future__ import annotations

import json

import pytest

from trm.jsonio import append_jsonl, read_records
from trm.resumable import RecordFailed, ResumableOutput, ResumeMismatch, side_file

# Every character str.splitlines() treats as a line end; only "\n" ends a JSONL line. json.dumps escapes the
# ASCII control characters, but writes U+0085, U+2028 and U+2029 as they are (ensure_ascii=False).
LINE_BREAKS = ["\r", "\r\n", "\x0b", "\x0c", "\x1c", "\x1d", "\x1e", "\x85", "\u2028", "\u2029"]


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


def output_for(path, n, **kwargs):
    return ResumableOutput(path, list(range(n)), key_of=lambda r: r["i"], report=kwargs.pop("report", lambda m: None),
                           **kwargs).open()


def test_every_unicode_line_break_round_trips(tmp_path):
    records = [{"i": i, "text": f"a{sep}b"} for i, sep in enumerate(LINE_BREAKS)]
    path = tmp_path / "out.jsonl"
    append_jsonl(path, records)
    assert "\u2028" in path.read_text(encoding="utf-8")  # written raw, the case splitlines() broke
    assert read_records(path) == records
    output = output_for(path, len(records))
    assert output.todo == [] and output.set_aside == [] and output.records() == records
    before = path.read_bytes()
    output.finish()
    assert path.read_bytes() == before and not side_file(path).exists()


def test_records_are_matched_by_key_and_unusable_lines_set_aside(tmp_path):
    path = tmp_path / "out.jsonl"
    append_jsonl(path, [{"i": 0}, {"i": 3}])  # a valid last line that belongs to another record than the 2nd
    with open(path, "a", encoding="utf-8") as handle:
        handle.write('{"i": 1, "torn\n')  # corrupt line in the middle
    append_jsonl(path, [{"i": 4}, {"i": 0, "again": True}, {"i": 99}, {"no": "key"}])
    before = path.read_bytes()
    messages = []
    output = output_for(path, 5, report=messages.append)
    assert output.todo == [1, 2]  # 3 and 4 kept wherever they are; 1 (corrupt) and 2 (never written) redone
    assert [(a.line, a.reason.split(" (")[0]) for a in output.set_aside] == [
        (3, "not valid JSON"), (5, "duplicate of line 1"), (6, "key 99 is not an item of this run's input"),
        (7, "no key")]
    side = side_file(path)
    assert len(messages) == 1 and str(side) in messages[0] and "set aside 4" in messages[0]
    kept = [json.loads(line) for line in side.read_text().splitlines()]
    assert [k["text"] for k in kept] == ['{"i": 1, "torn', '{"i": 0, "again": true}', '{"i": 99}', '{"no": "key"}']
    assert path.read_bytes() == before  # nothing leaves the output before the run succeeds

    output_for(path, 5)  # a second resume (after a failed run) does not copy the same lines twice
    assert len(side.read_text().splitlines()) == 4
    output.append([(2, {"i": 2}), (1, {"i": 1})])
    assert path.stat().st_size > len(before)
    output.finish()
    assert read_records(path) == [{"i": i} for i in range(5)]  # compacted, in item order


def test_torn_tail_is_kept_aside_and_appends_start_on_a_new_line(tmp_path):
    path = tmp_path / "out.jsonl"
    append_jsonl(path, [{"i": 0, "t": "é"}])
    path.write_bytes(path.read_bytes() + '{"i": 1, "t": "é'.encode()[:-1])  # cut inside a UTF-8 character
    output = output_for(path, 2)
    assert output.todo == [1] and output.set_aside[0].line == 2
    assert json.loads(side_file(path).read_text().splitlines()[0])["text"].endswith("\udcc3")  # byte kept, escaped
    output.append([(1, {"i": 1})])
    output.finish()
    assert read_records(path) == [{"i": 0, "t": "é"}, {"i": 1}]

    whole = tmp_path / "whole.jsonl"
    whole.write_text('{"i": 0}\n{"i": 1}')  # a complete record that only lacks its newline is used
    output = output_for(whole, 3)
    assert output.todo == [2] and output.set_aside == []
    output.append([(2, {"i": 2})])
    assert read_records(whole) == [{"i": 0}, {"i": 1}, {"i": 2}]


def test_output_of_other_data_is_refused_and_caches_keep_other_keys(tmp_path):
    path = tmp_path / "out.jsonl"
    append_jsonl(path, [{"i": 7}, {"i": 8}])
    with pytest.raises(ResumeMismatch, match="written for other data"):
        output_for(path, 2)
    cache = output_for(path, 2, keep_foreign=True)
    assert cache.todo == [0, 1] and cache.set_aside == []
    cache.append([(0, {"i": 0}), (1, {"i": 1})])
    cache.finish()
    assert sorted(r["i"] for r in read_records(path)) == [0, 1, 7, 8]


def test_check_rejects_incomplete_records_and_record_failed_carries_the_item(tmp_path):
    path = tmp_path / "out.jsonl"
    append_jsonl(path, [{"i": 0, "score": 1.0}, {"i": 1, "score": None}])
    output = output_for(path, 2, check=lambda r, i: None if isinstance(r.get("score"), float) else "no score")
    assert output.todo == [1] and output.set_aside[0].reason == "no score"
    cause = KeyError("boom")
    error = RecordFailed(1, "k1", {"i": 1}, cause)
    assert (error.index, error.key, error.item, error.cause) == (1, "k1", {"i": 1}, cause)
    assert "item 1" in str(error) and "boom" in str(error)


def test_rows_come_from_parquet_and_json_alike(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    from trm.jsonio import read_rows

    rows = [{"a": i, "b": {"c": [i, i + 1]}} for i in range(5)]
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "r.parquet")
    append_jsonl(tmp_path / "r.jsonl", rows)
    assert read_rows(tmp_path / "r.parquet") == rows == read_rows(tmp_path / "r.jsonl")


def test_every_jsonl_reader_splits_on_newline_only(tmp_path):
    from trm.preference.pipeline import iter_jsonl

    path = tmp_path / "r.jsonl"
    path.write_bytes('{"a":\r 1, "t": "x\u2028y\x85z"}\n{"b": 2}\r\n'.encode())  # "\r" is JSON whitespace
    expected = [{"a": 1, "t": "x\u2028y\x85z"}, {"b": 2}]
    assert read_records(path) == expected == list(iter_jsonl(path))
