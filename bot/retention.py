"""Forget conversations and feedback after TEAMBOT_RETENTION_DAYS (unset: keep everything).

The worker runs it daily. A conversation goes when it has been idle that long
(its turns and their votes go with it, by the foreign keys' cascades); a vote
goes when it is that old; event ids used for de-duplication go after a day
whatever the setting. Each run is written to the audit log as the worker, so
``admin status`` can show when it last ran and what it deleted.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import delete, desc, func, select
from sqlalchemy.orm import Session, sessionmaker

from bot.delivery.inbox import forget_old_events
from knowledge.storage.conversations import AuditEntry, Conversation, Feedback, Turn
from knowledge.storage.db import utcnow

WORKER = ("worker", "retention")


@dataclass(frozen=True)
class Forgotten:
    conversations: int
    turns: int
    feedback: int
    events: int

    def __str__(self) -> str:
        return (
            f"deleted {self.conversations} conversations ({self.turns} turns), "
            f"{self.feedback} feedback votes and {self.events} old event ids"
        )


def forget_expired(sessions: sessionmaker[Session], days: int | None) -> Forgotten:
    """Delete what is older than ``days`` (None: only old event ids) and audit the run."""
    events = forget_old_events(sessions)
    conversations = turns = feedback = 0
    if days is not None:
        cutoff = utcnow() - timedelta(days=days)
        with sessions.begin() as session:
            idle = select(Conversation.id).where(Conversation.updated_at < cutoff)
            old_turns = select(Turn.id).where(Turn.conversation_id.in_(idle))
            feedback = (
                session.execute(
                    delete(Feedback).where(
                        (Feedback.created_at < cutoff) | Feedback.turn_id.in_(old_turns)
                    )
                ).rowcount
                or 0
            )
            turns = session.scalar(select(func.count()).select_from(old_turns.subquery())) or 0
            session.execute(delete(Turn).where(Turn.conversation_id.in_(idle)))
            conversations = (
                session.execute(
                    delete(Conversation).where(Conversation.updated_at < cutoff)
                ).rowcount
                or 0
            )
    result = Forgotten(conversations, turns, feedback, events)
    with sessions.begin() as session:
        session.add(
            AuditEntry(
                platform=WORKER[0],
                user_id=WORKER[1],
                command="retention",
                args={"days": days},
                outcome=str(result),
            )
        )
    return result


def last_run(session: Session) -> AuditEntry | None:
    """The latest retention run, for ``admin status``."""
    return session.scalar(
        select(AuditEntry)
        .where(AuditEntry.platform == WORKER[0], AuditEntry.command == "retention")
        .order_by(desc(AuditEntry.id))
        .limit(1)
    )
