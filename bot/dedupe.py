"""Answer each platform event once, however often it is delivered and by however many replicas.

Slack retries an event it thinks was not acknowledged in time (X-Slack-Retry-Num),
and behind a load balancer the retry may reach another replica. The first
process to insert the event's id into ``processed_events`` owns it; every other
delivery finds the id taken (a unique constraint, so this holds on PostgreSQL
across machines) and is acknowledged without being answered again.
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import delete
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from bot.models import ProcessedEvent
from knowledge.models import utcnow

# Slack stops retrying after about an hour; older ids can go.
KEEP_EVENTS = timedelta(days=1)


def claim_event(sessions: sessionmaker[Session], platform: str, event_id: str) -> bool:
    """True for the first delivery of ``event_id`` (this process answers it), else False."""
    try:
        with sessions.begin() as session:
            session.add(ProcessedEvent(platform=platform, event_id=event_id))
        return True
    except IntegrityError:
        return False


def forget_old_events(sessions: sessionmaker[Session]) -> int:
    """Delete ids older than KEEP_EVENTS; returns how many."""
    with sessions.begin() as session:
        result = session.execute(
            delete(ProcessedEvent).where(ProcessedEvent.received_at < utcnow() - KEEP_EVENTS)
        )
        return result.rowcount or 0
