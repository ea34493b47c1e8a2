"""Shared fixtures: databases on SQLite and on the PostgreSQL at 127.0.0.1, the real embedder.

PostgreSQL tests are isolated by a schema of their own (created and dropped
here); they fail, never skip, when the server is missing, because CI has it.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session, sessionmaker

from knowledge.embed.embedder import Embedder
from knowledge.storage.db import make_engine, make_session_factory
from knowledge.storage.schema import upgrade
from tests.corpus import ANSWER, write_corpus
from tests.fakes.openai_server import FakeOpenAI, Reply
from tests.fakes.slack import FakeSlack

POSTGRES_URL = os.environ.get(
    "TEAMBOT_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)


@pytest.fixture(scope="session")
def embedder() -> Embedder:
    """The real MiniLM model, loaded once per test session."""
    return Embedder("all-MiniLM-L6-v2")


def sqlite_url(folder: Path) -> str:
    return f"sqlite:///{folder / 'teambot.db'}"


def postgres_schema_url(schema: str) -> str:
    """A URL whose connections use ``schema`` first: the test's own namespace."""
    return f"{POSTGRES_URL}?options=-csearch_path%3D{schema}"


@pytest.fixture
def pg_schema() -> Iterator[str]:
    """A fresh PostgreSQL schema, dropped with everything in it after the test."""
    schema = f"teambot_test_{uuid.uuid4().hex[:12]}"
    admin = make_engine(POSTGRES_URL)
    with admin.begin() as connection:
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield schema
    finally:
        with admin.begin() as connection:
            connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture
def pg_engine(pg_schema: str) -> Iterator[Engine]:
    """A migrated PostgreSQL schema of the test's own, for tests that start processes on it."""
    engine = make_engine(postgres_schema_url(pg_schema))
    upgrade(engine)
    yield engine
    engine.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def bare_engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    """An engine on an empty database, once on SQLite and once on PostgreSQL."""
    if request.param == "sqlite":
        url = sqlite_url(tmp_path)
    else:
        url = postgres_schema_url(request.getfixturevalue("pg_schema"))
    engine = make_engine(url)
    yield engine
    engine.dispose()


@pytest.fixture
def any_sessions(bare_engine: Engine) -> sessionmaker[Session]:
    """Sessions on a migrated database, on both backends."""
    upgrade(bare_engine)
    return make_session_factory(bare_engine)


@pytest.fixture
def sessions(tmp_path: Path) -> Iterator[sessionmaker[Session]]:
    """Sessions on a migrated SQLite database (for tests about behaviour, not storage)."""
    engine = make_engine(sqlite_url(tmp_path))
    upgrade(engine)
    yield make_session_factory(engine)
    engine.dispose()


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    return write_corpus(tmp_path / "zephyr-docs")


@pytest.fixture(scope="module")
def docs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The chat tests' corpus, written once per module."""
    return write_corpus(tmp_path_factory.mktemp("docs"))


@pytest.fixture
def slack() -> Iterator[FakeSlack]:
    with FakeSlack() as fake:
        yield fake


@pytest.fixture
def model() -> Iterator[FakeOpenAI]:
    """A local model that answers every question with the corpus's ANSWER."""
    with FakeOpenAI(models=("local-model",)) as fake:
        fake.always(Reply(ANSWER))
        yield fake
