"""Resumable JSONL outputs: one record per item, matched to the run's items by key, never losing a finished record.

Every batch command that "appends JSONL and resumes from what is there" uses `ResumableOutput`:

- lines are split on "\\n" only (records are written with ``ensure_ascii=False``, so a record may hold U+2028,
  U+2029 or U+0085, which ``str.splitlines`` would treat as line ends);
- a line is used when it is a complete JSON object whose key is one of the run's items and which passes the
  command's check; order does not matter, so a record written out of place is still found;
- every other non-blank line (torn, corrupt, failing the check, a duplicate, or of another input) is copied to a
  side file ``<output>.set-aside``, named in the notice, and never deleted;
- while the run works the output is only appended to; ``finish`` (called after the last item succeeded)
  rewrites it atomically in item order without the set-aside lines. A failed run therefore never shrinks it.
"""

from __future__ import annotations

import json
import os
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Hashable, Iterable, Sequence

from trm.errors import BadInput


class ResumeMismatch(BadInput):
    """The output holds records, but none of them belongs to this run's input: it was written for other data."""


class RecordFailed(Exception):
    """The work on one item of a resumable run failed; the original error is ``cause`` (and ``__cause__``)."""

    def __init__(self, index: int, key: Hashable, item: object, cause: BaseException):
        super().__init__(f"item {index} (key {key!r}) failed: {type(cause).__name__}: {cause}")
        self.index, self.key, self.item, self.cause = index, key, item, cause


@dataclass(frozen=True)
class SetAside:
    """A line of the output that the run cannot use: its 1-based line number, why, and its text."""

    line: int
    reason: str
    text: str


def side_file(path: str | Path) -> Path:
    """Where the unusable lines of ``path`` are kept (not ``*.jsonl``, so output globs do not pick it up)."""
    path = Path(path)
    return path.with_name(path.name + ".set-aside")


class ResumableOutput:
    """An append-only JSONL output holding one record per item of a run.

    ``keys[i]`` identifies item ``i`` (keys may repeat: equal keys are matched in order); ``key_of(record)`` reads
    the key back from a written record (raising KeyError/TypeError/ValueError when it has none). ``check(record,
    index)`` returns why a record with a matching key is unusable for item ``index``, or None. With
    ``keep_foreign`` (caches shared across runs) records of other keys are kept as they are instead of set aside.
    """

    def __init__(self, path: str | Path, keys: Sequence[Hashable], key_of: Callable[[dict], Hashable],
                 check: Callable[[dict, int], str | None] | None = None, keep_foreign: bool = False,
                 report: Callable[[str], None] | None = None):
        self.path = Path(path)
        self.keys = list(keys)
        self.key_of, self.check, self.keep_foreign = key_of, check, keep_foreign
        self.report = report or (lambda message: print(message, file=sys.stderr, flush=True))
        self.done: dict[int, dict] = {}
        self._lines: dict[int, str] = {}  # item index -> its line as written (kept byte for byte by finish)
        self._foreign: list[str] = []
        self.set_aside: list[SetAside] = []
        self._clean = True  # the file already is exactly what finish would write
        self._opened = False
        self._last = -1  # highest item index with a line in the file

    # ---- reading what is there -------------------------------------------------------------------------------
    def open(self) -> "ResumableOutput":
        """Read the output (if any), match its records to the items, set aside what cannot be used."""
        self._opened = True
        if not self.path.exists():
            return self
        data = self.path.read_bytes()
        slots: dict[Hashable, list[int]] = {}
        for index, key in enumerate(self.keys):
            slots.setdefault(key, []).append(index)
        chunks = data.split(b"\n")
        torn = chunks.pop() if chunks else b""  # text after the last "\n": empty unless the last write was cut
        if torn.strip():
            chunks.append(torn)
        if torn:
            self._clean = False
        first_line: dict[int, int] = {}
        objects = 0
        order: list[int] = []
        for number, chunk in enumerate(chunks, start=1):
            text = chunk.decode("utf-8", errors="surrogateescape")
            if not text.strip():
                self._clean = False
                continue
            reason, record = _parse(text)
            if record is not None:
                objects += 1
                try:
                    key = self.key_of(record)
                    hash(key)
                except (KeyError, TypeError, ValueError, AttributeError) as exc:
                    reason = f"no key ({type(exc).__name__}: {exc})"
                else:
                    if key not in slots:
                        if self.keep_foreign:
                            self._foreign.append(text)
                            order.append(-1)
                            continue
                        reason = f"key {_short(key)} is not an item of this run's input"
                    else:
                        free = [i for i in slots[key] if i not in self.done]
                        if not free:
                            reason = f"duplicate of line {first_line[slots[key][0]]} (key {_short(key)})"
                        else:
                            index = free[0]
                            reason = self.check(record, index) if self.check else None
                            if reason is None:
                                self.done[index] = record
                                self._lines[index] = text
                                first_line.setdefault(index, number)
                                order.append(index)
                                continue
            self.set_aside.append(SetAside(number, reason, text))
        if objects and not self.done and not self.keep_foreign:
            raise ResumeMismatch(
                f"{self.path}: none of its {objects} records belongs to this run's input (first: "
                f"{self.set_aside[0].reason}); it was written for other data: use another output or remove it")
        if self.set_aside:
            self._clean = False
            self._keep_aside()
        if order != sorted(i for i in order if i >= 0) + [-1] * order.count(-1):
            self._clean = False
        self._last = max(self.done, default=-1)
        if torn:  # new lines must start on a line of their own (this only ever adds to the file)
            with open(self.path, "ab") as handle:
                handle.write(b"\n")
        return self

    def _keep_aside(self) -> None:
        side = side_file(self.path)
        known = set()
        if side.exists():
            for chunk in side.read_bytes().split(b"\n"):
                try:
                    known.add(json.loads(chunk)["text"])
                except (ValueError, KeyError, TypeError):
                    continue
        new = [entry for entry in self.set_aside if entry.text not in known]
        with open(side, "a", encoding="ascii") as handle:  # ascii: a torn UTF-8 byte survives as an escape
            for entry in new:
                handle.write(json.dumps({"output": str(self.path), "line": entry.line, "reason": entry.reason,
                                         "text": entry.text}) + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        reasons = Counter(entry.reason.split(" (")[0] for entry in self.set_aside)
        summary = "; ".join(f"{count} x {reason}" for reason, count in reasons.most_common(3))
        self.report(f"{self.path}: set aside {len(self.set_aside)} unusable line(s) ({summary}) in {side}; "
                    f"kept {len(self.done)} finished record(s). The output is compacted only when this run finishes.")

    # ---- the run ---------------------------------------------------------------------------------------------
    @property
    def todo(self) -> list[int]:
        """Indices of the items without a usable record, in item order."""
        return [index for index in range(len(self.keys)) if index not in self.done]

    def append(self, items: Iterable[tuple[int, dict]]) -> None:
        """Write finished records (``(item index, record)`` pairs), flushed, so an interruption loses nothing."""
        if not self._opened:
            raise RuntimeError("ResumableOutput.open() first")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a", encoding="utf-8") as handle:
            for index, record in items:
                if index in self.done:
                    raise ValueError(f"item {index} already has a record in {self.path}")
                line = json.dumps(record, ensure_ascii=False)
                handle.write(line + "\n")
                handle.flush()
                if index < self._last:
                    self._clean = False  # written out of item order: finish sorts
                self._last = max(self._last, index)
                self.done[index] = record
                self._lines[index] = line

    def finish(self) -> None:
        """After the run succeeded: rewrite the output in item order without set-aside lines (atomically)."""
        if self._clean:
            return
        lines = [self._lines[index] for index in sorted(self._lines)] + self._foreign
        tmp = self.path.with_name(self.path.name + ".tmp")
        with open(tmp, "wb") as handle:
            handle.write("".join(line + "\n" for line in lines).encode("utf-8", errors="surrogateescape"))
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, self.path)
        self._clean = True

    def records(self) -> list[dict]:
        """The records of all items, in item order (after the run: every item has one)."""
        missing = self.todo
        if missing:
            raise ValueError(f"{self.path}: items {missing[:5]} have no record yet")
        return [self.done[index] for index in range(len(self.keys))]


def _parse(text: str) -> tuple[str | None, dict | None]:
    try:
        record = json.loads(text)
    except (json.JSONDecodeError, UnicodeError) as exc:
        return f"not valid JSON ({exc})", None
    if not isinstance(record, dict):
        return f"not a JSON object ({type(record).__name__})", None
    return None, record


def _short(key: Hashable) -> str:
    text = repr(key)
    return text if len(text) <= 80 else text[:77] + "..."


def content_key(record: dict, ignore: Iterable[str] = ()) -> str:
    """A record's identity when it carries no id: its canonical JSON without the ``ignore`` fields."""
    skip = set(ignore)
    return json.dumps({k: v for k, v in record.items() if k not in skip}, sort_keys=True, ensure_ascii=False)
