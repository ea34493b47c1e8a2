"""Conversation memory in SQL: one conversation per (platform, channel, thread), turns in order."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from bot import gaps
from bot.types import Answer, Question
from knowledge.storage.conversations import Conversation, Turn
from knowledge.storage.db import utcnow

HISTORY_TURNS = 10


@dataclass(frozen=True)
class PastTurn:
    role: str
    text: str


class ConversationMemory:
    """Reads a conversation's recent turns and records new question/answer pairs."""

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self.sessions = sessions

    def conversation_id(self, platform: str, channel: str, thread: str) -> int:
        """The id of the conversation, created on first use (safe against a concurrent creator)."""
        key = (
            Conversation.platform == platform,
            Conversation.channel == channel,
            Conversation.thread == thread,
        )
        with self.sessions.begin() as session:
            found = session.scalar(select(Conversation.id).where(*key))
            if found is not None:
                return found
        try:
            with self.sessions.begin() as session:
                conversation = Conversation(platform=platform, channel=channel, thread=thread)
                session.add(conversation)
                session.flush()
                return conversation.id
        except IntegrityError:  # another process created it between our two transactions
            with self.sessions() as session:
                return session.scalars(select(Conversation.id).where(*key)).one()

    def history(self, conversation_id: int, limit: int = HISTORY_TURNS) -> list[PastTurn]:
        """The last ``limit`` turns, oldest first."""
        with self.sessions() as session:
            rows = session.execute(
                select(Turn.role, Turn.text)
                .where(Turn.conversation_id == conversation_id)
                .order_by(Turn.id.desc())
                .limit(limit)
            ).all()
            return [PastTurn(role, text) for role, text in reversed(list(rows))]

    def record(
        self,
        question: Question,
        answer: Answer,
        *,
        first_token_ms: float | None = None,
        considered: list[dict[str, Any]] | None = None,
    ) -> int:
        """Store the question and its answer as two turns, in one transaction; returns the
        answer turn's id. An answer that abstained is a gap (bot.gaps) in the same
        transaction, with ``considered``, the passages teambot weighed."""
        with self.sessions.begin() as session:
            reply = Turn(
                conversation_id=answer.conversation_id,
                role="assistant",
                text=answer.text,
                search_query=answer.search_query,
                citations=[asdict(c) for c in answer.citations],
                model=answer.model,
                latency_ms=answer.timings.get("total"),
                timings=answer.timings,
                provider=answer.provider,
                route=answer.route,
                tokens_in=answer.tokens_in,
                tokens_out=answer.tokens_out,
                first_token_ms=first_token_ms,
                rewrite=answer.rewrite or None,
                confidence=answer.confidence,
                abstained=answer.abstained,
            )
            session.add_all(
                [
                    Turn(
                        conversation_id=answer.conversation_id,
                        role="user",
                        user_id=question.user,
                        text=question.text,
                    ),
                    reply,
                ]
            )
            conversation = session.get_one(Conversation, answer.conversation_id)
            conversation.updated_at = utcnow()
            conversation.is_private = conversation.is_private or question.is_private
            session.flush()
            if answer.abstained:
                gaps.add_gap(session, gaps.ABSTAINED, reply, question.text, question.platform,
                             question.channel, considered or [])  # fmt: skip
            return reply.id
