"""verl reward manager ``verify``: the thinking reward for a whole rollout batch at once.

Registered with verl's reward-manager registry when this module is imported (``remote_verifier.py`` imports it,
and verl imports that file before it looks the manager up, also inside its Ray task runner). The class lives in
the installed package so Ray can unpickle it in the worker that runs ``compute_reward_async``.

Per batch, in rounds that overlap the network calls of earlier rounds: decode the responses (think tags kept),
rule-check their answers in the persistent worker pool; run verifier and TRM calls concurrently (``parallelism``
responses in flight, their texts coalesced into list requests), and write each reward at the last valid response
token. Settings come from the manager's own arguments
(``reward_model.reward_kwargs``), then the environment, then the defaults (:meth:`RewardSettings.resolve`: the
reward file's DEFAULT_*_BACKENDS, registered when verl imports it). ``custom_reward_function.reward_kwargs`` reach
only the per-sample ``compute_score``. The backend pools live in the process's :func:`trm.rewards.compute.rewarder`
for these settings: built on the first batch, kept from batch to batch, closed at exit.

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

import sys
from collections import Counter
from collections.abc import Sequence
from typing import Any, Callable

import torch
from verl import DataProto
from verl.workers.reward_manager import register
from verl.workers.reward_manager.abstract import AbstractRewardManager

from trm.rewards.blend import RewardResult
from trm.rewards.compute import RewardRequest, RewardSettings, Rewarder, request_from_sample, rewarder, verdict_counts
from trm.rewards.decoding import decode_padded
from trm.rewards.gc_hold import gc_held_off


@register("verify")
class VerifyRewardManager(AbstractRewardManager):
    """Verified-answer reward blended with the TRM's judgement of the reasoning."""

    def __init__(self, tokenizer: Any, num_examine: int, compute_score: Callable | None = None,
                 reward_fn_key: str = "data_source", **settings: Any):
        self.tokenizer = tokenizer
        self.num_examine = int(num_examine)
        self.reward_fn_key = reward_fn_key
        # Plain settings only: verl pickles the manager into Ray tasks (launch_reward_fn_async), pools do not pickle.
        self.settings = RewardSettings.resolve(**settings)

    @property
    def rewarder(self) -> Rewarder:
        """The pipeline and backend pools for this manager's settings, the same object for every batch."""
        return rewarder(self.settings)

    def describe(self) -> list[str]:
        return self.settings.describe()

    # -- batch layout ---------------------------------------------------------------------------------------------
    def _response_lengths(self, data: DataProto) -> torch.Tensor:
        prompt_length = data.batch["prompts"].shape[-1]
        return data.batch["attention_mask"][:, prompt_length:].sum(dim=-1)

    def _decode_prompt(self, data: DataProto, i: int) -> str:
        prompts = data.batch["prompts"]
        mask = data.batch["attention_mask"][i, : prompts.shape[-1]].bool()
        return self.tokenizer.decode(prompts[i][mask].tolist(), skip_special_tokens=True)

    def _requests(self, data: DataProto, lengths: torch.Tensor) -> "_DecodedRequests":
        """The batch's requests; every field but the response text is read, and checked, here and now."""
        nt = data.non_tensor_batch
        rows = []
        for i in range(len(lengths)):
            extra = nt["extra_info"][i] if "extra_info" in nt else None
            rows.append(request_from_sample(nt[self.reward_fn_key][i], "", nt["reward_model"][i]["ground_truth"],
                                            extra, f"sample {i}"))
        return _DecodedRequests(self.tokenizer, data.batch["responses"], lengths, rows)

    # -- the call verl makes ----------------------------------------------------------------------------------------
    def __call__(self, data: DataProto, return_dict: bool = False) -> torch.Tensor | dict[str, Any]:
        if "rm_scores" in data.batch.keys():  # a model-based RM already scored this batch (same as verl's managers)
            if return_dict:
                keys = data.meta_info.get("reward_extra_keys", [])
                return {"reward_tensor": data.batch["rm_scores"], "reward_extra_info": {k: data.non_tensor_batch[k] for k in keys}}
            return data.batch["rm_scores"]

        with gc_held_off(self.settings.hold_gc):  # the batch's own records, too (trm.rewards.gc_hold)
            return self._reward(data, return_dict)

    def _reward(self, data: DataProto, return_dict: bool) -> torch.Tensor | dict[str, Any]:
        lengths = self._response_lengths(data)
        requests = self._requests(data, lengths)
        from tqdm.auto import tqdm

        score_all = True if data.meta_info.get("validate") else None  # no NaN for verl's validation means
        with tqdm(total=len(requests), desc="verify reward", file=sys.stderr, mininterval=1.0) as bar:
            results = self.rewarder.reward(requests, on_done=lambda: bar.update(1), score_all=score_all)
        print(f"verify reward: {len(results)} responses; verdicts: {verdict_counts(results)}", file=sys.stderr)

        reward_tensor = torch.zeros_like(data.batch["responses"], dtype=torch.float32)
        last = (lengths - 1).clamp(min=0)  # each reward sits on its response's last valid token
        reward_tensor[torch.arange(len(results)), last] = torch.tensor([result.score for result in results])
        extra = self._extra_info(data, results)
        self._print_examples(data, requests, results)
        if return_dict:
            return {"reward_tensor": reward_tensor, "reward_extra_info": extra}
        return reward_tensor

    def _extra_info(self, data: DataProto, results: list[RewardResult]) -> dict[str, list]:
        """Each result's columns (without the answer text; without ``rm_score_raw`` when no scorer is in use) and
        its prompt group's right rollouts (``group_correct``, by uid) and size."""
        uids = data.non_tensor_batch.get("uid")
        groups = [uids[i] for i in range(len(results))] if uids is not None else list(range(len(results)))
        correct, size = Counter(), Counter(groups)
        for group, result in zip(groups, results):
            correct[group] += result.verdict.correct
        rows = [result.columns() for result in results]
        if not rows:
            return {}
        dropped = {"answer"} | (set() if self.settings.uses_scorer else {"rm_score_raw"})
        extra = {key: [row[key] for row in rows] for key in rows[0] if key not in dropped}
        extra["group_correct"] = [correct[group] for group in groups]
        extra["group_size"] = [size[group] for group in groups]
        return extra

    def _print_examples(self, data: DataProto, requests: list[RewardRequest], results: list[RewardResult]) -> None:
        if self.num_examine <= 0:
            return
        shown: Counter = Counter()
        for i, source in enumerate(data.non_tensor_batch[self.reward_fn_key]):  # only shown rows index the lazy requests
            if shown[source] >= self.num_examine:
                continue
            shown[source] += 1
            request, result = requests[i], results[i]
            print("[prompt]", self._decode_prompt(data, i))
            print("[response]", request.response)
            print("[ground_truth]", request.ground_truth)
            columns = result.columns()
            for key in ("answer", "verdict_source", "verify_binary", "rm_score_raw", "score"):
                print(f"[{key}]", columns[key])


class _DecodedRequests(Sequence):
    """A batch's reward requests whose response texts are decoded a slice at a time, when first asked for: the
    rewarder asks round by round in its rule-check thread, so decoding overlaps the network calls of earlier rounds
    instead of holding up the whole batch. Special tokens (EOS, pad, chat markers) leave the text, the think tags
    stay (trm.rewards.decoding)."""

    def __init__(self, tokenizer: Any, ids: torch.Tensor, lengths: torch.Tensor, rows: list[RewardRequest]):
        self._tokenizer, self._ids, self._lengths, self._rows = tokenizer, ids, lengths, rows
        self._built: list[RewardRequest | None] = [None] * len(rows)

    def __len__(self) -> int:
        return len(self._rows)

    def __getitem__(self, index):
        if not isinstance(index, slice):
            index = range(len(self))[index]  # IndexError outside the batch, as for a list
            return self[index : index + 1][0]
        start, stop, step = index.indices(len(self))
        if step != 1:
            raise ValueError("only contiguous slices of the batch's requests are supported")
        if any(request is None for request in self._built[start:stop]):
            texts = decode_padded(self._tokenizer, self._ids[start:stop], self._lengths[start:stop])
            self._built[start:stop] = [RewardRequest(text, row.ground_truth, row.data_source, row.user_prompt,
                                                     row.question) for text, row in zip(texts, self._rows[start:stop])]
        return self._built[start:stop]

