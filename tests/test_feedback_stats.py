"""Feedback that says why: the reason a 👎 voter gives, as stored, and what ``admin stats`` shows
of the votes (per channel, the pages of 👎 answers, the latest reasons), against numbers
worked out by hand."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from bot.feedback import MAX_REASON_CHARS, reason_text, record_feedback, record_reason
from knowledge.storage.conversations import Conversation, Feedback, Turn
from knowledge.storage.db import utcnow
from tests.test_admin import admin

SETUP = {"n": 1, "title": "Setup", "url": "file:///docs/setup.md"}
PORTS = {"n": 2, "title": "Ports `and` more", "url": "file:///docs/ports.md"}
HOSTILE = "```\n<!channel> @everyone\u200b\u0007 " + "x" * 600


def answer_in(session: Session, platform: str, channel: str, citations: list[Any]) -> Turn:
    conversation = Conversation(platform=platform, channel=channel, thread="t")
    session.add(conversation)
    session.flush()
    session.add(Turn(conversation_id=conversation.id, role="user", user_id="U0", text="q?"))
    answer = Turn(conversation_id=conversation.id, role="assistant", text="a",
                  citations=citations)  # fmt: skip
    session.add(answer)
    session.flush()
    return answer


def test_a_hostile_reason_is_one_bounded_line_and_unknown_choices_are_dropped() -> None:
    reason = reason_text("outdated", HOSTILE)
    assert reason is not None and len(reason) == MAX_REASON_CHARS
    assert reason.startswith("Out of date: ``` <!channel> @everyone xxx") and reason.endswith("…")
    assert "\n" not in reason and "\u0007" not in reason and "\u200b" not in reason
    assert reason_text("<!here>", "  ") is None  # a forged choice and blank words: no reason
    assert reason_text(None, "the port moved") == "the port moved"
    assert reason_text("wrong", None) == "Wrong"


def test_a_reason_goes_with_a_standing_downvote_only(any_sessions: sessionmaker[Session]) -> None:
    with any_sessions.begin() as session:
        turn = answer_in(session, "slack", "C1", [SETUP]).id
    assert not record_reason(any_sessions, turn, "U1", "Wrong")  # no vote yet
    assert record_feedback(any_sessions, turn, "U1", -1)
    assert record_reason(any_sessions, turn, "U1", "Wrong: " + "y" * 900)
    assert not record_reason(any_sessions, turn, "U2", "Wrong")  # someone else's vote
    with any_sessions() as session:
        assert len(session.scalars(select(Feedback.comment)).one()) == MAX_REASON_CHARS
    assert record_feedback(any_sessions, turn, "U1", 1)  # changed to 👍: the reason goes
    assert not record_reason(any_sessions, turn, "U1", "Wrong")
    with any_sessions() as session:
        assert session.scalars(select(Feedback.comment)).one() is None


def test_stats_show_satisfaction_per_channel_downvoted_pages_and_reasons(
    any_sessions: sessionmaker[Session],
) -> None:
    now = utcnow()
    with any_sessions.begin() as session:
        a = answer_in(session, "slack", "C1", [SETUP, PORTS])
        b = answer_in(session, "slack", "C2", [PORTS])
        c = answer_in(session, "discord", "9", [SETUP])

        def vote(turn: Turn, user: str, value: int, minutes_ago: int,
                 comment: str | None = None) -> Feedback:  # fmt: skip
            at = now - timedelta(minutes=minutes_ago)
            return Feedback(turn_id=turn.id, user_id=user, value=value, comment=comment,
                            created_at=at)  # fmt: skip

        session.add_all([
            vote(a, "U1", -1, 50, "Out of date: the port moved"),
            vote(a, "U2", 1, 40),
            vote(a, "U3", -1, 30),
            vote(b, "U1", 1, 25), vote(b, "U2", 1, 20), vote(b, "U3", 1, 15),
            vote(b, "U4", -1, 10, HOSTILE),
            vote(c, "U1", -1, 5),
            vote(c, "U9", 1, 60 * 24 * 10),  # ten days ago: outside --days 7
        ])  # fmt: skip

    lines = admin(any_sessions, "stats", "--days", "7").text.splitlines()
    start = lines.index("Feedback: 👍 4  👎 4")
    shown_hostile = ("''' <!channel> @everyone " + "x" * 100)[:99] + "…"
    assert lines[start + 1 :] == [
        "Satisfaction by channel (👍 share of votes):",
        "  slack:C2   75%  👍 3  👎 1",  # 3 of 4
        "  slack:C1   33%  👍 1  👎 2",  # 1 of 3
        "  discord:9  0%   👍 0  👎 1",
        "Pages most often cited in 👎 answers:",  # once per answer: a, b and c got a 👎
        "  2  Ports 'and' more  file:///docs/ports.md",  # a, b
        "  2  Setup             file:///docs/setup.md",  # a, c
        "Latest 👎 reasons:",
        f"  slack:C2  {shown_hostile}",
        "  slack:C1  Out of date: the port moved",
    ]
