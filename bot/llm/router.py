"""Pick a model for each question by policy, stream its answer, fail over, never go silent.

A policy names an order of model kinds; the extractive answer (no model) is
always the last link. Which policy applies, in order of precedence:

1. a private conversation (DM, private channel) with ``LLM_PRIVATE_ROUTE`` set
   uses that route, so private text can be pinned to local models;
2. the channel's own route, set by an admin;
3. ``LLM_ROUTE``.

Down the chain a model is skipped when it is not configured, its circuit
breaker is open, or its daily token budget is spent. A request is retried on
429 / 5xx / connection errors (honouring Retry-After) while its deadline
allows, then the next model gets the question. A model that fails after it
started streaming is replaced: the router emits ``Restart`` so adapters can
clear the partial text before the next model's answer arrives.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Generator, Iterator, Mapping
from dataclasses import dataclass, field
from typing import get_args

from bot.errors import ProviderBadResponse, ProviderError, TransientProviderError
from bot.llm.breaker import CircuitBreaker
from bot.llm.limits import UsageLedger
from bot.llm.prompt import Prompt, estimate_tokens
from bot.llm.provider import ChatProvider, ProviderConfig, Usage
from bot.settings import Route
from bot.types import Delta, Question, Restart

log = logging.getLogger(__name__)

ROUTES: tuple[str, ...] = get_args(Route)
CHAINS: dict[str, tuple[str, ...]] = {
    "local-first": ("local", "cloud"),
    "cloud-first": ("cloud", "local"),
    "local-only": ("local",),
    "cloud-only": ("cloud",),
    "extractive": (),
}
EXTRACTIVE = "extractive"
BACKOFF_BASE_SECONDS = 0.5
BACKOFF_CAP_SECONDS = 8.0
REWRITE_TIMEOUT_SECONDS = 10.0
REWRITE_MAX_TOKENS = 64
MAX_REWRITE_CHARS = 300


@dataclass(frozen=True)
class RetryPolicy:
    max_retries: int = 2
    base_seconds: float = BACKOFF_BASE_SECONDS
    cap_seconds: float = BACKOFF_CAP_SECONDS

    def backoff(self, attempt: int, retry_after: float | None) -> float:
        """Retry-After when the server gave one, else capped exponential backoff with jitter."""
        if retry_after is not None:
            return retry_after
        return min(self.cap_seconds, self.base_seconds * 2**attempt) * random.uniform(0.5, 1.0)


@dataclass(frozen=True)
class NotConfigured:
    """A link of the chain whose model kind has no settings: passed over, and no failure."""

    kind: str

    @property
    def step(self) -> str:
        return f"{self.kind} not configured"


@dataclass(frozen=True)
class Skipped:
    """A configured model passed over (circuit open, budget spent): the user hears why."""

    kind: str
    reason: str

    @property
    def step(self) -> str:
        return f"{self.kind} skipped ({self.reason})"


# One link of a plan: a model to ask, or the note of one passed over while planning.
Link = ChatProvider | NotConfigured | Skipped


@dataclass(frozen=True)
class Plan:
    """The chain for one question, in order: models to try, and the links passed over while
    planning (not configured, circuit open, budget spent), in their place in the chain."""

    policy: str
    why: str
    links: list[Link] = field(default_factory=list)

    @property
    def providers(self) -> list[ChatProvider]:
        return [link for link in self.links if isinstance(link, ChatProvider)]

    def describe(self, *steps: str) -> str:
        return f"{self.policy} ({self.why}): " + " → ".join(steps)


@dataclass(frozen=True)
class Outcome:
    """How the answer ended: which model wrote ``text``, or none (provider ``extractive``)."""

    provider: str
    model: str
    route: str
    text: str = ""
    prompt: Prompt | None = None
    tokens_in: int | None = None
    tokens_out: int | None = None
    first_token_ms: float | None = None
    llm_ms: float | None = None
    unavailable: str | None = None  # one line for the user when models failed


class Router:
    """Routes questions to models by policy and health, and streams the answer."""

    def __init__(
        self,
        providers: Mapping[str, ChatProvider],
        *,
        route: str,
        private_route: str | None,
        ledger: UsageLedger,
        max_output_tokens: int,
        retry: RetryPolicy | None = None,
        breakers: Mapping[str, CircuitBreaker] | None = None,
        sleep: Callable[[float], None] = time.sleep,
        on_error: Callable[[str, str], None] | None = None,
    ) -> None:
        self.providers = dict(providers)
        self.route = route
        self.private_route = private_route
        self.ledger = ledger
        self.max_output_tokens = max_output_tokens
        self._retry = retry or RetryPolicy()
        self.breakers = dict(breakers or {name: CircuitBreaker() for name in self.providers})
        self._sleep = sleep
        self._on_error = on_error or (lambda provider, kind: None)  # e.g. a metrics counter

    def plan(self, question: Question, channel_route: str | None = None) -> Plan:
        """The chain for this question: privacy first, then the channel, then LLM_ROUTE."""
        if question.is_private and self.private_route:
            policy, why = self.private_route, "private conversation, LLM_PRIVATE_ROUTE"
        elif channel_route in ROUTES:
            policy, why = str(channel_route), "channel setting"
        else:
            if channel_route:
                log.warning("ignoring unknown channel route %r", channel_route)
            policy, why = self.route, "LLM_ROUTE"
        return Plan(policy, why, [self._link(kind) for kind in CHAINS[policy]])

    def answer(
        self, plan: Plan, prompt_for: Callable[[ProviderConfig], Prompt]
    ) -> Iterator[Delta | Restart | Outcome]:
        """Deltas of the first model that answers (``Restart`` between failed ones), then the
        ``Outcome``; the outcome is extractive when no model could answer."""
        steps: list[str] = []  # the route as it went, for the stored turn
        failures: list[str] = []  # what the user is told when no model answers
        for link in plan.links:
            match link:
                case NotConfigured():
                    steps.append(link.step)
                case Skipped():
                    steps.append(link.step)
                    failures.append(link.step)
                case ChatProvider():
                    outcome = yield from self._ask(link, plan, prompt_for, steps, failures)
                    if outcome is not None:
                        yield outcome
                        return
        yield Outcome(
            provider=EXTRACTIVE,
            model=EXTRACTIVE,
            route=plan.describe(*steps, EXTRACTIVE),
            unavailable=_unavailable(failures) if failures else None,
        )

    def _ask(
        self,
        provider: ChatProvider,
        plan: Plan,
        prompt_for: Callable[[ProviderConfig], Prompt],
        steps: list[str],
        failures: list[str],
    ) -> Generator[Delta | Restart, None, Outcome | None]:
        """Stream one model's answer and return its ``Outcome``; None (the step and failure
        noted, ``Restart`` after partial text) when the model is skipped or fails."""
        breaker = self.breakers[provider.name]
        if not breaker.allow():
            steps.append(Skipped(provider.name, "circuit open").step)
            failures.append(f"{provider.name}: not responding")
            return None
        prompt = prompt_for(provider.config)
        started = time.monotonic()
        first_token_ms: float | None = None
        pieces: list[str] = []
        usage = Usage(None, None)
        try:
            for part in self._attempts(provider, prompt.messages, started):
                if isinstance(part, Usage):
                    usage = part
                    continue
                if first_token_ms is None:
                    first_token_ms = _ms_since(started)
                pieces.append(part.text)
                yield part
            if not "".join(pieces).strip():
                raise ProviderBadResponse("the model sent an empty answer")
        except ProviderError as exc:
            breaker.record_failure()
            self._on_error(provider.name, exc.kind)
            log.warning("%s model %s failed: %s (%s)", provider.name, provider.model, exc,
                        exc.kind)  # fmt: skip
            steps.append(f"{provider.name} failed ({exc.kind})")
            failures.append(f"{provider.name}: {exc}")
            if pieces:
                yield Restart(f"the {provider.name} model stopped mid-answer ({exc.kind})")
            return None
        breaker.record_success()
        text = "".join(pieces)
        tokens_in = usage.tokens_in or prompt.estimated_tokens
        tokens_out = usage.tokens_out or estimate_tokens(text)
        self.ledger.add(provider.name, tokens_in, tokens_out)
        return Outcome(
            provider=provider.name,
            model=provider.model,
            route=plan.describe(*steps, f"{provider.name} answered"),
            text=text,
            prompt=prompt,
            tokens_in=tokens_in,
            tokens_out=tokens_out,
            first_token_ms=first_token_ms,
            llm_ms=_ms_since(started),
        )

    def rewrite(self, plan: Plan, messages: list[dict[str, str]]) -> str | None:
        """A standalone search query from the first usable model of the plan, or None."""
        for provider in plan.providers:
            breaker = self.breakers[provider.name]
            if not breaker.allow():
                continue
            deadline = time.monotonic() + min(REWRITE_TIMEOUT_SECONDS, provider.timeouts.total)
            try:
                text = provider.complete(messages, max_tokens=REWRITE_MAX_TOKENS, deadline=deadline)
            except ProviderError as exc:
                breaker.record_failure()
                self._on_error(provider.name, exc.kind)
                log.warning("query rewrite by the %s model failed: %s", provider.name, exc)
                return None
            breaker.record_success()
            tokens_in = sum(estimate_tokens(m["content"]) for m in messages)
            self.ledger.add(provider.name, tokens_in, estimate_tokens(text))
            query = text.strip().splitlines()[0].strip().strip('"').strip() if text.strip() else ""
            return query if 0 < len(query) <= MAX_REWRITE_CHARS else None
        return None

    def _link(self, kind: str) -> Link:
        """The model of ``kind`` if it can take a question now, else why it is passed over."""
        provider = self.providers.get(kind)
        if provider is None:
            return NotConfigured(kind)
        breaker = self.breakers[provider.name]
        if breaker.state == "open":
            return Skipped(kind, f"circuit open, retry in {breaker.retry_in():.0f} s")
        budget = provider.config.daily_tokens
        if budget and self.ledger.tokens_today(provider.name) >= budget:
            return Skipped(kind, f"daily token budget of {budget:,} spent")
        return provider

    def _attempts(
        self, provider: ChatProvider, messages: list[dict[str, str]], started: float
    ) -> Iterator[Delta | Usage]:
        """One request with retries on retryable errors, all within the provider's deadline.

        Once text has been yielded there is no retry: the caller fails over instead."""
        deadline = started + provider.timeouts.total
        attempt = 0
        while True:
            streamed = False
            try:
                for part in provider.stream(
                    messages, max_tokens=self.max_output_tokens, deadline=deadline
                ):
                    streamed = streamed or isinstance(part, Delta)
                    yield part
                return
            except TransientProviderError as exc:
                if streamed or attempt >= self._retry.max_retries:
                    raise
                wait = self._retry.backoff(attempt, exc.retry_after)
                if time.monotonic() + wait >= deadline:
                    raise type(exc)(
                        f"{exc}; waiting {wait:.1f} s to retry would pass the deadline"
                    ) from exc
                log.info("%s model: %s; retrying in %.1f s", provider.name, exc, wait)
                self._sleep(wait)
                attempt += 1


def _unavailable(failures: list[str]) -> str:
    return (
        "The language models are unavailable right now ("
        + "; ".join(failures)
        + "), so this answer quotes the docs directly."
    )


def _ms_since(start: float) -> float:
    return round((time.monotonic() - start) * 1000, 1)
