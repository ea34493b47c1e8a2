"""Search with whichever embedding model version is active, switching whole at once.

`teambot tune` keeps a version's vectors as chunk rows of its own model name and flips the
active version in the model registry (knowledge/storage/models.py) in the same commit that
bumps the index revision. Each process reads the active version when it sees a new revision
(at most once a second, knowledge/retrieval/revision.py), builds that version's indexes while
its other threads keep searching the old ones, then replaces the pair (embedder, indexes) in
one assignment: a query embeds with the model whose vectors it searches, always.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypedDict, Unpack

import numpy as np
from sqlalchemy.orm import Session, sessionmaker

from knowledge.embed.embedder import TextEmbedder
from knowledge.retrieval.evidence import Evidence
from knowledge.retrieval.prefilter import Scope
from knowledge.retrieval.revision import RevisionWatch
from knowledge.retrieval.search import Method, Retriever
from knowledge.storage.models import active_version
from knowledge.types import ScoredChunk

log = logging.getLogger(__name__)

KEPT_EMBEDDERS = 2  # the active version's and the one before it (a rollback is instant)


@dataclass(frozen=True)
class ModelChoice:
    """A model version to embed with: its name (``Chunk.model``) and where its weights are
    (None: the base model, found by name)."""

    name: str
    path: Path | None = None


def active_choice(session: Session, base: str, data_dir: Path) -> ModelChoice:
    """The registry's active version if it was tuned from ``base`` (EMBEDDING_MODEL), else
    ``base`` itself: changing EMBEDDING_MODEL is never overridden by an old tuning."""
    version = active_version(session)
    if version is None or version.base != base:
        return ModelChoice(base)
    if not version.path:
        return ModelChoice(version.name)
    path = (data_dir / version.path).resolve()
    if not path.is_relative_to(data_dir.resolve()):  # a tampered row: never load from elsewhere
        log.error("model version %s is outside TEAMBOT_DATA_DIR; serving %s", version.name, base)
        return ModelChoice(base)
    return ModelChoice(version.name, path)


class ActiveModels:
    """This process's embedder for the active version, re-read when the index revision moves."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        base: str,
        data_dir: Path,
        load: Callable[[ModelChoice], TextEmbedder],
        revisions: RevisionWatch | None = None,
        *,
        fixed: bool = False,
    ) -> None:
        self._sessions = sessions
        self._fixed = fixed  # one model whatever the registry says (``load`` gives it)
        self._base = base
        self._data_dir = data_dir
        self._load = load
        self.revisions = revisions or RevisionWatch(sessions)
        self._lock = threading.Lock()
        self._stamp: str | None = None
        self._choice = ModelChoice(base)
        self._embedders: dict[str, TextEmbedder] = {}

    def choice(self, *, fresh: bool = False) -> ModelChoice:
        """The active version as of the last revision seen (``fresh``: read it now)."""
        if self._fixed:
            return self._choice
        stamp = self.revisions.stamp()
        if fresh or stamp != self._stamp:
            with self._sessions() as session:
                choice = active_choice(session, self._base, self._data_dir)
            self._choice, self._stamp = choice, stamp
        return self._choice

    def current(self, *, fresh: bool = False) -> TextEmbedder:
        """The active version's embedder (loaded lazily, kept for the version before it too)."""
        return self.embedder_for(self.choice(fresh=fresh))

    def embedder_for(self, choice: ModelChoice) -> TextEmbedder:
        embedder = self._embedders.get(choice.name)
        if embedder is not None:
            return embedder
        with self._lock:
            if choice.name not in self._embedders:
                if len(self._embedders) >= KEPT_EMBEDDERS:
                    self._embedders.pop(next(iter(self._embedders)))
                self._embedders[choice.name] = self._load(choice)
            return self._embedders[choice.name]


class ActiveEmbedder:
    """A ``TextEmbedder`` that is always the active version's: what ingest and teaching get.

    Work that records ``model_name`` beside vectors takes ``pinned()`` once, so a switch in
    the middle of it cannot store one model's vectors under another's name."""

    def __init__(self, models: ActiveModels) -> None:
        self._models = models

    def pinned(self) -> TextEmbedder:
        """The active version's embedder as the database says now, not a second ago: work
        that stores vectors must not start on a version another process just replaced."""
        return self._models.current(fresh=True)

    @property
    def model_name(self) -> str:  # type: ignore[override]
        return self._models.current().model_name

    @property
    def batch_size(self) -> int:  # type: ignore[override]
        return self._models.current().batch_size

    @property
    def dimension(self) -> int:
        return self._models.current().dimension

    @property
    def max_tokens(self) -> int:
        return self._models.current().max_tokens

    def count_tokens(self, text: str) -> int:
        return self._models.current().count_tokens(text)

    def embed_texts(
        self, texts: Sequence[str], progress: Callable[[int], None] | None = None
    ) -> np.ndarray:
        return self._models.current().embed_texts(texts, progress)

    def embed_query(self, text: str) -> np.ndarray:
        return self._models.current().embed_query(text)


class SearchOptions(TypedDict, total=False):
    """``Retriever.search``'s keyword options."""

    method: Method
    scope: Scope | None
    per_page: bool


class VersionedRetriever:
    """``Retriever``'s searches, each run whole on the active version's embedder and indexes."""

    def __init__(
        self, models: ActiveModels, make: Callable[[TextEmbedder, RevisionWatch], Retriever]
    ) -> None:
        self._models = models
        self._make = make
        self._lock = threading.Lock()
        self._serving: tuple[str, Retriever] | None = None

    def current(self) -> Retriever:
        """The active version's retriever; while one thread builds a new version's indexes,
        the others keep searching the version they had."""
        choice = self._models.choice()
        serving = self._serving
        if serving is not None and serving[0] == choice.name:
            return serving[1]
        if not self._lock.acquire(blocking=serving is None):
            return serving[1]  # type: ignore[index]  (serving is set when not blocking)
        try:
            serving = self._serving
            if serving is None or serving[0] != choice.name:
                embedder = self._models.embedder_for(choice)  # loads it: seconds
                retriever = self._make(embedder, self._models.revisions)
                retriever.indexed_chunks()  # builds its indexes before any query uses them
                embedder.embed_query("warm-up")  # opens its model before any query waits on it
                switched = serving is not None  # the first load is no news on every `ask`
                (log.info if switched else log.debug)("embedding model %s now serves", choice.name)
                self._serving = serving = (choice.name, retriever)
        finally:
            self._lock.release()
        return serving[1]

    def search(self, query: str, k: int, **options: Unpack[SearchOptions]) -> list[ScoredChunk]:
        return self.current().search(query, k, **options)

    def search_with_evidence(
        self, query: str, k: int, **options: Unpack[SearchOptions]
    ) -> tuple[list[ScoredChunk], Evidence]:
        return self.current().search_with_evidence(query, k, **options)

    def section_before(self, chunk_id: int) -> str:
        return self.current().section_before(chunk_id)

    def indexed_chunks(self) -> int:
        return self.current().indexed_chunks()

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        return self.current().embed_texts(texts)
