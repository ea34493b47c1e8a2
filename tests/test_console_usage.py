"""The Usage page's numbers (bot.console.usage) on a generated conversation history, on SQLite
and PostgreSQL, against numbers worked out by hand: UTC days with gaps, several platforms and
providers, abstained and 👎 answers, rows just outside the window."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker

from bot.console.usage import MAX_DAYS, Series, usage_report
from bot.feedback import record_feedback
from knowledge.storage.conversations import Conversation, LlmUsage, Turn

NOW = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)
WEEK = [date(2026, 11, 30) + timedelta(days=n) for n in range(7)]  # Nov 30 .. Dec 6


def at(day: int, hour: float = 12.0, month: int = 12) -> datetime:
    return datetime(2026, month, day, tzinfo=UTC) + timedelta(hours=hour)


def exchange(
    session: Session,
    platform: str,
    when: datetime,
    latency_ms: float | None,
    *,
    abstained: bool | None = False,
) -> int:
    """A question and its answer in a conversation of their own; returns the answer's id."""
    conversation = Conversation(platform=platform, channel="C1", thread=f"t{when.timestamp()}")
    session.add(conversation)
    session.flush()
    session.add(Turn(conversation_id=conversation.id, role="user", user_id="U1", text="q?",
                     created_at=when))  # fmt: skip
    answer = Turn(conversation_id=conversation.id, role="assistant", text="a",
                  latency_ms=latency_ms, abstained=abstained, created_at=when)  # fmt: skip
    session.add(answer)
    session.flush()
    return answer.id


def history(sessions: sessionmaker[Session]) -> None:
    """Dec 1: four answers on two platforms; Dec 2: nothing; Dec 3: two (one untimed, at
    22:00 UTC, already Dec 4 in Asia); Dec 5: twenty; Dec 6: one late tonight; rows on Nov 29
    and Dec 7 lie outside the window."""
    with sessions.begin() as session:
        dec1 = [exchange(session, "slack", at(1, h), ms) for h, ms in ((1, 300), (2, 100))]
        dec1.append(exchange(session, "slack", at(1, 23.99), 200, abstained=True))
        dec1.append(exchange(session, "discord", at(1, 0), 1000, abstained=None))
        dec3 = [exchange(session, "slack", at(3, 22), 50), exchange(session, "slack", at(3), None)]
        for n in range(20):
            exchange(session, "terminal", at(5, n / 2), 20 - n, abstained=n < 5)
        exchange(session, "discord", at(6, 23.5), 7000)
        early = exchange(session, "slack", at(29, 23.99, month=11), 9)  # Nov 29, 23:59 UTC
        exchange(session, "slack", at(7, 0), 9, abstained=True)  # tomorrow
        for day, provider, tokens_in, tokens_out in (
            (date(2026, 12, 1), "local", 100, 50),
            (date(2026, 12, 1), "cloud", 1000, 200),
            (date(2026, 12, 5), "cloud", 10, 5),
            (date(2026, 11, 29), "cloud", 99, 99),
            (date(2026, 12, 7), "local", 99, 99),
        ):
            session.add(LlmUsage(day=day, provider=provider, requests=1, tokens_in=tokens_in,
                                 tokens_out=tokens_out))  # fmt: skip
    # Dec 1: one answer voted 👎 twice, one 👍; Dec 3: a 👎 changed to 👍 (the latest wins).
    votes = [(dec1[0], "U2", -1), (dec1[0], "U3", -1), (dec1[1], "U2", 1),
             (dec3[0], "U2", -1), (dec3[0], "U2", 1), (early, "U2", -1)]  # fmt: skip
    for turn, user, value in votes:
        assert record_feedback(sessions, turn, user, value)


def points(series: Series) -> dict[date, float]:
    return dict(series.points)


def test_usage_report_counts_each_utc_day_of_the_window(
    any_sessions: sessionmaker[Session],
) -> None:
    history(any_sessions)
    with any_sessions() as session:
        if session.get_bind().dialect.name == "postgresql":
            session.execute(text("SET TIME ZONE 'Asia/Kolkata'"))  # days stay UTC days
        report = usage_report(session, days=7, now=NOW)
    assert report.days == WEEK
    questions = {s.name: s.points for s in report.questions_per_day}
    assert list(questions) == ["discord", "slack", "terminal"]
    assert all([d for d, _ in pts] == WEEK for pts in questions.values())  # zero days kept
    assert [v for _, v in questions["slack"]] == [0, 3, 0, 2, 0, 0, 0]
    assert [v for _, v in questions["discord"]] == [0, 1, 0, 0, 0, 0, 1]
    assert [v for _, v in questions["terminal"]] == [0, 0, 0, 0, 0, 20, 0]
    # Nearest rank: Dec 1 [100, 200, 300, 1000] → ranks 2 and 4; Dec 5 1..20 → ranks 10 and 19.
    assert points(report.latency_p50) == {
        date(2026, 12, 1): 200, date(2026, 12, 3): 50, date(2026, 12, 5): 10,
        date(2026, 12, 6): 7000,
    }  # fmt: skip
    assert points(report.latency_p95) == {
        date(2026, 12, 1): 1000, date(2026, 12, 3): 50, date(2026, 12, 5): 19,
        date(2026, 12, 6): 7000,
    }  # fmt: skip
    shares = {date(2026, 12, 1): 0.25, date(2026, 12, 3): 0.0, date(2026, 12, 5): 0.25,
              date(2026, 12, 6): 0.0}  # fmt: skip
    assert points(report.abstained_share) == shares
    assert points(report.downvoted_share) == {**{day: 0.0 for day in shares}, WEEK[1]: 0.25}
    tokens = {s.name: [v for _, v in s.points] for s in report.tokens_per_provider}
    assert tokens == {"cloud": [0, 1200, 0, 0, 0, 15, 0], "local": [0, 150, 0, 0, 0, 0, 0]}


def test_an_empty_database_has_every_day_and_nothing_to_draw(
    any_sessions: sessionmaker[Session],
) -> None:
    with any_sessions() as session:
        report = usage_report(session, days=3, now=NOW)
    assert report.days == WEEK[-3:]
    assert report.questions_per_day == [] and report.tokens_per_provider == []
    for series in (report.latency_p50, report.latency_p95, report.abstained_share,
                   report.downvoted_share):  # fmt: skip
        assert series.points == []


def test_the_window_is_bounded(sessions: sessionmaker[Session]) -> None:
    naive_now = NOW.replace(tzinfo=None)  # SQLite's naive UTC reads the same
    with sessions() as session:
        assert len(usage_report(session, days=10**9, now=naive_now).days) == MAX_DAYS
        assert usage_report(session, days=-5, now=naive_now).days == [NOW.date()]
        assert usage_report(session, days=0).days[0] >= NOW.date()  # default now: today
