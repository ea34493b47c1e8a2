"""One refresh of a Slack channel: new and changed threads in, deleted ones out.

Refresh rule (docs/sources.md): a thread with replies is one document, its first message the
question and its replies the answers, each credited to its author, linked by the thread's
permalink. A run lists the channel's top-level messages newer than the newest one it has
read, less ``lookback_days`` (7) (``conversations.history`` with ``oldest``, page by page; the
cursor is saved after each page, so a crash or a rate limit resumes there). A thread whose
``latest_reply``, reply count or edit mark moved since it was read is marked stale, as is one
an event named (bot/slack: an edit, a deletion, a new reply); only stale threads are read
again (``conversations.replies``). A thread that lost its replies or is gone is removed.
Bounds: ``max_pages`` history pages and ``MAX_THREADS_PER_RUN`` threads per run, the rest next
time; every call under knowledge.ingest.slack_client's deadline, size cap and 429 handling.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session, sessionmaker

from knowledge.embed.embedder import TextEmbedder
from knowledge.errors import SourceError
from knowledge.ingest.pipeline import DocumentSync, FetchedDocument
from knowledge.ingest.progress import Progress
from knowledge.ingest.report import RunReport
from knowledge.ingest.slack_client import (
    RateLimited,
    SlackAccess,
    SlackHistoryError,
    SlackReader,
    open_reader,
)
from knowledge.ingest.slack_thread import ThreadText, is_said, is_ts, minus, signature, ts_key
from knowledge.storage import store
from knowledge.storage.documents import Source
from knowledge.storage.lease import Lease
from knowledge.storage.slack_history import SlackChannel, SlackThread, channel_of

PAGE_SIZE = 200  # messages per history page (Slack advises at most 200)
MAX_PAGES = 50  # history pages per run (option ``max_pages``)
MAX_THREADS_PER_RUN = 1000
MAX_REPLY_PAGES = 10  # of PAGE_SIZE replies: a longer thread is indexed up to there
LOOKBACK_DAYS = 7  # threads this much older than the newest read are listed again (option)
NO_ACCESS = (
    "Reading Slack history needs SLACK_BOT_TOKEN (and SLACK_API_URL for a Slack other than "
    "slack.com); set it where this refresh runs."
)


def sync_channel(
    sessions: sessionmaker[Session],
    embedder: TextEmbedder,
    source: Source,
    report: RunReport,
    lease: Lease,
    access: SlackAccess | None,
    progress: Progress,
) -> None:
    """Bring the source's documents in line with its channel (the rule above)."""
    if access is None:
        raise SourceError(NO_ACCESS)
    with sessions() as session:
        channel = channel_of(session, source.id)
        if channel is None:
            raise SourceError(
                f"{source.name!r} has no Slack channel on record; remove it and add the "
                "channel again with `sources add '#channel' --kind slack-channel`."
            )
        session.expunge(channel)
    reader = open_reader(access)
    reader.sleep = lambda seconds: _wait_renewing(lease, seconds)
    progress.begin("Listing threads", None)
    run = _ChannelRun(sessions, DocumentSync(sessions, embedder, source.id, report), channel,
                      reader, report, lease, progress)  # fmt: skip
    started = time.perf_counter()
    try:
        options = source.options or {}
        run.list_threads(options.get("max_pages", MAX_PAGES),
                         int(options.get("lookback_days", LOOKBACK_DAYS) * 86400))  # fmt: skip
        progress.end()
        run.read_stale()
    except RateLimited as exc:
        report.fail(channel.channel_id, str(exc))
    finally:
        reader.close()
        run.settle()
        report.add_time("fetch", time.perf_counter() - started)
        if reader.waited_seconds:
            report.add_time("rate_limit_wait", reader.waited_seconds)


class _ChannelRun:
    """The state of one run: the reader, the users met, the threads read."""

    def __init__(self, sessions: sessionmaker[Session], sync: DocumentSync,
                 channel: SlackChannel, reader: SlackReader, report: RunReport, lease: Lease,
                 progress: Progress) -> None:  # fmt: skip
        self.sessions, self.sync, self.channel = sessions, sync, channel
        self.reader, self.report, self.lease, self.progress = reader, report, lease, progress
        self.text = ThreadText(reader, channel.channel_name or channel.channel_id)
        self.read: list[str] = []  # threads stored this run
        self.lost: list[str] = []  # threads found gone or without replies this run

    # -- listing -----------------------------------------------------------------------------

    def list_threads(self, max_pages: int, lookback_seconds: int) -> None:
        """Page through the history since the last run, marking moved threads stale."""
        c = self.channel
        if c.cursor:
            oldest, cursor, newest = c.cursor_oldest or "", c.cursor, c.cursor_newest or ""
        else:
            oldest, cursor, newest = minus(c.newest_ts, lookback_seconds), None, c.newest_ts
        for _ in range(max_pages):
            params: dict[str, Any] = {"channel": c.channel_id, "limit": PAGE_SIZE}
            if oldest:
                params["oldest"] = oldest
            if cursor:
                params["cursor"] = cursor
            page = self.reader.call("conversations.history", **params)
            messages = [m for m in page.get("messages") or [] if isinstance(m, dict)]
            seen = [m["ts"] for m in messages if is_ts(m.get("ts"))]
            newest = max([newest, *seen], key=ts_key)
            cursor = str((page.get("response_metadata") or {}).get("next_cursor") or "") or None
            if not page.get("has_more"):
                cursor = None
            self._save_page(messages, oldest, cursor, newest)
            self.lease.renew_if_due()
            self.progress.advance()
            if cursor is None:
                return
        self.report.skip(c.channel_id, f"listed {max_pages} pages of history (the most a run "
                         "lists); the next refresh goes on from there")  # fmt: skip

    def _save_page(self, messages: list[dict[str, Any]], oldest: str, cursor: str | None,
                   newest: str) -> None:  # fmt: skip
        """Mark the page's moved threads stale and save where the listing stands, at once."""
        by_ts = {m["ts"]: m for m in messages if is_ts(m.get("ts"))}
        with self.sessions.begin() as session:
            rows = {t.thread_ts: t for t in session.scalars(select(SlackThread).where(
                SlackThread.source_id == self.channel.source_id,
                SlackThread.thread_ts.in_(list(by_ts))))}  # fmt: skip
            for ts, message in by_ts.items():
                said = signature(message)
                row = rows.get(ts)
                if row is None and said:
                    session.add(SlackThread(source_id=self.channel.source_id, thread_ts=ts,
                                            signature=said, stale=True))  # fmt: skip
                elif row is not None and row.signature != said:
                    row.signature, row.stale = said, True
            state = session.get_one(SlackChannel, self.channel.source_id)
            state.cursor, state.cursor_oldest, state.cursor_newest = cursor, oldest, newest
            if cursor is None:
                state.newest_ts = newest
            self.channel.newest_ts = state.newest_ts

    # -- threads -----------------------------------------------------------------------------

    def read_stale(self) -> None:
        """Read each stale thread again and index it (or remove it when it is gone)."""
        with self.sessions() as session:
            stale = list(session.scalars(
                select(SlackThread.thread_ts)
                .where(SlackThread.source_id == self.channel.source_id, SlackThread.stale)
                .order_by(SlackThread.thread_ts).limit(MAX_THREADS_PER_RUN + 1)
            ))  # fmt: skip
        if len(stale) > MAX_THREADS_PER_RUN:
            stale = stale[:MAX_THREADS_PER_RUN]
            self.report.skip(self.channel.channel_id, f"read {MAX_THREADS_PER_RUN} threads (the "
                             "most a run reads); the next refresh reads the rest")  # fmt: skip
        self.progress.begin("Reading threads", len(stale))
        for ts in stale:
            self._read_thread(ts)
            self.lease.renew_if_due()
            self.progress.advance()
        self.progress.end()

    def _read_thread(self, ts: str) -> None:
        report, url = self.report, self._permalink(ts)
        report.pages_seen += 1
        messages = self._replies(ts)
        parent = messages[0] if messages and messages[0].get("ts") == ts else None
        replies = [m for m in messages[1:] if is_said(m)]
        if parent is None or not replies:
            if url in self.sync.known:
                self.sync.gone.add(url)
            self.lost.append(ts)
            return
        report.pages_fetched += 1
        text, title = self.text.document(parent, replies), self.text.title(parent)
        self.sync.submit(FetchedDocument(url=url, text=text, suffix=".txt", fallback_title=title))
        self.read.append(ts)

    def _replies(self, ts: str) -> list[dict[str, Any]]:
        """The thread, parent first; [] when Slack no longer has it."""
        messages: list[dict[str, Any]] = []
        cursor: str | None = None
        for _ in range(MAX_REPLY_PAGES):
            params: dict[str, Any] = {"channel": self.channel.channel_id, "ts": ts,
                                      "limit": PAGE_SIZE}  # fmt: skip
            if cursor:
                params["cursor"] = cursor
            try:
                page = self.reader.call("conversations.replies", **params)
            except RateLimited:
                raise
            except SlackHistoryError as exc:
                if exc.code in ("thread_not_found", "message_not_found"):
                    return []
                raise
            messages += [m for m in page.get("messages") or [] if isinstance(m, dict)]
            cursor = str((page.get("response_metadata") or {}).get("next_cursor") or "") or None
            if not page.get("has_more") or cursor is None:
                break
        return messages

    def _permalink(self, ts: str) -> str:
        base = (self.channel.workspace_url or "https://slack.com/").rstrip("/")
        return f"{base}/archives/{self.channel.channel_id}/p{ts.replace('.', '')}"

    # -- the end of a run --------------------------------------------------------------------

    def settle(self) -> None:
        """Store what waits, remove what is gone, and unmark the threads read this run."""
        self.sync.flush()
        gone = self.sync.gone | self.sync.duplicates
        with self.sessions.begin() as session:
            self.report.pages_removed += store.delete_documents(
                session, self.channel.source_id, gone
            )
            for chunk in _chunks(self.read, 500):
                session.execute(update(SlackThread).where(
                    SlackThread.source_id == self.channel.source_id,
                    SlackThread.thread_ts.in_(chunk)).values(stale=False))  # fmt: skip
            for chunk in _chunks(self.lost, 500):
                session.execute(delete(SlackThread).where(
                    SlackThread.source_id == self.channel.source_id,
                    SlackThread.thread_ts.in_(chunk)))  # fmt: skip


def _wait_renewing(lease: Lease, seconds: float) -> None:
    """Wait out a Retry-After while keeping the source's lease (waits may outlast it)."""
    ends = time.monotonic() + seconds
    while (left := ends - time.monotonic()) > 0:
        time.sleep(min(left, lease.check_seconds))
        lease.renew_if_due()


def _chunks(items: list[str], size: int) -> Iterable[list[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
