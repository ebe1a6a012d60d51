"""Sampling backends for `trm generate`: vLLM (GPU), any OpenAI-compatible endpoint, transformers (CPU).

A backend turns a batch of user prompts into N responses each. Seeds are derived per prompt
(`seed + index of the prompt in the benchmark`), so a resumed run samples exactly what an uninterrupted one
would have sampled, whatever the batch boundaries.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, asdict
from typing import Callable, Protocol


@dataclass(frozen=True)
class SamplingConfig:
    """Sampling settings, recorded in every output record."""

    n: int = 1
    """Responses per prompt."""
    temperature: float = 0.6
    """The paper samples best-of-N candidates at 0.6 (RL rollouts use 1.0)."""
    top_p: float = 0.95
    """Nucleus sampling mass (the paper: 0.95)."""
    max_tokens: int = 32768
    """Most new tokens per response."""
    seed: int | None = 0
    """Base seed; prompt i uses seed + i. None leaves sampling unseeded."""

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
            raise ValueError(f"{model}: the tokenizer has no chat template; generation needs one to build prompts")
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


def _with_reasoning(message) -> str:
    """Chat content, with a separately returned reasoning (vLLM/sglang reasoning parsers) put back in <think>."""
    content = message.content or ""
    thinking = getattr(message, "reasoning_content", None) or getattr(message, "reasoning", None)
    if thinking:
        return f"<think>\n{thinking}\n</think>\n{content}"
    return content


class OpenAIBackend:
    """Any OpenAI-compatible server (vLLM, sglang, `trm serve chat`, hosted APIs) through the official client."""

    name = "openai"

    def __init__(
        self,
        base_url: str,
        model: str,
        api_key: str | None = None,
        mode: str = "chat",
        system: str | None = None,
        completion_template: str = "{prompt}",
        concurrency: int = 8,
        timeout: float = 600.0,
        max_retries: int = 3,
    ):
        from openai import OpenAI

        if mode not in ("chat", "completions"):
            raise ValueError(f"mode must be 'chat' or 'completions', got {mode!r}")
        if "{prompt}" not in completion_template:
            raise ValueError("--completion-template must contain {prompt}")
        base_url = base_url.rstrip("/")
        if not base_url.endswith("/v1"):
            base_url += "/v1"
        self.client = OpenAI(base_url=base_url, api_key=api_key or "EMPTY", timeout=timeout, max_retries=max_retries)
        self.model, self.mode, self.system = model, mode, system
        self.completion_template = completion_template
        self.concurrency = max(1, concurrency)

    def _one(self, prompt: str, index: int, cfg: SamplingConfig) -> list[str]:
        responses: list[str] = []
        attempts = 0
        while len(responses) < cfg.n:  # some servers return fewer choices than asked for; ask again
            attempts += 1
            if attempts > cfg.n + 2:
                raise RuntimeError(f"endpoint returned {len(responses)} of {cfg.n} responses for prompt {index}")
            want = cfg.n - len(responses)
            seed = cfg.seed_for(index)
            common = dict(model=self.model, n=want, temperature=cfg.temperature, top_p=cfg.top_p,
                          max_tokens=cfg.max_tokens, seed=None if seed is None else seed + 1000003 * (attempts - 1))
            if self.mode == "chat":
                reply = self.client.chat.completions.create(messages=chat_messages(prompt, self.system), **common)
                responses += [_with_reasoning(choice.message) for choice in reply.choices]
            else:
                text = self.completion_template.format(prompt=prompt)
                reply = self.client.completions.create(prompt=text, **common)
                responses += [choice.text for choice in reply.choices]
        return responses[: cfg.n]

    def sample(self, prompts: list[str], indices: list[int], cfg: SamplingConfig) -> list[list[str]]:
        with ThreadPoolExecutor(max_workers=min(self.concurrency, len(prompts) or 1)) as pool:
            return list(pool.map(lambda pair: self._one(pair[0], pair[1], cfg), zip(prompts, indices)))


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
