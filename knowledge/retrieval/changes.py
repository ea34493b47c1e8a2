"""What changed in the chunks table since a process's caches were built (issue #23 item 2).

Chunk rows are immutable: a page that changes gets its chunks deleted and new ones inserted
(``store.save_document``). So a process can tell what changed from ``(id, document, ordinal,
content hash)`` of every chunk, one indexed read of small columns (100k chunks: ~0.1 s),
without a log table: ids it does not hold are new, ids it holds that are gone (or whose
document or hash differ: SQLite may give a deleted chunk's id to a new one) are removed.
Only the new rows are then read in full.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from knowledge.storage.documents import Chunk

READ_BATCH_IDS = 500  # ids per IN (...) read, under every database's parameter limit


@dataclass(frozen=True)
class ChunkRows:
    """Every chunk of one model, ascending by id: its document, ordinal and a content hash."""

    ids: np.ndarray  # int64
    documents: np.ndarray  # int64
    ordinals: np.ndarray  # int64
    hashes: np.ndarray  # int64: the first 60 bits of the content hash

    def __len__(self) -> int:
        return len(self.ids)


EMPTY_ROWS = ChunkRows(*(np.zeros(0, np.int64) for _ in range(4)))


def read_chunk_rows(sessions: sessionmaker[Session], model: str) -> ChunkRows:
    with sessions() as session:
        rows = session.execute(
            select(Chunk.id, Chunk.document_id, Chunk.ordinal, Chunk.content_hash)
            .where(Chunk.model == model)
            .order_by(Chunk.id)
        ).all()
    n = len(rows)
    return ChunkRows(
        ids=np.fromiter((r[0] for r in rows), np.int64, n),
        documents=np.fromiter((r[1] for r in rows), np.int64, n),
        ordinals=np.fromiter((r[2] for r in rows), np.int64, n),
        hashes=np.fromiter((int(r[3][:15], 16) for r in rows), np.int64, n),
    )


@dataclass(frozen=True)
class AddedChunk:
    """A new chunk, everything the caches need of it."""

    id: int
    document_id: int
    ordinal: int
    heading_path: tuple[str, ...]
    anchor: str
    text: str
    embedding: bytes


@dataclass(frozen=True)
class Change:
    """From one ``ChunkRows`` to the next: ids removed, chunks added, documents touched."""

    before: ChunkRows
    after: ChunkRows
    removed: np.ndarray  # int64 ids (a changed chunk is removed, then added)
    added: tuple[AddedChunk, ...]
    documents: np.ndarray  # int64 ids of documents that lost or gained a chunk

    @property
    def size(self) -> int:
        return len(self.removed) + len(self.added)


def diff(before: ChunkRows, after: ChunkRows) -> tuple[np.ndarray, np.ndarray]:
    """(ids removed, ids added) between two tables; an id whose row differs is in both."""
    common, in_before, in_after = np.intersect1d(
        before.ids, after.ids, assume_unique=True, return_indices=True
    )
    same = (before.documents[in_before] == after.documents[in_after]) & (
        before.hashes[in_before] == after.hashes[in_after]
    )
    changed = common[~same]
    removed = np.union1d(np.setdiff1d(before.ids, after.ids, assume_unique=True), changed)
    added = np.union1d(np.setdiff1d(after.ids, before.ids, assume_unique=True), changed)
    return removed, added


def read_change(
    sessions: sessionmaker[Session], model: str, before: ChunkRows, after: ChunkRows
) -> Change:
    """The change from ``before`` to ``after``, with the added chunks read from the database.
    A chunk deleted again since ``after`` was read is left out (the next change removes it
    from ``after``)."""
    removed, added_ids = diff(before, after)
    added: list[AddedChunk] = []
    with sessions() as session:
        for start in range(0, len(added_ids), READ_BATCH_IDS):
            batch = added_ids[start : start + READ_BATCH_IDS].tolist()
            rows = session.execute(
                select(
                    Chunk.id, Chunk.document_id, Chunk.ordinal, Chunk.heading_path,
                    Chunk.anchor, Chunk.text, Chunk.embedding,
                ).where(Chunk.id.in_(batch))
            ).all()  # fmt: skip
            added += [AddedChunk(r[0], r[1], r[2], tuple(r[3]), r[4], r[5], r[6]) for r in rows]
    added.sort(key=lambda c: c.id)
    gone = np.isin(after.ids, added_ids) & ~np.isin(after.ids, [c.id for c in added])
    if gone.any():  # deleted between the two reads: not in ``after`` either
        keep = ~gone
        after = ChunkRows(after.ids[keep], after.documents[keep], after.ordinals[keep],
                          after.hashes[keep])  # fmt: skip
    touched = np.union1d(
        before.documents[np.isin(before.ids, removed)],
        np.asarray([c.document_id for c in added], dtype=np.int64),
    )
    return Change(before, after, removed, tuple(added), touched)
