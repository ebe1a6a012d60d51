"""In-process TRM scores: the exact forward path the reward server runs, usable without HTTP.

A TRM is a sequence classifier with one output: its raw score for a text is the head applied to the hidden
state of the text's last token. Batches are right-padded and the last real token is found from the attention
mask, so a padded batch gives the same scores as one unpadded forward per text (the tests check 1e-4).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from trm.errors import BadInput

TRUNCATION_SIDES = ("left", "right")


class InputTooLong(BadInput):
    """An input has more tokens than the limit and truncation is off."""

    def __init__(self, index: int, tokens: int, limit: int):
        super().__init__(
            f"input[{index}] has {tokens} tokens, more than the limit of {limit} tokens (--max-length); shorten it, "
            f"or turn on explicit truncation with --truncation left|right"
        )
        self.index, self.tokens, self.limit = index, tokens, limit


class InputTooManyChars(InputTooLong):
    """An input has so many characters that it surely has more tokens than the limit: refused untokenized."""

    def __init__(self, index: int, chars: int, char_limit: int, limit: int):
        ValueError.__init__(
            self, f"input[{index}] has {chars} characters; any text over {char_limit} characters has more than the "
                  f"limit of {limit} tokens (--max-length) with this tokenizer, so it was refused without tokenizing; "
                  "shorten it"
        )
        self.index, self.tokens, self.limit = index, None, limit
        self.chars, self.char_limit = chars, char_limit


class MissingScoreHead(BadInput):
    """The checkpoint has no weights for part of the sequence classifier (its score head, typically): a causal LM
    or base model loaded as a reward model would score with freshly initialised, random weights."""


class TokenizerBusy(RuntimeError):
    """The tokenizer lock is held and the caller asked not to wait (the event loop must never block on it)."""


# The longest canonical decomposition in Unicode is four code points (e.g. U+1F82), so NFC/NFKC composition folds
# at most four code points of a text into one character.
MAX_CODE_POINTS_PER_NORMALIZED_CHAR = 4


def longest_token_chars(tokenizer) -> int:
    """The most characters of (normalized) text one token stands for: its longest vocabulary entry or added token.

    Entries of a byte-level BPE vocabulary are written one character per byte, and a text has at least as many
    bytes as characters; SentencePiece entries are written one character per character (the ▁ marker for a space);
    byte-fallback entries such as <0x41> only overstate it. So a token never covers more text than its entry.
    """
    return max((len(token) for token in tokenizer.get_vocab()), default=1)


def char_limit(max_tokens: int, token_chars: int) -> int:
    """Characters beyond which a text surely has more than `max_tokens` tokens, so it can be refused untokenized.

    A text of c code points keeps at least c/4 characters after Unicode normalization (see
    MAX_CODE_POINTS_PER_NORMALIZED_CHAR), and each token covers at most `token_chars` of them, so the text has at
    least c / (4 * token_chars) tokens: more than `max_tokens` once c > 4 * token_chars * max_tokens. This holds
    for tokenizers that keep every character of the text (byte-level BPE, SentencePiece: every TRM and chat model
    this project serves); one that drops characters (whitespace-splitting WordPiece) could fit a longer text, which
    this refuses.
    """
    return MAX_CODE_POINTS_PER_NORMALIZED_CHAR * token_chars * max_tokens


def check_chars(texts: Sequence[str], limit_chars: int | None, limit_tokens: int | None) -> None:
    """Raise InputTooManyChars for the first text over the character bound (O(1) per text: no tokenizing)."""
    if limit_chars is None:
        return
    for index, text in enumerate(texts):
        if len(text) > limit_chars:
            raise InputTooManyChars(index, len(text), limit_chars, limit_tokens)


def resolve_device(device: str | None) -> str:
    import torch

    if device in (None, "", "auto"):
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


def resolve_dtype(dtype: str | None):
    import torch

    if dtype in (None, "", "auto"):
        return "auto"
    table = {"float32": torch.float32, "fp32": torch.float32, "bfloat16": torch.bfloat16, "bf16": torch.bfloat16,
             "float16": torch.float16, "fp16": torch.float16}
    if dtype not in table:
        raise ValueError(f"unknown dtype {dtype!r}; choose auto, float32, bfloat16 or float16")
    return table[dtype]


def check_model_dir(model_path: str | Path) -> Path:
    """Fail early, with a message a person can act on, when a model folder is missing or incomplete."""
    path = Path(model_path)
    if not path.exists():
        raise FileNotFoundError(f"model path {str(path)!r} does not exist; pass the folder with config.json, "
                                "the weights and the tokenizer")
    if path.is_dir() and not (path / "config.json").exists():
        raise FileNotFoundError(f"model path {str(path)!r} has no config.json; is it a Hugging Face model folder?")
    return path


@dataclass
class ScorerConfig:
    """How a reward model is loaded and how inputs are tokenized."""

    device: str | None = None
    """cpu, cuda, cuda:N; None picks cuda when available."""
    dtype: str | None = None
    """auto (the checkpoint's dtype), float32, bfloat16, float16."""
    max_length: int | None = None
    """Token limit per input; None uses the model's max_position_embeddings."""
    truncation: str | None = None
    """None: over-long inputs are an error. left/right: drop tokens from that side to fit."""
    trust_remote_code: bool = False
    """Run Python code shipped with the checkpoint (off unless asked)."""
    allow_random_head: bool = False
    """Load a checkpoint that lacks score-head weights, initialising them at random (tests only: the scores mean
    nothing). Off: such a checkpoint raises MissingScoreHead."""


class RewardScorer:
    """Raw reward scores for texts, batched, on one device."""

    def __init__(self, model_path: str | Path, device: str | None = None, max_length: int | None = None,
                 truncation: str | None = None, dtype: str | None = None, trust_remote_code: bool = False,
                 allow_random_head: bool = False):
        import torch
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        if truncation not in (None, *TRUNCATION_SIDES):
            raise ValueError(f"truncation must be one of {TRUNCATION_SIDES} or None, got {truncation!r}")
        self.config = ScorerConfig(device, dtype, max_length, truncation, trust_remote_code, allow_random_head)
        self.model_path = check_model_dir(model_path)
        self.device = resolve_device(device)
        self.tokenizer = AutoTokenizer.from_pretrained(self.model_path, trust_remote_code=trust_remote_code)
        self.model, loading = AutoModelForSequenceClassification.from_pretrained(
            self.model_path, dtype=resolve_dtype(dtype), trust_remote_code=trust_remote_code, output_loading_info=True
        )
        missing = sorted(loading.get("missing_keys") or ())
        if missing and not allow_random_head:
            raise MissingScoreHead(
                f"{self.model_path} has no weights for {', '.join(missing[:4])}{' ...' if len(missing) > 4 else ''}: "
                "it is not a reward model (a causal LM or base model?), so its scores would come from a randomly "
                "initialised head. Serve a TRM checkpoint (a sequence classifier with one label), or pass "
                "--allow-random-head (tests only)"
            )
        self.model = self.model.to(self.device).eval()
        if self.tokenizer.pad_token_id is None:  # padding positions are masked; any id works
            self.tokenizer.pad_token = self.tokenizer.eos_token
        if getattr(self.model.config, "pad_token_id", None) is None:
            self.model.config.pad_token_id = self.tokenizer.pad_token_id
        model_limit = getattr(self.model.config, "max_position_embeddings", None)
        self.max_length = max_length or model_limit
        self.truncation = truncation
        if truncation:
            self.tokenizer.truncation_side = truncation
        self._tokenizer_lock = threading.Lock()
        # Without truncation, a fast tokenizer's __call__ is its Rust backend's encode_batch plus a BatchEncoding
        # wrapper that costs more than encoding a short text; the server tokenizes per request, so skip the wrapper.
        self._backend = getattr(self.tokenizer, "backend_tokenizer", None) if self.tokenizer.is_fast else None
        # The backend's encode_batch only reads the tokenizer (and releases the GIL), so concurrent calls are safe as
        # long as nothing changes its truncation/padding settings, which only the __call__ path does: that path
        # takes the lock, this one does not, so a long text never makes short ones wait.
        self._lock_free = (not truncation and self._backend is not None and self._backend.truncation is None
                           and self._backend.padding is None)
        self.token_chars = longest_token_chars(self.tokenizer)
        self.char_limit = char_limit(self.max_length, self.token_chars) if self.max_length else None
        self.num_labels = int(getattr(self.model.config, "num_labels", 1))
        self._torch = torch

    # --- tokens -------------------------------------------------------------------------------------
    def encode(self, texts: Sequence[str], wait: bool = True) -> list[list[int]]:
        """Token ids per text (with the tokenizer's special tokens, as sglang does); raises InputTooLong.

        A text over the character bound is refused before tokenizing (InputTooManyChars), or with truncation on,
        cut to the window that surely holds the kept tokens. `wait=False` raises TokenizerBusy instead of waiting
        for the tokenizer lock (for callers on an event loop)."""
        texts = list(texts)
        if self.truncation and self.char_limit:
            texts = [self._window(text) for text in texts]
        else:
            check_chars(texts, self.char_limit, self.max_length)
        if self._lock_free:
            ids = [encoding.ids for encoding in self._backend.encode_batch(texts, add_special_tokens=True)]
        else:
            if not self._tokenizer_lock.acquire(blocking=wait):
                raise TokenizerBusy("the tokenizer is in use")
            try:  # HF fast tokenizers' __call__ changes settings: one caller at a time
                if self.truncation and self.max_length:
                    ids = self.tokenizer(texts, truncation=True, max_length=self.max_length)["input_ids"]
                else:
                    ids = self.tokenizer(texts)["input_ids"]
            finally:
                self._tokenizer_lock.release()
        self.check_lengths(ids)
        return ids

    def _window(self, text: str) -> str:
        """With truncation on, the kept side of a text, cut to twice the character bound before tokenizing.

        The kept tokens lie within the first (or last) `char_limit` characters, so the cut only changes the tokens
        of the word it splits; exact unless one word (pre-token) spans more than `char_limit` characters."""
        if len(text) <= 2 * self.char_limit:
            return text
        return text[: 2 * self.char_limit] if self.truncation == "right" else text[-2 * self.char_limit:]

    def check_lengths(self, ids: Sequence[Sequence[int]]) -> None:
        for index, row in enumerate(ids):
            if len(row) == 0:
                raise ValueError(f"input[{index}] is empty after tokenization; send some text")
            if self.max_length and len(row) > self.max_length:
                raise InputTooLong(index, len(row), self.max_length)

    def fit_ids(self, ids: Sequence[Sequence[int]]) -> list[list[int]]:
        """Pre-tokenized inputs: truncate when asked, else check the limit."""
        if self.truncation and self.max_length:
            if self.truncation == "left":
                return [list(row[-self.max_length:]) for row in ids]
            return [list(row[: self.max_length]) for row in ids]
        self.check_lengths(ids)
        return [list(row) for row in ids]

    # --- forward ------------------------------------------------------------------------------------
    def forward(self, batch: Sequence[Sequence[int]]) -> list[list[float]]:
        """Raw head outputs (num_labels floats) per token sequence; one right-padded forward pass."""
        torch = self._torch
        longest = max(len(row) for row in batch)
        pad = self.tokenizer.pad_token_id
        input_ids = torch.full((len(batch), longest), pad, dtype=torch.long)
        attention = torch.zeros((len(batch), longest), dtype=torch.long)
        for i, row in enumerate(batch):
            input_ids[i, : len(row)] = torch.as_tensor(row, dtype=torch.long)
            attention[i, : len(row)] = 1
        input_ids, attention = input_ids.to(self.device), attention.to(self.device)
        with torch.inference_mode():
            logits = self._pooled_logits(input_ids, attention)
        return logits.float().cpu().tolist()

    def _pooled_logits(self, input_ids, attention):
        torch = self._torch
        head = getattr(self.model, "score", None)
        base = getattr(self.model, self.model.base_model_prefix, None)
        if isinstance(head, torch.nn.Linear) and base is not None:
            # Llama/Qwen/Mistral-style heads: gather the last real token by the mask, so a pad id that also
            # appears inside a text cannot move the pooled position.
            hidden = base(input_ids=input_ids, attention_mask=attention, use_cache=False).last_hidden_state
            last = attention.sum(dim=1) - 1
            pooled = hidden[torch.arange(hidden.shape[0], device=hidden.device), last]
            return head(pooled)
        # Other architectures pool themselves (right padding + config.pad_token_id).
        return self.model(input_ids=input_ids, attention_mask=attention).logits

    def score(self, texts: Sequence[str], batch_size: int = 16) -> list[float]:
        """Raw scores (first head output) for texts, batched by similar length, in input order."""
        return [row[0] for row in self.score_logits(self.encode(texts), batch_size)]

    def score_logits(self, ids: Sequence[Sequence[int]], batch_size: int = 16) -> list[list[float]]:
        order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
        out: list[list[float] | None] = [None] * len(ids)
        for start in range(0, len(order), batch_size):
            chunk = order[start : start + batch_size]
            for index, logits in zip(chunk, self.forward([ids[i] for i in chunk])):
                out[index] = logits
        return out  # type: ignore[return-value]
