"""The worker process: APScheduler runs one refresh job per source, at a fixed interval.

Sources added while the worker runs are picked up within ``RESCAN_MINUTES``;
removed ones lose their job. A failing refresh is logged and retried at the
next interval; it never stops the worker.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from apscheduler.schedulers.blocking import BlockingScheduler
from sqlalchemy import select

from bot.runtime import Runtime
from knowledge.errors import KnowledgeError
from knowledge.models import Source
from workers.refresh import refresh_source

log = logging.getLogger(__name__)

RESCAN_MINUTES = 1
JOB_PREFIX = "refresh:"


def _refresh(runtime: Runtime, name: str) -> None:
    try:
        refresh_source(runtime.sessions, runtime.embedder, name)
    except KnowledgeError as exc:
        log.error("refresh of %s failed: %s", name, exc)


def sync_jobs(scheduler: BlockingScheduler, runtime: Runtime) -> None:
    """One interval job per source in the database: add the new ones, drop the removed."""
    with runtime.sessions() as session:
        names = set(session.scalars(select(Source.name)))
    scheduled = {
        j.id.removeprefix(JOB_PREFIX) for j in scheduler.get_jobs() if j.id.startswith(JOB_PREFIX)
    }
    for name in names - scheduled:
        scheduler.add_job(
            _refresh,
            "interval",
            args=(runtime, name),
            id=JOB_PREFIX + name,
            minutes=runtime.settings.refresh_interval_minutes,
            next_run_time=datetime.now(UTC),
            coalesce=True,
            max_instances=1,
        )
        log.info("scheduled %s every %d min", name, runtime.settings.refresh_interval_minutes)
    for name in scheduled - names:
        scheduler.remove_job(JOB_PREFIX + name)
        log.info("unscheduled removed source %s", name)


def run_forever(runtime: Runtime) -> None:
    """Block, refreshing sources on schedule, until interrupted."""
    scheduler = BlockingScheduler(timezone=UTC)
    scheduler.add_job(
        sync_jobs,
        "interval",
        args=(scheduler, runtime),
        minutes=RESCAN_MINUTES,
        next_run_time=datetime.now(UTC),
        id="sync-jobs",
    )
    log.info("worker started; Ctrl-C stops it")
    try:
        scheduler.start()
    except (KeyboardInterrupt, SystemExit):
        log.info("worker stopped")
