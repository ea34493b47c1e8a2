"""One OpenAI-compatible chat model (OpenAI, vLLM, llama.cpp, Ollama), streamed, with deadlines.

Provider differences are data (base URL, model, key, context size), not code
paths: every model is reached through the ``openai`` SDK. The SDK's own retries
are off because the router retries with a deadline the SDK does not know about.
Every SDK or transport failure leaves here as a ``ProviderError`` subclass the
router can act on (``TransientProviderError``: retry; any other: fail over).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from bot.errors import (
    ProviderAuthError,
    ProviderBadResponse,
    ProviderError,
    ProviderRateLimited,
    ProviderRejected,
    ProviderServerError,
    ProviderStreamDropped,
    ProviderTimeout,
    ProviderUnreachable,
)
from bot.types import Delta
from knowledge.crawl.urls import mask_url, mask_urls_in

if TYPE_CHECKING:  # the SDK takes a second to import: only processes with a model pay it
    import openai

Kind = Literal["cloud", "local"]
# The SDK insists on a key; local servers usually ignore it.
NO_KEY = "none"
# Where the SDK sends requests when no base URL is set.
OPENAI_API_URL = "https://api.openai.com/v1"


@dataclass(frozen=True)
class ProviderConfig:
    """What it takes to reach one model, and what it may spend."""

    kind: Kind
    model: str
    base_url: str | None
    api_key: str
    context_tokens: int
    daily_tokens: int = 0  # 0: no daily budget
    streaming: bool = True

    @property
    def name(self) -> str:
        return self.kind

    @property
    def server(self) -> str:
        """The URL requests go to, for people reading health reports: its secrets masked,
        since reports are printed and posted into chat."""
        return mask_url(self.base_url or OPENAI_API_URL)

    def is_offered(self, offered: list[str]) -> bool:
        """Whether a server listing ``offered`` can answer as this model (any will do when
        LOCAL_LLM_MODEL is unset), so a wrong model name shows before the first question."""
        return not self.model or self.model in offered


@dataclass(frozen=True)
class Timeouts:
    """Seconds: to connect, to wait for the first (or next) byte, and for the whole answer."""

    connect: float = 3.0
    first_token: float = 20.0
    total: float = 60.0


@dataclass(frozen=True)
class Usage:
    """Tokens the request spent, as the server reported them (None when it did not)."""

    tokens_in: int | None
    tokens_out: int | None


class ChatProvider:
    """Sends chat requests to one model and yields the answer as it arrives."""

    def __init__(
        self, config: ProviderConfig, timeouts: Timeouts, client: openai.OpenAI | None = None
    ) -> None:
        self.config = config
        self.timeouts = timeouts
        self._model = config.model  # "" until asked of the server (LOCAL_LLM_MODEL unset)
        import openai

        self._client = client or openai.OpenAI(
            base_url=config.base_url,
            api_key=config.api_key or NO_KEY,
            max_retries=0,
            timeout=openai.Timeout(timeouts.first_token, connect=timeouts.connect),
        )

    @property
    def name(self) -> str:
        return self.config.name

    @property
    def model(self) -> str:
        return self._model or "(first model the server lists)"

    def _model_for(self, deadline: float) -> str:
        """The configured model, or the first one the server offers when none is configured."""
        if not self._model:
            offered = self.list_models(timeout=max(0.001, min(5.0, deadline - time.monotonic())))
            if not offered:
                raise ProviderRejected(f"the {self.name} model server lists no models")
            self._model = offered[0]
        return self._model

    def stream(
        self, messages: list[dict[str, str]], *, max_tokens: int, deadline: float
    ) -> Iterator[Delta | Usage]:
        """Answer deltas, then one ``Usage``; raises ProviderError, also mid-stream.

        ``deadline`` is a ``time.monotonic()`` instant: past it the request is
        abandoned as a timeout even if the model is still producing text.
        """
        try:
            if self.config.streaming:
                yield from self._streamed(messages, max_tokens, deadline)
            else:
                yield from self._whole(messages, max_tokens, deadline)
        except ProviderError:
            raise
        except Exception as exc:  # every SDK/transport failure becomes one kind of ProviderError
            raise as_provider_error(exc) from exc

    def complete(self, messages: list[dict[str, str]], *, max_tokens: int, deadline: float) -> str:
        """The whole answer at once (for short internal requests such as query rewrites)."""
        return "".join(
            part.text
            for part in self.stream(messages, max_tokens=max_tokens, deadline=deadline)
            if isinstance(part, Delta)
        )

    def list_models(self, timeout: float) -> list[str]:
        """The model ids the server offers (a cheap health check)."""
        try:
            page = self._client.with_options(timeout=timeout).models.list()
            return [model.id for model in page.data]
        except Exception as exc:
            raise as_provider_error(exc) from exc

    def _request_timeout(self, deadline: float) -> openai.Timeout:
        import openai

        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise ProviderTimeout(f"{self.name} model: no time left for the request")
        read = min(self.timeouts.first_token, remaining)
        return openai.Timeout(read, connect=min(self.timeouts.connect, remaining))

    def _streamed(
        self, messages: list[dict[str, str]], max_tokens: int, deadline: float
    ) -> Iterator[Delta | Usage]:
        stream = self._client.chat.completions.create(
            model=self._model_for(deadline),
            messages=messages,  # type: ignore[arg-type]
            max_tokens=max_tokens,
            stream=True,
            stream_options={"include_usage": True},
            timeout=self._request_timeout(deadline),
        )
        usage = Usage(None, None)
        finished = streamed = False
        with stream, _dropped_if(lambda: streamed, self.name):
            for chunk in stream:
                if time.monotonic() > deadline:
                    raise ProviderTimeout(
                        f"{self.name} model was still answering after "
                        f"{self.timeouts.total:.0f} s (LLM_TOTAL_TIMEOUT_SECONDS)",
                    )
                if chunk.usage is not None:
                    usage = Usage(chunk.usage.prompt_tokens, chunk.usage.completion_tokens)
                for choice in chunk.choices:
                    if choice.delta and choice.delta.content:
                        streamed = True
                        yield Delta(choice.delta.content)
                    if choice.finish_reason:
                        finished = True
        if not finished:
            raise ProviderStreamDropped(f"{self.name} model's stream ended without finishing")
        yield usage

    def _whole(
        self, messages: list[dict[str, str]], max_tokens: int, deadline: float
    ) -> Iterator[Delta | Usage]:
        import openai

        model = self._model_for(deadline)
        remaining = deadline - time.monotonic()
        response = self._client.chat.completions.create(
            model=model,
            messages=messages,  # type: ignore[arg-type]
            max_tokens=max_tokens,
            timeout=openai.Timeout(max(remaining, 0.001), connect=self.timeouts.connect),
        )
        if not response.choices or response.choices[0].message.content is None:
            raise ProviderBadResponse(f"{self.name} model sent an answer with no text")
        yield Delta(response.choices[0].message.content)
        usage = response.usage
        yield Usage(
            usage.prompt_tokens if usage else None, usage.completion_tokens if usage else None
        )


def as_provider_error(exc: Exception) -> ProviderError:
    """The ProviderError subclass for an SDK exception: what happened, and so whether a retry
    may help. Text from the exception or the server has its URLs masked: it is shown and posted."""
    import openai

    if isinstance(exc, openai.APITimeoutError):
        return ProviderTimeout("the model did not answer in time")
    if isinstance(exc, openai.APIConnectionError):
        return ProviderUnreachable("cannot connect to the model server")
    if isinstance(exc, openai.APIStatusError):
        status = exc.status_code
        retry_after = _retry_after(exc.response.headers.get("retry-after"))
        if status == 429:
            return ProviderRateLimited("HTTP 429 (rate limited)", retry_after=retry_after)
        if status >= 500:
            return ProviderServerError(
                f"HTTP {status} from the model server", retry_after=retry_after
            )
        if status in (401, 403):
            return ProviderAuthError(f"HTTP {status}: the API key was refused")
        return ProviderRejected(f"HTTP {status}: {mask_urls_in(_error_message(exc))}")
    if isinstance(exc, openai.APIResponseValidationError | ValueError):  # JSONDecodeError too
        return ProviderBadResponse("the model server sent a response that is not valid")
    return ProviderBadResponse(
        f"unexpected failure: {type(exc).__name__}: {mask_urls_in(str(exc))}"
    )


def _retry_after(value: str | None) -> float | None:
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:  # an HTTP date; too rare from model servers to be worth parsing
        return None


@contextmanager
def _dropped_if(streamed: Callable[[], bool], name: str) -> Iterator[None]:
    """A failure after text arrived is a stream that broke off, whatever the SDK calls it."""
    try:
        yield
    except ProviderError:
        raise
    except Exception as exc:
        if not streamed():
            raise
        raise ProviderStreamDropped(
            f"the {name} model's stream broke off ({type(exc).__name__})"
        ) from exc


def _error_message(exc: openai.APIStatusError) -> str:
    body: Any = exc.body
    if isinstance(body, dict) and isinstance(body.get("message"), str):
        return body["message"]
    return exc.message
