"""The worker process: APScheduler runs one refresh job per enabled source, on its schedule.

A source's schedule is ``every <seconds>`` or ``cron <expression>`` (set by
``teambot sources add --every/--cron``), else every REFRESH_INTERVAL_MINUTES.
Sources added, changed or removed while the worker runs are picked up within
``RESCAN_MINUTES``. A failing refresh is logged and retried at the next run;
it never stops the worker. Two workers never refresh one source at once: the
refresh takes the source's lease in the database. Once a day it forgets what
is older than TEAMBOT_RETENTION_DAYS (bot/retention.py).
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from apscheduler.schedulers.base import BaseScheduler
from apscheduler.schedulers.blocking import BlockingScheduler
from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger
from sqlalchemy import select

from bot.retention import forget_expired
from bot.runtime import Runtime
from knowledge.errors import KnowledgeError
from knowledge.lease import SourceBusyError
from knowledge.models import Source
from knowledge.refresh import refresh

log = logging.getLogger(__name__)

RESCAN_MINUTES = 1
RETENTION_HOURS = 24
JOB_PREFIX = "refresh:"


def trigger_for(schedule: str | None, default_minutes: int) -> BaseTrigger:
    """The APScheduler trigger for a stored schedule string."""
    if schedule and schedule.startswith("cron "):
        return CronTrigger.from_crontab(schedule.removeprefix("cron "), timezone=UTC)
    if schedule and schedule.startswith("every "):
        return IntervalTrigger(seconds=int(schedule.removeprefix("every ")), timezone=UTC)
    return IntervalTrigger(minutes=default_minutes, timezone=UTC)


def _refresh(runtime: Runtime, name: str) -> None:
    try:
        report = refresh(runtime.sessions, runtime.embedder, name, limits=runtime.crawl_limits)
    except SourceBusyError as exc:
        log.info("skipped %s: %s", name, exc)
    except KnowledgeError as exc:
        log.error("refresh of %s failed: %s", name, exc)
    else:
        log.info("refreshed %s: %s", name, report.counts())


def _forget_expired(runtime: Runtime) -> None:
    days = runtime.settings.retention_days
    log.info(
        "retention (%s): %s",
        f"{days} days" if days else "keep",
        forget_expired(runtime.sessions, days),
    )


def sync_jobs(scheduler: BaseScheduler, runtime: Runtime) -> None:
    """One job per enabled source: add new ones, reschedule changed ones, drop removed ones."""
    with runtime.sessions() as session:
        wanted = dict(
            session.execute(select(Source.name, Source.schedule).where(Source.enabled)).all()
        )
    jobs = {
        j.id.removeprefix(JOB_PREFIX): j
        for j in scheduler.get_jobs()
        if j.id.startswith(JOB_PREFIX)
    }
    default = runtime.settings.refresh_interval_minutes
    for name, schedule in wanted.items():
        label = schedule or f"every {default * 60} (default)"
        job = jobs.get(name)
        if job is None:
            trigger = trigger_for(schedule, default)
            first = datetime.now(UTC) if isinstance(trigger, IntervalTrigger) else None
            scheduler.add_job(
                _refresh,
                trigger,
                args=(runtime, name),
                id=JOB_PREFIX + name,
                name=label,
                coalesce=True,
                max_instances=1,
                **({"next_run_time": first} if first else {}),
            )
            log.info("scheduled %s: %s", name, label)
        elif job.name != label:
            scheduler.modify_job(job.id, name=label)
            scheduler.reschedule_job(job.id, trigger=trigger_for(schedule, default))
            log.info("rescheduled %s: %s", name, label)
    for name in set(jobs) - set(wanted):
        scheduler.remove_job(JOB_PREFIX + name)
        log.info("unscheduled %s (removed or disabled)", name)


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
    scheduler.add_job(
        _forget_expired,
        "interval",
        args=(runtime,),
        hours=RETENTION_HOURS,
        next_run_time=datetime.now(UTC),
        id="retention",
        coalesce=True,
    )
    log.info("worker started; Ctrl-C stops it")
    try:
        scheduler.start()
    except (KeyboardInterrupt, SystemExit):
        log.info("worker stopped")
