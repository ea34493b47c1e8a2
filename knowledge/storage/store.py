"""Reading and writing the knowledge tables; each function works inside the caller's session."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

import numpy as np
from sqlalchemy import ColumnElement, delete, event, func, select, true, update
from sqlalchemy.orm import Session

from knowledge.errors import SourceError
from knowledge.storage.db import utcnow
from knowledge.storage.documents import Chunk, Document, IndexState, IngestionRun, Source
from knowledge.storage.models import active_version, kept_models
from knowledge.types import ChunkDraft


def get_or_create_source(session: Session, *, name: str, kind: str, location: str) -> Source:
    """The source called ``name``; created if new, refused if the name is taken elsewhere."""
    source = session.scalar(select(Source).where(Source.name == name))
    if source is None:
        source = Source(name=name, kind=kind, location=location, options={})
        session.add(source)
        session.flush()
        return source
    if (source.kind, source.location) != (kind, location):
        raise SourceError(
            f"A source named {name!r} already exists for {source.location}. "
            "Choose another name with --name."
        )
    return source


@dataclass(frozen=True)
class KnownDocument:
    """What a run needs to know about a stored document to skip work on it."""

    content_hash: str
    etag: str | None
    last_modified: str | None
    sitemap_lastmod: datetime | None
    missing_runs: int
    links: list[str] | None


def known_documents(session: Session, source_id: int) -> dict[str, KnownDocument]:
    """url → what is stored about every document of the source."""
    rows = session.execute(
        select(
            Document.url,
            Document.content_hash,
            Document.etag,
            Document.last_modified,
            Document.sitemap_lastmod,
            Document.missing_runs,
            Document.links,
        ).where(Document.source_id == source_id)
    )
    return {url: KnownDocument(*rest) for url, *rest in rows.all()}


def update_document_metadata(
    session: Session,
    *,
    source_id: int,
    url: str,
    etag: str | None,
    last_modified: str | None,
    sitemap_lastmod: datetime | None,
    links: list[str] | None,
) -> None:
    """Record new validators and links for a document whose content did not change."""
    session.execute(
        update(Document)
        .where(Document.source_id == source_id, Document.url == url)
        .values(
            etag=etag,
            last_modified=last_modified,
            sitemap_lastmod=sitemap_lastmod,
            links=links,
            fetched_at=utcnow(),
        )
    )


def settle_missing(session: Session, source_id: int, present: set[str], grace_runs: int) -> int:
    """After a complete run: reset documents seen, count a missed run for the others, and
    delete those missed ``grace_runs`` runs in a row. Returns how many were deleted."""
    missing_run = Document.source_id == source_id
    if present:
        missing_run = missing_run & Document.url.not_in(present)
        session.execute(
            update(Document)
            .where(Document.source_id == source_id, Document.url.in_(present))
            .values(missing_runs=0)
        )
    session.execute(
        update(Document).where(missing_run).values(missing_runs=Document.missing_runs + 1)
    )
    gone = session.scalars(
        select(Document.url).where(missing_run, Document.missing_runs >= grace_runs)
    ).all()
    return delete_documents(session, source_id, gone)


def stored_embeddings(session: Session, hashes: Iterable[str], model: str) -> dict[str, bytes]:
    """Embeddings already computed by ``model`` for any of these chunk hashes (from any page)."""
    wanted = list(set(hashes))
    found: dict[str, bytes] = {}
    for start in range(0, len(wanted), 500):  # stay under bound-parameter limits
        rows = session.execute(
            select(Chunk.content_hash, Chunk.embedding).where(
                Chunk.content_hash.in_(wanted[start : start + 500]), Chunk.model == model
            )
        )
        found.update(rows.all())
    return found


def save_document(
    session: Session,
    *,
    source_id: int,
    url: str,
    title: str,
    content_hash: str,
    etag: str | None,
    last_modified: str | None,
    sitemap_lastmod: datetime | None,
    links: list[str] | None,
    drafts: Sequence[ChunkDraft],
    chunk_hashes: Sequence[str],
    embeddings: Sequence[bytes],
    model: str,
    web_url: str | None = None,
) -> None:
    """Insert or replace one document and all its chunks, and bump the index revision."""
    document = session.scalar(
        select(Document).where(Document.source_id == source_id, Document.url == url)
    )
    if document is None:
        document = Document(source_id=source_id, url=url)
        session.add(document)
    else:
        # Rows of the active model version and of the one rollback returns to stay (the
        # registry's background re-embed brings the other up to date); any other model's go.
        kept = [name for name in kept_models(session) if name != model]
        session.execute(
            delete(Chunk).where(Chunk.document_id == document.id, Chunk.model.not_in(kept))
        )
    document.title = title
    document.content_hash = content_hash
    document.etag = etag
    document.last_modified = last_modified
    document.sitemap_lastmod = sitemap_lastmod
    document.links = links
    document.web_url = web_url
    document.missing_runs = 0
    document.status = "ok"
    document.error = None
    document.fetched_at = utcnow()
    session.flush()
    session.add_all(
        Chunk(
            document_id=document.id,
            ordinal=draft.ordinal,
            heading_path=list(draft.heading_path),
            anchor=draft.anchor,
            text=draft.text,
            content_hash=chunk_hash,
            token_count=draft.token_count,
            model=model,
            embedding=embedding,
        )
        for draft, chunk_hash, embedding in zip(drafts, chunk_hashes, embeddings, strict=True)
    )
    bump_revision(session)


def rename_document(
    session: Session,
    source_id: int,
    old_url: str,
    new_url: str,
    *,
    last_modified: str | None,
    web_url: str | None,
) -> int:
    """Move a document to ``new_url``, its chunks and their vectors untouched (a file renamed
    in a repository); returns how many chunks it kept."""
    document = session.scalar(
        select(Document).where(Document.source_id == source_id, Document.url == old_url)
    )
    if document is None:
        return 0
    document.url = new_url
    document.last_modified = last_modified
    document.web_url = web_url
    document.missing_runs = 0
    document.fetched_at = utcnow()
    bump_revision(session)  # citations read the page's url from the caches
    return session.scalar(select(func.count(Chunk.id)).where(Chunk.document_id == document.id))


def delete_documents(session: Session, source_id: int, urls: Iterable[str]) -> int:
    """Remove these documents of the source with their chunks; returns how many went."""
    urls = list(urls)
    if not urls:
        return 0
    result = session.execute(
        delete(Document).where(Document.source_id == source_id, Document.url.in_(urls))
    )
    if result.rowcount:
        bump_revision(session)
    return result.rowcount or 0


def bump_revision(session: Session) -> None:
    """Tell every process that chunks changed (their in-memory index is now stale)."""
    session.execute(
        update(IndexState).where(IndexState.id == 1).values(revision=IndexState.revision + 1)
    )
    session.info[_BUMPS_REVISION] = True


# Processes read the index revision at most once a second (knowledge/retrieval/revision.py);
# a commit of this process that moved it is counted here, so the process's own changes are
# searchable at once, without waiting for that check.
_BUMPS_REVISION = "teambot.bumps_revision"
_local_bumps = [0]


def local_revision_bumps() -> int:
    """How many commits of this process have moved the index revision."""
    return _local_bumps[0]


@event.listens_for(Session, "after_commit")
def _count_local_bump(session: Session) -> None:
    if session.info.pop(_BUMPS_REVISION, False):
        _local_bumps[0] += 1


@event.listens_for(Session, "after_soft_rollback")
def _forget_local_bump(session: Session, previous_transaction: object) -> None:
    session.info.pop(_BUMPS_REVISION, None)


def index_revision(session: Session) -> int:
    return session.scalar(select(IndexState.revision).where(IndexState.id == 1)) or 0


def index_stamp(session: Session) -> str:
    """The revision and the time it was set: unique even across a re-created database."""
    revision, updated_at = session.execute(
        select(IndexState.revision, IndexState.updated_at).where(IndexState.id == 1)
    ).one()
    return f"r{revision}-{updated_at:%Y%m%d%H%M%S%f}"


def serving_chunks(session: Session) -> int:
    """Chunks of the serving model version (a tuned version's copies are not counted twice)."""
    return session.scalar(select(func.count(Chunk.id)).where(_serving(session))) or 0


def _serving(session: Session) -> ColumnElement[bool]:
    active = active_version(session)
    return true() if active is None else Chunk.model == active.name


def chunk_count(session: Session, model: str) -> int:
    return session.scalar(select(func.count(Chunk.id)).where(Chunk.model == model)) or 0


def window_count(session: Session, model: str) -> int:
    """Pairs of neighbouring chunks on one page (the index holds a window vector for each)."""
    documents = session.scalar(
        select(func.count(func.distinct(Chunk.document_id))).where(Chunk.model == model)
    )
    return chunk_count(session, model) - (documents or 0)


def vector_bytes(vector: np.ndarray) -> bytes:
    return np.asarray(vector, dtype="<f4").tobytes()


@dataclass(frozen=True)
class SourceSummary:
    name: str
    kind: str
    location: str
    documents: int
    chunks: int
    last_run: IngestionRun | None
    schedule: str | None = None
    enabled: bool = True
    refreshing_by: str | None = None  # the lease owner while a refresh runs
    requested_at: datetime | None = None  # an admin asked for a refresh, not yet started


def source_summaries(session: Session) -> list[SourceSummary]:
    """Every source with its document and chunk counts and its latest run."""
    documents = dict(
        session.execute(select(Document.source_id, func.count()).group_by(Document.source_id)).all()
    )
    chunks = dict(
        session.execute(
            select(Document.source_id, func.count(Chunk.id))
            .join(Chunk, Chunk.document_id == Document.id)
            .where(_serving(session))
            .group_by(Document.source_id)
        ).all()
    )
    summaries = []
    for source in session.scalars(select(Source).order_by(Source.name)):
        last_run = session.scalar(
            select(IngestionRun)
            .where(IngestionRun.source_id == source.id)
            .order_by(IngestionRun.id.desc())
            .limit(1)
        )
        summaries.append(
            SourceSummary(
                name=source.name,
                kind=source.kind,
                location=source.location,
                documents=documents.get(source.id, 0),
                chunks=chunks.get(source.id, 0),
                last_run=last_run,
                schedule=source.schedule,
                enabled=source.enabled,
                refreshing_by=source.lease_owner,
                requested_at=source.refresh_requested_at,
            )
        )
    return summaries
