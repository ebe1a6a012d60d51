"""Sampling backends for `trm generate`: vLLM (GPU), any OpenAI-compatible endpoint, transformers (CPU).

A backend turns a batch of user prompts into N responses each. Seeds are derived per prompt
(`seed + index of the prompt in the benchmark`), so a resumed run samples exactly what an uninterrupted one
would have sampled, whatever the batch boundaries.
"""

from __future__ import annotations

import asyncio
from dataclasses import asdict, dataclass, field
from typing import Callable, Protocol

from trm.errors import BadInput


@dataclass(frozen=True)
class SamplingConfig:
    """Sampling settings, recorded in every output record."""

    n: int = field(default=1, metadata={"help": "responses per prompt"})
    temperature: float = field(default=0.6, metadata={
        "help": "sampling temperature; the paper samples best-of-N candidates at 0.6 (RL rollouts use 1.0)"})
    top_p: float = field(default=0.95, metadata={"help": "nucleus sampling mass (the paper: 0.95)"})
    max_tokens: int = field(default=32768, metadata={"help": "most new tokens per response"})
    seed: int | None = field(default=0, metadata={
        "help": "base seed; prompt i uses seed+i (unseeded: None, on the command line -1)"})

    def to_dict(self) -> dict:
        return asdict(self)

    def seed_for(self, index: int) -> int | None:
        return None if self.seed is None else self.seed + index


def chat_messages(prompt: str, system: str | None) -> list[dict]:
    return ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": prompt}]


class Backend(Protocol):
    name: str

    def sample(self, prompts: list[str], indices: list[int], cfg: SamplingConfig) -> list[list[str]]:
        """N responses for each prompt; `indices` are the prompts' positions in the benchmark (for seeds)."""


class TransformersBackend:
    """Plain `model.generate` on CPU or one GPU: slow, but needs nothing beyond transformers."""

    name = "transformers"

    def __init__(self, model: str, system: str | None = None, device: str | None = None, trust_remote_code: bool = False):
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.torch = torch
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.tokenizer = AutoTokenizer.from_pretrained(model, trust_remote_code=trust_remote_code)
        if self.tokenizer.chat_template is None:
            raise BadInput(f"{model}: the tokenizer has no chat template; generation needs one to build prompts")
        self.model = AutoModelForCausalLM.from_pretrained(model, trust_remote_code=trust_remote_code).to(self.device)
        self.model.eval()
        self.system = system

    def sample(self, prompts: list[str], indices: list[int], cfg: SamplingConfig) -> list[list[str]]:
        out = []
        for prompt, index in zip(prompts, indices):
            text = self.tokenizer.apply_chat_template(
                chat_messages(prompt, self.system), tokenize=False, add_generation_prompt=True
            )
            encoded = self.tokenizer(text, return_tensors="pt", add_special_tokens=False, return_token_type_ids=False)
            encoded = encoded.to(self.device)
            seed = cfg.seed_for(index)
            if seed is not None:
                self.torch.manual_seed(seed)
            greedy = cfg.temperature <= 0
            with self.torch.no_grad():
                generated = self.model.generate(
                    **encoded,
                    do_sample=not greedy,
                    temperature=None if greedy else cfg.temperature,
                    top_p=None if greedy else cfg.top_p,
                    top_k=None if greedy else 0,
                    max_new_tokens=cfg.max_tokens,
                    num_return_sequences=1 if greedy else cfg.n,
                    pad_token_id=self.tokenizer.pad_token_id,
                )
            new_tokens = generated[:, encoded["input_ids"].shape[1] :]
            texts = self.tokenizer.batch_decode(new_tokens, skip_special_tokens=True)
            out.append(texts * cfg.n if greedy else texts)  # greedy decoding is deterministic: one pass, n copies
        return out


def _with_reasoning(choice) -> str:
    """A choice's text, with a separately returned reasoning (vLLM/sglang reasoning parsers) put back in <think>."""
    if choice.reasoning:
        return f"<think>\n{choice.reasoning}\n</think>\n{choice.text or ''}"
    return choice.text or ""


class OpenAIBackend:
    """Any OpenAI-compatible server (vLLM, sglang, `trm serve chat`, hosted APIs) through
    :class:`trm.llm.client.ChatClient`: the sync batch API of the generate loop on the async client."""

    name = "openai"

    def __init__(self, base_url: str, model: str, api_key: str | None = None, mode: str = "chat",
                 system: str | None = None, completion_template: str = "{prompt}", config=None):
        from trm.llm.client import ChatClient

        if mode not in ("chat", "completions"):
            raise BadInput(f"mode must be 'chat' or 'completions', got {mode!r}")
        if "{prompt}" not in completion_template:
            raise BadInput("--completion-template must contain {prompt}")
        self.client = ChatClient(base_url, model, api_key=api_key, config=config, role="generation")
        self.mode, self.system, self.completion_template = mode, system, completion_template

    async def _one(self, prompt: str, index: int, cfg: SamplingConfig) -> list[str]:
        request = chat_messages(prompt, self.system) if self.mode == "chat" else \
            self.completion_template.format(prompt=prompt)
        choices = await self.client.complete(request, n=cfg.n, temperature=cfg.temperature, top_p=cfg.top_p,
                                             max_tokens=cfg.max_tokens, seed=cfg.seed_for(index))
        return [_with_reasoning(choice) for choice in choices]

    def sample(self, prompts: list[str], indices: list[int], cfg: SamplingConfig) -> list[list[str]]:
        async def run() -> list[list[str]]:
            try:
                return list(await asyncio.gather(*(self._one(p, i, cfg) for p, i in zip(prompts, indices))))
            finally:
                await self.client.aclose()

        return asyncio.run(run())


class VLLMBackend:
    """Offline vLLM engine on local GPUs (the paper's setting). Not exercised on CPU."""

    name = "vllm"

    def __init__(self, model: str, system: str | None = None, tensor_parallel_size: int = 1,
                 max_model_len: int | None = None, trust_remote_code: bool = False):
        from vllm import LLM

        self.llm = LLM(model=model, tensor_parallel_size=tensor_parallel_size, max_model_len=max_model_len,
                       trust_remote_code=trust_remote_code)
        self.system = system

    def sample(self, prompts: list[str], indices: list[int], cfg: SamplingConfig) -> list[list[str]]:
        from vllm import SamplingParams

        params = [
            SamplingParams(n=cfg.n, temperature=cfg.temperature, top_p=cfg.top_p, max_tokens=cfg.max_tokens,
                           seed=cfg.seed_for(i))
            for i in indices
        ]
        outputs = self.llm.chat([chat_messages(p, self.system) for p in prompts], params, use_tqdm=False)
        return [[c.text for c in out.outputs] for out in outputs]


def vllm_usable() -> bool:
    """vLLM imports and a CUDA GPU is present."""
    try:
        import torch
        import vllm  # noqa: F401
    except Exception:
        return False
    return torch.cuda.is_available()


BACKENDS: dict[str, Callable[..., Backend]] = {
    "transformers": TransformersBackend,
    "openai": OpenAIBackend,
    "vllm": VLLMBackend,
}
