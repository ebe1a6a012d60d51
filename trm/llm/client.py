"""A judge client for any OpenAI-compatible chat endpoint (hosted API, vLLM, sglang, `trm serve chat`).

The pipeline makes thousands of small calls, so the client bounds how many are in flight, retries rate limits
and server errors with exponential backoff, and counts tokens so a run can report what it cost. The API key is
held only inside the underlying `openai` client: it never appears in ``repr``, outputs or logs.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import time
from dataclasses import dataclass

import openai

log = logging.getLogger(__name__)

# Environment variables consulted (in this order) when no key is passed explicitly.
API_KEY_ENV_VARS = ("TRM_JUDGE_API_KEY", "OPENAI_API_KEY")


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


@dataclass
class JudgeConfig:
    """How the client talks to the endpoint."""

    max_concurrency: int = 16  # requests in flight at once, across all traces and pairs of a run
    max_retries: int = 6  # retries per request on 429, 5xx, timeouts and dropped connections
    backoff_base_s: float = 1.0  # first retry waits about this long; doubles each time (with jitter)
    backoff_max_s: float = 60.0  # cap on one wait
    request_timeout_s: float = 300.0  # per HTTP request
    # A request whose every attempt was refused (nothing listening at the URL) gives up after this many seconds
    # instead of spending all its retries: a wrong URL fails in seconds, as in trm.client.BackendPool.
    connect_budget_s: float = 10.0
    use_n: bool = True  # ask for n samples in one request; switched off automatically if the endpoint ignores n


def _refused(exc: Exception) -> bool:
    """The request never reached a server: the transport's ConnectError (by name, since the openai SDK ships its
    own copy of httpx, ``httpx2``, whose exception classes differ from httpx's)."""
    return any(cls.__name__ == "ConnectError" for cls in type(exc.__cause__).__mro__)


class JudgeUnavailable(RuntimeError):
    """The endpoint kept failing after all retries (or rejected the request outright)."""


def resolve_api_key(api_key: str | None) -> str | None:
    """The explicit key, else the first of TRM_JUDGE_API_KEY / OPENAI_API_KEY that is set."""
    if api_key:
        return api_key
    for name in API_KEY_ENV_VARS:
        value = os.environ.get(name)
        if value:
            return value
    return None


_RETRYABLE = (openai.RateLimitError, openai.InternalServerError, openai.APIConnectionError, openai.APITimeoutError)


class JudgeClient:
    """Chat completions with bounded concurrency, retries and usage accounting.

    ``await client.chat(messages, n=3)`` returns ``n`` answer texts. If the endpoint returns fewer choices than
    asked (some servers ignore ``n``) or rejects ``n``, the client falls back to repeated single calls for the
    rest of the run.
    """

    def __init__(
        self,
        base_url: str,
        model: str,
        api_key: str | None = None,
        max_concurrency: int | None = None,
        config: JudgeConfig | None = None,
    ):
        self.config = config or JudgeConfig()
        if max_concurrency is not None:
            self.config.max_concurrency = max_concurrency
        self.base_url = _v1_url(base_url)
        self.model = model
        self.usage = Usage()
        self._supports_n = self.config.use_n
        # Local servers (vLLM, `trm serve chat`) accept any key; the openai client insists on one.
        self.__api_key = resolve_api_key(api_key) or "EMPTY"
        self._client: openai.AsyncOpenAI | None = None
        self._semaphore: asyncio.Semaphore | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def __repr__(self) -> str:  # never show the key
        return f"JudgeClient(base_url={self.base_url!r}, model={self.model!r})"

    def _bind(self) -> tuple[openai.AsyncOpenAI, asyncio.Semaphore]:
        """HTTP client and concurrency gate of the running event loop (a new loop gets new ones, so the client
        also works across several ``asyncio.run`` calls)."""
        loop = asyncio.get_running_loop()
        if self._client is None or self._loop is not loop:
            self._client = openai.AsyncOpenAI(
                base_url=self.base_url,
                api_key=self.__api_key,
                max_retries=0,  # retries happen here, so they are counted and bounded in one place
                timeout=self.config.request_timeout_s,
            )
            self._semaphore = asyncio.Semaphore(self.config.max_concurrency)
            self._loop = loop
        return self._client, self._semaphore

    async def chat(
        self,
        messages: list[dict],
        n: int = 1,
        temperature: float = 0.3,
        top_p: float = 0.9,
        max_tokens: int = 512,
        usage: Usage | None = None,
    ) -> list[str]:
        """``n`` sampled answers (texts) to one conversation; usage is added to the client and to ``usage``."""
        texts: list[str] = []
        while len(texts) < n:
            want = n - len(texts) if self._supports_n else 1
            got = await self._request(messages, want, temperature, top_p, max_tokens, usage)
            if want > 1 and len(got) < want:
                log.info("endpoint returned %d of %d samples; using repeated calls from now on", len(got), want)
                self._supports_n = False
            texts.extend(got[: n - len(texts)])
            if not got:
                raise JudgeUnavailable(f"{self.base_url}: the endpoint returned no choices")
        return texts

    async def _request(self, messages, n, temperature, top_p, max_tokens, usage) -> list[str]:
        kwargs = dict(model=self.model, messages=messages, temperature=temperature, top_p=top_p, max_tokens=max_tokens)
        if n > 1:
            kwargs["n"] = n
        attempt = 0
        started = time.monotonic()
        only_refused = True  # every failure of this request so far was a refused connection
        while True:
            try:
                client, gate = self._bind()
                async with gate:
                    response = await client.chat.completions.create(**kwargs)
                break
            except openai.BadRequestError as exc:
                if n > 1 and self._supports_n:  # some endpoints reject n > 1: retry as single calls
                    self._supports_n = False
                    return [
                        (await self._request(messages, 1, temperature, top_p, max_tokens, usage))[0] for _ in range(n)
                    ]
                raise JudgeUnavailable(f"{self.base_url}: request rejected ({_describe(exc)})") from None
            except _RETRYABLE as exc:
                attempt += 1
                only_refused = only_refused and _refused(exc)
                if only_refused and time.monotonic() - started >= self.config.connect_budget_s:
                    raise JudgeUnavailable(
                        f"{self.base_url}: no server accepted a connection in {attempt} attempts over "
                        f"{time.monotonic() - started:.1f}s (connect budget {self.config.connect_budget_s:g}s; "
                        f"{_describe(exc)}): is the judge running at this URL?"
                    ) from None
                if attempt > self.config.max_retries:
                    raise JudgeUnavailable(
                        f"{self.base_url}: giving up after {self.config.max_retries} retries ({_describe(exc)})"
                    ) from None
                delay = min(self.config.backoff_max_s, self.config.backoff_base_s * 2 ** (attempt - 1))
                delay *= 0.5 + random.random() / 2  # jitter so parallel callers do not retry in lock-step
                log.warning("judge request failed (%s); retry %d in %.1fs", _describe(exc), attempt, delay)
                await asyncio.sleep(delay)
            except openai.APIStatusError as exc:  # 401, 403, 404, ...: retrying will not help
                hint = ""
                if exc.status_code == 404:
                    hint = f" (is {self.model!r} served there? `curl {self.base_url}/models` lists the names)"
                elif exc.status_code in (401, 403):
                    hint = " (check --api-key / $TRM_JUDGE_API_KEY / $OPENAI_API_KEY)"
                raise JudgeUnavailable(f"{self.base_url}: {_describe(exc)}{hint}") from None
        got = Usage(requests=1)
        if response.usage is not None:
            got.prompt_tokens = response.usage.prompt_tokens or 0
            got.completion_tokens = response.usage.completion_tokens or 0
        self.usage.add(got)
        if usage is not None:
            usage.add(got)
        return [(choice.message.content or "") for choice in response.choices]

    async def aclose(self) -> None:
        if self._client is not None and self._loop is asyncio.get_running_loop():
            await self._client.close()
        self._client = None


def _describe(exc: Exception) -> str:
    status = getattr(exc, "status_code", None)
    name = type(exc).__name__
    return f"{name} {status}" if status else name


def _v1_url(base_url: str) -> str:
    """Accept ``http://host:port`` or ``.../v1``; the openai client wants the ``/v1`` root."""
    url = base_url.rstrip("/")
    if "://" not in url:
        url = "http://" + url
    return url if url.endswith("/v1") else url + "/v1"


def add_judge_arguments(parser, default_concurrency: int = 16) -> None:
    """The flags every judge-using command shares (endpoint, model, key, concurrency, retries)."""
    from trm.cli import add_alias

    group = parser.add_argument_group("judge endpoint")
    url = group.add_argument("--judge-url", dest="base_url", required=True, metavar="URL",
                             help="OpenAI-compatible endpoint, e.g. http://127.0.0.1:23888/v1")
    model = group.add_argument("--judge-model", dest="model", required=True, metavar="NAME", help="model name the endpoint serves")
    add_alias(group, "--base-url", url)  # the old spellings, for one release
    add_alias(group, "--model", model)
    group.add_argument(
        "--api-key",
        default=None,
        help="API key (default: $TRM_JUDGE_API_KEY, then $OPENAI_API_KEY; never written anywhere)",
    )
    group.add_argument("--max-concurrency", type=int, default=default_concurrency, help="judge requests in flight")
    group.add_argument("--max-retries", type=int, default=6, help="retries per request on 429/5xx/timeouts")
    group.add_argument("--request-timeout", type=float, default=300.0, help="seconds per judge request")
    group.add_argument("--connect-budget", type=float, default=JudgeConfig.connect_budget_s,
                       help="seconds a request keeps retrying while no server accepts a connection")
    group.add_argument("--no-n", action="store_true", help="never ask for n samples in one request")


def client_from_args(args) -> JudgeClient:
    return JudgeClient(
        args.base_url,
        args.model,
        api_key=args.api_key,
        config=JudgeConfig(
            max_concurrency=args.max_concurrency,
            max_retries=args.max_retries,
            request_timeout_s=args.request_timeout,
            connect_budget_s=args.connect_budget,
            use_n=not args.no_n,
        ),
    )
