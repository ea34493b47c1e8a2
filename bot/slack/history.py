"""Events that make a channel's indexed history out of date: a new reply in a thread, an edited
message, a deleted one. Each queues its thread to be read again at the channel's next refresh
(knowledge.ingest.slack_channels.queue_thread); an edit or a deletion, which may take back
something that should no longer be quoted, also asks a worker to refresh the channel now.
Channels no source reads cost one lookup.

Slack's history listing shows neither edits of replies nor deletions, so these events are how
a refresh learns of them; a missed event is caught when the parent's ``latest_reply`` or
reply count moves (knowledge/ingest/slack_history.py).
"""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker

from knowledge.ingest.slack_channels import queue_thread

log = logging.getLogger(__name__)


class HistoryEvents:
    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self.sessions = sessions

    def on_reply(self, channel: str, thread_ts: str) -> None:
        """A message was posted in thread ``thread_ts``."""
        self._queue(channel, thread_ts)

    def on_changed(self, event: dict[str, Any]) -> None:
        """``message_changed``: the edited message's thread (or the message, a parent)."""
        message = event.get("message") or {}
        if isinstance(message, dict):
            thread = message.get("thread_ts") or message.get("ts")
            self._queue(event.get("channel"), thread, soon=True)

    def on_deleted(self, event: dict[str, Any]) -> None:
        """``message_deleted``: the thread the message was in, or the thread it started."""
        previous = event.get("previous_message") or {}
        thread = previous.get("thread_ts") if isinstance(previous, dict) else None
        self._queue(event.get("channel"), thread or event.get("deleted_ts"), soon=True)

    def _queue(self, channel: Any, thread_ts: Any, soon: bool = False) -> None:
        if not isinstance(channel, str) or not isinstance(thread_ts, str):
            return
        try:
            if queue_thread(self.sessions, channel, thread_ts, soon=soon):
                log.info("thread %s in %s queued to be read again", thread_ts, channel)
        except DBAPIError as exc:  # the next listing still catches a moved latest_reply
            log.warning("cannot queue thread %s in %s: %s", thread_ts, channel, exc)
