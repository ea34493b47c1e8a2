"""Tables processes share to agree on who is alive and who answers what.

Heartbeats say which workers and serve replicas are alive; notices carry a message from a
process that cannot post to chat to one that can; processed events make each platform event
answered exactly once (bot.delivery); the scheduler's job store is APScheduler's own table,
declared here so migrations own it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Column,
    DateTime,
    Float,
    Integer,
    LargeBinary,
    String,
    Table,
    Text,
    Unicode,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from knowledge.storage.db import Base, utcnow


class ProcessedEvent(Base):
    """A platform event, claimed before it is acknowledged so it is answered exactly once.

    ``state`` is ``claimed`` while an answer is owed and ``done`` once given; ``owner`` is
    the process answering it and ``payload`` the event itself, so another replica can answer
    it if the owner dies; ``reply_ts`` is the reply message already posted, which a second
    attempt edits instead of posting another."""

    __tablename__ = "processed_events"
    __table_args__ = (UniqueConstraint("platform", "event_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    platform: Mapped[str] = mapped_column(String(20))
    event_id: Mapped[str] = mapped_column(String(200))
    received_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, index=True
    )
    state: Mapped[str] = mapped_column(String(20), default="done", server_default="done",
                                       index=True)  # fmt: skip
    owner: Mapped[str | None] = mapped_column(String(200))
    payload: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    reply_ts: Mapped[str | None] = mapped_column(String(100))
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")


class Heartbeat(Base):
    """A running teambot process (``worker`` or ``serve``), seen by its heartbeat: admins see
    who is working, a refresh asked for in chat is queued only when a worker is alive, and
    work claimed by a process that stopped beating can be taken over by another."""

    __tablename__ = "heartbeats"

    id: Mapped[str] = mapped_column(String(200), primary_key=True)  # host:pid:nonce
    role: Mapped[str] = mapped_column(String(20))
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    seen_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, index=True)
    running: Mapped[str | None] = mapped_column(Text)  # what it is busy with, for people


class Notice(Base):
    """A message for a chat, left by a process that cannot post there (a worker telling an
    admin the refresh they asked for is done); a serve replica posts it, once."""

    __tablename__ = "notices"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    platform: Mapped[str] = mapped_column(String(20))
    channel: Mapped[str] = mapped_column(String(200))
    thread: Mapped[str | None] = mapped_column(String(100))
    user_id: Mapped[str | None] = mapped_column(String(200))  # set: visible to them only
    text: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), index=True)


# APScheduler's SQLAlchemy job store table, declared here so migrations own it and
# `admin status` can read each source's next run without unpickling jobs.
scheduler_jobs = Table(
    "apscheduler_jobs",
    Base.metadata,
    Column("id", Unicode(191), primary_key=True),
    Column("next_run_time", Float(25), index=True),
    Column("job_state", LargeBinary, nullable=False),
)
