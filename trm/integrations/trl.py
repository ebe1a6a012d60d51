"""The thinking reward as a reward function of TRL's ``GRPOTrainer``.

    reward = ThinkingReward(rm_backends="127.0.0.1:39999", verifier_backends="127.0.0.1:23888")
    trainer = GRPOTrainer(model=..., reward_funcs=[reward], args=GRPOConfig(...), train_dataset=rows)
    reward.attach(trainer)  # components into TRL's logs; think tags decoded with the trainer's tokenizer

Each call rewards the whole generation batch through the pipeline of the verl ``verify`` manager
(:func:`trm.rewards.compute.reward_batch`: rule check, LLM verifier where the data source allows it, TRM on verified
answers, ``r = v * (1 - alpha + alpha * sigmoid(t))``), so a TRL run and a verl run reward a response alike.
Settings come from keyword overrides, then ``TRM_*_BACKENDS``, then the defaults (:meth:`RewardSettings.resolve`);
``reward_file="remote_verifier.py"`` loads that file first, as verl does, so its constants are the backend defaults.
With ``alpha=0`` no TRM server is called or needed (``RewardSettings.uses_scorer``).

Ground truth, user prompt, question and data source are read from dataset columns (TRL passes every column to
the reward function); :class:`DatasetColumns` names them, by default the layout of ``trm data webinstruct
convert`` rows (``reward_model.ground_truth``, ``extra_info.user_prompt``), with dotted paths into dict columns.

Components go to TRL's logs next to its own ``rewards/<name>/mean``: ``<name>/accuracy``, ``<name>/has_answer``,
``<name>/trm_score_mean`` (mean raw TRM score of the scored responses; absent in a call that scored none),
``<name>/trm_scored`` and ``<name>/verdict/<source>`` (share of the batch settled by each verdict source; every
source seen so far is logged in every later call, 0 where absent). TRL versions that pass ``log_metric`` to reward
functions get them through it; TRL 0.26.2 has no such hook, so :meth:`ThinkingReward.attach` appends them to the
trainer's metric buffer, which TRL averages over the logging window like its own. Each process logs its own share
of the batch. Failures raise (a dead backend, a row without its ground truth): never a reward of 0.
"""

from __future__ import annotations

import importlib.util
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

from trm.rewards.blend import RewardResult
from trm.rewards.compute import RewardRequest, RewardSettings, request_from_sample, rewarder, verdict_counts


@dataclass(frozen=True)
class DatasetColumns:
    """Where each row's reward inputs live: a column name, or ``column.key`` inside a dict column."""

    ground_truth: str = "reward_model.ground_truth"
    """The reference answer the rule check and the verifier compare with."""
    user_prompt: str | None = "extra_info.user_prompt"
    """Prompt half of the TRM input ``f"{user_prompt}\\n{reasoning}"``, the text the TRM was trained with. None: the
    content of the prompt's last user turn (a plain-text prompt: the prompt itself)."""
    question: str | None = "extra_info.question"
    """What the LLM verifier is shown; None, or missing/empty in a row: the user prompt."""
    data_source: str = "data_source"
    """Decides whether the LLM verifier may re-judge a rule-check failure (``VerifyConfig.llm_data_sources``)."""
    default_data_source: str | None = None
    """Data source of rows that lack the ``data_source`` column; None: such a row is an error."""


_MISSING = object()


def _lookup(kwargs: dict, path: str, i: int) -> Any:
    """Row i's value at a dotted path (column, then keys), or _MISSING."""
    column, *keys = path.split(".")
    values = kwargs.get(column)
    if values is None:
        return _MISSING
    value = values[i]
    for key in keys:
        if not isinstance(value, dict) or key not in value:
            return _MISSING
        value = value[key]
    return value


def _last_user_text(prompt: Any) -> str:
    if isinstance(prompt, str):
        return prompt
    users = [m.get("content") for m in prompt if isinstance(m, dict) and m.get("role") == "user"]
    if not users or not isinstance(users[-1], str):
        raise ValueError("the prompt has no user turn with text content to use as the TRM's user prompt")
    return users[-1]


def completion_text(completion: Any) -> str:
    """A TRL completion as text: a plain string, or the content of a conversational completion's last
    assistant message."""
    if isinstance(completion, str):
        return completion
    assistant = [m for m in completion if isinstance(m, dict) and m.get("role") == "assistant"]
    if not assistant or not isinstance(assistant[-1].get("content"), str):
        raise ValueError(f"conversational completion without an assistant message with text content: {completion!r:.200}")
    return assistant[-1]["content"]


def settings_from_file(path: str | Path, **overrides: Any) -> RewardSettings:
    """Settings after loading a verl reward file by path, as verl's ``custom_reward_function.path`` is: its import
    makes its DEFAULT_*_BACKENDS this process's defaults (remote_verifier.py), then the environment and ``overrides``."""
    path = Path(path)
    spec = importlib.util.spec_from_file_location(f"_trm_reward_file_{abs(hash(str(path.resolve())))}", path)
    if spec is None or spec.loader is None or not path.is_file():
        raise FileNotFoundError(f"reward file {path} not found")
    spec.loader.exec_module(importlib.util.module_from_spec(spec))
    return RewardSettings.resolve(**overrides)


class ThinkingReward:
    """A reward function for ``GRPOTrainer(reward_funcs=[...])``: the blended thinking reward of each completion."""

    def __init__(
        self,
        settings: RewardSettings | None = None,
        *,
        columns: DatasetColumns | None = None,
        tokenizer: Any = None,
        reward_file: str | Path | None = None,
        name: str = "thinking_reward",
        **overrides: Any,
    ):
        """``settings`` as given; else from ``reward_file`` (:func:`settings_from_file`) or :meth:`RewardSettings.resolve`, with
        ``overrides`` (any RewardSettings/VerifyConfig field, e.g. ``alpha``, ``rm_backends``). ``tokenizer``
        (also taken from the trainer by :meth:`attach`) decodes ``completion_ids`` keeping the think tags, which
        TRL's ``skip_special_tokens=True`` decoding drops where the tokenizer marks them special."""
        if settings is not None and (overrides or reward_file is not None):
            raise TypeError("give either settings or reward_file/overrides, not both")
        if settings is None:
            settings = settings_from_file(reward_file, **overrides) if reward_file else RewardSettings.resolve(**overrides)
        self.settings = settings
        self.columns = columns or DatasetColumns()
        self.tokenizer = tokenizer
        self.__name__ = name  # TRL names the reward's log keys after it
        self._trainer: Any = None
        self._sources_seen: dict[str, None] = {}  # insertion-ordered set
        self.last_requests: list[RewardRequest] = []
        """What the latest call rewarded (the response texts as decoded, the user prompts, ...)."""
        self.last_results: list[RewardResult] = []
        """Reward and components of every completion of the latest call."""
        self.last_metrics: dict[str, float] = {}
        """The metrics of the latest call, as logged."""

    def attach(self, trainer: Any) -> "ThinkingReward":
        """Log components into ``trainer``'s metrics (TRL 0.26.2 passes reward functions no logging hook) and
        decode with its processing class unless a tokenizer was given."""
        if not hasattr(trainer, "_metrics"):
            raise TypeError(f"{type(trainer).__name__} has no _metrics buffer: not a TRL GRPOTrainer")
        self._trainer = trainer
        if self.tokenizer is None:
            self.tokenizer = getattr(trainer, "processing_class", None)
        return self

    # -- the call TRL makes -------------------------------------------------------------------------------------------
    def __call__(self, prompts: Sequence[Any], completions: Sequence[Any], completion_ids: Sequence[Sequence[int]] | None = None,
                 **kwargs: Any) -> list[float]:
        requests = self.requests(prompts, completions, completion_ids, kwargs)
        results = rewarder(self.settings).reward(requests)  # the process's pools for these settings, kept across steps
        self.last_requests, self.last_results = requests, results
        self.last_metrics = self.metrics(results)
        self._log(self.last_metrics, kwargs.get("log_metric"))
        return [result.score for result in results]

    def requests(self, prompts: Sequence[Any], completions: Sequence[Any], completion_ids: Sequence[Sequence[int]] | None,
                 columns: dict) -> list[RewardRequest]:
        """One request per completion, its inputs read from the dataset columns TRL passed."""
        if len(prompts) != len(completions):
            raise ValueError(f"{len(prompts)} prompts for {len(completions)} completions")
        if self.tokenizer is not None and completion_ids is not None:
            from trm.rewards.decoding import decode_responses

            texts = decode_responses(self.tokenizer, completion_ids)
        else:
            texts = [completion_text(c) for c in completions]
        cols, requests = self.columns, []
        for i, (prompt, text) in enumerate(zip(prompts, texts)):
            where = f"completion {i}"
            truth = _lookup(columns, cols.ground_truth, i)
            if truth is _MISSING or truth is None:
                raise ValueError(f"{where}: no ground truth at column {cols.ground_truth!r} (set DatasetColumns"
                                 f"(ground_truth=...); columns passed: {', '.join(sorted(columns)) or 'none'})")
            source = _lookup(columns, cols.data_source, i)
            if source is _MISSING or source is None:
                if cols.default_data_source is None:
                    raise ValueError(f"{where}: no data source at column {cols.data_source!r} (set "
                                     "DatasetColumns(default_data_source=...))")
                source = cols.default_data_source
            if cols.user_prompt is None:
                user_prompt = _last_user_text(prompt)
            else:
                user_prompt = _lookup(columns, cols.user_prompt, i)
                if user_prompt is _MISSING:
                    user_prompt = None  # request_from_sample names what is missing
            question = _lookup(columns, cols.question, i) if cols.question else None
            extra = {"user_prompt": user_prompt, "question": None if question is _MISSING else question}
            requests.append(request_from_sample(str(source), text, truth, extra, where))
        return requests

    # -- logging --------------------------------------------------------------------------------------------------------
    def metrics(self, results: Sequence[RewardResult]) -> dict[str, float]:
        """Batch means of the components, keyed as they are logged."""
        n, columns = len(results), [r.columns() for r in results]
        if not n:
            return {}
        name = self.__name__
        out = {f"{name}/accuracy": sum(c["acc"] for c in columns) / n,
               f"{name}/has_answer": sum(c["has_answer"] for c in columns) / n}
        scores = [c["rm_score_raw"] for c in columns if c["trm_scored"]]
        if self.settings.uses_scorer:
            out[f"{name}/trm_scored"] = len(scores) / n
            if scores:
                out[f"{name}/trm_score_mean"] = sum(scores) / len(scores)
        counts = Counter(c["verdict_source"] for c in columns)
        for source in counts:
            self._sources_seen.setdefault(source, None)
        for source in self._sources_seen:
            out[f"{name}/verdict/{source}"] = counts[source] / n
        return out

    def _log(self, metrics: dict[str, float], log_metric: Callable[[str, float], Any] | None) -> None:
        if callable(log_metric):  # TRL versions with the reward-function logging hook
            for key, value in metrics.items():
                log_metric(key, value)
        elif self._trainer is not None:
            mode = "train" if self._trainer.model.training else "eval"
            for key, value in metrics.items():
                self._trainer._metrics[mode][key].append(value)
        print(f"{self.__name__}: {len(self.last_results)} completions; verdicts: {verdict_counts(self.last_results)}",
              file=sys.stderr)
