"""`teambot ingest PATH`: register a local folder as a source (once) and refresh it."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy.orm import Session, sessionmaker

from knowledge import store
from knowledge.embed import TextEmbedder
from knowledge.errors import SourceError
from knowledge.progress import Progress
from knowledge.refresh import refresh
from knowledge.report import RunReport


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
