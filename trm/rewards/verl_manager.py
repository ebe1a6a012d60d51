"""verl reward manager ``verify``: the thinking reward for a whole rollout batch at once.

Registered with verl's reward-manager registry when this module is imported (``remote_verifier.py`` imports it,
and verl imports that file before it looks the manager up, also inside its Ray task runner). The class lives in
the installed package so Ray can unpickle it in the worker that runs ``compute_reward_async``.

Per batch: decode every response (think tags kept), rule-check all answers in the persistent worker pool (in
rounds that overlap the network calls), run verifier and TRM calls concurrently (``parallelism`` in flight), and
write each reward at the last valid response token. Settings come from the manager's own arguments
(``reward_model.reward_kwargs``), then ``custom_reward_function.reward_kwargs``, then remote_verifier.py.

``reward_extra_info["verdict_source"]`` says per sample what decided its correctness (``worker_error`` and
``timeout`` included), and each batch prints one line of verdict-source counts to stderr. verl's trainer puts
these per-sample values into the batch; ``trm.rl.metrics`` turns them into per-step metrics (``python -m
trm.rl.train``).

Validation batches (verl sets ``meta_info["validate"]``) are scored with the reasoning scorer for every response
(as ``score_all``; rewards are unchanged): verl's ``_validate`` averages each extra-info key per prompt with plain
``np.mean``, so the NaN that marks an unscored response would make ``rm_score_raw`` NaN for any prompt with a wrong
rollout. With alpha 0 and no ``score_all`` the scorer is never called and ``rm_score_raw`` is left out entirely.

Failures raise; verl decides what happens next. Note that verl 0.6.0's ``compute_reward`` (also the one inside
``compute_reward_async``) catches any exception of the reward manager, prints it and calls the manager a
second time without ``return_dict``; only that second failure ends the step. So a dead backend costs two call
deadlines (``deadline_s``, 900 s by default) before training stops, and a :class:`RuleCheckUnavailable` rule
check is run twice. Lower ``deadline_s`` (``reward_model.reward_kwargs.deadline_s=...``) to fail faster.
"""

from __future__ import annotations

import dataclasses
import functools
import sys
from collections import Counter
from typing import Any, Callable

import torch
from verl import DataProto
from verl.workers.reward_manager import register
from verl.workers.reward_manager.abstract import AbstractRewardManager

from trm.rewards.compute import RewardRequest, RewardSettings, request_from_sample, reward_batch_sync, verdict_counts
from trm.rewards.decoding import decode_responses

# Keys of reward_extra_info (one value per sample; verl stores them in the batch and logs them).
EXTRA_KEYS = (
    "score", "verify_score", "verify_binary", "acc", "rm_score_raw", "trm_scored", "has_answer",
    "verdict_source", "group_correct", "group_size",
)


def _unwrap_reward_fn(compute_score: Callable | None) -> tuple[Callable | None, dict]:
    """The user's function inside verl's wrapper, and the keyword arguments verl binds to it.

    verl 0.6.0 wraps custom_reward_function as ``partial(_call_with_kwargs, raw_fn, reward_kwargs)``.
    """
    from verl.trainer.ppo.reward import _call_with_kwargs

    bound: dict = {}
    fn = compute_score
    while isinstance(fn, functools.partial):
        if fn.func is _call_with_kwargs:
            bound = {**dict(fn.args[1]), **bound}
            fn = fn.args[0]
        else:
            bound = {**fn.keywords, **bound}
            fn = fn.func
    return fn, bound


def settings_for(compute_score: Callable | None, **overrides: Any) -> RewardSettings:
    """Settings for the manager: its own arguments, then custom_reward_function.reward_kwargs, then the
    defaults of the reward file (remote_verifier.py's constants via its ``reward_settings`` hook)."""
    raw_fn, bound = _unwrap_reward_fn(compute_score)
    merged = {**bound, **{k: v for k, v in overrides.items() if v is not None}}
    hook = getattr(raw_fn, "reward_settings", None)
    return hook(**merged) if callable(hook) else RewardSettings.resolve(**merged)


@register("verify")
class VerifyRewardManager(AbstractRewardManager):
    """Verified-answer reward blended with the TRM's judgement of the reasoning."""

    def __init__(
        self,
        tokenizer: Any,
        num_examine: int,
        compute_score: Callable | None = None,
        reward_fn_key: str = "data_source",
        parallelism: int | None = None,
        alpha: float | None = None,
        score_all: bool | None = None,
        **settings: Any,
    ):
        self.tokenizer = tokenizer
        self.num_examine = int(num_examine)
        self.reward_fn_key = reward_fn_key
        # Only plain settings are kept: verl's wrapped compute_score refers to a module Ray workers cannot import.
        self.settings = settings_for(compute_score, parallelism=parallelism, alpha=alpha, score_all=score_all, **settings)

    def describe(self) -> list[str]:
        return self.settings.describe()

    # -- batch layout ---------------------------------------------------------------------------------------------
    def _response_lengths(self, data: DataProto) -> torch.Tensor:
        prompt_length = data.batch["prompts"].shape[-1]
        return data.batch["attention_mask"][:, prompt_length:].sum(dim=-1)

    def _decode_responses(self, data: DataProto, lengths: torch.Tensor) -> list[str]:
        """Special tokens (EOS, pad, chat markers) leave the text, the think tags stay (trm.rewards.decoding)."""
        responses = data.batch["responses"]
        return decode_responses(self.tokenizer, [responses[i, : int(lengths[i])].tolist() for i in range(len(responses))])

    def _decode_prompt(self, data: DataProto, i: int) -> str:
        prompts = data.batch["prompts"]
        mask = data.batch["attention_mask"][i, : prompts.shape[-1]].bool()
        return self.tokenizer.decode(prompts[i][mask].tolist(), skip_special_tokens=True)

    def _requests(self, data: DataProto, responses: list[str]) -> list[RewardRequest]:
        nt = data.non_tensor_batch
        requests = []
        for i, response in enumerate(responses):
            extra = nt["extra_info"][i] if "extra_info" in nt else None
            requests.append(
                request_from_sample(
                    nt[self.reward_fn_key][i], response, nt["reward_model"][i]["ground_truth"], extra, f"sample {i}"
                )
            )
        return requests

    # -- the call verl makes ----------------------------------------------------------------------------------------
    def __call__(self, data: DataProto, return_dict: bool = False) -> torch.Tensor | dict[str, Any]:
        if "rm_scores" in data.batch.keys():  # a model-based RM already scored this batch (same as verl's managers)
            if return_dict:
                keys = data.meta_info.get("reward_extra_keys", [])
                return {"reward_tensor": data.batch["rm_scores"], "reward_extra_info": {k: data.non_tensor_batch[k] for k in keys}}
            return data.batch["rm_scores"]

        lengths = self._response_lengths(data)
        responses = self._decode_responses(data, lengths)
        requests = self._requests(data, responses)
        from tqdm.auto import tqdm

        settings = self.settings
        if data.meta_info.get("validate") and settings.uses_scorer and not settings.score_all:
            settings = dataclasses.replace(settings, score_all=True)  # no NaN for verl's validation means
        with tqdm(total=len(requests), desc="verify reward", file=sys.stderr, mininterval=1.0) as bar:
            results = reward_batch_sync(requests, settings, on_done=lambda: bar.update(1))
        print(f"verify reward: {len(results)} responses; verdicts: {verdict_counts(results)}", file=sys.stderr)

        reward_tensor = torch.zeros_like(data.batch["responses"], dtype=torch.float32)
        for i, result in enumerate(results):
            reward_tensor[i, max(int(lengths[i]) - 1, 0)] = result["score"]
        extra = self._extra_info(data, results)
        self._print_examples(data, requests, results)
        if return_dict:
            return {"reward_tensor": reward_tensor, "reward_extra_info": extra}
        return reward_tensor

    def _extra_info(self, data: DataProto, results: list[dict]) -> dict[str, list]:
        uids = data.non_tensor_batch.get("uid")
        groups = [uids[i] for i in range(len(results))] if uids is not None else list(range(len(results)))
        correct = Counter()
        size = Counter(groups)
        for group, result in zip(groups, results):
            correct[group] += result["verify_binary"]
        keys = [key for key in EXTRA_KEYS if key != "rm_score_raw" or self.settings.uses_scorer]
        extra: dict[str, list] = {key: [] for key in keys}
        for group, result in zip(groups, results):
            row = {
                **{k: result[k] for k in ("score", "verify_score", "verify_binary", "rm_score_raw", "has_answer", "verdict_source")},
                "acc": float(result["verify_binary"]),  # verl's validation treats "acc" as the core metric
                "trm_scored": result["rm_score_raw"] == result["rm_score_raw"],  # NaN = the TRM was not asked
                "group_correct": correct[group],  # right rollouts among this prompt's group (uid)
                "group_size": size[group],
            }
            for key in keys:
                extra[key].append(row[key])
        return extra

    def _print_examples(self, data: DataProto, requests: list[RewardRequest], results: list[dict]) -> None:
        shown: Counter = Counter()
        for i, (request, result) in enumerate(zip(requests, results)):
            if shown[request.data_source] >= self.num_examine:
                continue
            shown[request.data_source] += 1
            print("[prompt]", self._decode_prompt(data, i))
            print("[response]", request.response)
            print("[ground_truth]", request.ground_truth)
            for key in ("answer", "verdict_source", "verify_binary", "rm_score_raw", "score"):
                print(f"[{key}]", result[key])
