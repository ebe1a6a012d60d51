"""The one client for OpenAI-compatible completion endpoints (hosted APIs, vLLM, sglang, `trm serve chat`): the
judge, the generation backend and the LLM verifier all sample through :class:`ChatClient`.

Transport is :class:`trm.client.BackendPool`: least-loaded among the endpoints given, retries of 429, 5xx,
timeouts, dropped connections and malformed answers on another endpoint until a deadline, a short connect budget
when nothing listens, and errors that raise (``BackendsUnavailable``, or ``BackendRequestError`` for a 4xx). On
top it adds what sampling needs: one call gives ``n`` choices (text, finish reason, separate reasoning), an
endpoint that refuses or ignores ``n`` gets ``n`` single requests instead, and tokens are counted so a run can
report what it cost. The API key lives only in the pool's headers: never in ``repr``, outputs or logs.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from trm.client import BackendPool, BackendRequestError, resolve_api_key

log = logging.getLogger(__name__)

SEED_STRIDE = 1000003  # seed offset of each further request of one call, so re-asked samples differ


@dataclass
class Usage:
    """Token and request counts; added up per trace, per pair and per run."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    requests: int = 0  # HTTP requests that returned an answer (retries of failed ones are not counted)

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def add(self, other: "Usage") -> None:
        self.prompt_tokens += other.prompt_tokens
        self.completion_tokens += other.completion_tokens
        self.requests += other.requests

    def to_dict(self) -> dict:
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.total_tokens,
            "requests": self.requests,
        }

    @classmethod
    def from_dict(cls, data: dict) -> "Usage":
        return cls(
            int(data.get("prompt_tokens", 0)), int(data.get("completion_tokens", 0)), int(data.get("requests", 0))
        )


@dataclass(frozen=True, slots=True)
class Choice:
    """One sampled answer: its text (None when a chat reply has no content), why generation stopped ("stop",
    "length", ...), and the reasoning a server's reasoning parser returned apart from the content, if any."""

    text: str | None
    finish_reason: str | None = None
    reasoning: str | None = None


@dataclass
class ChatConfig:
    """How the client talks to its endpoints."""

    max_concurrency: int = field(default=16, metadata={"help": "requests in flight at once, per endpoint"})
    request_timeout: float = field(default=300.0, metadata={"help": "seconds one attempt may take"})
    deadline: float = field(default=900.0, metadata={
        "help": "seconds one request may take in all, its retries on 429, 5xx, timeouts and dropped connections "
                "included"})
    connect_budget: float = field(default=10.0, metadata={
        "help": "seconds a request keeps retrying while no server accepts a connection (a wrong URL fails fast)"})
    use_n: bool = field(default=True, metadata={
        "help": "ask for n samples in one request (switched off by itself when the endpoint refuses or ignores n)"})
    backoff_base: float = field(default=0.5, metadata={"help": "seconds before the first retry; doubles each time"})
    backoff_max: float = field(default=30.0, metadata={"help": "longest wait between retries, in seconds"})


class ChatClient:
    """``await client.complete(messages, n=3, temperature=...)`` -> 3 :class:`Choice` s; ``messages`` may also be
    a plain prompt string, sent to /v1/completions. Sampling parameters go into the request body as given
    (None values are left out); a ``seed`` is offset for each further request one call needs."""

    def __init__(self, backends: str | list[str] | BackendPool, model: str, api_key: str | None = None,
                 config: ChatConfig | None = None, role: str = "judge"):
        """``backends``: URLs (``http://host:port``, ``.../v1``, comma-separated for several equivalent servers),
        or a pool to use as it is (then ``config``'s transport fields and ``api_key`` do not apply).
        ``role`` picks the environment variables of the key (:func:`trm.client.resolve_api_key`)."""
        self.config = config or ChatConfig()
        self.model = model
        self.usage = Usage()
        self._use_n = self.config.use_n
        if isinstance(backends, BackendPool):
            self.pool = backends
        else:
            c = self.config
            self.pool = BackendPool(backends, max_concurrency_per_backend=c.max_concurrency,
                                    request_timeout=c.request_timeout, deadline=c.deadline,
                                    api_key=resolve_api_key(api_key, role), connect_budget=c.connect_budget,
                                    backoff_base=c.backoff_base, backoff_max=c.backoff_max)

    def __repr__(self) -> str:  # never show the key
        return f"ChatClient({','.join(self.pool.backends)}, model={self.model!r})"

    async def complete(self, messages: list[dict] | str, n: int = 1, usage: Usage | None = None,
                       **params) -> list[Choice]:
        """``n`` choices for one conversation (or prompt); usage is added to the client and to ``usage``."""
        choices: list[Choice] = []
        round_ = 0
        while len(choices) < n:
            want = n - len(choices) if self._use_n else 1
            try:
                got = await self._request(messages, want, round_, params, usage)
            except BackendRequestError as exc:
                if want == 1 or exc.status_code != 400:
                    raise
                log.info("endpoint refused n=%d (%s); using single requests from now on", want, exc.message)
                self._use_n = False
                continue
            round_ += 1
            if want > 1 and len(got) < want:
                log.info("endpoint returned %d of %d samples; using single requests from now on", len(got), want)
                self._use_n = False
            choices += got[: n - len(choices)]
        return choices

    async def complete_batch(self, prompts: list[str], usage: Usage | None = None, **params) -> list[Choice]:
        """One choice per prompt, from one /v1/completions request whose ``prompt`` is the list (vLLM, sglang and
        `trm serve chat` take one): for many prompts at once, at the cost of one request. An answer without
        exactly one choice per prompt (by ``index``) is malformed: retried elsewhere, never guessed at."""
        body = {"model": self.model, "prompt": list(prompts),
                **{key: value for key, value in params.items() if value is not None}}
        choices, got = await self.pool.post_json("/v1/completions", body, weight=len(prompts),
                                                 parse=lambda answer: _parse(answer, False, len(prompts)))
        return self._counted(choices, got, usage)

    async def chat(self, messages: list[dict], n: int = 1, usage: Usage | None = None, **params) -> list[str]:
        """The texts of :meth:`complete` ("" for a reply without content)."""
        return [choice.text or "" for choice in await self.complete(messages, n, usage, **params)]

    async def _request(self, messages, n: int, round_: int, params: dict, usage: Usage | None) -> list[Choice]:
        chat = not isinstance(messages, str)
        body = {"model": self.model, ("messages" if chat else "prompt"): messages,
                **{key: value for key, value in params.items() if value is not None}}
        if n > 1:
            body["n"] = n
        if round_ and "seed" in body:
            body["seed"] += SEED_STRIDE * round_
        path = "/v1/chat/completions" if chat else "/v1/completions"
        choices, got = await self.pool.post_json(path, body, parse=lambda answer: _parse(answer, chat))
        return self._counted(choices, got, usage)

    def _counted(self, choices: list[Choice], got: Usage, usage: Usage | None) -> list[Choice]:
        """``choices``, with their usage added to the client's and the caller's counts."""
        self.usage.add(got)
        if usage is not None:
            usage.add(got)
        return choices

    async def aclose(self) -> None:
        await self.pool.aclose()


def _parse(answer, chat: bool, prompts: int | None = None) -> tuple[list[Choice], Usage]:
    """Choices and usage of a (chat) completion; ValueError for anything else (the pool retries elsewhere). With
    ``prompts`` (a list request), exactly one choice per prompt, returned in prompt order."""
    kind = "chat completion" if chat else "completion"
    try:
        choices = []
        raws = answer["choices"]
        if prompts is not None:
            indexes = [raw["index"] for raw in raws]
            if sorted(indexes) != list(range(prompts)):
                raise ValueError(f"{len(raws)} choices with indexes {indexes[:10]} for {prompts} prompts")
            raws = sorted(raws, key=lambda raw: raw["index"])
        for raw in raws:
            message = raw["message"] if chat else raw
            text = message.get("content") if chat else message["text"]
            reasoning = message.get("reasoning_content") or message.get("reasoning") if chat else None
            if not isinstance(text, (str, type(None))) or not isinstance(reasoning, (str, type(None))):
                raise ValueError(f"answer text is not text: {str(answer)[:300]}")
            choices.append(Choice(text, raw.get("finish_reason"), reasoning))
        counts = answer.get("usage") or {}
        got = Usage(int(counts.get("prompt_tokens") or 0), int(counts.get("completion_tokens") or 0), 1)
    except (KeyError, TypeError, AttributeError) as exc:
        raise ValueError(f"answer is not a {kind}: {str(answer)[:300]}") from exc
    if not choices:
        raise ValueError(f"{kind} without choices: {str(answer)[:300]}")
    return choices, got


def add_judge_arguments(parser, default_concurrency: int = 16) -> None:
    """The flags every judge-using command shares: endpoint, model, key, and the :class:`ChatConfig` fields."""
    from trm.cli import add_alias, add_dataclass_arguments
    from trm.client import API_KEY_ENV

    group = parser.add_argument_group("judge endpoint")
    url = group.add_argument("--judge-url", dest="base_url", required=True, metavar="URL",
                             help="OpenAI-compatible endpoint(s), e.g. http://127.0.0.1:23888/v1 (comma-separated: "
                                  "equivalent servers sharing the load)")
    model = group.add_argument("--judge-model", dest="model", required=True, metavar="NAME", help="model name the endpoint serves")
    add_alias(group, "--base-url", url)  # the old spellings, for one release
    add_alias(group, "--model", model)
    group.add_argument("--api-key", default=None, help=f"API key (default: ${', then $'.join(API_KEY_ENV['judge'])}; "
                                                       "never written anywhere)")
    add_dataclass_arguments(group, ChatConfig, defaults={"max_concurrency": default_concurrency},
                            exclude=("backoff_base", "backoff_max"))
    add_alias(group, "--no-n", "--no-use-n")


def client_from_args(args) -> ChatClient:
    from trm.cli import dataclass_from_args

    return ChatClient(args.base_url, args.model, api_key=args.api_key, config=dataclass_from_args(ChatConfig, args))
