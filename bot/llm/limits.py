"""Cost control shared by every replica through the database: question rates and token budgets.

Rates are counted from the questions already stored as turns (no extra table,
and every replica sees the same count). Token budgets are daily (UTC) sums
per provider in ``llm_usage``, added to with one UPDATE so concurrent replicas
never lose each other's counts. Going over either limit never blocks an
answer: the router falls back to the extractive answer, which costs no tokens.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from bot.types import Question
from knowledge.storage.conversations import Conversation, LlmUsage, Turn

WINDOW = timedelta(minutes=1)


@dataclass(frozen=True)
class RateLimits:
    """Questions per minute a person (across channels) and a channel may send to models; 0: any."""

    per_user: int = 0
    per_channel: int = 0


class UsageLedger:
    """Reads and writes the counts the limits are checked against."""

    def __init__(self, sessions: sessionmaker[Session], limits: RateLimits) -> None:
        self._sessions = sessions
        self._limits = limits

    def rate_limit_notice(self, question: Question, now: datetime | None = None) -> str | None:
        """Why this question may not go to a model now, or None if it may."""
        now = now or datetime.now(UTC)
        since = now - WINDOW
        asked = (Turn.role == "user") & (Turn.created_at >= since)
        checks = [
            (
                self._limits.per_user,
                asked & (Turn.user_id == question.user),
                "you have",
                "per person (RATE_LIMIT_USER_PER_MINUTE)",
            ),
            (
                self._limits.per_channel,
                asked
                & (Conversation.platform == question.platform)
                & (Conversation.channel == question.channel),
                "this channel has",
                "per channel (RATE_LIMIT_CHANNEL_PER_MINUTE)",
            ),
        ]
        with self._sessions() as session:
            for limit, where, who, which in checks:
                if not limit:
                    continue
                count, oldest = session.execute(
                    select(func.count(Turn.id), func.min(Turn.created_at))
                    .join(Conversation, Turn.conversation_id == Conversation.id)
                    .where(where)
                ).one()
                if count >= limit:
                    wait = _seconds_until(oldest, now)
                    return (
                        f"Model answers are paused: {who} asked {count} questions in the last "
                        f"minute, and the limit is {limit} {which}. They resume in about "
                        f"{wait} s; meanwhile, here are the passages that match best."
                    )
        return None

    def tokens_today(self, provider: str, today: date | None = None) -> int:
        """Tokens in + out this provider spent today (UTC), over every replica."""
        today = today or datetime.now(UTC).date()
        with self._sessions() as session:
            spent = session.execute(
                select(LlmUsage.tokens_in + LlmUsage.tokens_out).where(
                    LlmUsage.day == today, LlmUsage.provider == provider
                )
            ).scalar()
        return int(spent or 0)

    def add(
        self, provider: str, tokens_in: int, tokens_out: int, today: date | None = None
    ) -> None:
        """Count one request's tokens (atomic under concurrent replicas)."""
        today = today or datetime.now(UTC).date()
        increment = (
            update(LlmUsage)
            .where(LlmUsage.day == today, LlmUsage.provider == provider)
            .values(
                requests=LlmUsage.requests + 1,
                tokens_in=LlmUsage.tokens_in + tokens_in,
                tokens_out=LlmUsage.tokens_out + tokens_out,
            )
        )
        with self._sessions.begin() as session:
            if session.execute(increment).rowcount:
                return
        try:
            with self._sessions.begin() as session:
                session.add(
                    LlmUsage(
                        day=today,
                        provider=provider,
                        requests=1,
                        tokens_in=tokens_in,
                        tokens_out=tokens_out,
                    )
                )
        except IntegrityError:  # another replica inserted today's row first
            with self._sessions.begin() as session:
                session.execute(increment)


def _seconds_until(oldest: datetime | None, now: datetime) -> int:
    if oldest is None:
        return 0
    if oldest.tzinfo is None:  # SQLite hands back naive UTC
        oldest = oldest.replace(tzinfo=UTC)
    return max(1, int((oldest + WINDOW - now).total_seconds()) + 1)
