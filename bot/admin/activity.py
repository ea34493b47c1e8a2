"""What people did with teambot: usage stats for admins, and forgetting one person's data.

"Answered" means the answer cites at least one passage: an answer with no
citation is teambot saying it found nothing (no passage matched, or the model
declined), whichever model wrote it; an extractive answer that quotes
passages did answer. So answered + unanswered = all answers.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import and_, delete, exists, func, or_, select
from sqlalchemy.orm import Session, sessionmaker

from bot.admin.satisfaction import feedback_lines, read_votes
from bot.audience import PRIVATE_TEXT, PUBLIC, Audience
from knowledge.storage.conversations import Conversation, Feedback, Turn
from knowledge.storage.db import utcnow

LISTED = 5
QUESTION_CHARS = 80


@dataclass(frozen=True)
class Exchange:
    """An answer with the question it answered (PRIVATE_TEXT when its audience may not read it)."""

    question: str
    cited: bool
    latency_ms: float | None


def stats_text(
    sessions: sessionmaker[Session],
    days: int,
    now: datetime | None = None,
    audience: Audience = PUBLIC,
) -> str:
    """Questions per UTC day, answer rate, votes (and per channel, the pages 👎 answers cited,
    the latest 👎 reasons: bot.admin.satisfaction), slowest and unanswered questions; words
    asked in private are shown only to an ``audience`` that may read them (bot.audience)."""
    today = (now or utcnow()).date()
    first = today - timedelta(days=days - 1)
    since = datetime.combine(first, time.min, tzinfo=UTC)
    with sessions() as session:
        turns = session.execute(
            select(
                Turn.conversation_id,
                Turn.role,
                Turn.text,
                Turn.citations,
                Turn.latency_ms,
                Turn.created_at,
                Conversation.platform,
                Conversation.channel,
                Conversation.is_private,
            )
            .join(Conversation, Conversation.id == Turn.conversation_id)
            .where(Turn.created_at >= since)
            .order_by(Turn.conversation_id, Turn.id)
        ).all()
        votes = dict(
            session.execute(
                select(Feedback.value, func.count())
                .where(Feedback.created_at >= since)
                .group_by(Feedback.value)
            ).all()
        )
        cast = read_votes(session, since, audience)
    per_day = Counter(_utc_day(t.created_at) for t in turns if t.role == "user")
    exchanges = _exchanges(turns, audience)
    lines = [f"Last {days} days (UTC, since {first}):", f"Questions: {sum(per_day.values())}"]
    lines += [f"  {day}  {per_day[day]}" for day in (first + timedelta(d) for d in range(days))]
    lines += [_answer_rate(exchanges), f"Feedback: 👍 {votes.get(1, 0)}  👎 {votes.get(-1, 0)}"]
    lines += feedback_lines(cast)
    timed = sorted(
        (e for e in exchanges if e.latency_ms is not None),
        key=lambda e: e.latency_ms or 0.0,
        reverse=True,
    )
    if timed:
        lines.append("Slowest questions:")
        lines += [
            f"  {(e.latency_ms or 0) / 1000:6.1f} s  {_short(e.question)}" for e in timed[:LISTED]
        ]
    unanswered = [e for e in exchanges if not e.cited]
    if unanswered:
        lines.append(f"Unanswered ({len(unanswered)}):")
        lines += [f"  {_short(e.question)}" for e in unanswered[-LISTED:]]
    return "\n".join(lines)


def _utc_day(moment: datetime) -> date:
    """SQLite hands back naive UTC datetimes, PostgreSQL aware ones in its session zone."""
    return (moment.astimezone(UTC) if moment.tzinfo else moment).date()


def _exchanges(turns: Sequence[Any], audience: Audience) -> list[Exchange]:
    """Pair each answer with the question before it in the same conversation."""
    exchanges, question, conversation = [], "", None
    for turn in turns:
        if turn.conversation_id != conversation:
            question, conversation = "", turn.conversation_id
        if turn.role == "user":
            readable = audience.may_read(turn.platform, turn.channel, turn.is_private)
            question = turn.text if readable else PRIVATE_TEXT
        elif turn.role == "assistant":
            exchanges.append(Exchange(question, bool(turn.citations), turn.latency_ms))
    return exchanges


def _answer_rate(exchanges: list[Exchange]) -> str:
    answered = sum(e.cited for e in exchanges)
    share = f" ({answered / len(exchanges):.0%})" if exchanges else ""
    return f"Answered: {answered} of {len(exchanges)} answers{share} (cited at least one passage)"


def _short(text: str) -> str:
    flat = " ".join(text.split()) or "(question not in range)"
    return flat if len(flat) <= QUESTION_CHARS else flat[: QUESTION_CHARS - 1] + "…"


@dataclass(frozen=True)
class Forgotten:
    questions: int
    answers: int
    votes: int
    conversations: int


def forget_user(sessions: sessionmaker[Session], platform: str, user_id: str) -> Forgotten:
    """Delete the user's questions, the answers to them, and their votes, in one transaction.

    Votes by others on those answers go with the answers (they rate text that is gone);
    conversations left empty go too, since a DM's channel id names the person.
    """
    on_platform = select(Conversation.id).where(Conversation.platform == platform)
    with sessions.begin() as session:
        asked = select(Turn.conversation_id).where(
            Turn.role == "user", Turn.user_id == user_id, Turn.conversation_id.in_(on_platform)
        )
        rows = session.execute(
            select(Turn.id, Turn.conversation_id, Turn.role, Turn.user_id)
            .where(Turn.conversation_id.in_(asked))
            .order_by(Turn.conversation_id, Turn.id)
        ).all()
        questions, answers = _turns_to_forget(rows, user_id)
        doomed = questions + answers
        own_votes = and_(
            Feedback.user_id == user_id,
            Feedback.turn_id.in_(select(Turn.id).where(Turn.conversation_id.in_(on_platform))),
        )
        votes = session.execute(
            delete(Feedback).where(or_(Feedback.turn_id.in_(doomed), own_votes))
        )
        session.execute(delete(Turn).where(Turn.id.in_(doomed)))
        emptied = session.execute(
            delete(Conversation).where(
                Conversation.id.in_({r.conversation_id for r in rows}),
                ~exists().where(Turn.conversation_id == Conversation.id),
            )
        )
        return Forgotten(len(questions), len(answers), votes.rowcount, emptied.rowcount)


def _turns_to_forget(rows: Sequence[Any], user_id: str) -> tuple[list[int], list[int]]:
    """The user's question turns, and the assistant turns that follow each before the next
    question (rows ordered by conversation, then id)."""
    questions: list[int] = []
    answers: list[int] = []
    forgetting, conversation = False, None
    for row in rows:
        if row.conversation_id != conversation:
            forgetting, conversation = False, row.conversation_id
        if row.role == "user":
            forgetting = row.user_id == user_id
        if forgetting:
            (questions if row.role == "user" else answers).append(row.id)
    return questions, answers
