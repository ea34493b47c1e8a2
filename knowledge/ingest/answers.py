"""Saving, changing and removing team answers: each a row of ``team_answers`` and a document
of the built-in ``team-answers`` source, embedded at once.

The document has one chunk: its heading path is the question and the credit ("answered by
@user in #channel, DATE"), its text the answer, and what is embedded the question with the
answer. Storing it bumps the index revision, so every replica's index picks it up within
seconds. The source is created on first use, disabled: no worker ever crawls it.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from knowledge.embed.embedder import TextEmbedder
from knowledge.errors import SourceError
from knowledge.storage import store
from knowledge.storage.answers import TEAM_ANSWERS, TeamAnswer, document_url
from knowledge.storage.db import as_utc
from knowledge.storage.documents import Document, Source
from knowledge.types import ChunkDraft

MAX_QUESTION_CHARS = 2000
MAX_ANSWER_CHARS = 20_000


@dataclass(frozen=True)
class AnswerSpec:
    """An answer as it is taught: what, by whom, where, and the message it came from."""

    question: str
    answer: str
    author: str
    platform: str
    channel: str
    saved_by: str
    author_name: str | None = None
    channel_name: str | None = None  # as credits show it: "#general", "a direct message"
    is_private: bool = False
    permalink: str | None = None
    message_ref: str | None = None
    thread: str | None = None


def credit(answer: TeamAnswer) -> str:
    """``answered by @user in #channel, DATE``, as citations show it."""
    who = answer.author_name or answer.author
    if answer.platform == "cli":
        where = "the terminal"
    else:
        where = answer.channel_name or f"#{answer.channel}"
    return f"answered by @{who} in {where}, {as_utc(answer.created_at):%Y-%m-%d}"


def save_answer(sessions: sessionmaker[Session], embedder: TextEmbedder, spec: AnswerSpec) -> int:
    """Store ``spec`` (replacing the answer saved from the same message, if any) and index it
    at once; its id."""
    question, text = spec.question.strip(), spec.answer.strip()
    if not question or not text:
        raise SourceError("A team answer needs both a question and an answer.")
    if len(question) > MAX_QUESTION_CHARS or len(text) > MAX_ANSWER_CHARS:
        raise SourceError(
            f"A team answer's question is at most {MAX_QUESTION_CHARS:,} characters and its "
            f"answer at most {MAX_ANSWER_CHARS:,}."
        )
    vector = _embedding(embedder, question, text)
    with sessions.begin() as session:
        row = _from_message(session, spec.platform, spec.channel, spec.message_ref)
        if row is None:
            row = TeamAnswer(platform=spec.platform, channel=spec.channel,
                             message_ref=spec.message_ref)  # fmt: skip
            session.add(row)
        elif row.document_id is not None:  # its permalink stays; the document is rewritten
            _drop_document(session, row)
        row.question, row.answer, row.author = question, text, spec.author
        row.author_name, row.channel_name = spec.author_name, spec.channel_name
        row.is_private, row.permalink, row.thread = spec.is_private, spec.permalink, spec.thread
        row.saved_by = spec.saved_by
        session.flush()
        _write_document(session, embedder, row, vector)
        return row.id


def change_answer_text(
    sessions: sessionmaker[Session],
    embedder: TextEmbedder,
    platform: str,
    channel: str,
    message_ref: str,
    text: str,
) -> bool:
    """The original message was edited: the saved answer says what it says now. False when no
    answer was saved from that message."""
    with sessions() as session:
        row = _from_message(session, platform, channel, message_ref)
        if row is None or not text.strip():
            return False
        if row.answer == text.strip():  # already says it (another replica got the edit too)
            return True
        question = row.question
    vector = _embedding(embedder, question, text.strip())
    with sessions.begin() as session:
        row = _from_message(session, platform, channel, message_ref)
        if row is None:
            return False
        row.answer = text.strip()
        _drop_document(session, row)
        session.flush()
        _write_document(session, embedder, row, vector)
    return True


def remove_answer(session: Session, answer_id: int) -> TeamAnswer | None:
    """Delete the answer and its document; the removed row, or None if there is none."""
    row = session.get(TeamAnswer, answer_id)
    if row is None:
        return None
    _drop_document(session, row)
    session.delete(row)
    return row


def remove_message_answer(
    sessions: sessionmaker[Session], platform: str, channel: str, message_ref: str
) -> bool:
    """The original message was deleted: so is the answer saved from it. False if none was."""
    with sessions.begin() as session:
        row = _from_message(session, platform, channel, message_ref)
        return row is not None and remove_answer(session, row.id) is not None


def remove_authored(session: Session, platform: str, author: str) -> int:
    """Delete every answer ``author`` said on ``platform`` (``admin forget``); how many."""
    rows = session.scalars(
        select(TeamAnswer.id).where(TeamAnswer.platform == platform, TeamAnswer.author == author)
    ).all()
    for answer_id in rows:
        remove_answer(session, answer_id)
    return len(rows)


def list_answers(session: Session) -> list[TeamAnswer]:
    return list(session.scalars(select(TeamAnswer).order_by(TeamAnswer.id)))


def _from_message(
    session: Session, platform: str, channel: str, message_ref: str | None
) -> TeamAnswer | None:
    if message_ref is None:
        return None
    return session.scalar(
        select(TeamAnswer).where(TeamAnswer.platform == platform, TeamAnswer.channel == channel,
                                 TeamAnswer.message_ref == message_ref)
    )  # fmt: skip


def _embedding(embedder: TextEmbedder, question: str, text: str) -> bytes:
    return store.vector_bytes(embedder.embed_texts([_embed_text(question, text)])[0])


def _embed_text(question: str, text: str) -> str:
    return f"{question}\n\n{text}"


def _source(session: Session) -> Source:
    source = session.scalar(select(Source).where(Source.name == TEAM_ANSWERS))
    if source is None:
        source = store.get_or_create_source(
            session, name=TEAM_ANSWERS, kind=TEAM_ANSWERS, location="built-in"
        )
        source.enabled = False  # nothing to crawl: the scheduler leaves it alone
    elif source.kind != TEAM_ANSWERS:
        raise SourceError(
            f"A source named {TEAM_ANSWERS!r} already exists and is not teambot's built-in "
            "one; rename it (remove it and add it again under another name)."
        )
    return source


def _write_document(
    session: Session, embedder: TextEmbedder, row: TeamAnswer, vector: bytes
) -> None:
    source = _source(session)
    url = document_url(row)
    embed_text = _embed_text(row.question, row.answer)
    draft = ChunkDraft(ordinal=0, heading_path=(row.question, credit(row)), anchor="",
                       text=row.answer, embed_text=embed_text,
                       token_count=embedder.count_tokens(embed_text))  # fmt: skip
    digest = hashlib.sha256(f"{embedder.model_name}\0{embed_text}".encode()).hexdigest()
    store.save_document(session, source_id=source.id, url=url, title=row.question,
                        content_hash=digest, etag=None, last_modified=None,
                        sitemap_lastmod=None, links=None, drafts=[draft],
                        chunk_hashes=[digest], embeddings=[vector],
                        model=embedder.model_name)  # fmt: skip
    row.document_id = session.scalar(
        select(Document.id).where(Document.source_id == source.id, Document.url == url)
    )


def _drop_document(session: Session, row: TeamAnswer) -> None:
    if row.document_id is None:
        return
    source_id = session.scalar(select(Document.source_id).where(Document.id == row.document_id))
    url = session.scalar(select(Document.url).where(Document.id == row.document_id))
    row.document_id = None
    session.flush()
    if source_id is not None and url is not None:
        store.delete_documents(session, source_id, [url])
