"""Find the passages that best answer a question: dense, lexical, or both fused.

Dense retrieval (FAISS over MiniLM embeddings) finds paraphrases; BM25 finds
exact names, settings and error codes. The default fuses both rankings with
reciprocal-rank fusion, then keeps one result per page so that a single long
page does not fill every slot. Its quality is measured by `teambot eval`.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from typing import Literal

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from knowledge.embed import TextEmbedder
from knowledge.index import VectorIndex
from knowledge.lexical import LexicalIndex
from knowledge.models import Chunk, Document, Source
from knowledge.types import ScoredChunk

Method = Literal["hybrid", "dense", "bm25"]
METHODS: tuple[Method, ...] = ("hybrid", "dense", "bm25")
# Candidates taken from each ranking before fusion, filtering and one-per-page.
CANDIDATES = 50
# Candidates per wanted result, and more when filters may drop many of them.
OVERFETCH = 5
FILTERED_OVERFETCH = 20
# Reciprocal-rank fusion constant (Cormack et al. 2009): 1 / (RRF_K + rank).
RRF_K = 60


class Retriever:
    """Question text → the best chunks, each from a different page."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        embedder: TextEmbedder,
        index: VectorIndex,
        lexical: LexicalIndex | None = None,
    ) -> None:
        self._sessions = sessions
        self._embedder = embedder
        self._index = index
        self._lexical = lexical or LexicalIndex(sessions, index.model)

    def indexed_chunks(self) -> int:
        """How many chunks can be searched (after catching up with the database)."""
        self._index.sync()
        return len(self._index)

    def search(
        self,
        query: str,
        k: int,
        *,
        method: Method = "hybrid",
        sources: Collection[str] | None = None,
        keep: Callable[[ScoredChunk], bool] | None = None,
        per_page: bool = True,
    ) -> list[ScoredChunk]:
        """The ``k`` best chunks (from distinct pages unless ``per_page`` is False);
        ``sources`` and ``keep`` filter them."""
        filtering = sources is not None or keep is not None
        wanted = max(CANDIDATES, k * (FILTERED_OVERFETCH if filtering else OVERFETCH))
        vector = self._embedder.embed_query(query)
        rankings: list[list[tuple[int, float]]] = []
        if method in ("hybrid", "dense"):
            self._index.sync()
            rankings.append(self._index.search(vector, wanted))
        if method in ("hybrid", "bm25"):
            self._lexical.sync()
            rankings.append(self._lexical.search(query, wanted))
        scores = rankings[0] if len(rankings) == 1 else _fuse(rankings)
        found = self._load(dict(scores), vector)
        if sources is not None:
            found = [c for c in found if c.source_name in sources]
        if keep is not None:
            found = [c for c in found if keep(c)]
        found.sort(key=lambda c: (-c.score, c.chunk_id))
        return _best_per_page(found, k) if per_page else found[:k]

    def _load(self, scores: dict[int, float], vector: np.ndarray) -> list[ScoredChunk]:
        """The chunks with these ids, with their cosine to the question from stored vectors.

        A filtered search loads a few hundred candidates, so this reads plain columns (no
        ORM entities) and scores all vectors in one product."""
        if not scores:
            return []
        with self._sessions() as session:
            rows = session.execute(
                select(
                    Chunk.id,
                    Chunk.embedding,
                    Chunk.text,
                    Chunk.heading_path,
                    Chunk.anchor,
                    Document.title,
                    Document.url,
                    Source.name,
                    Source.kind,
                    Source.location,
                )
                .join(Document, Chunk.document_id == Document.id)
                .join(Source, Document.source_id == Source.id)
                .where(Chunk.id.in_(scores))
            ).all()
        if not rows:
            return []
        vectors = np.frombuffer(b"".join(row.embedding for row in rows), dtype="<f4")
        similarities = vectors.reshape(len(rows), -1) @ vector
        return [
            ScoredChunk(
                chunk_id=row.id,
                score=scores[row.id],
                similarity=float(similarity),
                text=row.text,
                heading_path=tuple(row.heading_path),
                anchor=row.anchor,
                document_title=row.title,
                document_url=row.url,
                source_name=row.name,
                source_kind=row.kind,
                source_location=row.location,
            )
            for row, similarity in zip(rows, similarities, strict=True)
        ]


def _fuse(rankings: list[list[tuple[int, float]]]) -> list[tuple[int, float]]:
    """Reciprocal-rank fusion: every ranking votes 1 / (RRF_K + rank) for each of its ids."""
    fused: dict[int, float] = {}
    for ranking in rankings:
        for rank, (chunk_id, _) in enumerate(ranking, start=1):
            fused[chunk_id] = fused.get(chunk_id, 0.0) + 1.0 / (RRF_K + rank)
    return sorted(fused.items(), key=lambda item: -item[1])


def _best_per_page(chunks: list[ScoredChunk], k: int) -> list[ScoredChunk]:
    seen: set[tuple[str, str]] = set()
    best: list[ScoredChunk] = []
    for chunk in chunks:
        page = (chunk.source_name, chunk.document_url)
        if page not in seen:
            seen.add(page)
            best.append(chunk)
            if len(best) == k:
                break
    return best
