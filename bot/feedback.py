"""Thumbs up or down on an answer, one vote per person and answer (the latest wins), and what
the voter is told (the same words on every platform). An answer with a 👎 standing is a gap
(bot.gaps).

A 👎 is stored at the click; the voter is then offered a short, optional "what was wrong?"
(a Slack or Discord modal: one of ``REASONS`` and a few words), stored as the vote's
``comment`` by ``record_reason``. Closing the modal loses nothing but the reason.
"""

from __future__ import annotations

import unicodedata

from sqlalchemy import select, update
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


REASON_TITLE = "What was wrong?"
REASON_KIND_LABEL = "What was wrong with the answer?"
REASON_TEXT_LABEL = "Anything to add? (optional)"
REASON_RECORDED = "Thanks, that helps us improve the docs."
REASON_GONE = "Your 👎 on that answer no longer stands, so the reason was not recorded."
REASON_NOT_NOW = (
    "teambot's database is briefly unavailable, so the reason was not recorded. "
    "Please try again in a minute."
)
MAX_REASON_CHARS = 500  # what a voter may type, and the most a stored reason keeps
# The choices a voter picks from: value → label (the same on every platform).
REASONS = {
    "wrong": "Wrong",
    "outdated": "Out of date",
    "not_asked": "Not what I asked",
    "other": "Something else",
}


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


def reason_text(choice: str | None, text: str | None) -> str | None:
    """The reason as stored: the chosen label and the voter's words, one line of at most
    MAX_REASON_CHARS; None when there is neither. An unknown choice (forged) is dropped."""
    label = REASONS.get(choice or "")
    words = one_line(text or "")
    reason = ": ".join(part for part in (label, words) if part)
    if not reason:
        return None
    return reason if len(reason) <= MAX_REASON_CHARS else reason[: MAX_REASON_CHARS - 1] + "…"


def one_line(text: str) -> str:
    """``text`` without control or formatting characters, its whitespace runs one space."""
    kept = "".join(" " if unicodedata.category(ch)[0] in "CZ" else ch for ch in text)
    return " ".join(kept.split())


def record_reason(sessions: sessionmaker[Session], turn_id: int, user: str, reason: str) -> bool:
    """Store ``reason`` with ``user``'s 👎 on the answer ``turn_id``; False when that user has
    no 👎 standing there (a later 👍, a deleted answer, a forged id)."""
    with sessions.begin() as session:
        result = session.execute(
            update(Feedback)
            .where(Feedback.turn_id == turn_id, Feedback.user_id == user, Feedback.value < 0)
            .values(comment=reason[:MAX_REASON_CHARS])
        )
        return bool(result.rowcount)
