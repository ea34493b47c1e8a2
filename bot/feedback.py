"""Thumbs up or down on an answer, one vote per person and answer (the latest wins), and what
the voter is told (the same words on every platform). An answer with a 👎 standing is a gap
(bot.gaps)."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from bot import gaps
from knowledge.storage.conversations import Feedback, Turn
from knowledge.storage.db import utcnow

RECORDED = "Thanks, your feedback is recorded."
GONE = "That answer no longer exists, so the feedback was not recorded."
NOT_NOW = (
    "teambot's database is briefly unavailable, so the feedback was not recorded. "
    "Please click again in a minute."
)


def feedback_reply(stored: bool) -> str:
    """What the voter is told once ``record_feedback`` has returned ``stored``."""
    return RECORDED if stored else GONE


def record_feedback(
    sessions: sessionmaker[Session], turn_id: int, user: str, value: int, comment: str | None = None
) -> bool:
    """Store ``user``'s vote (+1 or -1) on the answer ``turn_id``; False if there is no
    such answer (deleted, or a forged button value)."""
    if value not in (1, -1):
        raise ValueError("feedback is +1 or -1")
    for _ in range(2):  # a concurrent first vote by the same user wins the insert: update then
        try:
            with sessions.begin() as session:
                turn = session.get(Turn, turn_id)
                if turn is None or turn.role != "assistant":
                    return False
                vote = session.scalar(
                    select(Feedback).where(Feedback.turn_id == turn_id, Feedback.user_id == user)
                )
                if vote is None:
                    session.add(
                        Feedback(turn_id=turn_id, user_id=user, value=value, comment=comment)
                    )
                else:
                    vote.value, vote.comment, vote.created_at = value, comment, utcnow()
                session.flush()
                gaps.follow_vote(session, turn_id)  # a 👎 answer is a gap while a 👎 stands
            return True
        except IntegrityError:
            continue
    return True
