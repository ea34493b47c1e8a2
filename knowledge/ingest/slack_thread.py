"""A Slack thread as one document: the question, each answer credited, in text to index.

``ThreadText`` writes it: ``Question from @alice on 2026-03-02: …`` then one ``Answer from
@bob on …: …`` paragraph a reply, every text decoded by knowledge.ingest.slack_text. People
are named by ``users.info``, asked once per run and only up to ``MAX_USERS_PER_RUN``; one
Slack will not name is shown by id. Whatever Slack sends is checked before use: a ``ts`` that
is not Slack's ``SECONDS.MICROS`` is not a message, and fields of the wrong type are ignored.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from knowledge.ingest.slack_client import RateLimited, SlackHistoryError, SlackReader
from knowledge.ingest.slack_text import mentioned_users, readable

MAX_USERS_PER_RUN = 1000  # users.info lookups; others are shown by id
MAX_TITLE_CHARS = 120
_TS = re.compile(r"^\d{1,10}\.\d{1,6}$")  # Slack's message ids: seconds.micros
# Reply subtypes that are people (or apps) writing; joins, tombstones and the like are not.
_SAID_SUBTYPES = (None, "thread_broadcast", "file_share", "bot_message")


def is_ts(value: Any) -> bool:
    return isinstance(value, str) and bool(_TS.match(value))


def ts_key(ts: str) -> tuple[int, int]:
    """A ``ts`` as (seconds, micros), for ordering; (0, 0) for anything else."""
    if not is_ts(ts):
        return 0, 0
    seconds, _, micros = ts.partition(".")
    return int(seconds), int(micros.ljust(6, "0"))


def minus(ts: str, seconds: int) -> str:
    """``ts`` moved ``seconds`` earlier ("" stays "")."""
    if not ts:
        return ""
    whole, micros = ts_key(ts)
    return f"{max(0, whole - seconds)}.{micros:06d}"


def signature(message: dict[str, Any]) -> str:
    """What a parent says of its thread (latest reply, reply count, edit, text); "" when it has
    no replies. A thread is read again when this moves."""
    count = message.get("reply_count")
    if not isinstance(count, int) or count <= 0:
        return ""
    edited = message.get("edited")
    edited_ts = edited.get("ts") if isinstance(edited, dict) else ""
    text = hashlib.sha256(str(message.get("text") or "").encode()).hexdigest()[:16]
    return f"{message.get('latest_reply', '')}|{count}|{edited_ts}|{text}"[:200]


def is_said(message: dict[str, Any]) -> bool:
    """A reply someone wrote (not a join, a tombstone or an empty message)."""
    return message.get("subtype") in _SAID_SUBTYPES and bool(str(message.get("text") or "").strip())


class ThreadText:
    """Threads of one channel as text, with the names of the people in them."""

    def __init__(self, reader: SlackReader, channel_name: str) -> None:
        self.reader = reader
        self.channel_name = channel_name
        self.names: dict[str, str] = {}

    def document(self, parent: dict[str, Any], replies: list[dict[str, Any]]) -> str:
        self._learn_names([parent, *replies])
        question = self._said(parent) or "(the question was deleted)"
        parts = [f"Question from {self._author(parent)} on {_day(parent)}:\n{question}"]
        parts += [f"Answer from {self._author(m)} on {_day(m)}:\n{self._said(m)}" for m in replies]
        return "\n\n".join(parts)

    def title(self, parent: dict[str, Any]) -> str:
        """The question's first line, shortened: how citations name the thread."""
        first = next((line for line in self._said(parent).splitlines() if line.strip()), "")
        first = " ".join(first.split())
        if not first:
            return f"A thread in #{self.channel_name}"
        if len(first) <= MAX_TITLE_CHARS:
            return first
        return first[: MAX_TITLE_CHARS - 1].rstrip() + "…"

    def _said(self, message: dict[str, Any]) -> str:
        if message.get("subtype") == "tombstone":
            return ""
        return readable(str(message.get("text") or ""), lambda user: self.names.get(user, user))

    def _author(self, message: dict[str, Any]) -> str:
        user = message.get("user")
        if isinstance(user, str) and user:
            return "@" + self.names.get(user, user)
        profile = message.get("bot_profile")
        name = message.get("username") or (profile.get("name") if isinstance(profile, dict) else "")
        return "@" + (readable(str(name or "someone"), str)[:80] or "someone")

    def _learn_names(self, messages: Iterable[dict[str, Any]]) -> None:
        for message in messages:
            for user in [message.get("user"), *mentioned_users(str(message.get("text") or ""))]:
                if isinstance(user, str) and user and user not in self.names:
                    self.names[user] = self._look_up(user)

    def _look_up(self, user: str) -> str:
        if len(self.names) >= MAX_USERS_PER_RUN:
            return user
        try:
            info = self.reader.call("users.info", user=user).get("user")
        except RateLimited:
            raise
        except SlackHistoryError:
            return user
        if not isinstance(info, dict):
            return user
        profile = info.get("profile") if isinstance(info.get("profile"), dict) else {}
        name = profile.get("display_name") or profile.get("real_name") or info.get("name") or user
        return readable(str(name), str)[:80] or user


def _day(message: dict[str, Any]) -> str:
    whole, _ = ts_key(str(message.get("ts") or ""))
    return f"{datetime.fromtimestamp(whole, UTC):%Y-%m-%d}"
