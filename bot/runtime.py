"""Wires settings into the objects a command needs; every heavy piece is built on first use.

Its imports are made on first use too, inside each property: `teambot config` needs the
settings alone, and must not pay for SQLAlchemy, FAISS or the crawler to print them.
"""

from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sqlalchemy import Engine
    from sqlalchemy.orm import Session, sessionmaker

    from bot.core import Assistant
    from bot.delivery.inbox import Inbox
    from bot.llm import Router
    from bot.metrics import Metrics
    from bot.settings import Settings
    from knowledge.crawl.crawler import CrawlLimits
    from knowledge.embed.embedder import TextEmbedder
    from knowledge.retrieval.revision import RevisionWatch
    from knowledge.retrieval.search import Retriever
    from knowledge.retrieval.versioned import ActiveModels, ModelChoice, VersionedRetriever


class Runtime:
    """One process's database, embedder, index and assistant, built lazily from settings."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    @cached_property
    def engine(self) -> Engine:
        from knowledge.storage.db import make_engine

        return make_engine(self.settings.database_url)

    @cached_property
    def sessions(self) -> sessionmaker[Session]:
        """Sessions on a database whose schema is current (SQLite is upgraded on first use)."""
        from knowledge.storage.db import make_session_factory
        from knowledge.storage.schema import ensure_schema

        ensure_schema(self.engine)
        return make_session_factory(self.engine)

    @cached_property
    def models(self) -> ActiveModels:
        """The active embedding model version (`teambot tune`), followed as the index is."""
        from knowledge.retrieval.versioned import ActiveModels

        s = self.settings
        return ActiveModels(self.sessions, s.embedding_model, s.data_dir, self.load_embedder)

    def load_embedder(self, choice: ModelChoice) -> TextEmbedder:
        """The embedder of a model version; a tuned version's folder is rebuilt from the
        database first when this process's TEAMBOT_DATA_DIR lacks it."""
        from knowledge.embed.embedder import load_embedder
        from knowledge.embed.stored import ensure_folder

        if choice.path is not None:
            ensure_folder(self.sessions, choice.name, self.settings.embedding_model, choice.path)

        return load_embedder(
            choice.name,
            backend=self.settings.embedding_backend,
            batch_size=self.settings.embedding_batch_size,
            # A tuned version keeps its ONNX export in its own folder under TEAMBOT_DATA_DIR.
            cache_dir=choice.path or self.settings.embedding_cache_dir,
            model_dir=choice.path,
        )

    @cached_property
    def embedder(self) -> TextEmbedder:
        """Always the active model version's embedder (ingest after `teambot tune` uses it)."""
        from knowledge.retrieval.versioned import ActiveEmbedder

        return ActiveEmbedder(self.models)

    @cached_property
    def retriever(self) -> VersionedRetriever:
        from knowledge.retrieval.versioned import ActiveEmbedder, ActiveModels, VersionedRetriever

        models = self.models
        if not isinstance(self.embedder, ActiveEmbedder):  # a test's or bench's own model object
            s = self.settings
            models = ActiveModels(self.sessions, s.embedding_model, s.data_dir,
                                  lambda _: self.embedder, fixed=True)  # fmt: skip
        return VersionedRetriever(models, self._retriever_for)

    def _retriever_for(self, embedder: TextEmbedder, revisions: RevisionWatch) -> Retriever:
        from knowledge.retrieval.index import VectorIndex
        from knowledge.retrieval.search import Retriever
        from knowledge.retrieval.snapshot import SnapshotStore

        snapshots = SnapshotStore(
            self.settings.data_dir, self._database_identity(), embedder.model_name
        )
        index = VectorIndex(
            self.sessions,
            embedder.model_name,
            embedder.dimension,
            snapshots=snapshots,
            revisions=revisions,
        )
        return Retriever(self.sessions, embedder, index)

    @cached_property
    def process_id(self) -> str:
        """``host:pid:nonce``: who owns this process's claims, leases and heartbeat."""
        from knowledge.storage.lease import new_owner

        return new_owner()

    @cached_property
    def inbox(self) -> Inbox:
        from bot.delivery.inbox import Inbox

        return Inbox(self.sessions, self.process_id)

    @cached_property
    def metrics(self) -> Metrics:
        from bot.metrics import Metrics

        return Metrics(self.sessions)

    @cached_property
    def router(self) -> Router:
        from bot.llm import build_router

        return build_router(self.settings, self.sessions, on_error=self.metrics.llm_error)

    @cached_property
    def assistant(self) -> Assistant:
        from bot.core import Assistant
        from bot.memory import ConversationMemory

        return Assistant(
            ConversationMemory(self.sessions),
            self.retriever,
            self.router,
            top_k=self.settings.top_k,
            min_relevance=self.settings.min_relevance,
            min_confidence=self.settings.min_confidence,
            max_question_chars=self.settings.max_question_chars,
            method=self.settings.retrieval_method,
            metrics=self.metrics,
        )

    @property
    def crawl_limits(self) -> CrawlLimits:
        from knowledge.crawl.crawler import CrawlLimits

        s = self.settings
        return CrawlLimits(
            max_bytes=int(s.crawl_max_page_mb * 2**20),
            max_sitemap_bytes=int(s.crawl_max_sitemap_mb * 2**20),
            max_robots_bytes=int(s.crawl_max_robots_kb * 2**10),
            max_redirects=s.crawl_max_redirects,
            timeout=s.crawl_timeout_seconds,
            deadline=s.crawl_deadline_seconds,
            per_host=s.crawl_per_host,
        )

    def _database_identity(self) -> str:
        """Names the database for snapshot files: an absolute path for SQLite, else the URL."""
        url = self.engine.url
        if url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:"):
            return f"sqlite:{Path(url.database).resolve()}"
        return url.render_as_string(hide_password=True)

    def close(self) -> None:
        if "engine" in self.__dict__:
            self.engine.dispose()
