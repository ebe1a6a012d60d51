"""In-process chat generation: left-padded batched `generate` for the chat server (and for tests/tools).

Items in one batch share their sampling settings (the batcher groups them); each item keeps its own
`max_tokens` and stop strings: a row stops generating once it reaches either, and the batch ends when every row
has (see `RowStops`).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from trm.errors import BadInput
from trm.serving.scorer import check_model_dir, longest_token_chars, resolve_device, resolve_dtype


@dataclass(frozen=True)
class Sampling:
    """Settings shared by a batch. temperature 0 means greedy decoding."""

    temperature: float = 1.0
    top_p: float = 1.0

    @property
    def greedy(self) -> bool:
        return self.temperature <= 0


@dataclass
class GenerationItem:
    prompt_ids: list[int]
    max_tokens: int
    stop: list[str] = field(default_factory=list)
    sampling: Sampling = field(default_factory=Sampling)


@dataclass
class GenerationResult:
    text: str
    completion_tokens: int
    finish_reason: str  # "stop" (end token or stop string) or "length"


class RowStops:
    """A transformers StoppingCriteria that ends each row at its own max_tokens or its own stop strings.

    `generate(stop_strings=...)` applies one list to every row; batched requests each bring their own. The check
    decodes only the last few tokens of a row (enough bytes to hold the longest stop string), and a hit there is
    confirmed on the row's whole continuation, the text `ChatGenerator._finish` cuts.
    """

    def __init__(self, items: Sequence[GenerationItem], prompt_length: int, decode):
        self.items = items
        self.prompt_length = prompt_length
        self.decode = decode
        # every token decodes to at least one byte, so this many tokens hold the stop string plus a token of context
        self.windows = [max((len(s.encode("utf-8")) for s in item.stop), default=0) + 2 for item in items]

    def __call__(self, input_ids, scores, **kwargs):
        import torch

        new = input_ids[:, self.prompt_length:]
        done = [False] * len(self.items)
        for row, item in enumerate(self.items):
            if new.shape[1] >= item.max_tokens:
                done[row] = True
            elif item.stop:
                tail = self.decode(new[row, -self.windows[row]:].tolist())
                if any(stop in tail for stop in item.stop if stop):
                    text = self.decode(new[row].tolist())
                    done[row] = any(stop in text for stop in item.stop if stop)
        return torch.tensor(done, dtype=torch.bool, device=input_ids.device)


class ChatGenerator:
    """A causal LM and its tokenizer/chat template, generating for batches of prompts."""

    def __init__(self, model_path: str | Path, device: str | None = None, dtype: str | None = None,
                 chat_template: str | None = None, trust_remote_code: bool = False):
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.model_path = check_model_dir(model_path)
        self.device = resolve_device(device)
        self.tokenizer = AutoTokenizer.from_pretrained(self.model_path, trust_remote_code=trust_remote_code)
        if chat_template is not None:
            self.tokenizer.chat_template = chat_template
        if not self.tokenizer.chat_template:
            raise BadInput(f"{self.model_path} has no chat template; pass --chat-template FILE")
        self.model = AutoModelForCausalLM.from_pretrained(
            self.model_path, dtype=resolve_dtype(dtype), trust_remote_code=trust_remote_code
        ).to(self.device).eval()
        if self.tokenizer.pad_token_id is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        eos = self.model.generation_config.eos_token_id
        eos = eos if isinstance(eos, list) else [eos] if eos is not None else []
        if self.tokenizer.eos_token_id is not None and self.tokenizer.eos_token_id not in eos:
            eos.append(self.tokenizer.eos_token_id)
        self.eos_ids = eos
        self.context_length = getattr(self.model.config, "max_position_embeddings", None)
        self.token_chars = longest_token_chars(self.tokenizer)
        """The most characters one token covers: bounds prompt tokens from below before tokenizing."""
        self._tokenizer_lock = threading.RLock()
        self._torch = torch

    def encode_chat(self, messages: list[dict]) -> list[int]:
        """Prompt token ids: the chat template with an open assistant turn (no extra special tokens, as vLLM)."""
        with self._tokenizer_lock:
            text = self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
            return self.tokenizer(text, add_special_tokens=False)["input_ids"]

    def encode_text(self, texts: Sequence[str]) -> list[list[int]]:
        """Prompt token ids of raw texts (/v1/completions): with the tokenizer's special tokens, as vLLM does."""
        with self._tokenizer_lock:
            return [self.tokenizer(text)["input_ids"] for text in texts]

    def generate(self, items: Sequence[GenerationItem]) -> list[GenerationResult]:
        from transformers import StoppingCriteriaList

        torch = self._torch
        sampling = items[0].sampling
        longest = max(len(item.prompt_ids) for item in items)
        pad = self.tokenizer.pad_token_id
        input_ids = torch.full((len(items), longest), pad, dtype=torch.long)
        attention = torch.zeros((len(items), longest), dtype=torch.long)
        for i, item in enumerate(items):  # left padding: every prompt ends where generation starts
            input_ids[i, longest - len(item.prompt_ids):] = torch.as_tensor(item.prompt_ids, dtype=torch.long)
            attention[i, longest - len(item.prompt_ids):] = 1
        kwargs = dict(max_new_tokens=max(item.max_tokens for item in items), pad_token_id=pad,
                      eos_token_id=self.eos_ids or None)
        if sampling.greedy:
            kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
        else:
            kwargs.update(do_sample=True, temperature=sampling.temperature, top_p=sampling.top_p, top_k=None)
        stops = StoppingCriteriaList([RowStops(items, longest, self._decode)])
        with torch.inference_mode():
            output = self.model.generate(input_ids=input_ids.to(self.device), attention_mask=attention.to(self.device),
                                         stopping_criteria=stops, **kwargs)
        new_tokens = output[:, longest:].cpu().tolist()
        with self._tokenizer_lock:
            return [self._finish(item, tokens) for item, tokens in zip(items, new_tokens)]

    def _decode(self, ids: list[int]) -> str:
        with self._tokenizer_lock:  # request threads tokenize concurrently; decode under the same lock
            return self.tokenizer.decode(ids, skip_special_tokens=True)

    def _finish(self, item: GenerationItem, tokens: list[int]) -> GenerationResult:
        """Cut one continuation at its end token, its max_tokens or its first stop string."""
        tokens = tokens[: item.max_tokens]
        finish, end_token = "length", 0
        for position, token in enumerate(tokens):
            if token in self.eos_ids:
                tokens, finish, end_token = tokens[:position], "stop", 1  # the end token counts, as in vLLM
                break
        text = self._decode(tokens)
        hits = [(text.find(stop), stop) for stop in item.stop if stop and stop in text]
        if hits:
            cut, _ = min(hits)
            text, finish = text[:cut], "stop"
            # tokens consumed: the shortest prefix whose text reaches the stop string
            lo, hi = 1, len(tokens)
            while lo < hi:
                mid = (lo + hi) // 2
                if any(stop in self._decode(tokens[:mid]) for _, stop in hits):
                    hi = mid
                else:
                    lo = mid + 1
            tokens, end_token = tokens[:lo], 0
        return GenerationResult(text=text, completion_tokens=len(tokens) + end_token, finish_reason=finish)
