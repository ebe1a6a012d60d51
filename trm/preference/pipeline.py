"""TRM-Preference data from verified traces: pair correct traces per prompt, judge each pair, keep consistent labels.

Input (JSONL or JSON list), one record per response:
    {"prompt": "question text", "model": "qwen3-8b", "response": "<think>...</think> ... \\boxed{42}",
     "correct": true, "prompt_id": "optional; groups responses instead of the prompt text"}
Only ``correct`` responses are paired; identical responses to the same prompt count once.

The resumable unit is a pair: the audit file gets one line per judged pair, in a fixed order that depends only on
the input and the seed, with every judgement, rationale, view and token count. When all pairs are judged the
TRM-Preference file (kept pairs) and the stats summary are written from the audit file.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import random
from collections import Counter
from dataclasses import dataclass, field
from typing import Iterable, Iterator

from trm.dag.build import DagConfig
from trm.dag.graph import Dag, validate_dag
from trm.jsonio import read_records
from trm.llm.client import ChatClient, Usage
from trm.preference.pairwise import DROP_REASONS, PairwiseConfig, judge_pair
from trm.preference.views import ViewConfig, build_views
from trm.traces import reasoning
from trm.errors import BadInput


class TraceInputError(BadInput):
    """A trace or DAG file that the preference build cannot use."""


def load_traces(path) -> list[dict]:
    """Read and check the input records (errors name the record and the field)."""
    records = read_records(path)
    problems = []
    for number, record in enumerate(records):
        for name, kind in (("prompt", str), ("model", str), ("response", str), ("correct", bool)):
            if not isinstance(record.get(name), kind):
                problems.append(f"record {number}: '{name}' must be a {kind.__name__}, got {record.get(name)!r:.60}")
    if problems:
        more = f"\n  ... and {len(problems) - 10} more" if len(problems) > 10 else ""
        raise TraceInputError(f"{path}: " + "\n  ".join(problems[:10]) + more)
    if not records:
        raise TraceInputError(f"{path}: no records")
    return records


@dataclass(frozen=True)
class PairTask:
    key: str  # prompt group key (prompt_id or the prompt text)
    prompt: str
    first: int  # input record numbers
    second: int

    @property
    def ident(self) -> str:
        return f"{self.key}\x1f{self.first}\x1f{self.second}"


@dataclass
class PairingStats:
    prompts: int = 0
    responses: int = 0
    correct: int = 0
    duplicate_responses: int = 0
    prompts_with_pairs: int = 0
    candidate_pairs: int = 0
    planned_pairs: int = 0


def form_pairs(
    records: list[dict], max_pairs_per_prompt: int = 4, seed: int = 0, cross_model_only: bool = False
) -> tuple[list[PairTask], PairingStats]:
    """Pairs of distinct correct responses per prompt, at most ``max_pairs_per_prompt`` (seeded sample per prompt).

    Groups keep the order in which prompts first appear; a prompt's sample depends only on the seed and the
    prompt's key, so adding prompts to the input does not change the pairs of the others.
    """
    stats = PairingStats(responses=len(records))
    groups: dict[str, list[int]] = {}
    for number, record in enumerate(records):
        key = str(record.get("prompt_id", record["prompt"]))
        groups.setdefault(key, []).append(number)
    stats.prompts = len(groups)
    tasks: list[PairTask] = []
    for key, members in groups.items():
        seen: set[str] = set()
        correct = []
        for number in members:
            if not records[number]["correct"]:
                continue
            stats.correct += 1
            if records[number]["response"] in seen:
                stats.duplicate_responses += 1
                continue
            seen.add(records[number]["response"])
            correct.append(number)
        candidates = [
            (a, b)
            for a, b in itertools.combinations(correct, 2)
            if not cross_model_only or records[a]["model"] != records[b]["model"]
        ]
        stats.candidate_pairs += len(candidates)
        if len(candidates) > max_pairs_per_prompt:
            rng = random.Random(f"{seed}\x1f{key}")
            chosen = sorted(rng.sample(range(len(candidates)), max_pairs_per_prompt))
            candidates = [candidates[k] for k in chosen]
        if candidates:
            stats.prompts_with_pairs += 1
        tasks.extend(PairTask(key, records[members[0]]["prompt"], a, b) for a, b in candidates)
    stats.planned_pairs = len(tasks)
    return tasks, stats


def load_dags(path, records: list[dict]) -> dict[int, Dag]:
    """DAGs from a `trm dag build` run over the same input file, checked against it record by record."""
    built = read_records(path)
    if len(built) != len(records):
        raise TraceInputError(
            f"{path} has {len(built)} DAG records but the input has {len(records)}: "
            "run `trm dag build` on this same input file (to the end) first"
        )
    dags: dict[int, Dag] = {}
    for number, (record, line) in enumerate(zip(built, records)):
        if not isinstance(record.get("dag"), dict):
            raise TraceInputError(f"{path}: record {number} has no 'dag': give a `trm dag build` output")
        dag = Dag.from_dict(record["dag"])
        if record.get("prompt") != line["prompt"] or "".join(dag.steps) != reasoning(line["response"]):
            raise TraceInputError(f"{path}: DAG record {number} does not belong to input record {number}")
        problems = validate_dag(dag)
        if problems:
            raise TraceInputError(f"{path}: DAG record {number} is invalid: {problems[0]}")
        dags[number] = dag
    return dags


def preference_record(prompt: str, chosen: str, rejected: str) -> dict:
    """TRL's conversational preference format with an explicit prompt (what `trm train-rm` reads)."""
    return {
        "prompt": [{"role": "user", "content": prompt}],
        "chosen": [{"role": "assistant", "content": chosen}],
        "rejected": [{"role": "assistant", "content": rejected}],
    }


@dataclass
class PipelineConfig:
    dag: DagConfig = field(default_factory=DagConfig)
    views: ViewConfig = field(default_factory=ViewConfig)
    pairwise: PairwiseConfig = field(default_factory=PairwiseConfig)
    keywords: frozenset[str] | None = None
    audit_views: bool = field(default=True, metadata={"help": "keep DAGs and views of both traces in each audit line"})


class ViewCache:
    """Views of each trace built once and shared by all its pairs; dropped after its last pair starts."""

    def __init__(
        self,
        judge: ChatClient,
        records: list[dict],
        tasks: list[PairTask],
        config: PipelineConfig,
        dags: dict[int, Dag] | None = None,
    ):
        self.judge, self.records, self.config = judge, records, config
        self.dags = dags or {}  # DAGs built earlier (`trm dag build` on the same input), by record number
        self.remaining = Counter(n for task in tasks for n in (task.first, task.second))
        self.tasks: dict[int, asyncio.Task] = {}

    def get(self, number: int, prompt: str) -> tuple[asyncio.Task, bool]:
        """(task building the views, whether this call created it: the creator is billed for it)."""
        created = number not in self.tasks
        if created:
            response = self.records[number]["response"]
            self.tasks[number] = asyncio.ensure_future(
                build_views(
                    self.judge,
                    prompt,
                    response,
                    self.config.dag,
                    self.config.views,
                    self.config.keywords,
                    dag=self.dags.get(number),
                )
            )
        task = self.tasks[number]
        self.remaining[number] -= 1
        if self.remaining[number] <= 0:
            del self.tasks[number]
        return task, created


async def judge_task(
    judge: ChatClient, records: list[dict], task: PairTask, cache: ViewCache, config: PipelineConfig
) -> dict:
    """One audit line: the pair, both views, all judgements, the label and the preference record if kept."""
    (task_1, new_1), (task_2, new_2) = cache.get(task.first, task.prompt), cache.get(task.second, task.prompt)
    views_1, views_2 = await task_1, await task_2
    outcome = await judge_pair(judge, task.prompt, views_1, views_2, config.pairwise)
    view_usage = Usage()
    for views, new in ((views_1, new_1), (views_2, new_2)):
        if new:
            view_usage.add(views.usage)
    first, second = records[task.first], records[task.second]
    record = None
    if outcome.label == 1:
        record = preference_record(task.prompt, first["response"], second["response"])
    elif outcome.label == 2:
        record = preference_record(task.prompt, second["response"], first["response"])
    audit = {
        "pair_id": task.ident,
        "prompt_id": task.key,
        "prompt": task.prompt,
        "responses": [task.first, task.second],
        "models": [first["model"], second["model"]],
        **outcome.to_dict(include_views=config.audit_views),
        "view_usage": view_usage.to_dict(),
        "record": record,
    }
    return audit


def iter_jsonl(path) -> Iterator[dict]:
    """Lines of a (possibly large) JSONL file one at a time (split on "\n" only, like `trm.jsonio`)."""
    with open(path, encoding="utf-8", newline="\n") as handle:
        for line in handle:
            if line.strip():
                yield json.loads(line)


def summarise_audit(
    audit: Iterable[dict], pairing: PairingStats, price_in: float | None, price_out: float | None, kept_sink=None
) -> dict:
    """The stats summary (pairs judged/kept/dropped by reason, judge tokens, estimated cost) in one pass;
    each kept preference record is handed to ``kept_sink`` on the way."""
    usage = Usage()
    reasons: Counter = Counter()
    judged = kept = dag_errors = 0
    for line in audit:
        judged += 1
        usage.add(Usage.from_dict(line["usage"]))
        usage.add(Usage.from_dict(line["view_usage"]))
        dag_errors += sum(len(v.get("dag", {}).get("errors", [])) for v in line.get("views", []))
        if line["record"] is not None:
            kept += 1
            if kept_sink is not None:
                kept_sink(line["record"])
        else:
            reasons[line["reason"]] += 1
    stats = {
        "prompts": pairing.prompts,
        "responses": pairing.responses,
        "correct_responses": pairing.correct,
        "duplicate_correct_responses": pairing.duplicate_responses,
        "prompts_with_pairs": pairing.prompts_with_pairs,
        "candidate_pairs": pairing.candidate_pairs,
        "pairs_planned": pairing.planned_pairs,
        "pairs_judged": judged,
        "pairs_kept": kept,
        "dropped": {reason: reasons.get(reason, 0) for reason in DROP_REASONS},
        "dag_fallback_steps": dag_errors,  # steps whose structuring fell back to continue (audited views only)
        "judge_usage": usage.to_dict(),
    }
    if price_in is None or price_out is None:
        stats["estimated_cost_usd"] = None
        stats["cost_note"] = "pass --price-input-per-mtok and --price-output-per-mtok for a cost estimate"
    else:
        cost = usage.prompt_tokens / 1e6 * price_in + usage.completion_tokens / 1e6 * price_out
        stats["estimated_cost_usd"] = round(cost, 6)
        stats["prices_usd_per_mtok"] = {"input": price_in, "output": price_out}
    return stats
