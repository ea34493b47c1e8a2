"""What processes agree on through the database: who is alive, what is queued.

Every worker (and bot replica) writes a heartbeat every few seconds. A refresh an admin asks for in
chat is a timestamp on the source row; the first worker to clear it (a
conditional UPDATE) runs it. A source whose lease expired, or whose holder on
this machine died, is orphaned: a worker takes it over the same way.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from knowledge.errors import SourceError
from knowledge.storage.db import as_utc, utcnow
from knowledge.storage.documents import Source
from knowledge.storage.lease import is_dead_local_owner
from knowledge.storage.processes import Heartbeat, Notice, scheduler_jobs

JOB_PREFIX = "refresh:"  # a source's job id in the shared job store is JOB_PREFIX + its name
HEARTBEAT_SECONDS = 2
ALIVE_SECONDS = 5 * HEARTBEAT_SECONDS  # a process not seen for this long is presumed gone
FORGET_PROCESS_AFTER = timedelta(days=1)
WORKER, SERVE = "worker", "serve"  # the roles heartbeats are kept by


def beat(session: Session, process_id: str, role: str, running: set[str]) -> None:
    """Record that this process is alive and what it is busy with; drop long-gone ones."""
    now = utcnow()
    row = session.get(Heartbeat, process_id)
    if row is None:
        row = Heartbeat(id=process_id, role=role, started_at=now)
        session.add(row)
    row.seen_at, row.running = now, ", ".join(sorted(running)) or None
    session.execute(delete(Heartbeat).where(Heartbeat.seen_at < now - FORGET_PROCESS_AFTER))


def leave(session: Session, process_id: str) -> None:
    session.execute(delete(Heartbeat).where(Heartbeat.id == process_id))


def live(session: Session, role: str) -> list[Heartbeat]:
    """The processes of ``role`` that beat recently, by id."""
    cutoff = utcnow() - timedelta(seconds=ALIVE_SECONDS)
    return list(
        session.scalars(
            select(Heartbeat)
            .where(Heartbeat.role == role, Heartbeat.seen_at >= cutoff)
            .order_by(Heartbeat.id)
        )
    )


@dataclass(frozen=True)
class RefreshRequest:
    """A refresh an admin asked for; ``notify`` says where to tell them it is done."""

    name: str
    requested_at: datetime
    notify: dict[str, str] | None = None


def request_refresh(
    session: Session, name: str, by: str, notify: dict[str, str] | None = None
) -> None:
    """Queue a refresh of ``name`` for the next worker that polls (within seconds)."""
    queued = session.execute(
        update(Source)
        .where(Source.name == name)
        .values(refresh_requested_at=utcnow(), refresh_requested_by=by, refresh_notify=notify)
    ).rowcount
    if queued != 1:
        raise SourceError(f"No source named {name!r}; see `admin sources list`.")


def claim_requests(session: Session) -> list[RefreshRequest]:
    """Take every queued refresh no other worker took first."""
    queued = session.execute(
        select(Source.id, Source.name, Source.refresh_requested_at, Source.refresh_notify).where(
            Source.refresh_requested_at.is_not(None)
        )
    ).all()
    claimed = []
    for source_id, name, requested_at, notify in queued:
        taken = session.execute(
            update(Source)
            .where(Source.id == source_id, Source.refresh_requested_at == requested_at)
            .values(refresh_requested_at=None, refresh_notify=None)
        ).rowcount
        if taken == 1:
            claimed.append(RefreshRequest(name, requested_at, notify))
    return claimed


def requeue(session: Session, request: RefreshRequest) -> None:
    """Put back a claimed request that could not run yet (the source was busy)."""
    session.execute(
        update(Source)
        .where(Source.name == request.name, Source.refresh_requested_at.is_(None))
        .values(refresh_requested_at=request.requested_at, refresh_notify=request.notify)
    )


def leave_notice(session: Session, notify: dict[str, str], text: str) -> None:
    """A message for a serve replica to post where ``notify`` says (bot.delivery.replica)."""
    session.add(
        Notice(platform=notify["platform"], channel=notify["channel"],
               thread=notify.get("thread"), user_id=notify.get("user_id"), text=text)
    )  # fmt: skip


def claim_notices(session: Session, platforms: set[str], limit: int = 20) -> list[Notice]:
    """Unsent notices for ``platforms``, each marked sent by this caller only (post them)."""
    pending = session.scalars(
        select(Notice)
        .where(Notice.sent_at.is_(None), Notice.platform.in_(platforms))
        .order_by(Notice.id)
        .limit(limit)
    ).all()
    claimed = []
    for notice in pending:
        taken = session.execute(
            update(Notice)
            .where(Notice.id == notice.id, Notice.sent_at.is_(None))
            .values(sent_at=utcnow())
        ).rowcount
        if taken == 1:
            session.expunge(notice)
            claimed.append(notice)
    return claimed


def orphaned_sources(session: Session) -> list[tuple[str, str]]:
    """(name, dead holder) of sources whose refresh was abandoned by a process that died."""
    now = utcnow()
    held = session.execute(
        select(Source.name, Source.lease_owner, Source.lease_expires_at).where(
            Source.lease_owner.is_not(None), Source.enabled
        )
    ).all()
    return [
        (name, owner)
        for name, owner, expires in held
        if (expires is not None and as_utc(expires) < now) or is_dead_local_owner(owner)
    ]


def sources_fingerprint(session: Session) -> tuple[int, datetime | None]:
    """Changes when a source is added, removed, enabled, disabled or rescheduled."""
    count, latest = session.execute(
        select(func.count(Source.id), func.max(Source.updated_at))
    ).one()
    return count, latest


def next_runs(session: Session) -> dict[str, datetime]:
    """Each scheduled source's next run, read from the job store without unpickling jobs."""
    rows = session.execute(
        select(scheduler_jobs.c.id, scheduler_jobs.c.next_run_time).where(
            scheduler_jobs.c.id.startswith(JOB_PREFIX), scheduler_jobs.c.next_run_time.is_not(None)
        )
    ).all()
    return {
        job_id.removeprefix(JOB_PREFIX): datetime.fromtimestamp(stamp, tz=UTC)
        for job_id, stamp in rows
    }
