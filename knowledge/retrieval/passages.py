"""What a search needs to rank and cite a chunk, held in memory: pages and passages.

Loading the candidates of every question from SQL (a few hundred rows through the ORM,
embeddings included) was the largest cost of a search (issue #23: 17 of 41 ms). A
``Passages`` snapshot holds, for every chunk of one embedding model, its page, heading path,
anchor and text, read once per index revision along with the BM25 index that is built from
the same rows. A search then turns ids into ``ScoredChunk`` results without a round trip, and
every result of one search comes from one consistent snapshot.

Memory: the text of every chunk, about its size in the database (~1 KB a chunk), and the
pages once each.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from knowledge.retrieval.changes import Change
from knowledge.storage.documents import Chunk, Document, Source
from knowledge.types import ScoredChunk

LOAD_BATCH_ROWS = 5_000


@dataclass(frozen=True)
class PageInfo:
    """A document as citations show it."""

    document_id: int
    title: str
    url: str
    source_name: str
    source_kind: str
    source_location: str
    web_url: str | None = None  # where a reader opens it, when not ``url`` (a git file)


# A chunk: (its document id, heading path, anchor, text). A plain tuple: 100k of them cost a
# third of what dataclass instances would.
PassageRow = tuple[int, tuple[str, ...], str, str]


@dataclass(frozen=True)
class Passages:
    """Chunk id → page and text, for every chunk of one model at one index revision."""

    pages: dict[int, PageInfo]
    chunks: dict[int, PassageRow]

    def __len__(self) -> int:
        return len(self.chunks)

    def page_of(self, chunk_id: int) -> PageInfo:
        return self.pages[self.chunks[chunk_id][0]]

    def changed(self, pages: dict[int, PageInfo], change: Change) -> Passages:
        """A new snapshot: these pages, without the removed chunks, with the added ones (this
        one is left as it is: searches may be reading it)."""
        chunks = dict(self.chunks)
        for chunk_id in change.removed.tolist():
            chunks.pop(chunk_id, None)
        for c in change.added:
            if c.document_id in pages:
                chunks[c.id] = (c.document_id, c.heading_path, c.anchor, c.text)
        return Passages(pages, chunks)

    def scored(self, chunk_id: int, score: float, similarity: float) -> ScoredChunk:
        document_id, heading_path, anchor, text = self.chunks[chunk_id]
        page = self.pages[document_id]
        return ScoredChunk(
            chunk_id=chunk_id,
            score=score,
            similarity=similarity,
            text=text,
            heading_path=heading_path,
            anchor=anchor,
            document_title=page.title,
            document_url=page.url,
            source_name=page.source_name,
            source_kind=page.source_kind,
            source_location=page.source_location,
            document_web_url=page.web_url,
        )


EMPTY = Passages({}, {})


def load_pages(sessions: sessionmaker[Session]) -> dict[int, PageInfo]:
    """Every document as citations show it (a few thousand rows: read again on each change)."""
    with sessions() as session:
        rows = session.execute(
            select(
                Document.id, Document.title, Document.url, Source.name, Source.kind,
                Source.location, Document.web_url,
            ).join(Source, Document.source_id == Source.id)
        ).all()  # fmt: skip
    return {row[0]: PageInfo(*row) for row in rows}


def load_passages(sessions: sessionmaker[Session], model: str) -> Passages:
    """Every chunk of ``model`` with its page, read in one pass (chunks in id order)."""
    pages = load_pages(sessions)
    chunks: dict[int, PassageRow] = {}
    with sessions() as session:
        rows = session.execute(
            select(Chunk.id, Chunk.document_id, Chunk.heading_path, Chunk.anchor, Chunk.text)
            .where(Chunk.model == model)
            .order_by(Chunk.id)
            .execution_options(yield_per=LOAD_BATCH_ROWS)
        )
        for chunk_id, document_id, heading_path, anchor, text in rows:
            if document_id in pages:  # a page added after the pages were read: next revision
                chunks[chunk_id] = (document_id, tuple(heading_path), anchor, text)
    return Passages(pages, chunks)


def known(passages: Passages, ids: Iterable[int]) -> list[int]:
    """The ids that ``passages`` holds, in their order (a cache one revision behind the other
    may return ids this one does not know)."""
    return [i for i in ids if i in passages.chunks]
