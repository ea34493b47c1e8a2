"""Tables for people and conversations: memory, feedback, channel settings, admins, audit.

Conversations are keyed by (platform, channel, thread) so that the same core
serves Slack threads, Discord reply chains and terminal sessions.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Integer,
    String,
    Text,
    UniqueConstraint,
    false,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from knowledge.storage.db import Base, utcnow


class Conversation(Base):
    __tablename__ = "conversations"
    __table_args__ = (UniqueConstraint("platform", "channel", "thread"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    platform: Mapped[str] = mapped_column(String(20))
    channel: Mapped[str] = mapped_column(String(200))
    thread: Mapped[str] = mapped_column(String(200))
    # A DM or private channel: its questions are shown only there and in the terminal.
    is_private: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, onupdate=utcnow
    )

    turns: Mapped[list[Turn]] = relationship(
        back_populates="conversation",
        cascade="all, delete-orphan",
        passive_deletes=True,
        order_by="Turn.id",
    )


class Turn(Base):
    """One message of a conversation: the user's question or teambot's answer."""

    __tablename__ = "turns"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    conversation_id: Mapped[int] = mapped_column(
        ForeignKey("conversations.id", ondelete="CASCADE"), index=True
    )
    role: Mapped[str] = mapped_column(String(20))
    user_id: Mapped[str | None] = mapped_column(String(200), index=True)
    text: Mapped[str] = mapped_column(Text)
    search_query: Mapped[str | None] = mapped_column(Text)
    citations: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    model: Mapped[str | None] = mapped_column(String(200))
    latency_ms: Mapped[float | None] = mapped_column(Float)
    tokens_in: Mapped[int | None] = mapped_column(Integer)
    tokens_out: Mapped[int | None] = mapped_column(Integer)
    timings: Mapped[dict[str, float]] = mapped_column(JSON, default=dict)
    # Which kind of model answered (cloud, local, extractive) and why the router chose it.
    provider: Mapped[str | None] = mapped_column(String(20))
    route: Mapped[str | None] = mapped_column(Text)
    first_token_ms: Mapped[float | None] = mapped_column(Float)
    # How a follow-up became its search query: "model", "heuristic", or None (as asked).
    rewrite: Mapped[str | None] = mapped_column(String(20))
    # How likely the answer is supported by the docs (0–1), and whether teambot said the docs
    # do not cover the question instead of answering; None on questions and older answers.
    confidence: Mapped[float | None] = mapped_column(Float)
    abstained: Mapped[bool | None] = mapped_column(Boolean)
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, index=True
    )

    conversation: Mapped[Conversation] = relationship(back_populates="turns")


class Feedback(Base):
    """A user's rating of an answer; one per user and answer, the latest wins."""

    __tablename__ = "feedback"
    __table_args__ = (UniqueConstraint("turn_id", "user_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    turn_id: Mapped[int] = mapped_column(ForeignKey("turns.id", ondelete="CASCADE"), index=True)
    user_id: Mapped[str] = mapped_column(String(200))
    value: Mapped[int] = mapped_column(Integer)
    comment: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class ChannelSetting(Base):
    """Per-channel choices admins make: which sources, which model route, persona, threading."""

    __tablename__ = "channel_settings"
    __table_args__ = (UniqueConstraint("platform", "channel"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    platform: Mapped[str] = mapped_column(String(20))
    channel: Mapped[str] = mapped_column(String(200))
    sources: Mapped[list[str] | None] = mapped_column(JSON)
    llm_route: Mapped[str | None] = mapped_column(String(50))
    persona: Mapped[str | None] = mapped_column(Text)
    answer_in_thread: Mapped[bool] = mapped_column(Boolean, default=True)
    # Answer replies in threads teambot answered without a new mention; None: the global default.
    follow_threads: Mapped[bool | None] = mapped_column(Boolean)
    # Below this confidence teambot abstains here; None: MIN_CONFIDENCE.
    min_confidence: Mapped[float | None] = mapped_column(Float)
    # Whether people who are not admins may "Teach teambot" here; None: off.
    teach: Mapped[bool | None] = mapped_column(Boolean)
    updated_by: Mapped[str | None] = mapped_column(String(200))
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, onupdate=utcnow
    )


class Admin(Base):
    __tablename__ = "admins"
    __table_args__ = (UniqueConstraint("platform", "user_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    platform: Mapped[str] = mapped_column(String(20))
    user_id: Mapped[str] = mapped_column(String(200))
    added_by: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class AuditEntry(Base):
    """Every admin command run, who ran it, with what, and how it ended."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    platform: Mapped[str] = mapped_column(String(20))
    user_id: Mapped[str] = mapped_column(String(200))
    command: Mapped[str] = mapped_column(String(100))
    args: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    outcome: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, index=True
    )


class LlmUsage(Base):
    """Tokens each model provider spent per UTC day, summed over every replica."""

    __tablename__ = "llm_usage"
    __table_args__ = (UniqueConstraint("day", "provider"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    day: Mapped[date] = mapped_column(Date)
    provider: Mapped[str] = mapped_column(String(20))
    requests: Mapped[int] = mapped_column(Integer, default=0)
    tokens_in: Mapped[int] = mapped_column(Integer, default=0)
    tokens_out: Mapped[int] = mapped_column(Integer, default=0)


class Gap(Base):
    """A question the docs did not answer well: teambot abstained, someone voted 👎, or a
    person answered it in the thread after teambot. One row per answer and kind; it goes with
    its answer turn (retention, ``admin forget``). The question is kept as asked; its embedding
    is made when gaps are listed (bot.gap_topics), so a change of model needs no migration."""

    __tablename__ = "gaps"
    __table_args__ = (UniqueConstraint("turn_id", "kind"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(30))  # abstained | downvoted | answered_by_person
    platform: Mapped[str] = mapped_column(String(20))
    channel: Mapped[str] = mapped_column(String(200))
    question: Mapped[str] = mapped_column(Text)
    turn_id: Mapped[int | None] = mapped_column(
        ForeignKey("turns.id", ondelete="CASCADE"), index=True
    )
    # The passages teambot weighed: title, url, anchor and cosine (None where not known).
    passages: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    confidence: Mapped[float | None] = mapped_column(Float)
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, index=True
    )
