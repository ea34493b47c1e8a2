"""The fake Slack, plus what reading a channel's history uses, paged and rate-limited as
Slack does it.

``HistorySlack`` is ``TeachingSlack`` (tests.fakes.slack_teach: conversations.info,
chat.getPermalink, edits and deletions) that also answers:

- ``conversations.info`` with ``is_member`` and the channel's name, for channels made with
  ``add_channel()`` (``channel_not_found`` for others);
- ``conversations.list``: those channels, ``limit`` at a time;
- ``conversations.history``: top-level messages newest first, after ``oldest`` and up to
  ``latest`` (both exclusive unless ``inclusive``), ``limit`` at a time;
- ``conversations.replies``: the parent first, then its replies oldest first, ``limit`` at a
  time (the parent only on the first page).

Both page with Slack's opaque cursors: ``has_more`` and ``response_metadata.next_cursor``
(base64 of ``next_ts:TS``), the cursor passed back as ``cursor``; a channel teambot is not in
answers ``not_in_channel``.

``tier_limits({method: calls_per_window}, window)`` enforces Slack's rate-limit tiers: each
method has its own sliding window, and a call past its limit is answered HTTP 429 with
``Retry-After`` set to the whole seconds until the oldest call in the window leaves it, as
Slack does (Tier 3, conversations.history and .replies: 50 a minute; Tier 4, users.info: 100).
"""

from __future__ import annotations

import base64
import copy
import math
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from tests.fakes.slack import FakeSlack, _error
from tests.fakes.slack_teach import TeachingSlack

TIER_3 = 50  # calls a minute: conversations.history, conversations.replies
TIER_4 = 100  # users.info, chat.getPermalink
SLACK_TIERS = {
    "conversations.history": TIER_3,
    "conversations.replies": TIER_3,
    "conversations.info": TIER_3,
    "users.info": TIER_4,
}


class HistorySlack(TeachingSlack):
    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self._info: dict[str, dict[str, Any]] = {}
        self._limits: dict[str, int] = {}
        self._window = 60.0
        self._recent: dict[str, deque[float]] = {}

    def add_channel(
        self, channel: str, name: str, *, private: bool = False, member: bool = True
    ) -> None:
        """A channel Slack knows; teambot is in it when ``member``."""
        with self._lock:
            self._info[channel] = {"id": channel, "name": name, "is_private": private,
                                   "is_member": member, "is_channel": True, "is_im": False,
                                   "is_mpim": False, "is_archived": False}  # fmt: skip
        if private:
            self.set_private(channel)

    def join(self, channel: str) -> None:
        with self._lock:
            self._info[channel]["is_member"] = True

    def tier_limits(self, limits: dict[str, int], window: float = 60.0) -> None:
        """At most ``limits[method]`` calls per ``window`` seconds, else 429 + Retry-After."""
        with self._lock:
            self._limits, self._window, self._recent = dict(limits), window, {}

    def remove(self, channel: str, ts: str) -> None:
        """Delete message ``ts`` without an event (what a missed event leaves behind); the
        parent's reply count and latest reply follow, as on Slack."""
        with self._lock:
            messages = self._channels[channel]
            gone = next(m for m in messages if m["ts"] == ts)
            messages.remove(gone)
            self._recount(channel, gone.get("thread_ts"))

    def set_fields(self, channel: str, message_ts: str, **fields: Any) -> None:
        """Overwrite fields of a stored message as they are, hostile values (a ``ts`` too)."""
        with self._lock:
            message = self._find(channel, message_ts)
            assert message is not None, f"no message {message_ts} in {channel}"
            message.update(fields)

    def reply_count(self, channel: str, ts: str) -> int:
        with self._lock:
            return len(self._thread(channel, ts)) - 1

    # -- the transport -----------------------------------------------------------------------

    def _call(
        self, method: str, params: dict[str, Any], token: str | None
    ) -> tuple[int, dict[str, Any], dict[str, str]]:
        wait = self._over_limit(method)
        if wait is not None:
            return 429, _error("ratelimited"), {"Retry-After": str(wait)}
        if method in _HISTORY_METHODS:  # before TeachingSlack's own conversations.info
            return FakeSlack._call(self, method, params, token)
        return super()._call(method, params, token)

    def _handler_for(self, method: str) -> Callable[[Any, dict[str, Any]], dict[str, Any]] | None:
        return _HISTORY_METHODS.get(method) or super()._handler_for(method)

    def _over_limit(self, method: str) -> int | None:
        """Seconds to wait when this call is past ``method``'s limit, else None (counted)."""
        with self._lock:
            limit = self._limits.get(method)
            if limit is None:
                return None
            now = time.monotonic()
            recent = self._recent.setdefault(method, deque())
            while recent and recent[0] <= now - self._window:
                recent.popleft()
            if len(recent) >= limit:
                return max(1, math.ceil(recent[0] + self._window - now))
            recent.append(now)
            return None

    def _recount(self, channel: str, thread_ts: str | None) -> None:
        parent = self._find(channel, thread_ts) if thread_ts else None
        if parent is None or parent["ts"] != thread_ts:
            return
        replies = [m for m in self._thread(channel, parent["ts"]) if m["ts"] != parent["ts"]]
        parent["reply_count"] = len(replies)
        parent["latest_reply"] = replies[-1]["ts"] if replies else parent["ts"]
        parent["reply_users"] = list(dict.fromkeys(m["user"] for m in replies))

    # -- Web API methods (called with the lock held) -----------------------------------------

    def _channel_error(self, channel: str) -> dict[str, Any] | None:
        info = self._info.get(channel)
        if info is None:
            return _error("channel_not_found")
        return None if info["is_member"] else _error("not_in_channel")

    def _conversations_info(self, params: dict[str, Any]) -> dict[str, Any]:
        info = self._info.get(params.get("channel") or "")
        if info is None:
            return _error("channel_not_found")
        return {"ok": True, "channel": copy.deepcopy(info)}

    def _list(self, params: dict[str, Any]) -> dict[str, Any]:
        channels = sorted(self._info.values(), key=lambda c: c["id"])
        start = int(_decode(params.get("cursor")) or 0)
        limit = int(params.get("limit") or 100)
        page = channels[start : start + limit]
        cursor = _encode(str(start + limit)) if start + limit < len(channels) else ""
        metadata = {"next_cursor": cursor}
        return {"ok": True, "channels": copy.deepcopy(page), "response_metadata": metadata}

    def _history(self, params: dict[str, Any]) -> dict[str, Any]:
        channel = params.get("channel") or ""
        refused = self._channel_error(channel)
        if refused is not None:
            return refused
        inclusive = str(params.get("inclusive") or "").lower() in ("1", "true")
        oldest, latest = _ts(params.get("oldest"), 0.0), _ts(params.get("latest"), math.inf)
        after = _ts(_decode(params.get("cursor")), math.inf)
        top = [m for m in reversed(self._channels.get(channel, []))
               if m.get("thread_ts") in (None, m["ts"]) and _between(m["ts"], oldest, latest,
                                                                      inclusive)
               and float(m["ts"]) < after]  # fmt: skip
        return _paged(top, int(params.get("limit") or 100), {"pin_count": 0})

    def _replies(self, params: dict[str, Any]) -> dict[str, Any]:
        channel, ts = params.get("channel") or "", params.get("ts") or ""
        refused = self._channel_error(channel)
        if refused is not None:
            return refused
        thread = self._thread(channel, ts)
        if not thread or thread[0]["ts"] != ts:
            return _error("thread_not_found")
        after = _ts(_decode(params.get("cursor")), -1.0)  # later pages start after the parent
        rest = [m for m in thread if float(m["ts"]) > after]
        return _paged(rest, int(params.get("limit") or 100), {})


_HISTORY_METHODS: dict[str, Callable[[HistorySlack, dict[str, Any]], dict[str, Any]]] = {
    "conversations.info": HistorySlack._conversations_info,
    "conversations.list": HistorySlack._list,
    "conversations.history": HistorySlack._history,
    "conversations.replies": HistorySlack._replies,
}


def _paged(messages: list[dict[str, Any]], limit: int, extra: dict[str, Any]) -> dict[str, Any]:
    limit = max(1, min(limit, 999))
    page, more = messages[:limit], len(messages) > limit
    cursor = _encode(page[-1]["ts"]) if more else ""
    return {"ok": True, "messages": copy.deepcopy(page), "has_more": more, **extra,
            "response_metadata": {"next_cursor": cursor}}  # fmt: skip


def _between(ts: str, oldest: float, latest: float, inclusive: bool) -> bool:
    value = float(ts)
    if inclusive:
        return oldest <= value <= latest
    return oldest < value < latest


def _ts(value: Any, default: float) -> float:
    try:
        return float(value) if value not in (None, "") else default
    except ValueError:
        return default


def _encode(ts: str) -> str:
    return base64.b64encode(f"next_ts:{ts}".encode()).decode()


def _decode(cursor: Any) -> str | None:
    if not cursor:
        return None
    return base64.b64decode(str(cursor)).decode().removeprefix("next_ts:")
