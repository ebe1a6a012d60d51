"""The paper's benchmarks: where each file lives, which fields hold what, and how its prompt is phrased.

Nothing is downloaded. A user puts each benchmark file somewhere and points at it with `--data FILE`,
an environment variable (`TRM_BENCH_<NAME>`, e.g. `TRM_BENCH_AIME24=/data/aime24.jsonl`) or a directory
(`--data-dir DIR` / `TRM_BENCH_DIR`) holding the default file name. Files may be JSONL, JSON, Parquet or CSV.
Field names differ between public copies, so each benchmark lists the names it accepts, first match wins;
`--question-field/--answer-field/--choices-field` override them. docs/evaluation.md lists the sources.
"""

from __future__ import annotations

import csv
import hashlib
import os
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from trm.errors import BadInput
from trm.jsonio import read_rows

LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"

MATH_INSTRUCTION = "Please reason step by step, and put your final answer within \\boxed{}."
CHOICE_INSTRUCTION = (
    "Please reason step by step, and put the letter of the correct option (only the letter) within \\boxed{}."
)


@dataclass(frozen=True)
class Benchmark:
    """One benchmark: its group in Table 2, answer type, accepted field names and default file."""

    name: str
    """Registry key, lower case (also the `benchmark` field of generation records)."""
    title: str
    """Column title in tables (as in the paper's Table 2)."""
    group: str
    """"math" or "stem": which Table 2 average the benchmark counts towards."""
    answer_type: str
    """"math" (graded by the math verifier), "choice" (an option letter) or "text" (short free text)."""
    filename: str
    """Default file name inside `--data-dir`."""
    source: str
    """Where users get the data (documentation only; nothing is fetched)."""
    question_fields: tuple[str, ...] = ("problem", "question", "Problem", "Question", "input")
    """Accepted names of the question field, first match wins."""
    answer_fields: tuple[str, ...] = ("answer", "Answer", "final_answer", "target", "solution_answer")
    """Accepted names of the reference answer field."""
    choices_fields: tuple[str, ...] = ("options", "choices")
    """Accepted names of a list-of-options field (choice benchmarks only)."""
    incorrect_fields: tuple[str, ...] = ()
    """GPQA-style layout: the answer field holds the correct option text, these hold the distractors."""
    samples: int = 1
    """Samples per question the paper used for its number (AIME: avg@32)."""

    @property
    def env_var(self) -> str:
        return "TRM_BENCH_" + self.name.upper().replace("-", "_")


BENCHMARKS: dict[str, Benchmark] = {
    b.name: b
    for b in [
        Benchmark("gpqa-diamond", "GPQA", "stem", "choice", "gpqa_diamond.csv",
                  "GPQA, diamond subset (gated on the Hugging Face hub: Idavidrein/gpqa, gpqa_diamond.csv)",
                  question_fields=("Question", "question"),
                  answer_fields=("Correct Answer", "answer"),
                  incorrect_fields=("Incorrect Answer 1", "Incorrect Answer 2", "Incorrect Answer 3")),
        Benchmark("supergpqa", "SGPQA", "stem", "choice", "supergpqa.jsonl",
                  "SuperGPQA (m-a-p/SuperGPQA), fields question / options / answer_letter",
                  answer_fields=("answer_letter", "answer")),
        Benchmark("mmlu-pro", "MMLU-Pro", "stem", "choice", "mmlu_pro.jsonl",
                  "MMLU-Pro test split (TIGER-Lab/MMLU-Pro), fields question / options / answer (letter)"),
        Benchmark("bbeh", "BBEH", "stem", "text", "bbeh.jsonl",
                  "BIG-Bench Extra Hard (google-deepmind/bbeh), all task files concatenated, fields input / target",
                  question_fields=("input", "question"), answer_fields=("target", "answer")),
        Benchmark("frontierscience", "FS", "stem", "text", "frontierscience.jsonl",
                  "FrontierScience (OpenAI), olympiad-style items with a short reference answer, fields problem / answer"),
        Benchmark("amc", "AMC", "math", "math", "amc.jsonl",
                  "AMC 2022-2023 (AI-MO/aimo-validation-amc), fields problem / answer"),
        Benchmark("aime24", "AIME24", "math", "math", "aime24.jsonl",
                  "AIME 2024 (HuggingFaceH4/aime_2024 or Maxwell-Jia/AIME_2024), fields problem / answer", samples=32),
        Benchmark("aime25", "AIME25", "math", "math", "aime25.jsonl",
                  "AIME 2025 I and II (opencompass/AIME2025 or yentinglin/aime_2025), fields question / answer", samples=32),
        Benchmark("math500", "MATH500", "math", "math", "math500.jsonl",
                  "MATH-500 (HuggingFaceH4/MATH-500), fields problem / answer"),
        Benchmark("olympiadbench", "Olymp", "math", "math", "olympiadbench.jsonl",
                  "OlympiadBench, English text-only maths (e.g. Hothan/OlympiadBench OE_TO_maths_en_COMP), "
                  "fields question / final_answer (a list)"),
    ]
}

# Table 2 column order and its two averages.
STEM = [b.name for b in BENCHMARKS.values() if b.group == "stem"]
MATH = [b.name for b in BENCHMARKS.values() if b.group == "math"]


def get_benchmark(name: str) -> Benchmark:
    key = name.lower().replace("_", "-")
    if key not in BENCHMARKS:
        raise BadInput(f"unknown benchmark {name!r}; known: {', '.join(BENCHMARKS)}")
    return BENCHMARKS[key]


@dataclass
class Item:
    """One question, ready to prompt and to grade."""

    id: str
    benchmark: str
    question: str
    answer: str
    answer_type: str
    choices: list[str] | None = None
    prompt: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


def resolve_path(bench: Benchmark, data: str | None = None, data_dir: str | None = None) -> Path:
    """The benchmark file: explicit path, then $TRM_BENCH_<NAME>, then <data_dir or $TRM_BENCH_DIR>/<filename>."""
    candidates = []
    if data:
        candidates.append(("--data", Path(data)))
    elif os.environ.get(bench.env_var):
        candidates.append((f"${bench.env_var}", Path(os.environ[bench.env_var])))
    else:
        directory = data_dir or os.environ.get("TRM_BENCH_DIR")
        if directory:
            candidates.append(("--data-dir", Path(directory) / bench.filename))
    if not candidates:
        raise FileNotFoundError(
            f"no file for benchmark {bench.name!r}: pass --data FILE, set ${bench.env_var}, or pass --data-dir DIR "
            f"(or $TRM_BENCH_DIR) containing {bench.filename}. Source: {bench.source}. See docs/evaluation.md."
        )
    origin, path = candidates[0]
    if not path.exists():
        raise FileNotFoundError(f"benchmark {bench.name!r}: {path} (from {origin}) does not exist. Source: {bench.source}")
    return path


def read_table(path: Path) -> list[dict]:
    """Rows of a JSON/JSONL, Parquet or CSV file."""
    suffix = path.suffix.lower()
    if suffix in (".csv", ".tsv"):
        with open(path, newline="", encoding="utf-8") as handle:
            return list(csv.DictReader(handle, delimiter="\t" if suffix == ".tsv" else ","))
    return read_rows(path)


def _first(row: dict, names: tuple[str, ...], what: str, where: str) -> Any:
    for name in names:
        if name in row and row[name] not in (None, ""):
            return row[name]
    raise BadInput(f"{where}: no {what} field; looked for {', '.join(names)}; the row has {', '.join(row)}")


def _answer_text(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return ", ".join(str(v).strip().strip("$") for v in value)
    return str(value).strip()


def _stable_rng(*parts: str) -> random.Random:
    digest = hashlib.sha256("\x1f".join(parts).encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))


def format_prompt(question: str, choices: list[str] | None) -> str:
    """The user message: question, lettered options for choice items, and the answer-format instruction."""
    if choices:
        options = "\n".join(f"{LETTERS[i]}) {c}" for i, c in enumerate(choices))
        return f"{question.strip()}\n\n{options}\n\n{CHOICE_INSTRUCTION}"
    return f"{question.strip()}\n\n{MATH_INSTRUCTION}"


def _choice_answer(answer: Any, choices: list[str], where: str) -> str:
    """A letter for a choice item whose answer is a letter, an index or the option text."""
    if isinstance(answer, int) and 0 <= answer < len(choices):
        return LETTERS[answer]
    text = str(answer).strip()
    if len(text) == 1 and text.upper() in LETTERS[: len(choices)]:
        return text.upper()
    for i, choice in enumerate(choices):
        if text == str(choice).strip():
            return LETTERS[i]
    raise BadInput(f"{where}: answer {text!r} is neither an option letter nor one of the options")


def row_to_item(bench: Benchmark, row: dict, index: int, *, where: str, overrides: dict | None = None) -> Item:
    overrides = overrides or {}
    q_fields = (overrides["question"],) if overrides.get("question") else bench.question_fields
    a_fields = (overrides["answer"],) if overrides.get("answer") else bench.answer_fields
    c_fields = (overrides["choices"],) if overrides.get("choices") else bench.choices_fields
    question = str(_first(row, q_fields, "question", where))
    raw_answer = _first(row, a_fields, "answer", where)
    item_id = str(row.get("id", row.get("ID", row.get("unique_id", row.get("Record ID", f"{bench.name}-{index}")))))
    choices = None
    answer = _answer_text(raw_answer)
    if bench.answer_type == "choice":
        if bench.incorrect_fields and all(row.get(f) not in (None, "") for f in bench.incorrect_fields):
            # GPQA layout: shuffle the correct option among the distractors, stably per item.
            choices = [answer] + [str(row[f]).strip() for f in bench.incorrect_fields]
            _stable_rng(bench.name, item_id, question).shuffle(choices)
        else:
            raw_choices = _first(row, c_fields, "choices", where)
            if isinstance(raw_choices, str):
                raise BadInput(f"{where}: choices field must be a list of options")
            choices = [str(c).strip() for c in raw_choices]
        answer = _choice_answer(raw_answer, choices, where)
    return Item(item_id, bench.name, question, answer, bench.answer_type, choices, format_prompt(question, choices))


def load_items(
    name: str,
    data: str | None = None,
    data_dir: str | None = None,
    limit: int | None = None,
    overrides: dict | None = None,
) -> list[Item]:
    """Items of benchmark `name` from the user's file, validated up front (errors name the row)."""
    bench = get_benchmark(name)
    path = resolve_path(bench, data, data_dir)
    rows = read_table(path)
    if limit is not None:
        rows = rows[:limit]
    items = [row_to_item(bench, row, i, where=f"{path} row {i}", overrides=overrides) for i, row in enumerate(rows)]
    seen = set()
    for item in items:
        if item.id in seen:
            raise BadInput(f"{path}: duplicate id {item.id!r}; ids must be unique for resume and pairing")
        seen.add(item.id)
    return items
