"""Model health for admin `status`: live probes against fake servers on 127.0.0.1, the router's
breakers, and answer counts from turns in SQLite."""

from __future__ import annotations

import re
import socket
import time
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy.orm import Session, sessionmaker

from bot.llm.breaker import CircuitBreaker
from bot.llm.health import model_health_lines
from bot.llm.setup import build_router
from bot.settings import Settings
from knowledge.storage.conversations import Conversation, Turn
from knowledge.storage.db import utcnow
from tests.fakes.openai_server import FakeOpenAI

NONE_CONFIGURED = (
    "Models: none configured; answers are extractive (quoted passages). Set LOCAL_LLM_BASE_URL "
    "(a vLLM, llama.cpp or Ollama server) or OPENAI_API_KEY; see docs/llm.md."
)


@pytest.fixture
def local() -> Iterator[FakeOpenAI]:
    with FakeOpenAI(models=("local-model",)) as fake:
        yield fake


@pytest.fixture
def closed_url() -> str:
    """A base URL on a 127.0.0.1 port nothing listens on: connections are refused."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/v1"


@pytest.fixture
def hanging_urls() -> Iterator[tuple[str, str]]:
    """Two base URLs whose servers take the connection and never answer."""
    sockets = [socket.socket(), socket.socket()]
    for sock in sockets:
        sock.bind(("127.0.0.1", 0))
        sock.listen(8)  # never accept(): the kernel completes the handshake, nobody replies
    yield tuple(f"http://127.0.0.1:{s.getsockname()[1]}/v1" for s in sockets)  # type: ignore[misc]
    for sock in sockets:
        sock.close()


def settings(
    local_url: str = "", cloud_url: str = "", local_model: str = "local-model", **extra: Any
) -> Settings:
    values: dict[str, Any] = {
        "local_llm_base_url": local_url,
        "local_llm_model": local_model,
        "openai_api_key": "sk-test" if cloud_url else "",
        "openai_base_url": cloud_url,
        "openai_model": "gpt-fake",
        "llm_route": "local-first",
        "llm_private_route": None,
        "llm_connect_timeout_seconds": 1.0,
    }
    return Settings(_env_file=None, **(values | extra))  # type: ignore[call-arg]


def seed_answers(sessions: sessionmaker[Session], hours_ago: float, **per_provider: int) -> None:
    """Question/answer pairs written ``hours_ago``, ``per_provider[kind]`` answers per kind."""
    when = utcnow() - timedelta(hours=hours_ago)
    with sessions.begin() as session:
        conversation = Conversation(platform="slack", channel="C1", thread=f"t{hours_ago}")
        session.add(conversation)
        session.flush()
        for provider, count in per_provider.items():
            for _ in range(count):
                session.add_all(
                    [
                        Turn(conversation_id=conversation.id, role="user", text="q?",
                             created_at=when),
                        Turn(conversation_id=conversation.id, role="assistant", text="a",
                             provider=provider, model=provider, created_at=when),
                    ]
                )  # fmt: skip


def test_reports_an_up_model_a_down_one_its_open_circuit_and_24_h_answers(
    sessions: sessionmaker[Session], local: FakeOpenAI, closed_url: str
) -> None:
    config = settings(
        local.base_url, closed_url, llm_breaker_failures=2, llm_breaker_reset_seconds=60
    )
    router = build_router(config, sessions)
    for _ in range(2):
        router.breakers["cloud"].record_failure()
    seed_answers(sessions, 1, local=3, cloud=1, extractive=2)
    seed_answers(sessions, 23.5, local=1)
    seed_answers(sessions, 25, local=4, cloud=5, extractive=6)  # outside the window

    lines = model_health_lines(config, sessions, router)

    assert lines[0] == "Models (LLM_ROUTE=local-first):"
    assert re.fullmatch(
        rf"  local local-model at {re.escape(local.base_url)}: up \(models list in \d+ ms\); "
        r"circuit closed; last 24 h: 4 answers",
        lines[1],
    ), lines[1]
    cloud = re.fullmatch(
        rf"  cloud gpt-fake at {re.escape(closed_url)}: DOWN \(connection: cannot connect to "
        r"the model server\); circuit open, next try in (\d+) s; last 24 h: 1 answer",
        lines[2],
    )
    assert cloud, lines[2]
    assert 55 <= int(cloud.group(1)) <= 60
    assert lines[3:] == ["  extractive fallback: 2 answers in the last 24 h"]
    assert [(r.method, r.path) for r in local.requests] == [("GET", "/v1/models")]


def test_without_a_router_it_probes_from_settings_and_flags_an_unlisted_model(
    sessions: sessionmaker[Session], local: FakeOpenAI
) -> None:
    config = settings(local.base_url, local_model="llama-3-8b", llm_private_route="local-only")

    lines = model_health_lines(config, sessions, None)

    assert lines[0] == "Models (LLM_ROUTE=local-first, LLM_PRIVATE_ROUTE=local-only):"
    assert re.fullmatch(
        rf"  local llama-3-8b at {re.escape(local.base_url)}: up, but it does not list "
        r"'llama-3-8b' \(models list in \d+ ms\); last 24 h: 0 answers",
        lines[1],
    ), lines[1]
    assert lines[2:] == ["  extractive fallback: 0 answers in the last 24 h"]


def test_the_router_s_own_providers_are_probed_not_the_settings(
    sessions: sessionmaker[Session], local: FakeOpenAI
) -> None:
    router = build_router(settings(local.base_url), sessions)
    clock = [0.0]
    router.breakers["local"] = CircuitBreaker(1, reset_seconds=10, clock=lambda: clock[0])
    router.breakers["local"].record_failure()
    clock[0] = 10.0

    lines = model_health_lines(settings(), sessions, router)

    assert re.fullmatch(
        rf"  local local-model at {re.escape(local.base_url)}: up \(models list in \d+ ms\); "
        r"circuit half-open, the next question tests it; last 24 h: 0 answers",
        lines[1],
    ), lines[1]
    assert len(local.requests) == 1


def test_hung_servers_are_probed_at_once_and_cost_one_probe_timeout(
    sessions: sessionmaker[Session], hanging_urls: tuple[str, str]
) -> None:
    config = settings(*hanging_urls)
    router = build_router(config, sessions)

    started = time.monotonic()
    lines = model_health_lines(config, sessions, router, probe_timeout=1.0)
    took = time.monotonic() - started

    assert 1.0 <= took < 1.6  # one after the other would take 2 s
    for line, url in zip(lines[1:3], hanging_urls, strict=True):
        assert f" at {url}: DOWN (" in line
        # the report's deadline passes first; the client's own 1 s read timeout just after
        assert re.search(r"DOWN \((no answer within 1 s|timeout: the model did not answer in "
                         r"time)\); circuit closed; last 24 h: 0 answers$", line), line  # fmt: skip


def test_with_no_model_configured_it_says_answers_are_extractive_and_how_to_add_one(
    sessions: sessionmaker[Session],
) -> None:
    config = settings()

    assert model_health_lines(config, sessions, None) == [NONE_CONFIGURED]
    assert model_health_lines(config, sessions, build_router(config, sessions)) == [NONE_CONFIGURED]
