"""Run one source's ingestion by its kind; the scheduler and (later) admin commands call this."""

from __future__ import annotations

import logging

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from knowledge.embed import Embedder
from knowledge.errors import SourceError
from knowledge.ingest import IngestReport, ingest_folder
from knowledge.models import Source

log = logging.getLogger(__name__)


def refresh_source(sessions: sessionmaker[Session], embedder: Embedder, name: str) -> IngestReport:
    """Bring the source called ``name`` up to date with where its documents live."""
    with sessions() as session:
        source = session.scalar(select(Source).where(Source.name == name))
        if source is None:
            raise SourceError(f"No source named {name!r}; see `teambot sources list`.")
        kind, location = source.kind, source.location
    if kind != "folder":
        raise SourceError(
            f"Source {name!r} is of kind {kind!r}, which this teambot cannot refresh."
        )
    report = ingest_folder(sessions, embedder, location, name=name)
    log.info("refreshed %s: %s", name, report.counts())
    return report
