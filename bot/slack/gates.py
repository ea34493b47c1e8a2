"""The middlewares that decide, before any claim or listener, which Slack payloads teambot
looks at. Each acknowledges what it drops (HTTP 200, so Slack does not retry) and logs at
most one line about it; one concern each:

- ``ignore_other_workspaces``: only our workspace and our app (``team_id``, ``api_app_id``);
- ``ignore_bots``: no bot's post or mention, so teambot and another bot cannot loop;
- ``ignore_incomplete``: a payload lacking what a listener reads is dropped, not a KeyError.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from slack_bolt import BoltResponse

from bot.slack.identity import Workspace

log = logging.getLogger(__name__)

Middleware = Callable[[dict[str, Any], Callable[[], None]], BoltResponse | None]
# What a listener reads from each kind of payload; one lacking any is dropped, not a KeyError.
NEEDED_EVENT_FIELDS = ("channel", "ts")
NEEDED_COMMAND_FIELDS = ("user_id", "channel_id", "trigger_id")
# Shortcut payloads carry no ``api_app_id``; a message shortcut needs these (``x.y``: y of x).
SHORTCUT_TYPES = ("message_action", "shortcut")
NEEDED_SHORTCUT_FIELDS = ("user.id", "channel.id", "message.ts")


def ignore_other_workspaces(workspace: Workspace) -> Middleware:
    """What Slack sends for another workspace or another app is dropped."""

    def middleware(body: dict[str, Any], next: Callable[[], None]) -> BoltResponse | None:
        team, app_id = _team_of(body), body.get("api_app_id")
        if app_id is None and body.get("type") in SHORTCUT_TYPES:
            app_id = workspace.app_id  # shortcuts do not name the app; their signature does
        if (team, app_id) == (workspace.team_id, workspace.app_id):
            return next()
        log.info("ignored a Slack %s for team %s and app %s: teambot is %s in %s",
                 _kind_of(body), team, app_id, workspace.app_id, workspace.team_id)  # fmt: skip
        return _acknowledged()

    return middleware


def ignore_bots(body: dict[str, Any], next: Callable[[], None]) -> BoltResponse | None:
    """Events posted by bots, mentions included, are dropped."""
    event = body.get("event")
    if isinstance(event, dict) and is_from_bot(event):
        return _acknowledged()
    return next()


def ignore_incomplete(body: dict[str, Any], next: Callable[[], None]) -> BoltResponse | None:
    """A payload lacking what its listener reads (a mention without ``ts``) is dropped."""
    missing = _missing_fields(body)
    if not missing:
        return next()
    log.info("ignored a Slack %s without %s", _kind_of(body), ", ".join(missing))
    return _acknowledged()


def is_from_bot(event: dict[str, Any]) -> bool:
    """Posted by a bot (another app, or an integration)."""
    return bool(event.get("bot_id")) or event.get("subtype") == "bot_message"


def _acknowledged() -> BoltResponse:
    return BoltResponse(status=200, body="")


def _team_of(body: dict[str, Any]) -> str | None:
    """The workspace a payload is for: ``team_id`` (events, commands) or ``team.id`` (clicks)."""
    team = body.get("team_id") or body.get("team")
    return team.get("id") if isinstance(team, dict) else team


def _kind_of(body: dict[str, Any]) -> str:
    """What a payload is, for a log line: ``app_mention event``, ``/ask command``, …"""
    if "command" in body:
        return f"{body['command']} command"
    event = body.get("event")
    if isinstance(event, dict):
        return f"{event.get('type')} event"
    return str(body.get("type") or "request")


def _field(body: dict[str, Any], path: str) -> Any:
    outer, _, inner = path.partition(".")
    value = body.get(outer)
    return value.get(inner) if isinstance(value, dict) else None


def _missing_fields(body: dict[str, Any]) -> list[str]:
    """The fields teambot's listeners read that ``body`` lacks (only for what they handle)."""
    if "command" in body:
        return [f for f in NEEDED_COMMAND_FIELDS if not isinstance(body.get(f), str)]
    if body.get("type") == "message_action":
        return [f for f in NEEDED_SHORTCUT_FIELDS if not isinstance(_field(body, f), str)]
    if body.get("type") in ("block_actions", "view_submission"):
        user = body.get("user")
        return [] if isinstance(user, dict) and isinstance(user.get("id"), str) else ["user.id"]
    if body.get("type") != "event_callback":
        return []
    event = body.get("event")
    if not isinstance(event, dict):
        return ["event"]
    if event.get("type") not in ("app_mention", "message"):
        return []
    return [f"event.{f}" for f in NEEDED_EVENT_FIELDS if not isinstance(event.get(f), str)]
