"""A refresh killed with SIGKILL halfway leaves a consistent database, and the next run
converges to exactly what an uninterrupted run stores."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from knowledge.crawl.crawler import CrawlLimits
from knowledge.embed.embedder import Embedder
from knowledge.ingest.refresh import refresh
from knowledge.ingest.sources import SourceSpec, add_source
from knowledge.storage.db import make_engine, make_session_factory
from knowledge.storage.documents import Chunk, Document, IngestionRun
from knowledge.storage.schema import upgrade
from tests.conftest import sqlite_url
from tests.fakes.docsite import DocSite
from tests.processes import TEAMBOT

PAGES = 24
TOPICS = ["retention", "partitions", "consumers", "snapshots", "quotas", "metrics"]


def page(i: int) -> str:
    topic = TOPICS[i % len(TOPICS)]
    return (
        f"<html><head><title>Note {i}</title></head><body><main><h1>Note {i} on {topic}</h1>"
        f"<h2 id='summary'>Summary</h2><p>Note {i} explains how Acme handles {topic} "
        f"in deployment number {i}. The limit for {topic} is {i * 7} units.</p>"
        f"<h2 id='details'>Details</h2><p>When {topic} grows past {i * 7} units, Acme logs "
        f"a warning and the operator raises the limit in acme.toml (section {topic}).</p>"
        "</main></body></html>"
    )


def database(folder: Path, location: str) -> tuple[str, sessionmaker[Session]]:
    folder.mkdir()
    url = sqlite_url(folder)
    engine = make_engine(url)
    upgrade(engine)
    sessions = make_session_factory(engine)
    with sessions.begin() as session:
        add_source(session, SourceSpec(name="kb", location=location, allow_private=True))
    return url, sessions


def stored(sessions: sessionmaker[Session]) -> list[tuple]:
    with sessions() as session:
        return [
            tuple(row)
            for row in session.execute(
                select(Document.url, Chunk.ordinal, Chunk.anchor, Chunk.text, Chunk.content_hash)
                .join(Chunk)
                .order_by(Document.url, Chunk.ordinal)
            ).all()
        ]


def document_count(sessions: sessionmaker[Session]) -> int:
    with sessions() as session:
        return session.scalar(select(func.count(Document.id))) or 0


def test_a_killed_refresh_converges_to_the_uninterrupted_result(
    tmp_path: Path, embedder: Embedder
) -> None:
    with DocSite() as site:
        links = "".join(f'<a href="p{i}.html">p{i}</a> ' for i in range(PAGES))
        site.set_page("/kb/index.html", f"<h1>Notes</h1><p>All notes: {links}</p>")
        for i in range(PAGES):
            site.set_page(f"/kb/p{i}.html", page(i))
            site.set_delay(f"/kb/p{i}.html", 0.4)
        start = site.url("/kb/index.html")
        killed_url, killed = database(tmp_path / "killed", start)

        worker = subprocess.Popen(
            [TEAMBOT, "refresh", "kb"],
            cwd=tmp_path,
            env={**os.environ, "DATABASE_URL": killed_url, "CRAWL_PER_HOST": "1"},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 120
        while document_count(killed) < 3 and time.monotonic() < deadline:
            time.sleep(0.2)
        worker.send_signal(signal.SIGKILL)
        worker.wait()
        halfway = document_count(killed)
        assert 3 <= halfway < PAGES + 1, "the run was not killed halfway"

        report = refresh(killed, embedder, "kb", limits=CrawlLimits(timeout=5))

        for i in range(PAGES):
            site.set_delay(f"/kb/p{i}.html", 0)
        _, reference = database(tmp_path / "reference", start)
        refresh(reference, embedder, "kb", limits=CrawlLimits(timeout=5))

    assert report.pages_new == PAGES + 1 - halfway
    assert stored(killed) == stored(reference)
    assert len(stored(killed)) == len(set((r[0], r[1]) for r in stored(killed)))
    with killed() as session:
        statuses = [
            r.status for r in session.scalars(select(IngestionRun).order_by(IngestionRun.id))
        ]
        vectors = dict(session.execute(select(Chunk.content_hash, Chunk.embedding)).all())
    assert statuses == ["interrupted", "ok"]
    with reference() as session:
        for chunk_hash, vector in session.execute(select(Chunk.content_hash, Chunk.embedding)):
            a, b = np.frombuffer(vector, "<f4"), np.frombuffer(vectors[chunk_hash], "<f4")
            # the killed process embeds with the default ONNX int8 backend, the reference
            # with torch: the same model, within int8's error (cosine 0.98+)
            assert float(a @ b) > 0.98
