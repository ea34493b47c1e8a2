"""What "Teach teambot" needs from the conversations teambot had, on every platform: the
question a thread asked teambot, and whether to offer a person who answered there to save
their answer (teambot abstained or got 👎 there, and nothing was taught there yet).
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from bot.gaps import answer_a_person_followed
from knowledge.storage.answers import TeamAnswer
from knowledge.storage.conversations import Conversation, Feedback, Turn


def recorded_question(
    sessions: sessionmaker[Session], platform: str, channel: str, thread: str
) -> str | None:
    """The first question put to teambot in this thread, as teambot read it, or None."""
    with sessions() as session:
        return session.scalar(
            select(Turn.text)
            .join(Conversation, Conversation.id == Turn.conversation_id)
            .where(Conversation.platform == platform, Conversation.channel == channel,
                   Conversation.thread == thread, Turn.role == "user")
            .order_by(Turn.id)
            .limit(1)
        )  # fmt: skip


def should_offer(
    sessions: sessionmaker[Session], platform: str, channel: str, thread: str, replier: str
) -> bool:
    """A person who asked teambot nothing here replied after teambot's last answer in the
    thread, which abstained or got a 👎, and no answer was taught from this thread yet."""
    with sessions() as session:
        answer = answer_a_person_followed(session, platform, channel, thread, replier)
        if answer is None:
            return False
        downvoted = session.scalar(
            select(Feedback.id).where(Feedback.turn_id == answer.id, Feedback.value < 0).limit(1)
        )
        if not (answer.abstained or downvoted is not None):
            return False
        taught = session.scalar(
            select(TeamAnswer.id).where(TeamAnswer.platform == platform,
                                        TeamAnswer.channel == channel,
                                        TeamAnswer.thread == thread).limit(1)
        )  # fmt: skip
        return taught is None
