"""The worker: shared scheduled jobs per source, refreshes on request, kept in step with the
sources table while it runs."""

from __future__ import annotations

import re
import socket
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from apscheduler.schedulers.background import BackgroundScheduler
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session, sessionmaker

from bot.retention import forget_expired
from bot.runtime import Runtime
from bot.settings import Settings
from knowledge.embed.embedder import Embedder
from knowledge.errors import SourceError
from knowledge.ingest.local import ingest_folder
from knowledge.ingest.refresh import refresh
from knowledge.storage import coordination
from knowledge.storage.coordination import JOB_PREFIX
from knowledge.storage.db import utcnow
from knowledge.storage.documents import IngestionRun, Source
from knowledge.storage.processes import Heartbeat, scheduler_jobs
from tests.conftest import sqlite_url
from tests.processes import TeambotProcess
from tests.test_cli import run
from workers.jobstore import SharedJobStore
from workers.scheduler import SHARED, Worker, build_scheduler, sync_jobs


def folder_source(corpus: Path, name: str, **fields: Any) -> Source:
    return Source(name=name, kind="folder", location=str(corpus), options={}, **fields)


def paused_scheduler(runtime: Runtime) -> BackgroundScheduler:
    """A started scheduler that runs nothing: its jobs are read from and written to SQL."""
    scheduler = build_scheduler(runtime, BackgroundScheduler)
    scheduler.start(paused=True)
    return scheduler


def test_refresh_reingests_a_folder_source_by_name(
    sessions: sessionmaker[Session], embedder: Embedder, corpus: Path
) -> None:
    ingest_folder(sessions, embedder, corpus, name="zephyr")
    (corpus / "new.md").write_text("# New page\n\nFresh content about queues.\n")

    report = refresh(sessions, embedder, "zephyr")

    assert (report.pages_new, report.pages_unchanged) == (1, 4)
    with pytest.raises(SourceError, match="No source named 'nope'"):
        refresh(sessions, embedder, "nope")


def test_sync_jobs_follows_the_sources_table_in_the_shared_job_store(
    tmp_path: Path, corpus: Path
) -> None:
    runtime = Runtime(Settings(database_url=sqlite_url(tmp_path), refresh_interval_minutes=30))
    with runtime.sessions.begin() as session:
        session.add_all([folder_source(corpus, "a"), folder_source(corpus, "b")])
    scheduler = paused_scheduler(runtime)

    sync_jobs(scheduler, runtime)
    assert sorted(j.id for j in scheduler.get_jobs()) == [JOB_PREFIX + "a", JOB_PREFIX + "b"]
    assert scheduler.get_job(JOB_PREFIX + "a").trigger.interval.total_seconds() == 30 * 60
    with runtime.sessions() as session:  # stored in our database, not in this process
        assert session.scalar(select(scheduler_jobs.c.id).where(scheduler_jobs.c.id == "refresh:b"))

    with runtime.sessions.begin() as session:
        session.delete(session.scalars(select(Source).where(Source.name == "a")).one())
    sync_jobs(scheduler, runtime)
    assert [j.id for j in scheduler.get_jobs()] == [JOB_PREFIX + "b"]
    stored_next = scheduler.get_job(JOB_PREFIX + "b").next_run_time
    scheduler.shutdown()

    restarted = paused_scheduler(runtime)  # a restarted worker resumes the stored schedule
    assert restarted.get_job(JOB_PREFIX + "b").next_run_time == stored_next
    restarted.shutdown()
    runtime.close()


def test_each_tick_of_a_shared_job_is_claimed_by_exactly_one_worker(tmp_path: Path) -> None:
    runtime = Runtime(Settings(database_url=sqlite_url(tmp_path)))
    scheduler = paused_scheduler(runtime)
    due = datetime.now(UTC) - timedelta(seconds=5)
    scheduler.add_job(print, "interval", minutes=10, id="tick", next_run_time=due, jobstore=SHARED)
    one, other = SharedJobStore(engine=runtime.engine), SharedJobStore(engine=runtime.engine)
    for store in (one, other):
        store.start(scheduler, SHARED)
    now = datetime.now(UTC)

    claims = [len(one.get_due_jobs(now)), len(other.get_due_jobs(now))]

    assert claims == [1, 0]
    next_run = one.get_next_run_time()
    assert next_run is not None and next_run > now  # moved on: nobody else runs this tick
    # A worker that died between claiming and running leaves the stored time ahead of the
    # pickled state; the job is still claimable once that time comes.
    with runtime.engine.begin() as connection:
        connection.execute(update(scheduler_jobs).values(next_run_time=now.timestamp() - 1))
    assert len(other.get_due_jobs(now)) == 1
    scheduler.shutdown()
    runtime.close()


def test_the_worker_process_refreshes_sources_then_stops_on_sigint(
    sessions: sessionmaker[Session], embedder: Embedder, corpus: Path, tmp_path: Path
) -> None:
    ingest_folder(sessions, embedder, corpus, name="zephyr")
    worker = TeambotProcess("worker", cwd=tmp_path, env={"DATABASE_URL": sqlite_url(tmp_path)})
    try:
        worker.wait_for(r"refreshed zephyr", timeout=120)
    finally:
        assert worker.stop() == 0, worker.log()
    with sessions() as session:
        runs = session.scalars(select(IngestionRun).order_by(IngestionRun.id)).all()
        assert session.scalar(select(func.count()).select_from(Heartbeat)) == 0  # it left
    assert [r.status for r in runs] == ["ok", "ok"]
    assert runs[1].counts["pages_unchanged"] == 4
    assert runs[1].worker and runs[1].worker.split(":")[1] == str(worker.pid)


def test_a_running_worker_follows_new_sources_and_admin_requests_within_seconds(
    sessions: sessionmaker[Session], embedder: Embedder, corpus: Path, tmp_path: Path
) -> None:
    ingest_folder(sessions, embedder, corpus, name="zephyr")
    url = sqlite_url(tmp_path)
    env = {"DATABASE_URL": url, "TEAMBOT_ADMINS": ""}
    worker = TeambotProcess("worker", cwd=tmp_path, env=env)
    try:
        worker.wait_for(r"refreshed zephyr", timeout=120)  # on start: interval sources run now
        with sessions.begin() as session:  # an admin adds a source on a 2-second schedule
            session.add(folder_source(corpus, "late", schedule="every 2"))
        added = time.monotonic()
        mark = len(worker.lines)
        worker.wait_for(r"refreshed late", timeout=30, after=mark)
        picked_up = time.monotonic() - added
        worker.wait_for(r"refreshing late \(scheduled\)", timeout=30, after=len(worker.lines))

        mark = len(worker.lines)
        asked = time.monotonic()
        queued = run("admin", "sources", "refresh", "zephyr", db_url=url, cwd=tmp_path, env=env)
        assert queued.returncode == 0, queued.stderr
        assert "Queued a refresh of 'zephyr'" in queued.stdout
        worker.wait_for(r"refreshing zephyr \(asked for by an admin\)", timeout=20, after=mark)
        worker.wait_for(r"refreshed zephyr", timeout=60, after=mark)
        handed_over = time.monotonic() - asked

        status = run("admin", "status", db_url=url, cwd=tmp_path, env=env)
        assert f"Workers: 1 running: {socket.gethostname()}:{worker.pid}:" in status.stdout
        assert "late (folder, every 2s)" in status.stdout
        assert re.search(r"zephyr \(folder, default schedule\).*\n  next run: 20", status.stdout)
    finally:
        assert worker.stop() == 0, worker.log()
    # "within seconds": the heartbeat polls every 2 s; the CLI call itself takes ~2 s.
    assert picked_up < 15 and handed_over < 20, (picked_up, handed_over)
    with sessions() as session:
        assert (
            session.scalar(select(Source.refresh_requested_at).where(Source.name == "zephyr"))
            is None
        )


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
            session.add(folder_source(corpus, name, schedule=schedule, enabled=enabled))
    scheduler = paused_scheduler(runtime)

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
    scheduler.shutdown()
    runtime.close()


def test_an_expired_lease_from_another_machine_is_orphaned_and_a_busy_request_waits(
    tmp_path: Path, corpus: Path
) -> None:
    runtime = Runtime(Settings(database_url=sqlite_url(tmp_path)))
    soon = utcnow() + timedelta(minutes=2)
    with runtime.sessions.begin() as session:
        for name, expires in [("stale", utcnow() - timedelta(seconds=1)), ("live", soon)]:
            owner = f"elsewhere:{name}:1"
            session.add(folder_source(corpus, name, lease_owner=owner, lease_expires_at=expires))
    with runtime.sessions() as session:
        assert coordination.orphaned_sources(session) == [("stale", "elsewhere:stale:1")]

    with runtime.sessions.begin() as session:
        coordination.request_refresh(session, "live", by="slack:U1")
    with runtime.sessions.begin() as session:
        [request] = coordination.claim_requests(session)
    with runtime.sessions.begin() as session:
        assert coordination.claim_requests(session) == []  # claimed once, by one worker
    worker = Worker(runtime, paused_scheduler(runtime), forget_expired)
    worker._run_one_off(request.name, "asked for by an admin", request)  # busy elsewhere

    with runtime.sessions() as session:  # so the request waits for the lease to come free
        assert session.scalar(select(Source.refresh_requested_at).where(Source.name == "live"))
    worker.scheduler.shutdown()
    runtime.close()


def test_a_refresh_asked_for_in_chat_leaves_a_notice_where_it_was_asked(
    tmp_path: Path, corpus: Path, embedder: Embedder
) -> None:
    runtime = Runtime(Settings(database_url=sqlite_url(tmp_path)))
    runtime.__dict__["embedder"] = embedder
    where = {"platform": "slack", "channel": "C1", "thread": "1.5"}
    with runtime.sessions.begin() as session:
        session.add(folder_source(corpus, "zephyr"))
    with runtime.sessions.begin() as session:
        coordination.request_refresh(session, "zephyr", by="slack:U1", notify=where)
    with runtime.sessions.begin() as session:
        [request] = coordination.claim_requests(session)
    worker = Worker(runtime, paused_scheduler(runtime), forget_expired)

    worker._run_one_off(request.name, "asked for by an admin", request)

    with runtime.sessions.begin() as session:
        [notice] = coordination.claim_notices(session, {"slack"})
        assert coordination.claim_notices(session, {"slack"}) == []  # posted once
    assert (notice.channel, notice.thread, notice.user_id) == ("C1", "1.5", None)
    assert notice.text.startswith("Refreshed. Source 'zephyr': 4 pages seen — 4 new,")
    worker.scheduler.shutdown()
    runtime.close()
