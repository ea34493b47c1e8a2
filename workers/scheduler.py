"""`teambot worker`: APScheduler refreshes each enabled source on its schedule.

A source's schedule is ``every <seconds>`` or ``cron <expression>`` (set by
``sources add --every/--cron``), else every REFRESH_INTERVAL_MINUTES. Its job
lives in APScheduler's SQL job store in our database, shared by every worker:
a restarted worker resumes the stored schedule, missed runs coalesce into one,
and each tick is claimed by exactly one worker (workers/jobstore.py).

Every HEARTBEAT_SECONDS each worker also, on its own: records a heartbeat,
re-reads the sources table when it changed (added, removed, rescheduled
sources take effect within seconds), runs refreshes admins asked for, and
takes over sources whose refresh was abandoned by a worker that died (its
lease expired). Two refreshes of one source never overlap: the refresh takes
the source's lease. A failing refresh is logged and retried at the next run.
Once a day one worker forgets what is older than TEAMBOT_RETENTION_DAYS. When
TEAMBOT_DIGEST_CHANNEL is set, one worker posts the gaps digest there on
TEAMBOT_DIGEST_SCHEDULE (a shared job too, so once per tick however many workers run).

workers/ never imports bot/: what a worker needs from the process that runs it is
``WorkerDeps`` (bot.runtime.Runtime is one) and the retention and digest functions it is
handed.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.jobstores.base import ConflictingIdError
from apscheduler.jobstores.memory import MemoryJobStore
from apscheduler.schedulers.base import BaseScheduler
from apscheduler.schedulers.blocking import BlockingScheduler
from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger
from sqlalchemy import Engine, select
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker

from knowledge.crawl.crawler import CrawlLimits
from knowledge.embed.embedder import TextEmbedder
from knowledge.errors import KnowledgeError
from knowledge.ingest.refresh import refresh
from knowledge.ingest.slack_client import slack_access
from knowledge.storage import coordination
from knowledge.storage.coordination import JOB_PREFIX
from knowledge.storage.documents import Source
from knowledge.storage.lease import SourceBusyError, new_owner
from workers import jobs
from workers.jobstore import SharedJobStore

if TYPE_CHECKING:
    from pydantic import SecretStr

log = logging.getLogger(__name__)

RETENTION_JOB = "retention"
DIGEST_JOB = "digest"
RETENTION_HOURS = 24
SHARED = "shared"  # the SQL job store every worker reads
LOCAL = "default"  # this process's own housekeeping and one-off runs
REFRESHES = "refreshes"  # the executor refreshes run on, apart from housekeeping
REFRESH_THREADS = 2  # embedding is CPU-bound: more at once only slows each down

# Deletes what is older than its days (None: keep) and says what it deleted.
Retention = Callable[[sessionmaker[Session], int | None], object]
# Leaves the gaps digest for the chat target ``slack:C…``/``discord:…`` and says what it left.
Digest = Callable[[sessionmaker[Session], TextEmbedder, str], object]


class WorkerSettings(Protocol):
    slack_bot_token: SecretStr  # a Slack channel's history is read with it
    slack_api_url: str
    refresh_lease_seconds: int
    refresh_interval_minutes: int
    retention_days: int | None
    digest_channel: str
    digest_schedule: str
    data_dir: Path  # git sources keep their clones here


class WorkerDeps(Protocol):
    """What a worker uses of the process that runs it."""

    @property
    def engine(self) -> Engine: ...
    @property
    def sessions(self) -> sessionmaker[Session]: ...
    @property
    def embedder(self) -> TextEmbedder: ...
    @property
    def crawl_limits(self) -> CrawlLimits: ...
    @property
    def settings(self) -> WorkerSettings: ...


def trigger_for(schedule: str | None, default_minutes: int) -> BaseTrigger:
    """The APScheduler trigger for a stored schedule string."""
    if schedule and schedule.startswith("cron "):
        return CronTrigger.from_crontab(schedule.removeprefix("cron "), timezone=UTC)
    if schedule and schedule.startswith("every "):
        return IntervalTrigger(seconds=int(schedule.removeprefix("every ")), timezone=UTC)
    return IntervalTrigger(minutes=default_minutes, timezone=UTC)


def build_scheduler(
    runtime: WorkerDeps, kind: type[BaseScheduler] = BlockingScheduler
) -> BaseScheduler:
    """A scheduler on the shared SQL job store, with refreshes on their own threads."""
    return kind(
        jobstores={SHARED: SharedJobStore(engine=runtime.engine), LOCAL: MemoryJobStore()},
        executors={
            LOCAL: ThreadPoolExecutor(2),
            REFRESHES: ThreadPoolExecutor(REFRESH_THREADS),
        },
        timezone=UTC,
    )


class Worker:
    """One worker process: its scheduler, its identity and the refreshes it is running."""

    def __init__(
        self,
        runtime: WorkerDeps,
        scheduler: BaseScheduler,
        retention: Retention,
        digest: Digest | None = None,
    ) -> None:
        self.runtime = runtime
        self.scheduler = scheduler
        self._retention = retention
        self._digest = digest
        self.id = new_owner()
        self._lock = threading.Lock()
        self._active: set[str] = set()  # submitted here and not finished
        self._sources_seen: tuple[int, datetime | None] | None = None

    def refresh(self, name: str, why: str) -> str | None:
        """Refresh ``name``; what came of it in a sentence, or None when another process holds
        the source (nothing was done)."""
        with self._lock:
            self._active.add(name)
        runtime, settings = self.runtime, self.runtime.settings
        slack = slack_access(settings.slack_bot_token.get_secret_value(), settings.slack_api_url)
        log.info("refreshing %s (%s)", name, why)
        try:
            report = refresh(
                runtime.sessions,
                runtime.embedder,
                name,
                limits=runtime.crawl_limits,
                lease_seconds=runtime.settings.refresh_lease_seconds,
                data_dir=runtime.settings.data_dir,
                slack=slack,
            )
        except SourceBusyError as exc:
            log.info("skipped %s: %s", name, exc)
            return None
        except KnowledgeError as exc:
            log.error("refresh of %s failed: %s", name, exc)
            return f"The refresh of {name!r} failed: {exc}"
        except DBAPIError as exc:  # its lease expires; a worker then takes the source over
            log.error("refresh of %s failed, the database is unavailable: %s", name, exc)
            return f"The refresh of {name!r} was interrupted (database unavailable); it resumes."
        finally:
            with self._lock:
                self._active.discard(name)
        log.info("refreshed %s: %s", name, report.counts())
        return "Refreshed. " + report.summary()

    def forget_expired(self) -> None:
        days = self.runtime.settings.retention_days
        result = self._retention(self.runtime.sessions, days)
        log.info("retention (%s): %s", f"{days} days" if days else "keep", result)

    def post_digest(self) -> None:
        """Leave the gaps digest for TEAMBOT_DIGEST_CHANNEL (nothing when it is not set)."""
        target = self.runtime.settings.digest_channel
        if not target or self._digest is None:  # unset here, or a worker started without one
            log.info("gaps digest not posted: %s", "no digest function" if target else
                     "no TEAMBOT_DIGEST_CHANNEL")  # fmt: skip
            return
        result = self._digest(self.runtime.sessions, self.runtime.embedder, target)
        log.info("digest left for %s: %s", target, str(result).splitlines()[0])

    def poll(self) -> None:
        """Heartbeat, follow the sources table, run what admins asked for, adopt orphans."""
        sessions = self.runtime.sessions
        with self._lock:
            active = set(self._active)
        with sessions.begin() as session:
            coordination.beat(session, self.id, coordination.WORKER, active)
            seen = coordination.sources_fingerprint(session)
        if seen != self._sources_seen:
            self.sync_jobs()
            self._sources_seen = seen
        with sessions.begin() as session:
            claimed = coordination.claim_requests(session)
            for request in claimed:
                if request.name in active:  # running here now: again once it is done
                    coordination.requeue(session, request)
        for request in claimed:
            if request.name not in active:
                self._run_now(request.name, "asked for by an admin", request)
        with sessions() as session:
            orphans = coordination.orphaned_sources(session)
        for name, holder in orphans:
            if name not in active:
                self._run_now(name, f"taking over from {holder}, which stopped")

    def _run_now(
        self, name: str, why: str, request: coordination.RefreshRequest | None = None
    ) -> None:
        with self._lock:
            if name in self._active:
                return
            self._active.add(name)
        self.scheduler.add_job(
            self._run_one_off,
            args=(name, why, request),
            jobstore=LOCAL,
            executor=REFRESHES,
            misfire_grace_time=None,
        )

    def _run_one_off(
        self, name: str, why: str, request: coordination.RefreshRequest | None
    ) -> None:
        outcome = self.refresh(name, why)
        if request is None:
            return
        with self.runtime.sessions.begin() as session:
            if outcome is None:  # busy elsewhere: ask again later
                coordination.requeue(session, request)
            elif request.notify:  # tell the admin who asked, where they asked
                coordination.leave_notice(session, request.notify, outcome)

    def sync_jobs(self) -> None:
        """One shared job per enabled source: add new ones, reschedule changed, drop removed."""
        sync_jobs(self.scheduler, self.runtime)
        # Already stored by an earlier run or another worker: its schedule stands.
        with contextlib.suppress(ConflictingIdError):
            self.scheduler.add_job(
                jobs.forget_expired,
                "interval",
                hours=RETENTION_HOURS,
                next_run_time=datetime.now(UTC),
                id=RETENTION_JOB,
                jobstore=SHARED,
                coalesce=True,
                misfire_grace_time=None,
            )
        sync_digest_job(self.scheduler, self.runtime.settings)

    def leave(self) -> None:
        with self.runtime.sessions.begin() as session:
            coordination.leave(session, self.id)


def sync_jobs(scheduler: BaseScheduler, runtime: WorkerDeps, jobstore: str = SHARED) -> None:
    """Make the job store's refresh jobs match the enabled sources and their schedules."""
    with runtime.sessions() as session:
        wanted = dict(
            session.execute(select(Source.name, Source.schedule).where(Source.enabled)).all()
        )
    stored = {
        j.id.removeprefix(JOB_PREFIX): j
        for j in scheduler.get_jobs(jobstore)
        if j.id.startswith(JOB_PREFIX)
    }
    default = runtime.settings.refresh_interval_minutes
    for name, schedule in wanted.items():
        label = schedule or f"every {default * 60} (default)"
        job = stored.get(name)
        if job is None:
            trigger = trigger_for(schedule, default)
            first = datetime.now(UTC) if isinstance(trigger, IntervalTrigger) else None
            try:
                scheduler.add_job(
                    jobs.refresh_source,
                    trigger,
                    args=(name,),
                    id=JOB_PREFIX + name,
                    name=label,
                    jobstore=jobstore,
                    executor=REFRESHES,
                    coalesce=True,
                    max_instances=1,
                    misfire_grace_time=None,
                    **({"next_run_time": first} if first else {}),
                )
            except ConflictingIdError:
                continue  # another worker scheduled it a moment ago
            log.info("scheduled %s: %s", name, label)
        elif job.name != label:
            scheduler.modify_job(job.id, jobstore, name=label)
            scheduler.reschedule_job(job.id, jobstore, trigger=trigger_for(schedule, default))
            log.info("rescheduled %s: %s", name, label)
    for name in set(stored) - set(wanted):
        scheduler.remove_job(JOB_PREFIX + name, jobstore)
        log.info("unscheduled %s (removed or disabled)", name)


def sync_digest_job(
    scheduler: BaseScheduler, settings: WorkerSettings, jobstore: str = SHARED
) -> None:
    """The digest's shared job on TEAMBOT_DIGEST_SCHEDULE while TEAMBOT_DIGEST_CHANNEL is set,
    rescheduled when the schedule changes, removed when the channel is unset."""
    job = scheduler.get_job(DIGEST_JOB, jobstore)
    if not settings.digest_channel:
        if job is not None:
            scheduler.remove_job(DIGEST_JOB, jobstore)
            log.info("unscheduled the gaps digest (no TEAMBOT_DIGEST_CHANNEL)")
        return
    label = "cron " + settings.digest_schedule
    trigger = trigger_for(label, 0)
    if job is None:
        with contextlib.suppress(ConflictingIdError):  # another worker added it a moment ago
            scheduler.add_job(jobs.post_digest, trigger, id=DIGEST_JOB, name=label,
                              jobstore=jobstore, coalesce=True, max_instances=1,
                              misfire_grace_time=3600)  # fmt: skip
            log.info("scheduled the gaps digest: %s", label)
    elif job.name != label:
        scheduler.modify_job(DIGEST_JOB, jobstore, name=label)
        scheduler.reschedule_job(DIGEST_JOB, jobstore, trigger=trigger)
        log.info("rescheduled the gaps digest: %s", label)


def start_worker(
    runtime: WorkerDeps,
    retention: Retention,
    kind: type[BaseScheduler] = BlockingScheduler,
    digest: Digest | None = None,
) -> Worker:
    """A worker whose scheduler is set up and bound; ``worker.scheduler.start()`` runs it
    (blocking for `teambot worker`, on a thread for `teambot serve --worker`)."""
    runtime.sessions  # noqa: B018 - upgrades an SQLite schema before the job store reads it
    worker = Worker(runtime, build_scheduler(runtime, kind), retention, digest)
    jobs.bind(worker)
    worker.scheduler.add_job(
        worker.poll,
        "interval",
        seconds=coordination.HEARTBEAT_SECONDS,
        next_run_time=datetime.now(UTC),
        id="poll",
        jobstore=LOCAL,
        coalesce=True,
        max_instances=1,
    )
    log.info("worker %s started", worker.id)
    return worker


def run_forever(runtime: WorkerDeps, retention: Retention, digest: Digest | None = None) -> None:
    """Block, refreshing sources on schedule, until interrupted."""
    worker = start_worker(runtime, retention, digest=digest)
    log.info("Ctrl-C stops the worker")
    try:
        worker.scheduler.start()
    except (KeyboardInterrupt, SystemExit):
        log.info("worker stopped")
    finally:
        worker.leave()
