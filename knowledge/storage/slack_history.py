"""Slack channel history as a source: where each channel's refresh stands, and its threads.

A ``slack-channel`` source has one ``SlackChannel`` row: the channel, whether it is private,
the workspace address its permalinks are built from, the newest thread it has read, and the
``conversations.history`` cursor of a listing cut short (a crash, a rate limit, the page cap),
so the next run resumes there. Each thread with replies is a ``SlackThread``: what its parent
said about it when last read (``signature``: latest reply, reply count, edit) and ``stale``
when it must be read again (its ``latest_reply`` moved, or an event said a message in it was
edited or deleted). Both go with their source (``ON DELETE CASCADE``).

Content of a private channel is searched only when answering in that channel:
``hidden_sources`` names the private channels' sources to leave out elsewhere.
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
    func,
    select,
)
from sqlalchemy.orm import Mapped, Session, mapped_column

from knowledge.storage.db import Base, utcnow
from knowledge.storage.documents import Source

SLACK_CHANNEL = "slack-channel"  # the source kind
SLACK_PLATFORM = "slack"


class SlackChannel(Base):
    """One Slack channel's history source and where its refresh stands."""

    __tablename__ = "slack_channels"

    source_id: Mapped[int] = mapped_column(
        ForeignKey("sources.id", ondelete="CASCADE"), primary_key=True
    )
    channel_id: Mapped[str] = mapped_column(String(40), index=True)
    channel_name: Mapped[str] = mapped_column(String(200), default="")
    is_private: Mapped[bool] = mapped_column(Boolean, default=False)
    workspace_url: Mapped[str] = mapped_column(Text, default="")  # https://team.slack.com/
    # The newest top-level message ts a complete listing has read ("" before the first).
    newest_ts: Mapped[str] = mapped_column(String(40), default="")
    # A listing cut short: its cursor, the ``oldest`` it was asked with, the newest ts it saw.
    cursor: Mapped[str | None] = mapped_column(Text)
    cursor_oldest: Mapped[str | None] = mapped_column(String(40))
    cursor_newest: Mapped[str | None] = mapped_column(String(40))
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, onupdate=utcnow
    )


class SlackThread(Base):
    """A thread with replies, as last read; ``stale`` when it must be read again."""

    __tablename__ = "slack_threads"
    __table_args__ = (UniqueConstraint("source_id", "thread_ts"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    source_id: Mapped[int] = mapped_column(ForeignKey("sources.id", ondelete="CASCADE"), index=True)
    thread_ts: Mapped[str] = mapped_column(String(40))
    signature: Mapped[str] = mapped_column(String(200), default="")
    stale: Mapped[bool] = mapped_column(Boolean, default=True)
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, onupdate=utcnow
    )


def channel_of(session: Session, source_id: int) -> SlackChannel | None:
    return session.get(SlackChannel, source_id)


def channel_sources(session: Session, channel_id: str) -> list[int]:
    """The ids of the sources that read ``channel_id`` (usually none, or one)."""
    return list(
        session.scalars(select(SlackChannel.source_id).where(SlackChannel.channel_id == channel_id))
    )


def hidden_sources(session: Session, platform: str, channel: str) -> set[str]:
    """The names of private channels' history sources, unless answering in that very channel."""
    rows = session.execute(
        select(Source.name, SlackChannel.channel_id)
        .join(SlackChannel, SlackChannel.source_id == Source.id)
        .where(SlackChannel.is_private)
    )
    return {
        name for name, channel_id in rows if platform != SLACK_PLATFORM or channel != channel_id
    }


def channel_states(session: Session) -> dict[str, str]:
    """Source name → where its channel's refresh stands, in a line for ``admin status``."""
    waiting = dict(
        session.execute(
            select(SlackThread.source_id, func.count())
            .where(SlackThread.stale)
            .group_by(SlackThread.source_id)
        ).all()
    )
    rows = session.execute(
        select(Source.name, SlackChannel).join(SlackChannel, SlackChannel.source_id == Source.id)
    )
    states = {}
    for name, channel in rows:
        privacy = "private: used only there" if channel.is_private else "public"
        listing = "; its listing resumes from a saved cursor" if channel.cursor else ""
        count = waiting.get(channel.source_id, 0)
        states[name] = (
            f"#{channel.channel_name} ({privacy}); {count} threads waiting to be read{listing}"
        )
    return states
