"""Wires settings into the objects a command needs; every heavy piece is built on first use."""

from __future__ import annotations

from functools import cached_property

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from bot.core import Assistant
from bot.memory import ConversationMemory
from bot.settings import Settings
from knowledge.db import ensure_schema, make_engine, make_session_factory
from knowledge.embed import Embedder
from knowledge.index import VectorIndex
from knowledge.search import Retriever


class Runtime:
    """One process's database, embedder, index and assistant, built lazily from settings."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    @cached_property
    def engine(self) -> Engine:
        return make_engine(self.settings.database_url)

    @cached_property
    def sessions(self) -> sessionmaker[Session]:
        """Sessions on a database whose schema is current (SQLite is upgraded on first use)."""
        ensure_schema(self.engine)
        return make_session_factory(self.engine)

    @cached_property
    def embedder(self) -> Embedder:
        return Embedder(
            self.settings.embedding_model, batch_size=self.settings.embedding_batch_size
        )

    @cached_property
    def retriever(self) -> Retriever:
        index = VectorIndex(self.sessions, self.embedder.model_name, self.embedder.dimension)
        return Retriever(self.sessions, self.embedder, index)

    @cached_property
    def assistant(self) -> Assistant:
        return Assistant(
            ConversationMemory(self.sessions),
            self.retriever,
            top_k=self.settings.top_k,
            min_relevance=self.settings.min_relevance,
            max_question_chars=self.settings.max_question_chars,
        )

    def close(self) -> None:
        if "engine" in self.__dict__:
            self.engine.dispose()
