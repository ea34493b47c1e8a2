"""Team answers: a teammate's answer saved with "Teach teambot" or `admin answers add`.

Each is one row here and one document (with one chunk) of the built-in ``team-answers`` source,
so retrieval finds it like any page; ``knowledge/ingest/answers.py`` writes both. An answer
taught in a private channel or a DM (``is_private``) is searched only in that channel.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    Boolean,
    DateTime,
    ForeignKey,
    Integer,
    String,
    Text,
    UniqueConstraint,
    select,
)
from sqlalchemy.orm import Mapped, Session, mapped_column

from knowledge.storage.db import Base, utcnow

TEAM_ANSWERS = "team-answers"  # the built-in source's name and kind


class TeamAnswer(Base):
    """A saved answer, where it was said, and the message it came from (for edits)."""

    __tablename__ = "team_answers"
    __table_args__ = (UniqueConstraint("platform", "channel", "message_ref"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    question: Mapped[str] = mapped_column(Text)
    answer: Mapped[str] = mapped_column(Text)
    author: Mapped[str] = mapped_column(String(200))  # the platform's user id
    author_name: Mapped[str | None] = mapped_column(String(200))
    platform: Mapped[str] = mapped_column(String(20))
    channel: Mapped[str] = mapped_column(String(200))
    channel_name: Mapped[str | None] = mapped_column(String(200))
    is_private: Mapped[bool] = mapped_column(Boolean, default=False)
    permalink: Mapped[str | None] = mapped_column(Text)
    # The original message (Slack ts, Discord message id): its edits and deletion follow it.
    message_ref: Mapped[str | None] = mapped_column(String(200))
    thread: Mapped[str | None] = mapped_column(String(200))
    document_id: Mapped[int | None] = mapped_column(
        ForeignKey("documents.id", ondelete="SET NULL"), index=True
    )
    saved_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, onupdate=utcnow
    )


def document_url(answer: TeamAnswer) -> str:
    """The document's address: the message's permalink, or ``team-answers/ID`` without one."""
    return answer.permalink or f"{TEAM_ANSWERS}/{answer.id}"


def hidden_urls(session: Session, platform: str, channel: str) -> set[str]:
    """The document addresses of private answers saved anywhere but this channel."""
    rows = session.scalars(
        select(TeamAnswer).where(
            TeamAnswer.is_private,
            (TeamAnswer.platform != platform) | (TeamAnswer.channel != channel),
        )
    )
    return {document_url(row) for row in rows}
