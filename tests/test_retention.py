"""Retention: what is older than TEAMBOT_RETENTION_DAYS goes, the rest stays, each run is told."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from bot.admin import Actor, run_admin
from bot.retention import forget_expired
from bot.settings import Settings
from knowledge.storage.conversations import Conversation, Feedback, Turn
from knowledge.storage.db import utcnow
from knowledge.storage.processes import ProcessedEvent
from tests.test_admin import Deps

OLD = timedelta(days=40)


def conversation(session: Session, thread: str, age: timedelta, vote_age: timedelta) -> int:
    when = utcnow() - age
    talk = Conversation(platform="slack", channel="C1", thread=thread, created_at=when,
                        updated_at=when)  # fmt: skip
    session.add(talk)
    session.flush()
    question = Turn(conversation_id=talk.id, role="user", user_id="U1", text="q", created_at=when)
    answer = Turn(conversation_id=talk.id, role="assistant", text="a", created_at=when)
    session.add_all([question, answer])
    session.flush()
    session.add(Feedback(turn_id=answer.id, user_id="U2", value=1,
                         created_at=utcnow() - vote_age))  # fmt: skip
    return talk.id


def counts(sessions: sessionmaker[Session]) -> tuple[int, int, int]:
    with sessions() as session:
        return tuple(  # type: ignore[return-value]
            session.scalar(select(func.count()).select_from(table)) or 0
            for table in (Conversation, Turn, Feedback)
        )


def test_old_conversations_and_votes_go_and_recent_ones_stay(
    any_sessions: sessionmaker[Session],
) -> None:
    with any_sessions.begin() as session:
        conversation(session, "old", OLD, OLD)
        recent = conversation(session, "recent", timedelta(days=1), OLD)  # an old vote on it
        conversation(session, "fresh", timedelta(hours=1), timedelta(hours=1))
        session.add(ProcessedEvent(platform="slack", event_id="Ev1",
                                   received_at=utcnow() - timedelta(days=2)))  # fmt: skip

    forgotten = forget_expired(any_sessions, days=30)

    assert (forgotten.conversations, forgotten.turns, forgotten.feedback, forgotten.events) == (
        1, 2, 2, 1,
    )  # fmt: skip
    assert counts(any_sessions) == (2, 4, 1)
    with any_sessions() as session:
        assert session.scalars(select(Turn.conversation_id)).all().count(recent) == 2
    status = run_admin(
        Deps(any_sessions, Settings(_env_file=None, TEAMBOT_RETENTION_DAYS=30)),  # type: ignore[call-arg]
        Actor("cli", "ops"),
        "status",
    )
    assert "Retention: 30 days; last run: " in status.text
    assert "deleted 1 conversations (2 turns), 2 feedback votes and 1 old event ids" in status.text


def test_without_a_retention_setting_nothing_is_forgotten(
    sessions: sessionmaker[Session],
) -> None:
    with sessions.begin() as session:
        conversation(session, "old", OLD, OLD)

    forgotten = forget_expired(sessions, days=None)

    assert (forgotten.conversations, forgotten.feedback) == (0, 0)
    assert counts(sessions) == (1, 2, 1)
