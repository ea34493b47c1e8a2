"""The fake Slack, plus what "Teach teambot" uses of Slack: channel info, permalinks, people
editing and deleting their messages, and the message shortcut's payload.

``TeachingSlack`` answers two more Web API methods than ``FakeSlack``:

- ``conversations.info``: a channel's ``is_private`` / ``is_im`` / ``is_mpim``, from its id
  (``D…`` a DM, ``G…`` private) or ``set_private()``;
- ``chat.getPermalink``: ``https://teambot-test.slack.com/archives/CHANNEL/pTS`` (with
  ``thread_ts`` and ``cid`` for a reply), as Slack builds it.

``edit()`` and ``delete()`` change a stored message as its author would and return the Events
API envelope Slack then sends (``message_changed``, ``message_deleted``).
``message_shortcut_form()`` is the form body Slack POSTs when someone picks a message shortcut.
"""

from __future__ import annotations

import copy
import json
import time
import uuid
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

from tests.fakes.slack import (
    TEAM_DOMAIN,
    TEAM_ID,
    VERIFICATION_TOKEN,
    FakeSlack,
    event_callback,
)

PERMALINK_ORIGIN = f"https://{TEAM_DOMAIN}.slack.com"


class TeachingSlack(FakeSlack):
    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self._private: set[str] = set()

    def set_private(self, channel: str) -> None:
        """``channel`` (a ``C…`` id, as modern private channels have) is private."""
        with self._lock:
            self._private.add(channel)

    def edit(self, channel: str, ts: str, text: str) -> dict[str, Any]:
        """Its author edits message ``ts``; the ``message_changed`` envelope Slack sends."""
        with self._lock:
            message = self._find(channel, ts)
            assert message is not None, f"no message {ts} in {channel}"
            previous = copy.deepcopy(message)
            message["text"] = text
            message["edited"] = {"user": message.get("user"), "ts": self._next_ts()}
            event_ts = self._next_ts()
            changed = copy.deepcopy(message)
        event = {"type": "message", "subtype": "message_changed", "message": changed,
                 "previous_message": previous, "channel": channel, "hidden": True,
                 "ts": event_ts}  # fmt: skip
        return _envelope(event, channel)

    def delete(self, channel: str, ts: str) -> dict[str, Any]:
        """Its author deletes message ``ts``; the ``message_deleted`` envelope Slack sends."""
        with self._lock:
            message = self._find(channel, ts)
            assert message is not None, f"no message {ts} in {channel}"
            self._channels[channel].remove(message)
            event_ts = self._next_ts()
        event = {"type": "message", "subtype": "message_deleted", "hidden": True,
                 "deleted_ts": ts, "channel": channel, "previous_message": message,
                 "ts": event_ts}  # fmt: skip
        return _envelope(event, channel)

    def message(self, channel: str, ts: str) -> dict[str, Any]:
        with self._lock:
            found = self._find(channel, ts)
            assert found is not None, f"no message {ts} in {channel}"
            return copy.deepcopy(found)

    def _call(
        self, method: str, params: dict[str, Any], token: str | None
    ) -> tuple[int, dict[str, Any], dict[str, str]]:
        handler = _MORE_METHODS.get(method)
        if handler is None:
            return super()._call(method, params, token)
        error = self._auth_error(method, token)
        if error is not None:
            return 200, {"ok": False, "error": error}, {}
        with self._lock:
            return 200, handler(self, params), {}

    def _conversations_info(self, params: dict[str, Any]) -> dict[str, Any]:
        channel = params.get("channel") or ""
        if not channel:
            return {"ok": False, "error": "channel_not_found"}
        is_im, is_mpim = channel.startswith("D"), False
        is_private = channel.startswith("G") or channel in self._private or is_im
        return {"ok": True, "channel": {"id": channel, "name": channel.lower(), "is_im": is_im,
                                        "is_mpim": is_mpim, "is_private": is_private,
                                        "is_channel": not is_im}}  # fmt: skip

    def _permalink(self, params: dict[str, Any]) -> dict[str, Any]:
        channel, ts = params.get("channel") or "", params.get("message_ts") or ""
        message = self._find(channel, ts)
        if message is None:
            return {"ok": False, "error": "message_not_found"}
        link = f"{PERMALINK_ORIGIN}/archives/{channel}/p{ts.replace('.', '')}"
        thread = message.get("thread_ts")
        if thread and thread != ts:
            link += f"?thread_ts={thread}&cid={channel}"
        return {"ok": True, "channel": channel, "permalink": link}


_MORE_METHODS: dict[str, Callable[[TeachingSlack, dict[str, Any]], dict[str, Any]]] = {
    "conversations.info": TeachingSlack._conversations_info,
    "chat.getPermalink": TeachingSlack._permalink,
}


def message_shortcut(
    callback_id: str, message: dict[str, Any], channel: str, user: str, response_url: str
) -> dict[str, Any]:
    """The ``message_action`` payload of a message shortcut picked on ``message`` (as stored by
    the fake): no ``api_app_id``, the whole message, a response URL."""
    return {
        "type": "message_action",
        "token": VERIFICATION_TOKEN,
        "action_ts": f"{time.time():.6f}",
        "team": {"id": TEAM_ID, "domain": TEAM_DOMAIN},
        "user": {"id": user, "name": user.lower(), "username": user.lower(), "team_id": TEAM_ID},
        "channel": {"id": channel, "name": channel.lower()},
        "is_enterprise_install": False,
        "enterprise": None,
        "callback_id": callback_id,
        "trigger_id": f"{int(time.time())}.{uuid.uuid4().int % 10**12}.{uuid.uuid4().hex}",
        "response_url": response_url,
        "message_ts": message["ts"],
        "message": message,
    }


def message_shortcut_form(*args: Any) -> bytes:
    """The form body Slack POSTs for ``message_shortcut(*args)``."""
    return urlencode({"payload": json.dumps(message_shortcut(*args))}).encode()


def _envelope(event: dict[str, Any], channel: str) -> dict[str, Any]:
    channel_type = {"D": "im", "G": "group"}.get(channel[:1], "channel")
    return event_callback({**event, "channel_type": channel_type}, None)
