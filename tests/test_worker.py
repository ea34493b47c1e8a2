"""The worker: one refresh job per source, kept in step with the sources table."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from apscheduler.schedulers.blocking import BlockingScheduler
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from bot.runtime import Runtime
from bot.settings import Settings
from knowledge.embed import Embedder
from knowledge.errors import SourceError
from knowledge.ingest import ingest_folder
from knowledge.models import IngestionRun, Source
from knowledge.refresh import refresh
from tests.conftest import sqlite_url
from workers.scheduler import JOB_PREFIX, sync_jobs


def test_refresh_reingests_a_folder_source_by_name(
    sessions: sessionmaker[Session], embedder: Embedder, corpus: Path
) -> None:
    ingest_folder(sessions, embedder, corpus, name="zephyr")
    (corpus / "new.md").write_text("# New page\n\nFresh content about queues.\n")

    report = refresh(sessions, embedder, "zephyr")

    assert (report.pages_new, report.pages_unchanged) == (1, 4)
    with pytest.raises(SourceError, match="No source named 'nope'"):
        refresh(sessions, embedder, "nope")


def test_sync_jobs_follows_the_sources_table(tmp_path: Path, corpus: Path) -> None:
    runtime = Runtime(Settings(database_url=sqlite_url(tmp_path), refresh_interval_minutes=30))
    with runtime.sessions.begin() as session:
        session.add_all(
            [
                Source(name="a", kind="folder", location=str(corpus), options={}),
                Source(name="b", kind="folder", location=str(corpus), options={}),
            ]
        )
    scheduler = BlockingScheduler()

    sync_jobs(scheduler, runtime)
    assert sorted(j.id for j in scheduler.get_jobs()) == [JOB_PREFIX + "a", JOB_PREFIX + "b"]
    assert scheduler.get_job(JOB_PREFIX + "a").trigger.interval.total_seconds() == 30 * 60

    with runtime.sessions.begin() as session:
        session.delete(session.scalars(select(Source).where(Source.name == "a")).one())
    sync_jobs(scheduler, runtime)
    assert [j.id for j in scheduler.get_jobs()] == [JOB_PREFIX + "b"]
    runtime.close()


def test_the_worker_process_refreshes_sources_then_stops_on_sigint(
    sessions: sessionmaker[Session], embedder: Embedder, corpus: Path, tmp_path: Path
) -> None:
    ingest_folder(sessions, embedder, corpus, name="zephyr")
    db_url = sqlite_url(tmp_path)  # the same file the `sessions` fixture uses
    worker = subprocess.Popen(
        [str(Path(sys.executable).parent / "teambot"), "worker"],
        cwd=tmp_path,
        env={**os.environ, "DATABASE_URL": db_url},
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 120
        seen = []
        while time.monotonic() < deadline:
            line = worker.stderr.readline()  # type: ignore[union-attr]
            seen.append(line)
            if "refreshed zephyr" in line or not line:
                break
        assert any("refreshed zephyr" in line for line in seen), "".join(seen)
    finally:
        worker.send_signal(signal.SIGINT)
        worker.wait(timeout=30)
    assert worker.returncode == 0
    with sessions() as session:
        runs = session.scalars(select(IngestionRun).order_by(IngestionRun.id)).all()
    assert [r.status for r in runs] == ["ok", "ok"]
    assert runs[1].counts["pages_unchanged"] == 4


def test_sync_jobs_uses_each_sources_schedule_and_follows_changes(
    tmp_path: Path, corpus: Path
) -> None:
    runtime = Runtime(Settings(database_url=sqlite_url(tmp_path)))
    with runtime.sessions.begin() as session:
        for name, schedule, enabled in [
            ("hourly", "every 3600", True),
            ("nightly", "cron 0 3 * * *", True),
            ("off", None, False),
        ]:
            session.add(
                Source(
                    name=name,
                    kind="folder",
                    location=str(corpus),
                    options={},
                    schedule=schedule,
                    enabled=enabled,
                )
            )
    scheduler = BlockingScheduler()

    sync_jobs(scheduler, runtime)
    hourly = scheduler.get_job(JOB_PREFIX + "hourly")
    nightly = scheduler.get_job(JOB_PREFIX + "nightly")
    assert scheduler.get_job(JOB_PREFIX + "off") is None
    assert hourly.trigger.interval.total_seconds() == 3600
    assert str(nightly.trigger.fields[5]) == "3"  # the hour field of "0 3 * * *"

    with runtime.sessions.begin() as session:
        session.scalars(select(Source).where(Source.name == "hourly")).one().schedule = "every 600"
    sync_jobs(scheduler, runtime)
    assert scheduler.get_job(JOB_PREFIX + "hourly").trigger.interval.total_seconds() == 600
    runtime.close()
