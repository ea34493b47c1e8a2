"""Ingest a local folder: read, extract, chunk, compare hashes, embed what changed, store.

Nothing unchanged is embedded twice: a document whose extracted content hash
is the same is skipped, and inside a changed document every chunk whose text
was embedded before (by the same model) reuses the stored vector. Each
document is written in its own transaction, so a run that stops halfway
leaves whole documents behind and the next run finishes the job.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy.orm import Session, sessionmaker

from knowledge import store
from knowledge.chunk import chunk_page
from knowledge.embed import Embedder
from knowledge.errors import SourceError
from knowledge.extract import SUPPORTED_SUFFIXES, extract
from knowledge.models import IngestionRun, utcnow
from knowledge.progress import NullProgress, Progress
from knowledge.types import ChunkDraft

log = logging.getLogger(__name__)

MAX_FILE_BYTES = 10 * 1024 * 1024
# Bumped whenever extraction or chunking changes, so every document is re-chunked.
PIPELINE_VERSION = "1"
# Documents are embedded together until this many chunks wait, then stored one by one.
EMBED_GROUP_CHUNKS = 256


@dataclass(frozen=True)
class SkippedFile:
    path: str
    reason: str


@dataclass
class IngestReport:
    """What a run saw and did; the CLI prints it, ingestion_runs stores it."""

    source: str
    files_seen: int = 0
    documents_new: int = 0
    documents_changed: int = 0
    documents_unchanged: int = 0
    documents_removed: int = 0
    chunks_embedded: int = 0
    chunks_reused: int = 0
    skipped: list[SkippedFile] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)

    def counts(self) -> dict[str, int]:
        return {
            "files_seen": self.files_seen,
            "documents_new": self.documents_new,
            "documents_changed": self.documents_changed,
            "documents_unchanged": self.documents_unchanged,
            "documents_removed": self.documents_removed,
            "files_skipped": len(self.skipped),
            "chunks_embedded": self.chunks_embedded,
            "chunks_reused": self.chunks_reused,
        }


@dataclass(frozen=True)
class _Planned:
    url: str
    title: str
    content_hash: str
    drafts: list[ChunkDraft]
    chunk_hashes: list[str]
    is_new: bool


def resolve_folder(path: str | Path) -> Path:
    """The absolute folder to ingest, or a SourceError that says what to pass instead."""
    folder = Path(path).expanduser()
    if not folder.exists():
        raise SourceError(f"No such folder: {path}. Pass the path of a folder of documents.")
    if not folder.is_dir():
        raise SourceError(
            f"{path} is a file; teambot ingests folders. Pass the folder that contains it."
        )
    return folder.resolve()


def ingest_folder(
    sessions: sessionmaker[Session],
    embedder: Embedder,
    path: str | Path,
    *,
    name: str | None = None,
    progress: Progress | None = None,
) -> IngestReport:
    """Bring the source for ``path`` in line with the folder; returns what happened."""
    folder = resolve_folder(path)
    progress = progress or NullProgress()
    source_name = name or folder.name
    with sessions.begin() as session:
        source = store.get_or_create_source(
            session, name=source_name, kind="folder", location=str(folder)
        )
        run = IngestionRun(source_id=source.id)
        session.add(run)
        session.flush()
        source_id, run_id = source.id, run.id
    report = IngestReport(source=source_name)
    try:
        _run(sessions, embedder, folder, source_id, report, progress)
    except BaseException as exc:
        _finish_run(sessions, run_id, report, status="failed", error=str(exc) or type(exc).__name__)
        raise
    _finish_run(sessions, run_id, report, status="partial" if report.skipped else "ok")
    return report


def _run(
    sessions: sessionmaker[Session],
    embedder: Embedder,
    folder: Path,
    source_id: int,
    report: IngestReport,
    progress: Progress,
) -> None:
    started = time.perf_counter()
    with sessions() as session:
        known = store.document_hashes(session, source_id)
    files = sorted(_candidate_files(folder, report))
    report.files_seen = len(files) + len(report.skipped)

    planned: list[_Planned] = []
    readable: set[str] = set()
    progress.begin("Reading", len(files))
    for file in files:
        url = file.relative_to(folder).as_posix()
        plan = _plan(file, url, embedder, known, report)
        if plan is not None or url in known:
            readable.add(url)
        if plan is not None:
            planned.append(plan)
        progress.advance()
    progress.end()
    report.timings["read_extract_chunk"] = time.perf_counter() - started

    started = time.perf_counter()
    removed = set(known) - readable  # a known file that cannot be read now keeps its old text
    if removed:
        with sessions.begin() as session:
            report.documents_removed = store.delete_documents(session, source_id, removed)

    _embed_and_store(sessions, embedder, source_id, planned, report, progress)
    report.timings["embed_store"] = time.perf_counter() - started


def _candidate_files(folder: Path, report: IngestReport) -> Iterator[Path]:
    """Files under ``folder`` teambot can read; the rest are recorded as skipped."""
    for root, dirs, names in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in names:
            if name.startswith("."):
                continue
            file = Path(root, name)
            if file.suffix.lower() in SUPPORTED_SUFFIXES:
                yield file
            else:
                rel = file.relative_to(folder).as_posix()
                report.skipped.append(SkippedFile(rel, "not a format teambot reads"))


def _plan(
    file: Path, url: str, embedder: Embedder, known: dict[str, str], report: IngestReport
) -> _Planned | None:
    """Read and chunk one file; None when it is unchanged or unreadable."""
    text = _read_text(file, url, report)
    if text is None:
        return None
    page = extract(text, suffix=file.suffix.lower(), fallback_title=file.stem.replace("_", " "))
    content_hash = _digest([PIPELINE_VERSION, embedder.model_name, page.title, page.text])
    if known.get(url) == content_hash:
        report.documents_unchanged += 1
        return None
    drafts = chunk_page(page, embedder.count_tokens, embedder.max_tokens)
    if not drafts:
        report.skipped.append(SkippedFile(url, "no text found in it"))
        return None
    return _Planned(
        url=url,
        title=page.title,
        content_hash=content_hash,
        drafts=drafts,
        chunk_hashes=[_digest([embedder.model_name, d.embed_text]) for d in drafts],
        is_new=url not in known,
    )


def _read_text(file: Path, url: str, report: IngestReport) -> str | None:
    try:
        if file.stat().st_size > MAX_FILE_BYTES:
            report.skipped.append(SkippedFile(url, f"larger than {MAX_FILE_BYTES // 2**20} MB"))
            return None
        data = file.read_bytes()
    except OSError as exc:
        report.skipped.append(SkippedFile(url, f"cannot be read ({exc.strerror})"))
        return None
    if b"\x00" in data[:8192]:
        report.skipped.append(SkippedFile(url, "binary, not text"))
        return None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        report.skipped.append(
            SkippedFile(url, f"not UTF-8 (byte {exc.start}); re-save it as UTF-8")
        )
        return None


def _embed_and_store(
    sessions: sessionmaker[Session],
    embedder: Embedder,
    source_id: int,
    planned: list[_Planned],
    report: IngestReport,
    progress: Progress,
) -> None:
    with sessions() as session:
        reusable = store.stored_embeddings(
            session, (h for p in planned for h in p.chunk_hashes), embedder.model_name
        )
    to_embed = {h for p in planned for h in p.chunk_hashes} - set(reusable)
    progress.begin("Embedding", len(to_embed))
    group: list[_Planned] = []
    for plan in planned:
        group.append(plan)
        if sum(len(p.drafts) for p in group) >= EMBED_GROUP_CHUNKS:
            _store_group(sessions, embedder, source_id, group, reusable, report, progress)
            group = []
    _store_group(sessions, embedder, source_id, group, reusable, report, progress)
    progress.end()


def _store_group(
    sessions: sessionmaker[Session],
    embedder: Embedder,
    source_id: int,
    group: list[_Planned],
    reusable: dict[str, bytes],
    report: IngestReport,
    progress: Progress,
) -> None:
    """Embed the chunks of these documents that have no vector yet, then store each document."""
    texts: dict[str, str] = {}
    for plan in group:
        for draft, chunk_hash in zip(plan.drafts, plan.chunk_hashes, strict=True):
            if chunk_hash not in reusable:
                texts.setdefault(chunk_hash, draft.embed_text)
    if texts:
        vectors = embedder.embed_texts(list(texts.values()), progress=progress.advance)
        reusable.update(zip(texts, map(store.vector_bytes, vectors), strict=True))
        report.chunks_embedded += len(texts)
    for plan in group:
        with sessions.begin() as session:
            store.save_document(
                session,
                source_id=source_id,
                url=plan.url,
                title=plan.title,
                content_hash=plan.content_hash,
                drafts=plan.drafts,
                chunk_hashes=plan.chunk_hashes,
                embeddings=[reusable[h] for h in plan.chunk_hashes],
                model=embedder.model_name,
            )
        if plan.is_new:
            report.documents_new += 1
        else:
            report.documents_changed += 1
    report.chunks_reused += sum(len(p.drafts) for p in group) - len(texts)


def _finish_run(
    sessions: sessionmaker[Session],
    run_id: int,
    report: IngestReport,
    *,
    status: str,
    error: str | None = None,
) -> None:
    errors = [{"path": s.path, "error": s.reason} for s in report.skipped]
    if error:
        errors.append({"path": "", "error": error})
    with sessions.begin() as session:
        run = session.get_one(IngestionRun, run_id)
        run.status = status
        run.finished_at = utcnow()
        run.counts = report.counts()
        run.timings = {k: round(v, 3) for k, v in report.timings.items()}
        run.errors = errors


def _digest(parts: list[str]) -> str:
    return hashlib.sha256(json.dumps(parts, ensure_ascii=False).encode()).hexdigest()
