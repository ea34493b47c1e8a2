"""Copy the index into another model version: same chunks, new vectors, written beside the old.

The serving version's chunk rows are the truth. For every document whose rows in the target
version differ from them (missing, or a page changed since), the target's rows are replaced by
copies embedded with the target model, one document per transaction. Nothing bumps the index
revision, so no process notices until the switch: the current index keeps serving throughout.
A chunk's text is embedded exactly as ingest embeds it, and its ``content_hash`` is the one
ingest computes, so after a switch an ingest reuses these vectors instead of embedding again.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Iterable

from sqlalchemy import delete, select
from sqlalchemy.orm import Session, sessionmaker

from knowledge.embed.embedder import TextEmbedder
from knowledge.ingest.chunk import context_line
from knowledge.ingest.pipeline import chunk_hash
from knowledge.ingest.progress import NullProgress, Progress
from knowledge.storage import store
from knowledge.storage.answers import TEAM_ANSWERS
from knowledge.storage.documents import Chunk, Document, Source
from knowledge.types import ChunkDraft

GROUP_CHUNKS = 256  # chunks embedded together before their documents are written
MAX_PASSES = 5  # catch-up passes while ingest keeps changing pages; a bound, not a target


def embed_text(kind: str, title: str, heading_path: tuple[str, ...], text: str) -> str:
    """The text ingest embedded for a stored chunk (knowledge/ingest/chunk.py, answers.py)."""
    if kind == TEAM_ANSWERS:
        return f"{title}\n\n{text}"
    context = context_line(title, heading_path)
    return f"{context}\n\n{text}" if context else text


def stored_hash(kind: str, model: str, text: str) -> str:
    """The ``content_hash`` ingest gives a chunk of ``text`` embedded by ``model``."""
    if kind == TEAM_ANSWERS:
        return hashlib.sha256(f"{model}\0{text}".encode()).hexdigest()
    return chunk_hash(model, text)


def stale_documents(session: Session, source_model: str, target_model: str) -> list[int]:
    """Documents whose chunks in ``target_model`` are not those of ``source_model``."""
    source, target = _rows(session, source_model), _rows(session, target_model)
    return sorted(d for d in source.keys() | target.keys() if source.get(d) != target.get(d))


def reembed(
    sessions: sessionmaker[Session],
    source_model: str,
    target: TextEmbedder,
    *,
    progress: Progress | None = None,
) -> int:
    """Bring ``target``'s rows in line with ``source_model``'s; returns chunks embedded.

    Passes repeat while pages change under it (at most ``MAX_PASSES``); the caller checks
    ``stale_documents`` again in the transaction that switches."""
    progress = progress or NullProgress()
    embedded = 0
    for _ in range(MAX_PASSES):
        with sessions() as session:
            stale = stale_documents(session, source_model, target.model_name)
        if not stale:
            break
        embedded += _copy(sessions, source_model, target, stale, progress)
    return embedded


def _copy(
    sessions: sessionmaker[Session],
    source_model: str,
    target: TextEmbedder,
    documents: list[int],
    progress: Progress,
) -> int:
    with sessions() as session:
        plans = _plans(session, source_model, target.model_name, documents)
        reusable = store.stored_embeddings(
            session, (h for _, _, chunks in plans for h, _, _ in chunks), target.model_name
        )
    progress.begin("embedding", sum(len(c) for _, _, c in plans))
    embedded = 0
    try:
        for group in _groups(plans):
            texts = {h: t for _, _, chunks in group for h, t, _ in chunks if h not in reusable}
            vectors = target.embed_texts(list(texts.values())) if texts else []
            reusable.update(zip(texts, map(store.vector_bytes, vectors), strict=True))
            embedded += len(texts)
            for document_id, _, chunks in group:
                with sessions.begin() as session:
                    _write(session, document_id, target.model_name, chunks, reusable)
                progress.advance(len(chunks))
    finally:
        progress.end()
    return embedded


Plan = tuple[int, str, list[tuple[str, str, ChunkDraft]]]  # document, kind, (hash, text, row) each


def _plans(session: Session, model: str, target: str, documents: list[int]) -> list[Plan]:
    """What each document's chunks become in ``target``: its hash, embedded text and row."""
    wanted = set(documents)
    rows = session.execute(
        select(Chunk.document_id, Source.kind, Document.title, Chunk.ordinal, Chunk.heading_path,
               Chunk.anchor, Chunk.text, Chunk.token_count)
        .join(Document, Chunk.document_id == Document.id)
        .join(Source, Document.source_id == Source.id)
        .where(Chunk.model == model)
        .order_by(Chunk.document_id, Chunk.ordinal)
    )  # fmt: skip
    by_document: dict[int, tuple[str, list[tuple[str, str, ChunkDraft]]]] = {}
    for document_id, kind, title, ordinal, path, anchor, text, tokens in rows:
        if document_id not in wanted:
            continue
        row = _row(ordinal, path, anchor, text, tokens)
        to_embed = embed_text(kind, title or "", row.heading_path, text)
        entry = by_document.setdefault(document_id, (kind, []))
        entry[1].append((stored_hash(kind, target, to_embed), to_embed, row))
    plans: list[Plan] = []
    for document_id in documents:  # documents gone from the source model: target rows go too
        kind, chunks = by_document.get(document_id, ("", []))
        plans.append((document_id, kind, chunks))
    return plans


def _groups(plans: list[Plan]) -> Iterable[list[Plan]]:
    group: list[Plan] = []
    for plan in plans:
        group.append(plan)
        if sum(len(p[2]) for p in group) >= GROUP_CHUNKS:
            yield group
            group = []
    if group:
        yield group


def _write(
    session: Session,
    document_id: int,
    model: str,
    chunks: list[tuple[str, str, ChunkDraft]],
    vectors: dict[str, bytes],
) -> None:
    session.execute(delete(Chunk).where(Chunk.document_id == document_id, Chunk.model == model))
    if session.get(Document, document_id) is None:  # deleted while we embedded
        return
    session.add_all(
        Chunk(document_id=document_id, ordinal=row.ordinal, heading_path=list(row.heading_path),
              anchor=row.anchor, text=row.text, content_hash=key, token_count=row.token_count,
              model=model, embedding=vectors[key])
        for key, _, row in chunks
    )  # fmt: skip


def _rows(session: Session, model: str) -> dict[int, list[ChunkDraft]]:
    found: dict[int, list[ChunkDraft]] = defaultdict(list)
    rows = session.execute(
        select(Chunk.document_id, Chunk.ordinal, Chunk.heading_path, Chunk.anchor, Chunk.text,
               Chunk.token_count)
        .where(Chunk.model == model)
        .order_by(Chunk.document_id, Chunk.ordinal)
    )  # fmt: skip
    for document_id, ordinal, path, anchor, text, tokens in rows:
        found[document_id].append(_row(ordinal, path, anchor, text, tokens))
    return found


def _row(ordinal: int, path: list[str] | None, anchor: str, text: str, tokens: int) -> ChunkDraft:
    """A stored chunk as compared across versions (what it embeds is not stored)."""
    return ChunkDraft(ordinal, tuple(path or ()), anchor, text, "", tokens)
