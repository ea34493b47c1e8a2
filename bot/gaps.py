"""Gaps: questions the docs did not answer well, recorded where they happen.

Three things make a gap, stored once per answer and kind (knowledge.storage.conversations.Gap):

- ``abstained``: teambot said the docs do not cover the question (stored with the answer,
  bot.memory);
- ``downvoted``: someone voted 👎 on the answer (bot.feedback); changing the vote to 👍
  removes it once no 👎 is left on that answer;
- ``answered_by_person``: after teambot answered in a Slack thread or Discord reply chain,
  someone who asked teambot nothing there replied, without mentioning teambot and not with
  a question of their own (bot.slack.app, bot.discord.app).

A gap goes with its answer turn: retention and ``admin forget`` delete both. Listing them by
topic is bot.gap_topics; the digest, bot.digest.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from bot.types import Citation
from knowledge.storage.conversations import Conversation, Feedback, Gap, Turn
from knowledge.storage.db import as_utc

ABSTAINED, DOWNVOTED, ANSWERED_BY_PERSON = "abstained", "downvoted", "answered_by_person"
KINDS = (ABSTAINED, DOWNVOTED, ANSWERED_BY_PERSON)
MAX_LISTED = 2000  # the newest gaps a listing reads (clustering is quadratic in them)


def passages_of(citations: Iterable[Citation], cosines: Iterable[float | None] = ()) -> list[
    dict[str, Any]
]:  # fmt: skip
    """The passages an answer weighed, as a gap stores them (cosine None where unknown)."""
    scores = list(cosines)
    return [
        {"title": c.title, "url": c.url, "anchor": c.anchor,
         "cosine": round(scores[i], 3) if i < len(scores) and scores[i] is not None else None}
        for i, c in enumerate(citations)
    ]  # fmt: skip


def add_gap(session: Session, kind: str, answer: Turn, question: str, platform: str,
            channel: str, passages: list[dict[str, Any]]) -> bool:  # fmt: skip
    """Record a gap of ``kind`` for the stored answer ``answer``; False if it is recorded."""
    if answer.id is not None and session.scalar(
        select(Gap.id).where(Gap.turn_id == answer.id, Gap.kind == kind)
    ):
        return False
    session.add(
        Gap(kind=kind, platform=platform, channel=channel, question=question, turn_id=answer.id,
            passages=passages, confidence=answer.confidence)
    )  # fmt: skip
    return True


def add_gap_for_answer(session: Session, kind: str, answer: Turn) -> bool:
    """A gap of ``kind`` for the answer turn ``answer``, with the question it answered (the
    user turn before it) and the passages it cited; False if there is no such question."""
    conversation = session.get_one(Conversation, answer.conversation_id)
    question = _question_before(session, answer)
    if question is None:
        return False
    passages = [{"title": c.get("title"), "url": c.get("url"), "anchor": c.get("anchor"),
                 "cosine": None} for c in answer.citations or []]  # fmt: skip
    return add_gap(session, kind, answer, question.text, conversation.platform,
                   conversation.channel, passages)  # fmt: skip


def follow_vote(session: Session, turn_id: int) -> None:
    """Keep the 👎 gap of answer ``turn_id`` in step with its votes: there while anyone's
    latest vote on it is 👎, gone when none is."""
    down = session.scalar(
        select(Feedback.id).where(Feedback.turn_id == turn_id, Feedback.value < 0).limit(1)
    )
    if down is None:
        session.execute(delete(Gap).where(Gap.turn_id == turn_id, Gap.kind == DOWNVOTED))
        return
    answer = session.get(Turn, turn_id)
    if answer is not None:
        add_gap_for_answer(session, DOWNVOTED, answer)


def record_person_answer(
    sessions: sessionmaker[Session], platform: str, channel: str, thread: str, replier: str
) -> bool:
    """A person replied in a thread teambot answered: a gap for teambot's last answer there,
    unless the replier has asked teambot anything in that thread (with follow-ups answered, a
    teammate's answer becomes a question too, and the asker's "thanks" would count against
    it), or it is recorded already. True if recorded."""
    try:
        with sessions.begin() as session:
            answer = answer_a_person_followed(session, platform, channel, thread, replier)
            if answer is None:
                return False
            return add_gap_for_answer(session, ANSWERED_BY_PERSON, answer)
    except IntegrityError:  # recorded a moment ago by another replica
        return False


def answer_a_person_followed(
    session: Session, platform: str, channel: str, thread: str, replier: str
) -> Turn | None:
    """teambot's last answer in the thread, when ``replier`` asked teambot nothing there (so
    their reply answers someone else rather than following up their own question)."""
    answer = session.scalar(
        select(Turn)
        .join(Conversation, Conversation.id == Turn.conversation_id)
        .where(Conversation.platform == platform, Conversation.channel == channel,
               Conversation.thread == thread, Turn.role == "assistant")
        .order_by(Turn.id.desc())
        .limit(1)
    )  # fmt: skip
    if answer is None:
        return None
    asked = session.scalar(
        select(Turn.id)
        .where(Turn.conversation_id == answer.conversation_id, Turn.role == "user",
               Turn.user_id == replier)
        .limit(1)
    )  # fmt: skip
    return answer if asked is None else None


def _question_before(session: Session, answer: Turn) -> Turn | None:
    return session.scalar(
        select(Turn)
        .where(Turn.conversation_id == answer.conversation_id, Turn.role == "user",
               Turn.id < answer.id)
        .order_by(Turn.id.desc())
        .limit(1)
    )  # fmt: skip


@dataclass(frozen=True)
class GapRecord:
    """A question as listings read it: each answer once, with every kind of gap it is."""

    question: str
    platform: str
    channel: str
    kinds: tuple[str, ...]
    last_seen: datetime
    confidence: float | None
    passages: list[dict[str, Any]]
    is_private: bool = False  # asked in a DM or private channel (bot.audience)


def read_gaps(
    sessions: sessionmaker[Session],
    since: datetime,
    channel: tuple[str, str] | None = None,
    limit: int = MAX_LISTED,
) -> list[GapRecord]:
    """The gaps recorded since ``since`` (in ``channel``, a (platform, channel) pair, if
    given), newest first; an answer that is several kinds of gap is one record."""
    query = (
        select(Gap, Conversation.is_private)
        .outerjoin(Turn, Turn.id == Gap.turn_id)
        .outerjoin(Conversation, Conversation.id == Turn.conversation_id)
        .where(Gap.created_at >= since)
    )
    if channel is not None:
        query = query.where(Gap.platform == channel[0], Gap.channel == channel[1])
    with sessions() as session:
        rows = session.execute(
            query.order_by(Gap.created_at.desc(), Gap.id.desc()).limit(limit)
        ).all()
        merged: dict[object, GapRecord] = {}
        for gap, is_private in rows:
            key = gap.turn_id if gap.turn_id is not None else ("gap", gap.id)
            seen = merged.get(key)
            if seen is None:
                merged[key] = GapRecord(gap.question, gap.platform, gap.channel, (gap.kind,),
                                        as_utc(gap.created_at), gap.confidence,
                                        list(gap.passages or []), bool(is_private))  # fmt: skip
            elif gap.kind not in seen.kinds:
                passages = seen.passages or list(gap.passages or [])
                merged[key] = replace(seen, kinds=(*seen.kinds, gap.kind), passages=passages)
    return list(merged.values())
