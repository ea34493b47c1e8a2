"""The inbox on its own: a claim once per event, a dedupe-only claim, nothing to adopt once
finished. (Take-overs through the Slack app are in tests/test_slack.py.)"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from bot.delivery.inbox import Inbox
from knowledge.storage.db import utcnow
from knowledge.storage.processes import ProcessedEvent


def test_inbox_claims_once_and_finishes(sessions: sessionmaker[Session]) -> None:
    inbox = Inbox(sessions, "me:1:a")
    assert inbox.claim("slack", "Ev1", {"event_id": "Ev1"}) is True
    assert inbox.claim("slack", "Ev1", {"event_id": "Ev1"}) is False
    assert inbox.claim("discord", "42", None) is True  # dedupe only: done at once
    inbox.record_reply("slack", "Ev1", "111.222")
    assert inbox.reply_to("slack", "Ev1") == "111.222"
    inbox.finish("slack", "Ev1")
    with sessions.begin() as session:
        states = dict(session.execute(select(ProcessedEvent.event_id, ProcessedEvent.state)).all())
        session.execute(update(ProcessedEvent).values(received_at=utcnow() - timedelta(minutes=1)))
    assert states == {"Ev1": "done", "42": "done"}
    assert inbox.adopt_orphans({"slack", "discord"}, set()) == []
