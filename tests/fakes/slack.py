"""A fake Slack: the Web API and Socket Mode, served for real on 127.0.0.1.

Tests point the real ``slack_sdk`` / ``slack_bolt`` clients at this server instead of slack.com:
``WebClient(base_url=fake.api_url)``. It speaks HTTP/1.1 (standard library only) on 127.0.0.1
with a random port, in a background thread, and answers like Slack does:

- Web API methods at ``/api/<method>`` (POST or GET; form-encoded, JSON or query parameters;
  the token as ``Authorization: Bearer`` or a ``token`` parameter). Errors are HTTP 200 with
  ``{"ok": false, "error": ...}``, as on Slack. Implemented: auth.test, bots.info, chat.postMessage,
  chat.update, chat.postEphemeral, reactions.add, reactions.remove, conversations.replies,
  conversations.history, users.info and apps.connections.open; anything else is
  ``unknown_method``. Posted messages are stored per channel, so a thread read back shows them.
- Socket Mode on the same port: apps.connections.open (with the app-level token) hands out a
  ``ws://`` URL; a client that connects gets ``hello``, then whatever ``socket_send()`` pushes;
  its acks are recorded. Pings are answered with pongs, as the SDK clients expect.
- Response URLs (``response_url()``) for slash commands and interactions; POSTs to them are
  recorded as calls to the method ``"response_url"``.

Faults are scripted per method with ``fail_next()``: HTTP 429 with ``Retry-After`` (Slack's rate
limit), a 5xx, or an ``ok: false`` error. Every call is recorded (before any fault) with its
parameters, headers and answer; ``wait_for()`` polls until a condition holds, for bots that
answer in other threads or tasks.

Stop the fake before closing a Socket Mode client: the close frame it sends ends the client's
blocking read at once, where closing ``slack_sdk``'s builtin client first takes ~3 s (its
disconnect waits out a 3-s receive timeout).

The module also builds what Slack sends to an app over HTTP: ``sign()`` for the request
signature, and Events API envelopes, slash command bodies and block action payloads.

    with FakeSlack() as slack:
        client = WebClient(token=BOT_TOKEN, base_url=slack.api_url)
        ts = slack.seed_message("C1", "how do I restart a node?", user="U1")
        client.chat_postMessage(channel="C1", thread_ts=ts, text="Restart it with ...")
        assert [m["text"] for m in slack.thread("C1", ts)][1] == "Restart it with ..."
"""

from __future__ import annotations

import contextlib
import copy
import functools
import hashlib
import hmac
import itertools
import json
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import parse_qsl, urlencode, urlsplit

from tests.fakes.http import Changes, FakeHTTPServer, LocalFake, TrackedHandler
from tests.fakes.websocket import WebSocket, is_upgrade

BOT_TOKEN = "xoxb-test"
APP_TOKEN = "xapp-test"
SIGNING_SECRET = "test-signing-secret"
VERIFICATION_TOKEN = "test-verification-token"  # the deprecated ``token`` field of payloads
TEAM_ID = "T0TEAMBOT"
TEAM_DOMAIN = "teambot-test"
APP_ID = "A0TEAMBOT"
BOT_USER_ID = "UBOT"
BOT_ID = "BBOT"
BOT_NAME = "teambot"
FIRST_TS_MICROS = 1_700_000_000_000_100  # the first ts handed out: "1700000000.000100"
TS_STEP_MICROS = 100
SOCKET_PATH = "/link/"
RESPONSE_URL_PATH = "/hooks/respond/"
RESPONSE_URL_METHOD = "response_url"
PAYLOAD_TYPES = ("events_api", "slash_commands", "interactive")
# Whether Slack lets the ack of an envelope carry a response payload, per envelope type.
ACCEPTS_RESPONSE_PAYLOAD = {"events_api": False, "slash_commands": True, "interactive": False}
JSON_PARAMS = ("blocks", "attachments", "metadata")  # form bodies carry these as JSON text
APP_TOKEN_METHODS = frozenset({"apps.connections.open"})

T = TypeVar("T")


@dataclass
class Call:
    """One request as the fake saw it; ``status`` and ``response`` are set once answered.

    ``params`` merges the query string and the body (form or JSON), less a ``token`` parameter.
    Form values are strings, except ``blocks``, ``attachments`` and ``metadata``: they are
    decoded from their JSON text.
    """

    method: str  # "chat.postMessage", or "response_url" for a POST to a response URL
    params: dict[str, Any]
    headers: dict[str, str]  # lower-cased names
    at: float  # time.monotonic() on arrival
    path: str = ""  # the request target, query string included
    status: int | None = None
    response: dict[str, Any] | None = None


@dataclass(frozen=True)
class Ack:
    """An envelope acknowledgement a Socket Mode client sent back."""

    envelope_id: str
    payload: dict[str, Any] | None  # the response payload, if the ack carried one
    at: float  # time.monotonic() on arrival


@dataclass(frozen=True)
class _Fault:
    status: int
    error: str
    retry_after: int | None


class FakeSlack(LocalFake):
    """Slack's Web API and Socket Mode on 127.0.0.1; configure it before or after start()."""

    def __init__(self, *, bot_token: str = BOT_TOKEN, app_token: str = APP_TOKEN) -> None:
        self.bot_token = bot_token
        self.app_token = app_token
        self._lock = threading.Lock()
        self._changes = Changes()  # notified whenever anything is recorded
        self._calls: list[Call] = []
        self._acks: list[Ack] = []
        self._faults: dict[str, deque[_Fault]] = {}
        self._channels: dict[str, list[dict[str, Any]]] = {}
        self._users: dict[str, dict[str, Any]] = {BOT_USER_ID: _user(BOT_USER_ID, BOT_NAME, True)}
        self._ts_serial = itertools.count()
        self._url_serial = itertools.count(1)
        self._tickets: set[str] = set()
        self._sockets: list[WebSocket] = []

    # -- lifecycle ---------------------------------------------------------------------------

    def _new_server(self) -> FakeHTTPServer:
        handler = type("_BoundHandler", (_Handler,), {"fake": self})
        return FakeHTTPServer(handler, "fake-slack")

    def stop(self) -> None:
        """Close every Socket Mode connection (a close frame, as Slack sends), then stop."""
        with self._lock:
            sockets, self._sockets = self._sockets, []
        for socket in sockets:
            socket.close(1001, "server stopping")
        super().stop()

    @property
    def api_url(self) -> str:
        """``http://127.0.0.1:PORT/api/``: the ``base_url`` for ``WebClient``."""
        return self._origin() + "/api/"

    def response_url(self) -> str:
        """A fresh response URL (for slash commands and interactions) served by this fake."""
        return f"{self._origin()}{RESPONSE_URL_PATH}{next(self._url_serial)}"

    # -- content -----------------------------------------------------------------------------

    def seed_message(
        self,
        channel: str,
        text: str,
        user: str,
        thread_ts: str | None = None,
        *,
        bot_id: str | None = None,
        blocks: list[dict[str, Any]] | None = None,
    ) -> str:
        """Store a message as if ``user`` had posted it (a reply if ``thread_ts``); its ts."""
        message: dict[str, Any] = {"type": "message", "user": user, "text": text}
        if bot_id is not None:
            message["bot_id"] = bot_id
        if blocks is not None:
            message["blocks"] = blocks
        with self._lock:
            stored = self._store(channel, message, thread_ts)
        self._notify()
        return stored["ts"]

    def add_user(self, user_id: str, name: str, *, is_bot: bool = False, **fields: Any) -> None:
        """What users.info answers for ``user_id`` (others get a made-up human user)."""
        with self._lock:
            self._users[user_id] = {**_user(user_id, name, is_bot), **fields}

    def fail_next(
        self,
        method: str,
        *,
        times: int = 1,
        status: int | None = None,
        retry_after: int = 1,
        error: str | None = None,
    ) -> None:
        """Fail the next ``times`` calls to ``method``, ahead of any other check.

        ``status`` None means 429 (``ratelimited``, with ``Retry-After: retry_after``), or 200
        when ``error`` is given. A 5xx answers ``error`` or ``internal_error``; a 200 answers
        ``{"ok": false, "error": error}`` as Slack does for a failed call.
        """
        if status is None:
            status = 429 if error is None else 200
        if error is None:
            error = {429: "ratelimited", 200: "fatal_error"}.get(status, "internal_error")
        fault = _Fault(status, error, retry_after if status == 429 else None)
        with self._lock:
            self._faults.setdefault(method, deque()).extend([fault] * times)

    # -- observation -------------------------------------------------------------------------

    @property
    def calls(self) -> list[Call]:
        """Every call so far, in arrival order (a copy)."""
        with self._lock:
            return list(self._calls)

    def calls_to(self, method: str) -> list[Call]:
        return [call for call in self.calls if call.method == method]

    def messages(self, channel: str) -> list[dict[str, Any]]:
        """Every stored message of ``channel`` (thread replies too), oldest first (copies)."""
        with self._lock:
            return copy.deepcopy(self._channels.get(channel, []))

    def thread(self, channel: str, ts: str) -> list[dict[str, Any]]:
        """The thread of ``ts`` as conversations.replies returns it: parent, then replies."""
        with self._lock:
            return copy.deepcopy(self._thread(channel, ts))

    @property
    def acks(self) -> list[Ack]:
        """Every Socket Mode ack so far, in arrival order (a copy)."""
        with self._lock:
            return list(self._acks)

    def wait_for(self, predicate: Callable[[], T], timeout: float = 10.0) -> T:
        """Poll ``predicate`` until it returns something true, and return that (checked again
        whenever the fake records something); TimeoutError after ``timeout`` seconds."""
        return self._changes.wait_for(predicate, timeout)

    # -- Socket Mode -------------------------------------------------------------------------

    def socket_connected(self, timeout: float = 5.0) -> bool:
        """Whether a Socket Mode client is connected (waiting up to ``timeout`` for one)."""
        try:
            self.wait_for(self._open_socket, timeout)
        except TimeoutError:
            return False
        return True

    def socket_send(
        self,
        payload_type: str,
        payload: dict[str, Any],
        *,
        accepts_response_payload: bool | None = None,
        retry_attempt: int = 0,
        retry_reason: str = "",
        timeout: float = 5.0,
    ) -> str:
        """Push an envelope to the newest connected client (waiting up to ``timeout`` for one).

        ``payload_type`` is events_api (payload: an ``event_callback`` envelope, see
        ``app_mention_event()``), slash_commands (see ``slash_command()``) or interactive (see
        ``block_action()``). Like Slack, each envelope goes to one connection. Returns its id.
        """
        if payload_type not in PAYLOAD_TYPES:
            raise ValueError(f"payload_type must be one of {PAYLOAD_TYPES}")
        if accepts_response_payload is None:
            accepts_response_payload = ACCEPTS_RESPONSE_PAYLOAD[payload_type]
        envelope_id = str(uuid.uuid4())
        envelope: dict[str, Any] = {
            "envelope_id": envelope_id,
            "payload": payload,
            "type": payload_type,
            "accepts_response_payload": accepts_response_payload,
        }
        if payload_type == "events_api":
            envelope |= {"retry_attempt": retry_attempt, "retry_reason": retry_reason}
        socket = self.wait_for(self._open_socket, timeout)
        socket.send_json(envelope)
        return envelope_id

    def socket_disconnect(self, reason: str = "refresh_requested") -> None:
        """Send every client Slack's ``disconnect`` message: it should reconnect elsewhere."""
        with self._lock:
            sockets = list(self._sockets)
        message = {"type": "disconnect", "reason": reason, "debug_info": {"host": "fake-slack"}}
        for socket in sockets:
            socket.send_json(message)

    def wait_for_ack(self, envelope_id: str, timeout: float = 10.0) -> Ack:
        def ack() -> Ack | None:
            return next((a for a in self.acks if a.envelope_id == envelope_id), None)

        return self.wait_for(ack, timeout)

    # -- used by the request handler ---------------------------------------------------------

    def _notify(self) -> None:
        self._changes.notify()

    def _record(self, call: Call) -> None:
        with self._lock:
            self._calls.append(call)
        self._notify()

    def _answered(self, call: Call, status: int, response: dict[str, Any]) -> None:
        with self._lock:
            call.status, call.response = status, response
        self._notify()

    def _record_ack(self, ack: Ack) -> None:
        with self._lock:
            self._acks.append(ack)
        self._notify()

    def _open_socket(self) -> WebSocket | None:
        with self._lock:
            return self._sockets[-1] if self._sockets else None

    def _is_ticket(self, ticket: str) -> bool:
        """Whether apps.connections.open handed out ``ticket``."""
        with self._lock:
            return ticket in self._tickets

    def _socket_opened(self, socket: WebSocket) -> None:
        with self._lock:
            self._sockets.append(socket)
        self._notify()

    def _socket_closed(self, socket: WebSocket) -> None:
        with self._lock:
            if socket in self._sockets:
                self._sockets.remove(socket)
        self._notify()

    def _hello(self) -> dict[str, Any]:
        with self._lock:
            count = len(self._sockets) + 1  # this one is not registered yet
        return {
            "type": "hello",
            "num_connections": count,
            "debug_info": {
                "host": "fake-slack",
                "build_number": 1,
                "approximate_connection_time": 18060,
            },
            "connection_info": {"app_id": APP_ID},
        }

    def _call(
        self, method: str, params: dict[str, Any], token: str | None
    ) -> tuple[int, dict[str, Any], dict[str, str]]:
        """(HTTP status, JSON body, extra headers) of a Web API call."""
        with self._lock:
            faults = self._faults.get(method)
            fault = faults.popleft() if faults else None
        if fault is not None:
            headers = {} if fault.retry_after is None else {"Retry-After": str(fault.retry_after)}
            return fault.status, _error(fault.error), headers
        handler = self._handler_for(method)
        if handler is None:
            return 200, _error("unknown_method"), {}
        error = self._auth_error(method, token)
        if error is not None:
            return 200, _error(error), {}
        with self._lock:
            return 200, handler(self, params), {}

    def _handler_for(self, method: str) -> Callable[[Any, dict[str, Any]], dict[str, Any]] | None:
        """What answers ``method`` (subclasses add methods by extending this)."""
        return _METHODS.get(method)

    def _auth_error(self, method: str, token: str | None) -> str | None:
        expected, other = self.bot_token, self.app_token
        if method in APP_TOKEN_METHODS:
            expected, other = other, expected
        if not token:
            return "not_authed"
        if token == expected:
            return None
        return "not_allowed_token_type" if token == other else "invalid_auth"

    # -- stored messages (called with the lock held) -----------------------------------------

    def _next_ts(self) -> str:
        micros = FIRST_TS_MICROS + TS_STEP_MICROS * next(self._ts_serial)
        return f"{micros // 1_000_000}.{micros % 1_000_000:06d}"

    def _store(self, channel: str, message: dict[str, Any], thread_ts: str | None) -> dict:
        message = {**message, "ts": self._next_ts(), "team": TEAM_ID}
        parent = self._find(channel, thread_ts) if thread_ts else None
        if thread_ts:
            message["thread_ts"] = thread_ts
        if parent is not None:
            message["parent_user_id"] = parent.get("user")
            parent["thread_ts"] = parent["ts"]
            parent["reply_count"] = parent.get("reply_count", 0) + 1
            parent["latest_reply"] = message["ts"]
            users = parent.setdefault("reply_users", [])
            if message["user"] not in users:
                users.append(message["user"])
        self._channels.setdefault(channel, []).append(message)
        return message

    def _find(self, channel: str, ts: str | None) -> dict[str, Any] | None:
        return next((m for m in self._channels.get(channel, []) if m["ts"] == ts), None)

    def _thread(self, channel: str, ts: str) -> list[dict[str, Any]]:
        messages = self._channels.get(channel, [])
        return [m for m in messages if ts in (m["ts"], m.get("thread_ts"))]

    # -- Web API methods (called with the lock held) -----------------------------------------

    def _auth_test(self, params: dict[str, Any]) -> dict[str, Any]:
        return {
            "ok": True,
            "url": f"https://{TEAM_DOMAIN}.slack.com/",
            "team": "Teambot Test",
            "user": BOT_NAME,
            "team_id": TEAM_ID,
            "user_id": BOT_USER_ID,
            "bot_id": BOT_ID,
            "is_enterprise_install": False,
        }

    def _bots_info(self, params: dict[str, Any]) -> dict[str, Any]:
        """Only teambot's own bot is known (the one auth.test names)."""
        if params.get("bot") != BOT_ID:
            return _error("bot_not_found")
        return {
            "ok": True,
            "bot": {
                "id": BOT_ID,
                "deleted": False,
                "name": BOT_NAME,
                "updated": 1_700_000_000,
                "app_id": APP_ID,
                "user_id": BOT_USER_ID,
                "icons": {"image_36": "https://a.slack-edge.com/80588/img/plugins/app/bot_36.png"},
            },
        }

    def _post_message(self, params: dict[str, Any]) -> dict[str, Any]:
        channel = params.get("channel")
        if not channel:
            return _error("channel_not_found")
        if not (params.get("text") or params.get("blocks") or params.get("attachments")):
            return _error("no_text")
        message = {"type": "message", "user": BOT_USER_ID, "bot_id": BOT_ID, "app_id": APP_ID}
        message["text"] = params.get("text") or ""
        for name in ("blocks", "attachments", "metadata"):
            if params.get(name):
                message[name] = params[name]
        stored = copy.deepcopy(self._store(channel, message, params.get("thread_ts") or None))
        return {"ok": True, "channel": channel, "ts": stored["ts"], "message": stored}

    def _update(self, params: dict[str, Any]) -> dict[str, Any]:
        channel = params.get("channel")
        message = self._find(channel or "", params.get("ts"))
        if message is None:
            return _error("message_not_found" if channel else "channel_not_found")
        if message.get("user") != BOT_USER_ID:
            return _error("cant_update_message")
        for name in ("text", "blocks", "attachments", "metadata"):
            if name in params:
                message[name] = params[name]
        message["edited"] = {"user": BOT_USER_ID, "ts": self._next_ts()}
        return {
            "ok": True,
            "channel": channel,
            "ts": message["ts"],
            "text": message.get("text", ""),
            "message": copy.deepcopy(message),
        }

    def _post_ephemeral(self, params: dict[str, Any]) -> dict[str, Any]:
        if not params.get("channel"):
            return _error("channel_not_found")
        if not params.get("user"):
            return _error("user_not_in_channel")
        if not (params.get("text") or params.get("blocks") or params.get("attachments")):
            return _error("no_text")
        return {"ok": True, "message_ts": self._next_ts()}

    def _react(self, params: dict[str, Any], *, add: bool) -> dict[str, Any]:
        """Reactions on unknown messages succeed (tests need not seed every message)."""
        name = params.get("name")
        if not name:
            return _error("invalid_name")
        message = self._find(params.get("channel") or "", params.get("timestamp"))
        if message is None:
            return {"ok": True}
        reactions: list[dict[str, Any]] = message.setdefault("reactions", [])
        reaction = next((r for r in reactions if r["name"] == name), None)
        has_reacted = reaction is not None and BOT_USER_ID in reaction["users"]
        if add and has_reacted:
            return _error("already_reacted")
        if not add and not has_reacted:
            return _error("no_reaction")
        if add:
            if reaction is None:
                reaction = {"name": name, "users": [], "count": 0}
                reactions.append(reaction)
            reaction["users"].append(BOT_USER_ID)
        elif reaction is not None:
            reaction["users"].remove(BOT_USER_ID)
        if reaction is not None:
            reaction["count"] = len(reaction["users"])
        message["reactions"] = [r for r in reactions if r["count"]]
        return {"ok": True}

    def _replies(self, params: dict[str, Any]) -> dict[str, Any]:
        thread = self._thread(params.get("channel") or "", params.get("ts") or "")
        if not thread:
            return _error("thread_not_found")
        return {
            "ok": True,
            "messages": copy.deepcopy(thread),
            "has_more": False,
            "response_metadata": {"next_cursor": ""},
        }

    def _history(self, params: dict[str, Any]) -> dict[str, Any]:
        """Top-level messages (no thread replies), newest first, as Slack pages them."""
        channel = params.get("channel") or ""
        limit = int(params.get("limit") or 100)
        messages = self._channels.get(channel, [])
        top = [m for m in reversed(messages) if m.get("thread_ts") in (None, m["ts"])]
        return {
            "ok": True,
            "messages": copy.deepcopy(top[:limit]),
            "has_more": len(top) > limit,
            "pin_count": 0,
            "response_metadata": {"next_cursor": ""},
        }

    def _users_info(self, params: dict[str, Any]) -> dict[str, Any]:
        user_id = params.get("user")
        if not user_id:
            return _error("user_not_found")
        user = self._users.get(user_id) or _user(user_id, user_id.lower(), False)
        return {"ok": True, "user": copy.deepcopy(user)}

    def _connections_open(self, params: dict[str, Any]) -> dict[str, Any]:
        ticket = str(uuid.uuid4())
        self._tickets.add(ticket)
        ws_origin = "ws" + self._origin().removeprefix("http")
        return {"ok": True, "url": f"{ws_origin}{SOCKET_PATH}?ticket={ticket}&app_id={APP_ID}"}


_METHODS: dict[str, Callable[[FakeSlack, dict[str, Any]], dict[str, Any]]] = {
    "auth.test": FakeSlack._auth_test,
    "bots.info": FakeSlack._bots_info,
    "chat.postMessage": FakeSlack._post_message,
    "chat.update": FakeSlack._update,
    "chat.postEphemeral": FakeSlack._post_ephemeral,
    "reactions.add": lambda fake, params: fake._react(params, add=True),
    "reactions.remove": lambda fake, params: fake._react(params, add=False),
    "conversations.replies": FakeSlack._replies,
    "conversations.history": FakeSlack._history,
    "users.info": FakeSlack._users_info,
    "apps.connections.open": FakeSlack._connections_open,
}


def _error(error: str) -> dict[str, Any]:
    return {"ok": False, "error": error}


def _user(user_id: str, name: str, is_bot: bool) -> dict[str, Any]:
    real_name = name.replace(".", " ").title()
    return {
        "id": user_id,
        "team_id": TEAM_ID,
        "name": name,
        "deleted": False,
        "real_name": real_name,
        "tz": "Europe/Berlin",
        "is_admin": False,
        "is_bot": is_bot,
        "is_app_user": False,
        "profile": {"real_name": real_name, "display_name": name, "team": TEAM_ID},
    }


# -- HTTP ------------------------------------------------------------------------------------


class _Handler(TrackedHandler):
    """Answers for ``fake``: ``_new_server()`` binds it in a subclass made per server."""

    server_version = "FakeSlack/1.0"
    fake: FakeSlack

    def do_GET(self) -> None:
        if is_upgrade(self):
            self._socket_mode()
        else:
            self._handle(b"")

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        self._handle(self.rfile.read(length))

    def _handle(self, raw: bytes) -> None:
        fake = self.fake
        target = urlsplit(self.path)
        headers = {name.lower(): value for name, value in self.headers.items()}
        params: dict[str, Any] = dict(parse_qsl(target.query, keep_blank_values=True))
        params |= _body_params(raw, headers.get("content-type", ""))
        if target.path.startswith(RESPONSE_URL_PATH) and self.command == "POST":
            call = Call(RESPONSE_URL_METHOD, params, headers, time.monotonic(), self.path)
            fake._record(call)
            fake._answered(call, 200, {"ok": True})
            self._send(200, b"ok", "text/plain; charset=utf-8")
            return
        if not target.path.startswith("/api/"):
            self._send(404, b"Not Found", "text/plain; charset=utf-8")
            return
        token = params.pop("token", None)
        bearer = headers.get("authorization", "")
        if bearer.startswith("Bearer "):
            token = bearer.removeprefix("Bearer ")
        method = target.path.removeprefix("/api/")
        call = Call(method, params, headers, time.monotonic(), self.path)
        fake._record(call)
        status, body, extra = fake._call(method, params, token)
        fake._answered(call, status, body)
        self._send(status, json.dumps(body).encode(), "application/json; charset=utf-8", extra)

    def _send(
        self, status: int, body: bytes, content_type: str, extra: dict[str, str] | None = None
    ) -> None:
        headers = {"Content-Type": content_type, "Content-Length": str(len(body)), **(extra or {})}
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def _socket_mode(self) -> None:
        """The WebSocket handshake (RFC 6455), then frames until either side closes."""
        fake = self.fake
        target = urlsplit(self.path)
        key = self.headers.get("Sec-WebSocket-Key")
        ticket = dict(parse_qsl(target.query)).get("ticket", "")
        self.close_connection = True
        if target.path != SOCKET_PATH or not key:
            self._send(400, b"Bad Request", "text/plain; charset=utf-8")
            return
        if not fake._is_ticket(ticket):
            self._send(401, b"invalid_ticket", "text/plain; charset=utf-8")
            return
        socket = WebSocket(self.connection)
        try:
            socket.accept(self, key)
            socket.send_json(fake._hello())  # before socket_send() can reach this socket
            fake._socket_opened(socket)
            socket.serve(self.rfile, functools.partial(_on_text, fake))
        except OSError:
            pass  # the client hung up, or stop() cut the connection
        finally:
            fake._socket_closed(socket)


def _body_params(raw: bytes, content_type: str) -> dict[str, Any]:
    if not raw:
        return {}
    if content_type.startswith("application/json"):
        try:
            value = json.loads(raw)
        except ValueError:
            return {}
        return value if isinstance(value, dict) else {}
    if not content_type.startswith("application/x-www-form-urlencoded"):
        return {}
    params: dict[str, Any] = dict(parse_qsl(raw.decode(), keep_blank_values=True))
    for name in JSON_PARAMS:
        if isinstance(params.get(name), str):
            with contextlib.suppress(ValueError):  # else left as sent
                params[name] = json.loads(params[name])
    return params


# -- Socket Mode messages --------------------------------------------------------------------


def _on_text(fake: FakeSlack, data: bytes) -> None:
    """Record an envelope ack (anything else a client sends is ignored)."""
    try:
        message = json.loads(data)
    except ValueError:
        return
    if isinstance(message, dict) and isinstance(message.get("envelope_id"), str):
        payload = message.get("payload")
        payload = payload if isinstance(payload, dict) else None
        fake._record_ack(Ack(message["envelope_id"], payload, time.monotonic()))


# -- what Slack sends to an app --------------------------------------------------------------


def sign(signing_secret: str, body: bytes, timestamp: int | None = None) -> dict[str, str]:
    """The headers Slack signs a request with: ``v0=HMAC-SHA256(secret, "v0:{ts}:{body}")``."""
    if timestamp is None:
        timestamp = int(time.time())
    base = f"v0:{timestamp}:".encode() + body
    digest = hmac.new(signing_secret.encode(), base, hashlib.sha256).hexdigest()
    return {"X-Slack-Request-Timestamp": str(timestamp), "X-Slack-Signature": f"v0={digest}"}


def app_mention_event(
    text: str,
    channel: str,
    user: str,
    ts: str,
    thread_ts: str | None = None,
    event_id: str | None = None,
) -> dict[str, Any]:
    """The Events API envelope of an ``app_mention`` (put ``<@UBOT>`` in ``text`` yourself)."""
    event = {"type": "app_mention", "user": user, "text": text, "ts": ts, "channel": channel}
    return event_callback(event, thread_ts, event_id)


def message_event(
    text: str, channel: str, user: str, ts: str, *, event_id: str | None = None, **fields: Any
) -> dict[str, Any]:
    """The Events API envelope of a ``message``. ``fields`` are more event fields: ``thread_ts``,
    ``bot_id``, ``subtype``, ... ``channel_type`` defaults from the channel id (D… → "im",
    G… → "group", else "channel")."""
    channel_type = {"D": "im", "G": "group"}.get(channel[:1], "channel")
    event: dict[str, Any] = {
        "type": "message",
        "user": user,
        "text": text,
        "ts": ts,
        "channel": channel,
        "channel_type": channel_type,
        **fields,
    }
    return event_callback(event, event.pop("thread_ts", None), event_id)


def event_callback(
    event: dict[str, Any], thread_ts: str | None, event_id: str | None = None
) -> dict[str, Any]:
    """The Events API envelope Slack POSTs around ``event``."""
    event = {**event, "team": TEAM_ID, "event_ts": event["ts"]}
    if thread_ts is not None:
        event["thread_ts"] = thread_ts
    return {
        "token": VERIFICATION_TOKEN,
        "team_id": TEAM_ID,
        "api_app_id": APP_ID,
        "event": event,
        "type": "event_callback",
        "event_id": event_id or f"Ev{uuid.uuid4().hex[:10].upper()}",
        "event_time": int(float(event["ts"])),
        "authorizations": [
            {
                "enterprise_id": None,
                "team_id": TEAM_ID,
                "user_id": BOT_USER_ID,
                "is_bot": True,
                "is_enterprise_install": False,
            }
        ],
        "is_ext_shared_channel": False,
    }


def slash_command(
    command: str, text: str, channel: str, user: str, response_url: str
) -> dict[str, str]:
    """The fields of a slash command: a Socket Mode ``slash_commands`` payload."""
    return {
        "token": VERIFICATION_TOKEN,
        "team_id": TEAM_ID,
        "team_domain": TEAM_DOMAIN,
        "channel_id": channel,
        "channel_name": channel.lower(),
        "user_id": user,
        "user_name": user.lower(),
        "command": command,
        "text": text,
        "api_app_id": APP_ID,
        "is_enterprise_install": "false",
        "response_url": response_url,
        "trigger_id": _trigger_id(),
    }


def slash_command_form(
    command: str, text: str, channel: str, user: str, response_url: str
) -> bytes:
    """The form-encoded body Slack POSTs for a slash command (sign it with ``sign()``)."""
    return urlencode(slash_command(command, text, channel, user, response_url)).encode()


def block_action(
    action_id: str,
    value: str,
    user: str,
    channel: str,
    message_ts: str,
    *,
    block_id: str = "actions",
    response_url: str | None = None,
) -> dict[str, Any]:
    """A ``block_actions`` payload for a button: a Socket Mode ``interactive`` payload."""
    payload: dict[str, Any] = {
        "type": "block_actions",
        "user": {"id": user, "username": user.lower(), "name": user.lower(), "team_id": TEAM_ID},
        "api_app_id": APP_ID,
        "token": VERIFICATION_TOKEN,
        "container": {
            "type": "message",
            "message_ts": message_ts,
            "channel_id": channel,
            "is_ephemeral": False,
        },
        "trigger_id": _trigger_id(),
        "team": {"id": TEAM_ID, "domain": TEAM_DOMAIN},
        "enterprise": None,
        "is_enterprise_install": False,
        "channel": {"id": channel, "name": channel.lower()},
        "message": {"type": "message", "ts": message_ts, "user": BOT_USER_ID, "bot_id": BOT_ID},
        "state": {"values": {}},
        "actions": [
            {
                "type": "button",
                "action_id": action_id,
                "block_id": block_id,
                "value": value,
                "text": {"type": "plain_text", "text": value, "emoji": True},
                "action_ts": f"{time.time():.6f}",
            }
        ],
    }
    if response_url is not None:
        payload["response_url"] = response_url
    return payload


def block_action_payload(
    action_id: str, value: str, user: str, channel: str, message_ts: str, **options: Any
) -> bytes:
    """The form body Slack POSTs for a button click: ``payload=<the JSON of block_action()>``
    (``options``: those of ``block_action()``)."""
    payload = block_action(action_id, value, user, channel, message_ts, **options)
    return urlencode({"payload": json.dumps(payload)}).encode()


def _trigger_id() -> str:
    return f"{int(time.time())}.{uuid.uuid4().int % 10**12}.{uuid.uuid4().hex}"
