"""Find the passages that best answer a question.

Dense retrieval over the FAISS index, then one result per page so that a
single long page does not fill every slot.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from knowledge.embed import Embedder
from knowledge.index import VectorIndex
from knowledge.models import Chunk, Document, Source
from knowledge.types import ScoredChunk

# How many neighbours to fetch per wanted result before de-duplicating by page.
OVERFETCH = 5


class Retriever:
    """Question text → the best chunks, each from a different page."""

    def __init__(
        self, sessions: sessionmaker[Session], embedder: Embedder, index: VectorIndex
    ) -> None:
        self._sessions = sessions
        self._embedder = embedder
        self._index = index

    def indexed_chunks(self) -> int:
        """How many chunks can be searched (after catching up with the database)."""
        self._index.sync()
        return len(self._index)

    def search(self, query: str, k: int) -> list[ScoredChunk]:
        self._index.sync()
        hits = self._index.search(self._embedder.embed_query(query), k * OVERFETCH)
        if not hits:
            return []
        scores = dict(hits)
        with self._sessions() as session:
            rows = session.execute(
                select(Chunk, Document, Source)
                .join(Document, Chunk.document_id == Document.id)
                .join(Source, Document.source_id == Source.id)
                .where(Chunk.id.in_(scores))
            ).all()
            found = [
                ScoredChunk(
                    chunk_id=chunk.id,
                    score=scores[chunk.id],
                    text=chunk.text,
                    heading_path=tuple(chunk.heading_path),
                    anchor=chunk.anchor,
                    document_title=document.title,
                    document_url=document.url,
                    source_name=source.name,
                    source_kind=source.kind,
                    source_location=source.location,
                )
                for chunk, document, source in rows
            ]
        found.sort(key=lambda c: (-c.score, c.chunk_id))
        return _best_per_page(found, k)


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
