"""The numbers behind the console's Usage page: questions per day by platform, answer latency
p50/p95, the share of abstained and 👎 answers, and tokens per model provider.

Days are UTC calendar days, the last ``days`` of them up to today, and every one is present:
a day without questions counts zero questions and zero tokens, while latency and shares have
no point that day (a share of nothing is not 0%). Four aggregate queries do the work in SQL on
both SQLite and PostgreSQL, so the cost grows with the rows in the window, not the rows fetched:
- an answer is a turn of role ``assistant``; a question, one of role ``user``;
- an answer counts as 👎 on the day it was given if anyone's current vote on it is 👎;
- percentiles are nearest-rank (the value at rank ⌈p·n⌉ of the day's n answers, which is
  always an observed latency), picked with a window function;
- tokens (in + out) come from ``llm_usage``, which counts every model request on every replica.
"""

from __future__ import annotations

import datetime
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, Date, and_, case, exists, func, or_, select
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import Session
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement

from knowledge.storage.conversations import Conversation, Feedback, LlmUsage, Turn
from knowledge.storage.db import utcnow

MAX_DAYS = 366  # the longest window a report reads
P50, P95 = 50, 95


@dataclass(frozen=True)
class Series:
    """One line or one stack of bars: a value per day, oldest first; missing days have none."""

    name: str
    points: list[tuple[datetime.date, float]]


@dataclass(frozen=True)
class UsageReport:
    days: list[datetime.date]
    questions_per_day: list[Series]  # one Series per platform
    latency_p50: Series  # answer latency, ms, per day
    latency_p95: Series
    abstained_share: Series  # 0..1 per day
    downvoted_share: Series  # 0..1 per day
    tokens_per_provider: list[Series]  # one Series per provider, tokens per day


class UtcDay(FunctionElement[datetime.date]):
    """The UTC calendar day of a timestamp column, as an SQL DATE."""

    type = Date()
    name = "utc_day"
    inherit_cache = True


@compiles(UtcDay)
def _utc_day_default(element: UtcDay, compiler: SQLCompiler, **kw: Any) -> str:
    return f"CAST({compiler.process(element.clauses, **kw)} AS DATE)"


@compiles(UtcDay, "sqlite")
def _utc_day_sqlite(element: UtcDay, compiler: SQLCompiler, **kw: Any) -> str:
    # SQLite keeps timestamps as UTC text ("2026-12-06 10:00:00.000000").
    return f"date({compiler.process(element.clauses, **kw)})"


@compiles(UtcDay, "postgresql")
def _utc_day_postgresql(element: UtcDay, compiler: SQLCompiler, **kw: Any) -> str:
    # Not the session's time zone: a day is a UTC day wherever the server is.
    return f"CAST(({compiler.process(element.clauses, **kw)} AT TIME ZONE 'UTC') AS DATE)"


def usage_report(
    session: Session, *, days: int = 30, now: datetime.datetime | None = None
) -> UsageReport:
    """The last ``days`` UTC days up to ``now`` (clamped to 1..MAX_DAYS)."""
    days = max(1, min(int(days), MAX_DAYS))
    moment = now or utcnow()
    today = (moment.astimezone(datetime.UTC) if moment.tzinfo else moment).date()
    first = today - datetime.timedelta(days=days - 1)
    calendar = [first + datetime.timedelta(days=n) for n in range(days)]
    since = datetime.datetime.combine(first, datetime.time.min, tzinfo=datetime.UTC)
    until = since + datetime.timedelta(days=days)
    in_window = and_(Turn.created_at >= since, Turn.created_at < until)
    p50, p95 = _latency_percentiles(session, in_window)
    abstained, downvoted = _answer_shares(session, in_window)
    return UsageReport(
        days=calendar,
        questions_per_day=_filled(_questions(session, in_window), calendar),
        latency_p50=Series("p50", sorted(p50.items())),
        latency_p95=Series("p95", sorted(p95.items())),
        abstained_share=Series("abstained", sorted(abstained.items())),
        downvoted_share=Series("downvoted", sorted(downvoted.items())),
        tokens_per_provider=_filled(_tokens(session, first, today), calendar),
    )


def _questions(session: Session, in_window: ColumnElement[bool]) -> dict[str, dict[Any, float]]:
    """Questions per platform and day."""
    day = UtcDay(Turn.created_at)
    rows = session.execute(
        select(Conversation.platform, day, func.count())
        .join(Conversation, Conversation.id == Turn.conversation_id)
        .where(Turn.role == "user", in_window)
        .group_by(Conversation.platform, day)
    )
    return _by_name(rows)


def _tokens(
    session: Session, first: datetime.date, last: datetime.date
) -> dict[str, dict[Any, float]]:
    """Tokens in + out per provider and day."""
    rows = session.execute(
        select(LlmUsage.provider, LlmUsage.day, func.sum(LlmUsage.tokens_in + LlmUsage.tokens_out))
        .where(LlmUsage.day >= first, LlmUsage.day <= last)
        .group_by(LlmUsage.provider, LlmUsage.day)
    )
    return _by_name(rows)


def _answer_shares(
    session: Session, in_window: ColumnElement[bool]
) -> tuple[dict[datetime.date, float], dict[datetime.date, float]]:
    """Per day with answers: the share that abstained, and the share with a 👎 vote."""
    day = UtcDay(Turn.created_at)
    voted_down = exists().where(Feedback.turn_id == Turn.id, Feedback.value < 0)
    rows = session.execute(
        select(
            day,
            func.count(),
            func.sum(case((Turn.abstained.is_(True), 1), else_=0)),
            func.sum(case((voted_down, 1), else_=0)),
        )
        .where(Turn.role == "assistant", in_window)
        .group_by(day)
    ).all()
    abstained = {_as_date(r[0]): int(r[2]) / r[1] for r in rows}
    downvoted = {_as_date(r[0]): int(r[3]) / r[1] for r in rows}
    return abstained, downvoted


def _latency_percentiles(
    session: Session, in_window: ColumnElement[bool]
) -> tuple[dict[datetime.date, float], dict[datetime.date, float]]:
    """Per day with timed answers: the nearest-rank p50 and p95 latency, in ms. The database
    ranks each day's latencies and returns at most two rows a day."""
    day = UtcDay(Turn.created_at)
    ranked = (
        select(
            day.label("day"),
            Turn.latency_ms.label("ms"),
            func.row_number().over(partition_by=day, order_by=Turn.latency_ms).label("rank"),
            func.count().over(partition_by=day).label("n"),
        )
        .where(Turn.role == "assistant", Turn.latency_ms.is_not(None), in_window)
        .subquery()
    )
    rows = session.execute(
        select(ranked.c.day, ranked.c.ms, ranked.c.rank, ranked.c.n).where(
            or_(
                ranked.c.rank == _nearest_rank(P50, ranked.c.n),
                ranked.c.rank == _nearest_rank(P95, ranked.c.n),
            )
        )
    ).all()
    p50 = {_as_date(r.day): float(r.ms) for r in rows if r.rank == _nearest_rank(P50, r.n)}
    p95 = {_as_date(r.day): float(r.ms) for r in rows if r.rank == _nearest_rank(P95, r.n)}
    return p50, p95


def _nearest_rank(percent: int, count: Any) -> Any:
    """⌈percent·count/100⌉ in integer arithmetic, for a Python int or an SQL column alike."""
    return (count * percent + 99) // 100


def _by_name(rows: Any) -> dict[str, dict[Any, float]]:
    """(name, day, value) rows as name → day → value."""
    found: dict[str, dict[Any, float]] = defaultdict(dict)
    for name, day, value in rows:
        found[str(name)][_as_date(day)] = float(value or 0)
    return found


def _filled(values: dict[str, dict[Any, float]], calendar: list[datetime.date]) -> list[Series]:
    """One Series per name (sorted), with a point on every day of the calendar (0 if none)."""
    return [
        Series(name, [(day, values[name].get(day, 0.0)) for day in calendar])
        for name in sorted(values)
    ]


def _as_date(value: Any) -> datetime.date:
    """A day as the driver returns it: a date (PostgreSQL) or 'YYYY-MM-DD' text (SQLite)."""
    if isinstance(value, datetime.datetime):
        return value.date()
    if isinstance(value, datetime.date):
        return value
    return datetime.date.fromisoformat(str(value))
