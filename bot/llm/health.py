"""Model health for admin `status`: is each model up now, is its circuit open, whom did it answer.

Each configured model is probed live with a models-list request (cheap, spends no tokens),
all at once in threads, so a dead model costs the report ``probe_timeout`` at most, however
many models are down. The breakers are the serving process's own: only a router knows them.
"""

from __future__ import annotations

import time
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from bot.errors import ProviderError
from bot.llm.breaker import CircuitBreaker
from bot.llm.provider import ChatProvider
from bot.llm.router import EXTRACTIVE, Router
from bot.llm.setup import HOW_TO_CONFIGURE, provider_configs, timeouts
from bot.settings import Settings
from knowledge.storage.conversations import Turn
from knowledge.storage.db import utcnow

PROBE_TIMEOUT_SECONDS = 2.0
WINDOW = timedelta(hours=24)
NONE_CONFIGURED = (
    "Models: none configured; answers are extractive (quoted passages). " + HOW_TO_CONFIGURE
)


@dataclass(frozen=True)
class _Probe:
    """How a model server answered the models-list request."""

    offered: list[str]
    ms: float


def model_health_lines(
    settings: Settings,
    sessions: sessionmaker[Session],
    router: Router | None,
    probe_timeout: float = PROBE_TIMEOUT_SECONDS,
) -> list[str]:
    """Plain-text lines, one per configured model and one for the extractive fallback.

    With a router, its own providers are probed (same client as the answers) and its
    breakers reported; without one, providers are built from ``settings``."""
    providers = router.providers if router is not None else _providers(settings)
    if not providers:
        return [NONE_CONFIGURED]
    pool = ThreadPoolExecutor(max_workers=len(providers), thread_name_prefix="model-probe")
    deadline = time.monotonic() + probe_timeout
    probes = {name: pool.submit(_probe, p, probe_timeout) for name, p in providers.items()}
    try:
        answers = _answers_since(sessions, WINDOW)  # while the probes run
        wait(probes.values(), timeout=max(0.0, deadline - time.monotonic()))
    finally:
        pool.shutdown(wait=False)  # a hung probe's thread ends on its own timeout
    lines = [_heading(settings)]
    for name, provider in providers.items():
        parts = [_probe_text(provider, probes[name], probe_timeout)]
        breaker = router.breakers.get(name) if router is not None else None
        if breaker is not None:
            parts.append(_circuit_text(breaker))
        parts.append(f"last 24 h: {_answers(answers.get(name, 0))}")
        head = f"{name} {provider.model} at {provider.config.server}"
        lines.append(f"  {head}: " + "; ".join(parts))
    lines.append(f"  extractive fallback: {_answers(answers.get(EXTRACTIVE, 0))} in the last 24 h")
    return lines


def _heading(settings: Settings) -> str:
    routes = f"LLM_ROUTE={settings.llm_route}"
    if settings.llm_private_route:
        routes += f", LLM_PRIVATE_ROUTE={settings.llm_private_route}"
    return f"Models ({routes}):"


def _providers(settings: Settings) -> dict[str, ChatProvider]:
    return {
        kind: ChatProvider(config, timeouts(settings))
        for kind, config in provider_configs(settings).items()
    }


def _probe(provider: ChatProvider, timeout: float) -> _Probe:
    started = time.monotonic()
    offered = provider.list_models(timeout=timeout)
    return _Probe(offered, (time.monotonic() - started) * 1000)


def _probe_text(provider: ChatProvider, future: Future[_Probe], timeout: float) -> str:
    if not future.done():
        return f"DOWN (no answer within {timeout:g} s)"
    try:
        probe = future.result()
    except ProviderError as exc:
        return f"DOWN ({exc.kind}: {exc})"
    took = f"models list in {probe.ms:.0f} ms"
    if not provider.config.is_offered(probe.offered):
        return f"up, but it does not list {provider.config.model!r} ({took})"
    return f"up ({took})"


def _circuit_text(breaker: CircuitBreaker) -> str:
    state = breaker.state
    if state == "open":
        return f"circuit open, next try in {breaker.retry_in():.0f} s"
    if state == "half-open":
        return "circuit half-open, the next question tests it"
    return "circuit closed"


def _answers_since(sessions: sessionmaker[Session], window: timedelta) -> dict[str, int]:
    """Answers per provider kind (local, cloud, extractive) written within ``window``."""
    with sessions() as session:
        rows = session.execute(
            select(Turn.provider, func.count())
            .where(Turn.role == "assistant", Turn.created_at >= utcnow() - window)
            .group_by(Turn.provider)
        ).all()
    return {provider: count for provider, count in rows if provider}


def _answers(count: int) -> str:
    return f"{count} answer" + ("" if count == 1 else "s")
