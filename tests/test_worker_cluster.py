"""Two `teambot worker` processes on one PostgreSQL: each scheduled refresh runs on exactly
one of them, and when that one is killed mid-run (kill -9) the other takes the source over."""

from __future__ import annotations

import time
from pathlib import Path

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session, sessionmaker

from knowledge.ingest.sources import SourceSpec, add_source
from knowledge.storage.db import make_session_factory
from knowledge.storage.documents import Document, IngestionRun, Source
from tests.conftest import postgres_schema_url
from tests.fakes.docsite import DocSite
from tests.processes import TeambotProcess

PAGES = 10
PAGE_DELAY = 0.5  # seconds per page, one page at a time: a run takes about 5 s
LEASE_SECONDS = 6


def docs_site() -> DocSite:
    site = DocSite()
    links = "".join(f'<li><a href="/docs/p{i}.html">Page {i}</a></li>' for i in range(PAGES))
    site.set_page("/docs/index.html", f"<html><body><h1>Index</h1><ul>{links}</ul></body></html>")
    for i in range(PAGES):
        body = f"<h1>Page {i}</h1><p>Topic {i}: how the queue handles retries, case {i}.</p>"
        site.set_page(f"/docs/p{i}.html", f"<html><body>{body}</body></html>")
        site.set_delay(f"/docs/p{i}.html", PAGE_DELAY)
    return site


def test_one_worker_runs_each_refresh_and_another_takes_over_after_a_kill(
    pg_engine: Engine, pg_schema: str, tmp_path: Path
) -> None:
    sessions: sessionmaker[Session] = make_session_factory(pg_engine)
    env = {
        "DATABASE_URL": postgres_schema_url(pg_schema),
        "REFRESH_LEASE_SECONDS": str(LEASE_SECONDS),
        "CRAWL_PER_HOST": "1",
    }
    with docs_site() as site:
        with sessions.begin() as session:
            spec = SourceSpec(
                name="docs", location=site.url("/docs/index.html"), every="1h", allow_private=True
            )
            add_source(session, spec)
        workers = [TeambotProcess("worker", cwd=tmp_path, env=env) for _ in range(2)]
        try:
            for worker in workers:
                worker.wait_for(r"worker \S+ started")
            deadline = time.monotonic() + 120
            while len([r for r in site.requests if r.path.startswith("/docs/p")]) < 3:
                assert time.monotonic() < deadline, [w.log() for w in workers]
                time.sleep(0.05)
            with sessions() as session:
                holder = session.scalar(select(Source.lease_owner).where(Source.name == "docs"))
            assert holder is not None
            first = next(w for w in workers if holder.split(":")[1] == str(w.pid))
            other = next(w for w in workers if w is not first)
            # The scheduled tick went to one worker only: the other never started it.
            assert first.count(r"refreshing docs \(scheduled\)") == 1
            assert other.count(r"refreshing docs") == 0, other.log()

            first.kill()
            killed_at = time.monotonic()
            other.wait_for(r"refreshing docs \(taking over from .*\)", timeout=LEASE_SECONDS + 10)
            took_over = time.monotonic() - killed_at
            other.wait_for(r"refreshed docs", timeout=120)
        finally:
            for worker in workers:
                worker.stop()

    assert took_over <= LEASE_SECONDS + 5
    with sessions() as session:
        runs = session.scalars(select(IngestionRun).order_by(IngestionRun.id)).all()
        pages = session.scalars(select(Document.url)).all()
    assert [r.status for r in runs] == ["interrupted", "ok"]
    assert runs[0].worker == holder and runs[1].worker.split(":")[1] == str(other.pid)
    assert runs[0].finished_at <= runs[1].started_at  # never two refreshes at once
    assert len(pages) == PAGES + 1
