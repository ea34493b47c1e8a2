"""`teambot ingest PATH`: register a local folder as a source (once) and refresh it."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy.orm import Session, sessionmaker

from knowledge.embed.embedder import TextEmbedder
from knowledge.ingest.progress import Progress
from knowledge.ingest.refresh import refresh
from knowledge.ingest.report import RunReport
from knowledge.ingest.sources import resolve_folder
from knowledge.storage import store


def ingest_folder(
    sessions: sessionmaker[Session],
    embedder: TextEmbedder,
    path: str | Path,
    *,
    name: str | None = None,
    progress: Progress | None = None,
) -> RunReport:
    """Bring the folder source for ``path`` in line with the folder; returns what happened."""
    folder = resolve_folder(path)
    source_name = name or folder.name
    with sessions.begin() as session:
        store.get_or_create_source(session, name=source_name, kind="folder", location=str(folder))
    return refresh(sessions, embedder, source_name, progress=progress)
