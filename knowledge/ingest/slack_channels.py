"""Adding a Slack channel's history as a source, forgetting it, and queueing a thread to read.

A channel is named as Slack sends it in chat (``<#C123|general>``, ``<#C123>``), by its id
(``C123``) or by its name (``#general``, looked up with ``conversations.list``). Slack must
say teambot is a member (``conversations.info``): a bot reads only channels it was invited
to, and being told so now beats an empty source later. Direct messages are never indexed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session, sessionmaker

from knowledge.errors import SourceError
from knowledge.ingest.slack_client import SlackHistoryError, SlackReader
from knowledge.ingest.slack_thread import is_ts
from knowledge.ingest.sources import SourceSpec, add_source
from knowledge.storage import store
from knowledge.storage.db import utcnow
from knowledge.storage.documents import Chunk, Document, Source
from knowledge.storage.slack_history import (
    SLACK_CHANNEL,
    SlackChannel,
    SlackThread,
    channel_sources,
)

_MENTION = re.compile(r"^<#([CG][A-Z0-9]{2,30})(?:\|([^<>]{0,200}))?>$")
_ID = re.compile(r"^[CG][A-Z0-9]{2,30}$")
_NAME = re.compile(r"^#?([a-z0-9][a-z0-9._-]{0,79})$")
EDITED_BY = "slack: a message was edited or deleted"  # who asked for the refresh
MAX_LIST_PAGES = 20  # of 200 channels: conversations.list when a channel is named, not linked
NOT_A_CHANNEL = (
    "{text!r} is not a Slack channel. Name it as #channel-name, by its id (C0123ABC), or "
    "in chat by typing #channel so Slack links it."
)


@dataclass(frozen=True)
class ChannelRef:
    """A channel as someone named it: its id when they gave it, else its name."""

    id: str | None
    name: str | None


def parse_channel(text: str) -> ChannelRef:
    """``<#C123|general>``, ``<#C123>``, ``C123`` or ``#general``; SourceError otherwise."""
    text = text.strip()
    mention = _MENTION.match(text)
    if mention:
        return ChannelRef(mention[1], mention[2] or None)
    if _ID.match(text):
        return ChannelRef(text, None)
    named = _NAME.match(text.lower())
    if named and text.startswith("#"):
        return ChannelRef(None, named[1])
    raise SourceError(NOT_A_CHANNEL.format(text=text[:100]))


def add_channel(session: Session, reader: SlackReader, spec: SourceSpec) -> Source:
    """Register the channel ``spec.location`` names, once Slack confirms teambot is in it."""
    ref = parse_channel(spec.location)
    channel_id = ref.id or _find_by_name(reader, ref.name or "")
    try:
        info = reader.call("conversations.info", channel=channel_id).get("channel") or {}
    except SlackHistoryError as exc:
        if exc.code == "channel_not_found":
            raise SourceError(
                f"Slack knows no channel {ref.name or channel_id} that teambot can see; for a "
                "private channel, invite teambot first (`/invite @teambot` in it)."
            ) from None
        raise
    name = str(info.get("name") or ref.name or channel_id)[:200]
    if info.get("is_im") or info.get("is_mpim"):
        raise SourceError("Direct messages are never indexed; add a channel instead.")
    if not info.get("is_member"):
        raise SourceError(
            f"teambot is not a member of #{name}, so it cannot read its history. Invite it: "
            f"type `/invite @teambot` in #{name}, then add the channel again."
        )
    with session.no_autoflush:
        existing = channel_sources(session, channel_id)
    if existing:
        taken = session.get_one(Source, existing[0]).name
        raise SourceError(f"#{name} is already the source {taken!r}; see `sources list`.")
    workspace = str(reader.call("auth.test").get("url") or "")
    named = replace(spec, name=spec.name.strip() or f"slack-{name}", kind=SLACK_CHANNEL,
                    location=f"#{name} ({channel_id})")  # fmt: skip
    source = add_source(session, named)
    session.add(SlackChannel(source_id=source.id, channel_id=channel_id, channel_name=name,
                             is_private=bool(info.get("is_private")),
                             workspace_url=workspace if workspace.startswith("https://") else "",
                             newest_ts=""))  # fmt: skip
    session.flush()
    return source


def _find_by_name(reader: SlackReader, name: str) -> str:
    cursor = ""
    for _ in range(MAX_LIST_PAGES):
        params: dict[str, Any] = {"types": "public_channel,private_channel", "limit": 200,
                                  "exclude_archived": True}  # fmt: skip
        if cursor:
            params["cursor"] = cursor
        page = reader.call("conversations.list", **params)
        for channel in page.get("channels") or []:
            if isinstance(channel, dict) and channel.get("name") == name and channel.get("id"):
                return str(channel["id"])
        cursor = str((page.get("response_metadata") or {}).get("next_cursor") or "")
        if not cursor:
            break
    raise SourceError(
        f"teambot sees no channel #{name}. Check the name; for a private channel, invite "
        "teambot first (`/invite @teambot` in it), or give the channel's id (C0123ABC)."
    )


@dataclass(frozen=True)
class Forgotten:
    source: str
    channel: str
    threads: int
    chunks: int


def forget_channel(session: Session, text: str) -> Forgotten:
    """Delete a channel's source with its documents, chunks and state, by channel or name."""
    source = _source_named(session, text)
    channel = session.get(SlackChannel, source.id)
    label = f"#{channel.channel_name}" if channel else source.location
    threads = session.scalar(select(func.count(Document.id)).where(
        Document.source_id == source.id)) or 0  # fmt: skip
    chunks = session.scalar(select(func.count(Chunk.id)).join(Document).where(
        Document.source_id == source.id)) or 0  # fmt: skip
    session.execute(delete(SlackThread).where(SlackThread.source_id == source.id))
    session.execute(delete(SlackChannel).where(SlackChannel.source_id == source.id))
    session.execute(delete(Source).where(Source.id == source.id))  # documents, chunks cascade
    store.bump_revision(session)
    return Forgotten(source.name, label, threads, chunks)


def _source_named(session: Session, text: str) -> Source:
    """The channel source ``text`` names: a channel (as in ``add``) or the source's name."""
    source = session.scalar(
        select(Source).where(Source.name == text.strip(), Source.kind == SLACK_CHANNEL)
    )
    if source is not None:
        return source
    try:
        ref = parse_channel(text)
    except SourceError:
        ref = ChannelRef(None, None)
    found = select(Source).join(SlackChannel, SlackChannel.source_id == Source.id)
    if ref.id:
        source = session.scalar(found.where(SlackChannel.channel_id == ref.id))
    elif ref.name:
        source = session.scalar(found.where(SlackChannel.channel_name == ref.name))
    if source is None:
        raise SourceError(
            f"No Slack channel source for {text.strip()[:100]!r}; `sources list` shows them."
        )
    return source


def queue_thread(
    sessions: sessionmaker[Session], channel_id: str, thread_ts: str, *, soon: bool = False
) -> int:
    """A message of thread ``thread_ts`` was written, edited or deleted: read the thread again
    at the next refresh of every source of ``channel_id``; how many sources that is. ``soon``
    (an edit or a deletion, which may take back what should not be quoted) also asks a worker
    to refresh them now, unless a refresh is already queued."""
    if not is_ts(thread_ts) or not _ID.match(channel_id):
        return 0
    with sessions.begin() as session:
        source_ids = channel_sources(session, channel_id)
        dialect = session.get_bind().dialect.name
        insert = pg_insert if dialect == "postgresql" else sqlite_insert
        for source_id in source_ids:
            session.execute(
                insert(SlackThread)
                .values(source_id=source_id, thread_ts=thread_ts, signature="", stale=True)
                .on_conflict_do_update(
                    index_elements=["source_id", "thread_ts"], set_={"stale": True}
                )
            )
        if soon and source_ids:
            session.execute(
                update(Source)
                .where(Source.id.in_(source_ids), Source.refresh_requested_at.is_(None))
                .values(refresh_requested_at=utcnow(), refresh_requested_by=EDITED_BY)
            )
    return len(source_ids)
