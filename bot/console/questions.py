"""The Questions page: recent questions by platform and channel, each with its answer,
model, confidence, votes and latency; and the gaps — questions the docs did not answer well
(abstained, 👎, answered by a person) — grouped by topic (bot.gap_topics)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import case, func, select
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from bot.console.auth import PREFIX
from bot.console.kept_topics import KeptTopics
from bot.console.web import PAGE_SIZE, ConsoleDeps, Page, page_number, query_text, render
from bot.gap_topics import Topic, topics
from bot.gaps import read_gaps
from knowledge.storage.conversations import Conversation, Feedback, Gap, Turn
from knowledge.storage.db import as_utc, utcnow

GAP_DAYS = 30
SHOWN_CHARS = 600


@dataclass(frozen=True)
class Asked:
    """One question and the answer teambot gave."""

    when: datetime
    platform: str
    channel: str
    question: str
    answer: str
    model: str
    confidence: float | None
    abstained: bool
    up: int
    down: int
    latency_ms: float | None


def recent(deps: ConsoleDeps, number: int, platform: str, channel: str) -> tuple[list[Asked], Page]:
    """A page of answers, newest first, in ``platform``/``channel`` when given."""
    where = [Turn.role == "assistant"]
    if platform:
        where.append(Conversation.platform == platform)
    if channel:
        where.append(Conversation.channel == channel)
    joined = select(Turn).join(Conversation, Conversation.id == Turn.conversation_id).where(*where)
    with deps.sessions() as session:
        total = session.scalar(select(func.count()).select_from(joined.subquery())) or 0
        page = Page(number, PAGE_SIZE, total)
        rows = session.execute(
            select(Turn, Conversation.platform, Conversation.channel)
            .join(Conversation, Conversation.id == Turn.conversation_id).where(*where)
            .order_by(Turn.created_at.desc(), Turn.id.desc()).offset(page.offset).limit(page.size)
        ).all()  # fmt: skip
        answers = [row[0] for row in rows]
        votes = _votes(session, [a.id for a in answers])
        questions = _questions(session, answers)
        asked = [
            Asked(as_utc(turn.created_at), platform_, channel_,
                  questions.get(turn.id, "")[:SHOWN_CHARS], turn.text[:SHOWN_CHARS],
                  turn.model or "", turn.confidence, bool(turn.abstained),
                  *votes.get(turn.id, (0, 0)), turn.latency_ms)
            for turn, platform_, channel_ in rows
        ]  # fmt: skip
    return asked, page


def _votes(session: Any, turn_ids: list[int]) -> dict[int, tuple[int, int]]:
    rows = session.execute(
        select(Feedback.turn_id, func.sum(case((Feedback.value > 0, 1), else_=0)),
               func.sum(case((Feedback.value < 0, 1), else_=0)))
        .where(Feedback.turn_id.in_(turn_ids)).group_by(Feedback.turn_id)
    ).all()  # fmt: skip
    return {turn: (int(up or 0), int(down or 0)) for turn, up, down in rows}


def _questions(session: Any, answers: list[Turn]) -> dict[int, str]:
    """Each answer's question: the user turn just before it in its conversation."""
    if not answers:
        return {}
    low = min(a.id for a in answers) - 2
    rows = session.execute(
        select(Turn.id, Turn.conversation_id, Turn.text)
        .where(Turn.role == "user", Turn.id >= low, Turn.id <= max(a.id for a in answers),
               Turn.conversation_id.in_({a.conversation_id for a in answers}))
        .order_by(Turn.id)
    ).all()  # fmt: skip
    found: dict[int, str] = {}
    for answer in answers:
        before = [r for r in rows if r[1] == answer.conversation_id and r[0] < answer.id]
        if before:
            found[answer.id] = before[-1][2]
    return found


def platforms(deps: ConsoleDeps) -> list[str]:
    with deps.sessions() as session:
        return list(session.scalars(select(Conversation.platform).distinct()
                                    .order_by(Conversation.platform)))  # fmt: skip


def gap_topics(deps: ConsoleDeps, kept: KeptTopics) -> list[Topic]:
    """The gaps of the last GAP_DAYS days, grouped by topic; embedded again only when the
    gaps in the window have changed since a grouping ``kept``."""
    since = utcnow() - timedelta(days=GAP_DAYS)
    with deps.sessions() as session:
        newest, count = session.execute(
            select(func.max(Gap.id), func.count(Gap.id)).where(Gap.created_at >= since)
        ).one()
    return kept.get((GAP_DAYS, newest, count), lambda: _grouped(deps, since))


def _grouped(deps: ConsoleDeps, since: datetime) -> list[Topic]:
    found = read_gaps(deps.sessions, since)
    return topics(found, deps.embedder.embed_texts) if found else []


def routes(deps: ConsoleDeps) -> list[Route]:
    kept = KeptTopics()

    async def page(request: Request) -> Response:
        platform, channel = query_text(request, "platform"), query_text(request, "channel")
        asked, pager = await run_in_threadpool(recent, deps, page_number(request), platform,
                                               channel)  # fmt: skip
        known = await run_in_threadpool(platforms, deps)
        return render(request, "questions.html", title="Questions", here="questions",
                      asked=asked, page=pager, platform=platform, channel=channel,
                      platforms=known)  # fmt: skip

    async def gaps(request: Request) -> Response:
        grouped = await run_in_threadpool(gap_topics, deps, kept)
        return render(request, "gaps.html", title="Gaps", here="questions", topics=grouped,
                      days=GAP_DAYS)  # fmt: skip

    return [
        Route(f"{PREFIX}/questions", page, methods=["GET"]),
        Route(f"{PREFIX}/questions/gaps", gaps, methods=["GET"]),
    ]
