"""Each platform event answered exactly once, by however many replicas, even if one dies.

Slack retries an event it thinks was not acknowledged in time (X-Slack-Retry-Num),
and behind a load balancer the retry may reach another replica. The first
delivery is claimed in SQL *before* it is acknowledged: a row keyed by the
event id (a unique constraint, so this holds across machines on PostgreSQL),
holding the payload and the claiming process. Later deliveries find the id
taken and are acknowledged without an answer.

A replica killed after acknowledging leaves claims behind that Slack will never
resend. Every replica sweeps for claims whose owner stopped beating (or that are
its own but no longer in flight: the database failed mid-answer) and answers
them again. The reply message already posted is recorded (``reply_ts``), so a
second attempt edits it rather than posting another: the asker sees one answer.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from knowledge.storage.db import as_utc, utcnow
from knowledge.storage.lease import is_dead_local_owner
from knowledge.storage.processes import ProcessedEvent

# Slack stops retrying after about an hour; older ids can go.
KEEP_EVENTS = timedelta(days=1)
# Claims older than this are not answered any more: a reply that late would confuse.
RECOVER_WITHIN = timedelta(minutes=15)
# A claim owned by this process but not in flight for this long is retried by it; one
# owned by a process not (yet) seen beating is left alone this long, as a heartbeat would be.
STRANDED_AFTER = timedelta(seconds=10)
MAX_ATTEMPTS = 3
CLAIMED, DONE = "claimed", "done"


@dataclass(frozen=True)
class Orphan:
    """A claimed event this process just took over, to answer again."""

    platform: str
    event_id: str
    payload: dict[str, Any]
    previous_owner: str | None
    attempt: int


class Inbox:
    """This process's claims: taken before the ack, finished after the answer."""

    def __init__(self, sessions: sessionmaker[Session], owner: str) -> None:
        self._sessions = sessions
        self.owner = owner
        self._lock = threading.Lock()
        self._in_flight: set[tuple[str, str]] = set()

    def claim(self, platform: str, event_id: str, payload: dict[str, Any] | None) -> bool:
        """True for the first delivery (this process must answer it, then ``finish`` it).

        Without a ``payload`` nobody could answer it again, so it is recorded as done at
        once and only deduplicates. Database errors propagate: the caller refuses the
        delivery so Slack retries it."""
        key = (platform, event_id)
        with self._lock:
            self._in_flight.add(key)
        try:
            with self._sessions.begin() as session:
                session.add(
                    ProcessedEvent(platform=platform, event_id=event_id,
                                   state=CLAIMED if payload else DONE,
                                   owner=self.owner, payload=payload)
                )  # fmt: skip
            if not payload:
                self._drop(key)
            return True
        except IntegrityError:
            self._drop(key)
            return False
        except Exception:
            self._drop(key)
            raise

    def reply_to(self, platform: str, event_id: str) -> str | None:
        """The reply message an earlier attempt already posted, to edit instead of re-posting."""
        with self._sessions() as session:
            return session.scalar(
                select(ProcessedEvent.reply_ts).where(
                    ProcessedEvent.platform == platform, ProcessedEvent.event_id == event_id
                )
            )

    def record_reply(self, platform: str, event_id: str, reply_ts: str) -> None:
        with self._sessions.begin() as session:
            session.execute(
                update(ProcessedEvent)
                .where(ProcessedEvent.platform == platform, ProcessedEvent.event_id == event_id)
                .values(reply_ts=reply_ts)
            )

    def finish(self, platform: str, event_id: str, *, answered: bool = True) -> None:
        """The event is dealt with (``answered``) or this attempt gave up on it (not answered:
        a sweep retries it); either way it is no longer in flight here."""
        try:
            if answered:
                with self._sessions.begin() as session:
                    session.execute(
                        update(ProcessedEvent)
                        .where(
                            ProcessedEvent.platform == platform,
                            ProcessedEvent.event_id == event_id,
                        )
                        .values(state=DONE, payload=None)
                    )
        finally:
            self._drop((platform, event_id))

    def adopt_orphans(
        self, platforms: set[str], live_owners: set[str], limit: int = 20
    ) -> list[Orphan]:
        """Take over claims on ``platforms`` nobody is answering: their owner is gone, or
        they are this process's own and no longer in flight. Each is in flight here now."""
        now = utcnow()
        with self._sessions() as session:
            candidates = session.execute(
                select(ProcessedEvent.id, ProcessedEvent.platform, ProcessedEvent.event_id,
                       ProcessedEvent.owner, ProcessedEvent.received_at)
                .where(
                    ProcessedEvent.state == CLAIMED,
                    ProcessedEvent.platform.in_(platforms),
                    ProcessedEvent.received_at >= now - RECOVER_WITHIN,
                    ProcessedEvent.attempts < MAX_ATTEMPTS,
                )
                .order_by(ProcessedEvent.id)
            ).all()  # fmt: skip
        with self._lock:
            in_flight = set(self._in_flight)
        adopted = []
        for row_id, platform, event_id, owner, received_at in candidates:
            recent = as_utc(received_at) > now - STRANDED_AFTER
            if owner == self.owner:
                if (platform, event_id) in in_flight or recent:
                    continue
            elif not is_dead_local_owner(owner) and (owner in live_owners or recent):
                continue
            row = self._take(row_id, owner)
            if row is not None:
                adopted.append(row)
            if len(adopted) >= limit:
                break
        return adopted

    def _take(self, row_id: int, owner: str | None) -> Orphan | None:
        with self._sessions.begin() as session:
            taken = session.execute(
                update(ProcessedEvent)
                .where(
                    ProcessedEvent.id == row_id,
                    ProcessedEvent.state == CLAIMED,
                    ProcessedEvent.owner.is_(None)
                    if owner is None
                    else ProcessedEvent.owner == owner,
                )
                .values(owner=self.owner, attempts=ProcessedEvent.attempts + 1)
            ).rowcount
            if taken != 1:
                return None
            row = session.get(ProcessedEvent, row_id)
            if row is None:
                return None
            orphan = Orphan(row.platform, row.event_id, row.payload or {}, owner, row.attempts)
        with self._lock:
            self._in_flight.add((orphan.platform, orphan.event_id))
        return orphan

    def _drop(self, key: tuple[str, str]) -> None:
        with self._lock:
            self._in_flight.discard(key)


def forget_old_events(sessions: sessionmaker[Session]) -> int:
    """Delete ids older than KEEP_EVENTS; returns how many."""
    with sessions.begin() as session:
        result = session.execute(
            delete(ProcessedEvent).where(ProcessedEvent.received_at < utcnow() - KEEP_EVENTS)
        )
        return result.rowcount or 0
