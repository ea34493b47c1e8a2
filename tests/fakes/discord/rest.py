"""The fake Discord's REST API: routing with Discord's error bodies and rate-limit headers,
scripted faults, and the bot-token routes (the bot user and application, the gateway's URL,
command sync, channels, typing, channel messages). Interactions are in ``interactions``.

``RestAPI`` is the part of ``FakeDiscord`` that answers them; each route names the method of
the fake that answers it (called with the fake's lock held).
"""

from __future__ import annotations

import copy
import hashlib
import math
import re
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from tests.fakes.discord.payloads import (
    APPLICATION_FLAGS,
    APPLICATION_ID,
    BOT_NAME,
    BOT_USER_ID,
    EPHEMERAL,
    LOADING,
    MAX_CONTENT,
    OWNER_ID,
    REPLY,
    SUPPRESS_EMBEDS,
    _now,
    _reference,
)

if TYPE_CHECKING:
    from tests.fakes.discord.gateway import _Gateway

API_PREFIX = "/api/v10"
VIA = "1.1 google"  # discord.py takes a 429 without Via for a Cloudflare ban and gives up
RATE_LIMIT = 5  # X-RateLimit-Limit of every bucket; answers say 4 remain
TRUE_QUERY = frozenset({"1", "true", "True"})


@dataclass
class Call:
    """One REST request as the fake saw it; ``status`` and ``response`` are set once answered.

    ``path`` is below ``/api/v10`` without the query string, e.g. ``/channels/1/messages``.
    """

    method: str
    path: str
    json: Any  # the decoded JSON body, or None
    headers: dict[str, str]  # lower-cased names
    at: float  # time.monotonic() on arrival
    query: dict[str, str] = field(default_factory=dict)
    status: int | None = None
    response: Any = None


@dataclass(frozen=True)
class _Fault:
    method: str
    path: re.Pattern[str]
    status: int
    retry_after: float
    is_global: bool


@dataclass(frozen=True)
class _Request:
    params: dict[str, str]  # from the path
    json: Any
    query: dict[str, str]


_Answer = tuple[int, Any]  # HTTP status and JSON body (None: 204, no body)


class RestAPI:
    """Records each REST call and answers it as Discord would (faults first)."""

    token: str
    gateway_url: str
    _lock: threading.Lock
    _calls: list[Call]
    _faults: deque[_Fault]
    _commands: dict[int | None, list[dict[str, Any]]]
    _echoes: list[tuple[str, dict[str, Any]]]  # events for the gateway, unsent
    _gateway: _Gateway

    def _echo(self, event: str, message: dict[str, Any]) -> None:
        """Queue ``event`` for the gateway, unless ``message`` is ephemeral."""
        if not message["flags"] & EPHEMERAL:
            self._echoes.append((event, self._gateway_message(message)))

    def _edit(self, message: dict[str, Any], body: dict[str, Any]) -> dict[str, Any] | None:
        """Apply an edit; the error body if the edited message would be invalid."""
        edited = {
            **message,
            **{k: body[k] for k in ("content", "embeds", "components") if k in body},
        }
        error = _content_error(edited)
        if error is not None:
            return error
        was_loading = message["flags"] & LOADING
        message.update(edited)
        message["content"] = message["content"] or ""
        message["flags"] &= ~LOADING
        if not was_loading:
            message["edited_timestamp"] = _now()
        self._echo("MESSAGE_UPDATE", message)
        return None

    def _rest(
        self, method: str, path: str, query: dict[str, str], body: Any, headers: dict[str, str]
    ) -> tuple[int, Any, dict[str, str]]:
        """Record a REST call and answer it: (status, JSON body or None, extra headers)."""
        call = Call(method, path, body, headers, time.monotonic(), query)
        with self._lock:
            self._calls.append(call)
            fault = self._take_fault(method, path)
        self._notify()
        route, params = _route(method, path)
        bucket = _bucket(method, route.template if route else path)
        if fault is not None:
            status, response, extra = _fault_answer(fault, bucket)
        else:
            status, response = self._answer(path, route, _Request(params, body, query), headers)
            extra = _ratelimit_headers(bucket, RATE_LIMIT - 1, 1.0)
        with self._lock:
            call.status, call.response = status, copy.deepcopy(response)
            echoes, self._echoes = self._echoes, []
        for event, data in echoes:
            self._gateway.dispatch(event, data)
        self._notify()
        return status, response, extra

    def _take_fault(self, method: str, path: str) -> _Fault | None:
        for fault in self._faults:
            if fault.method == method and fault.path.fullmatch(path):
                self._faults.remove(fault)
                return fault
        return None

    def _answer(
        self, path: str, route: _Route | None, request: _Request, headers: dict[str, str]
    ) -> _Answer:
        if route is None:
            if any(r.pattern.fullmatch(path) for r in _ROUTES):
                return _error(405, 0, "405: Method Not Allowed")
            return _error(404, 0, "404: Not Found")
        if route.needs_bot_token and headers.get("authorization") != f"Bot {self.token}":
            return _error(401, 0, "401: Unauthorized")
        with self._lock:
            answer: _Answer = getattr(self, route.handler)(request)
            return answer

    def _get_me(self, request: _Request) -> _Answer:
        return 200, self._bot_user()

    def _get_application(self, request: _Request) -> _Answer:
        return 200, {
            "id": str(APPLICATION_ID),
            "name": BOT_NAME,
            "icon": None,
            "description": "",
            "summary": "",
            "type": None,
            "bot_public": True,
            "bot_require_code_grant": False,
            "verify_key": "0" * 64,
            "flags": APPLICATION_FLAGS,
            "owner": self._user(OWNER_ID),
            "team": None,
            "bot": self._user(BOT_USER_ID),
            "redirect_uris": [],
            "interactions_endpoint_url": None,  # set, discord.py warns: no gateway interactions
            "tags": [],
            "approximate_guild_count": 1,
        }

    def _get_gateway(self, request: _Request) -> _Answer:
        return 200, {"url": self.gateway_url}

    def _get_gateway_bot(self, request: _Request) -> _Answer:
        limit = {"total": 1000, "remaining": 999, "reset_after": 86_400_000, "max_concurrency": 1}
        return 200, {"url": self.gateway_url, "shards": 1, "session_start_limit": limit}

    def _get_commands(self, request: _Request) -> _Answer:
        if int(request.params["app"]) != APPLICATION_ID:
            return _error(403, 50001, "Missing Access")
        guild_id = int(request.params["guild"]) if "guild" in request.params else None
        return 200, copy.deepcopy(self._commands.get(guild_id, []))

    def _put_commands(self, request: _Request) -> _Answer:
        if int(request.params["app"]) != APPLICATION_ID:
            return _error(403, 50001, "Missing Access")
        payload = request.json
        if not isinstance(payload, list) or not all(isinstance(c, dict) for c in payload):
            return _error(400, 50035, "Invalid Form Body")
        errors = {str(i): e for i, c in enumerate(payload) if (e := _command_errors(c))}
        if errors:
            return _error(400, 50035, "Invalid Form Body", errors)
        guild_id = int(request.params["guild"]) if "guild" in request.params else None
        previous = {(c["name"], c["type"]): c["id"] for c in self._commands.get(guild_id, [])}
        stored = []
        for command in payload:
            kind = command.get("type", 1)
            command_id = previous.get((command["name"], kind)) or str(self._next_id())
            saved = {**command, "id": command_id, "application_id": str(APPLICATION_ID)}
            saved |= {"version": str(self._next_id()), "type": kind}
            saved.setdefault("description", "")
            saved.setdefault("default_member_permissions", None)
            if guild_id is not None:
                saved["guild_id"] = str(guild_id)
            stored.append(saved)
        self._commands[guild_id] = stored
        return 200, copy.deepcopy(stored)

    def _get_channel(self, request: _Request) -> _Answer:
        channel = self._channels.get(int(request.params["channel"]))
        if channel is None:
            return _error(404, 10003, "Unknown Channel")
        return 200, copy.deepcopy(channel)

    def _typing(self, request: _Request) -> _Answer:
        if int(request.params["channel"]) not in self._channels:
            return _error(404, 10003, "Unknown Channel")
        return 204, None

    def _create_message(self, request: _Request) -> _Answer:
        channel_id = int(request.params["channel"])
        if channel_id not in self._channels:
            return _error(404, 10003, "Unknown Channel")
        body = request.json if isinstance(request.json, dict) else {}
        error = _content_error(body)
        if error is not None:
            return 400, error
        fields = {k: body[k] for k in ("embeds", "components", "tts") if body.get(k)}
        fields["flags"] = int(body.get("flags") or 0) & SUPPRESS_EMBEDS
        reference = body.get("message_reference")
        if reference:
            replied_channel = int(reference.get("channel_id") or channel_id)
            replied = self._find(replied_channel, int(reference["message_id"]))
            if replied is None and reference.get("fail_if_not_exists", True):
                errors = {"message_reference": _field_error("REPLIES_UNKNOWN_MESSAGE")}
                return _error(400, 50035, "Invalid Form Body", errors)
            guild_id = self._channels[channel_id].get("guild_id")
            reference = _reference(replied_channel, int(reference["message_id"]), guild_id)
            fields |= {"type": REPLY, "message_reference": reference}
        message = self._store_message(channel_id, BOT_USER_ID, body.get("content") or "", **fields)
        self._echo("MESSAGE_CREATE", message)
        return 200, self._rest_message(message)

    def _get_message(self, request: _Request) -> _Answer:
        message = self._find(int(request.params["channel"]), int(request.params["message"]))
        if message is None:
            return _error(404, 10008, "Unknown Message")
        return 200, self._rest_message(message)

    def _edit_message(self, request: _Request) -> _Answer:
        message = self._find(int(request.params["channel"]), int(request.params["message"]))
        if message is None:
            return _error(404, 10008, "Unknown Message")
        if message["author"]["id"] != str(BOT_USER_ID):
            return _error(403, 50005, "Cannot edit a message authored by another user")
        error = self._edit(message, request.json if isinstance(request.json, dict) else {})
        return (400, error) if error is not None else (200, self._rest_message(message))


@dataclass
class _Route:
    method: str
    template: str  # "/channels/{channel}/messages": ids are digits, a {token} anything but /
    handler: str  # the name of the fake's method that answers: (request) -> _Answer
    needs_bot_token: bool = True
    pattern: re.Pattern[str] = field(init=False)

    def __post_init__(self) -> None:
        def group(match: re.Match[str]) -> str:
            name = match.group(1)
            value = {"token": r"[^/]+", "message": r"@original|\d+"}.get(name, r"\d+")
            return f"(?P<{name}>{value})"

        self.pattern = re.compile(re.sub(r"\{(\w+)\}", group, self.template))


_ROUTES = (
    _Route("GET", "/users/@me", "_get_me"),
    _Route("GET", "/applications/@me", "_get_application"),
    _Route("GET", "/oauth2/applications/@me", "_get_application"),
    _Route("GET", "/gateway", "_get_gateway", needs_bot_token=False),
    _Route("GET", "/gateway/bot", "_get_gateway_bot"),
    _Route("GET", "/applications/{app}/commands", "_get_commands"),
    _Route("PUT", "/applications/{app}/commands", "_put_commands"),
    _Route("GET", "/applications/{app}/guilds/{guild}/commands", "_get_commands"),
    _Route("PUT", "/applications/{app}/guilds/{guild}/commands", "_put_commands"),
    _Route(
        "POST",
        "/interactions/{interaction}/{token}/callback",
        "_interaction_callback",
        needs_bot_token=False,
    ),
    _Route("POST", "/webhooks/{app}/{token}", "_execute_webhook", False),
    _Route("GET", "/webhooks/{app}/{token}/messages/{message}", "_get_webhook_message", False),
    _Route(
        "PATCH",
        "/webhooks/{app}/{token}/messages/{message}",
        "_edit_webhook_message",
        False,
    ),
    _Route("GET", "/channels/{channel}", "_get_channel"),
    _Route("POST", "/channels/{channel}/typing", "_typing"),
    _Route("POST", "/channels/{channel}/messages", "_create_message"),
    _Route("GET", "/channels/{channel}/messages/{message}", "_get_message"),
    _Route("PATCH", "/channels/{channel}/messages/{message}", "_edit_message"),
)


def _route(method: str, path: str) -> tuple[_Route | None, dict[str, str]]:
    """The route of ``method`` and ``path``, and its path parameters."""
    for route in _ROUTES:
        match = route.pattern.fullmatch(path)
        if match and route.method == method:
            return route, match.groupdict()
    return None, {}


def _bucket(method: str, template: str) -> str:
    """The X-RateLimit-Bucket of a route: one per route, as an opaque hash."""
    return hashlib.sha1(f"{method} {template}".encode()).hexdigest()[:16]


def _error(status: int, code: int, message: str, errors: dict | None = None) -> _Answer:
    body: dict[str, Any] = {"message": message, "code": code}
    if errors:
        body["errors"] = errors
    return status, body


def _field_error(code: str, message: str = "Invalid value.") -> dict[str, Any]:
    return {"_errors": [{"code": code, "message": message}]}


def _content_error(message: dict[str, Any]) -> dict[str, Any] | None:
    """Discord's error body for a message it would refuse (empty, or content too long)."""
    content = message.get("content") or ""
    if len(content) > MAX_CONTENT:
        too_long = _field_error(
            "BASE_TYPE_MAX_LENGTH", f"Must be {MAX_CONTENT} or fewer in length."
        )
        return _error(400, 50035, "Invalid Form Body", {"content": too_long})[1]
    if not (content or message.get("embeds") or message.get("components")):
        return _error(400, 50006, "Cannot send an empty message")[1]
    return None


def _command_errors(command: dict[str, Any]) -> dict[str, Any] | None:
    """Invalid Form Body errors of one command of a sync, or None."""
    name = command.get("name")
    is_chat_input = command.get("type", 1) == 1
    allowed = r"[-_\w]{1,32}" if is_chat_input else r"[-_\w ]{1,32}"  # menus may have spaces
    if not isinstance(name, str) or not re.fullmatch(allowed, name):
        return {"name": _field_error("APPLICATION_COMMAND_INVALID_NAME")}
    if is_chat_input and name != name.lower():
        return {"name": _field_error("APPLICATION_COMMAND_INVALID_NAME")}
    description = command.get("description") or ""
    if is_chat_input and not 1 <= len(description) <= 100:
        return {"description": _field_error("BASE_TYPE_BAD_LENGTH")}
    return None


def _fault_answer(fault: _Fault, bucket: str) -> tuple[int, Any, dict[str, str]]:
    if fault.status != 429:
        status, body = _error(fault.status, 0, f"{fault.status}: scripted fault")
        return status, body, {}
    body = {"message": "You are being rate limited.", "retry_after": fault.retry_after}
    body["global"] = fault.is_global
    headers = _ratelimit_headers(bucket, 0, fault.retry_after)
    headers["Retry-After"] = str(math.ceil(fault.retry_after))
    headers["X-RateLimit-Scope"] = "global" if fault.is_global else "user"
    if fault.is_global:
        headers["X-RateLimit-Global"] = "true"
    return 429, body, headers


def _ratelimit_headers(bucket: str, remaining: int, reset_after: float) -> dict[str, str]:
    return {
        "X-RateLimit-Bucket": bucket,
        "X-RateLimit-Limit": str(RATE_LIMIT),
        "X-RateLimit-Remaining": str(remaining),
        "X-RateLimit-Reset": f"{time.time() + reset_after:.3f}",
        "X-RateLimit-Reset-After": f"{reset_after:.3f}",
    }
