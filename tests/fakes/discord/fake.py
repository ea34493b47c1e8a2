"""``FakeDiscord``: the REST API (rest, interactions) and the gateway (gateway) behind one
HTTP server on 127.0.0.1, over one world (payloads), with what tests configure and observe."""

from __future__ import annotations

import contextlib
import copy
import json
import re
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, TypeVar
from urllib.parse import parse_qsl, urlsplit

import discord.gateway
import discord.http
import yarl

from tests.fakes.discord.gateway import (
    GATEWAY_PATH,
    HEARTBEAT_INTERVAL_MS,
    RESUME_GATEWAY_PATH,
    _Gateway,
)
from tests.fakes.discord.interactions import (
    APPLICATION_COMMAND,
    INTERACTION_DEADLINE,
    MESSAGE_COMPONENT,
    Interactions,
    _Interaction,
)
from tests.fakes.discord.payloads import (
    BOT_NAME,
    BOT_ROLE_ID,
    BOT_USER_ID,
    CHANNEL_ID,
    GUILD_ID,
    MANAGER_ROLE_ID,
    OWNER_ID,
    REPLY,
    Payloads,
    _dm_channel,
    _mentioned_ids,
    _option,
    _reference,
    _text_channel,
)
from tests.fakes.discord.rest import API_PREFIX, VIA, Call, RestAPI, _Fault
from tests.fakes.http import Changes, FakeHTTPServer, LocalFake, TrackedHandler
from tests.fakes.websocket import WebSocket, is_upgrade

BOT_TOKEN = "fake-discord-bot-token"

T = TypeVar("T")


class FakeDiscord(RestAPI, Interactions, Payloads, LocalFake):
    """Discord's REST API and gateway on 127.0.0.1; configure it before or after start()."""

    def __init__(
        self,
        *,
        token: str = BOT_TOKEN,
        heartbeat_interval_ms: int = HEARTBEAT_INTERVAL_MS,
        interaction_deadline: float = INTERACTION_DEADLINE,
    ) -> None:
        self.token = token
        self.heartbeat_interval_ms = heartbeat_interval_ms
        self.interaction_deadline = interaction_deadline
        self._lock = threading.Lock()
        self._changes = Changes()  # notified whenever anything is recorded
        self._last_id = 0
        self._calls: list[Call] = []
        self._faults: deque[_Fault] = deque()
        self._users: dict[int, dict[str, Any]] = {}
        self._roles: dict[int, list[int]] = {}  # guild members: user id → role ids
        self._channels: dict[int, dict[str, Any]] = {CHANNEL_ID: _text_channel(CHANNEL_ID)}
        self._messages: dict[int, list[dict[str, Any]]] = {}
        self._commands: dict[int | None, list[dict[str, Any]]] = {}
        self._interactions: dict[int, _Interaction] = {}
        self._echoes: list[tuple[str, dict[str, Any]]] = []  # events for the gateway, unsent
        self._gateway = _Gateway(self)
        self._add_user(BOT_USER_ID, BOT_NAME, is_bot=True, roles=[BOT_ROLE_ID])
        self._add_user(OWNER_ID, "owner", roles=[MANAGER_ROLE_ID])

    # -- lifecycle ---------------------------------------------------------------------------

    def _new_server(self) -> FakeHTTPServer:
        handler = type("_BoundHandler", (_Handler,), {"fake": self})
        return FakeHTTPServer(handler, "fake-discord")

    def stop(self) -> None:
        """Close every gateway connection (1001, as Discord does when it goes away), then stop."""
        self._gateway.close_all(1001, "server stopping")
        super().stop()

    @property
    def api_url(self) -> str:
        """``http://127.0.0.1:PORT/api/v10``: what ``discord.http.Route.BASE`` is set to."""
        return self._origin() + API_PREFIX

    @property
    def gateway_url(self) -> str:
        """``ws://127.0.0.1:PORT/gateway``: what ``DiscordWebSocket.DEFAULT_GATEWAY`` is set to."""
        return self._ws_origin() + GATEWAY_PATH

    @property
    def resume_gateway_url(self) -> str:
        return self._ws_origin() + RESUME_GATEWAY_PATH

    def _ws_origin(self) -> str:
        return "ws" + self._origin().removeprefix("http")

    # -- the world ---------------------------------------------------------------------------

    def add_member(self, user_id: int, username: str, *, manage_guild: bool = False) -> dict:
        """Make ``user_id`` a member of the guild, with Manage Server or without; its user."""
        roles = [MANAGER_ROLE_ID] if manage_guild else []
        with self._lock:
            return copy.deepcopy(self._add_user(user_id, username, roles=roles))

    def permissions(self, user_id: int) -> int:
        """The guild permissions of ``user_id``: @everyone's and those of its roles."""
        with self._lock:
            return self._permissions(user_id)

    def messages(self, channel_id: int) -> list[dict[str, Any]]:
        """Every message of ``channel_id``, oldest first, as REST returns them (copies)."""
        with self._lock:
            return [self._rest_message(m) for m in self._messages.get(channel_id, [])]

    def commands(self, guild_id: int | None = None) -> list[dict[str, Any]]:
        """The application commands last synced globally (or for ``guild_id``), with ids."""
        with self._lock:
            return copy.deepcopy(self._commands.get(guild_id, []))

    def fail_next(
        self,
        method: str,
        path_regex: str,
        status: int = 429,
        retry_after: float = 0.5,
        times: int = 1,
        *,
        is_global: bool = False,
    ) -> None:
        """Fail the next ``times`` REST calls of ``method`` to a path matching ``path_regex``.

        The regex must match the whole path below ``/api/v10`` (``r"/channels/\\d+/messages"``).
        A 429 answers Discord's body (``retry_after`` seconds, ``global``) with ``Retry-After``,
        ``X-RateLimit-*`` and ``Via`` headers; another status answers ``{"message", "code": 0}``.
        Faults come ahead of any other check, and the call is recorded all the same.
        """
        fault = _Fault(method.upper(), re.compile(path_regex), status, retry_after, is_global)
        with self._lock:
            self._faults.extend([fault] * times)

    # -- observation -------------------------------------------------------------------------

    @property
    def calls(self) -> list[Call]:
        """Every REST call so far, in arrival order (a copy)."""
        with self._lock:
            return list(self._calls)

    def calls_to(self, method: str, path_regex: str) -> list[Call]:
        """The calls of ``method`` whose path (below ``/api/v10``) matches all of ``path_regex``."""
        pattern = re.compile(path_regex)
        method = method.upper()
        return [c for c in self.calls if c.method == method and pattern.fullmatch(c.path)]

    @property
    def identifies(self) -> int:
        """How many IDENTIFYs the gateway accepted."""
        return self._gateway.identifies

    @property
    def resumes(self) -> int:
        """How many RESUMEs the gateway accepted."""
        return self._gateway.resumes

    @property
    def gateway_connects(self) -> list[str]:
        """The request target (path and query) of every gateway connection, in order."""
        return self._gateway.connects

    def connected(self, timeout: float = 5.0) -> bool:
        """Whether an identified client is connected (waiting up to ``timeout`` for one)."""
        try:
            self.wait_for(self._gateway.is_connected, timeout)
        except TimeoutError:
            return False
        return True

    def wait_for(self, predicate: Callable[[], T], timeout: float = 10.0) -> T:
        """Poll ``predicate`` until it returns something true, and return that (checked again
        whenever the fake records something); TimeoutError after ``timeout`` seconds."""
        return self._changes.wait_for(predicate, timeout)

    # -- gateway -----------------------------------------------------------------------------

    def dispatch(self, event: str, data: dict[str, Any], *, timeout: float = 5.0) -> int:
        """Send ``event`` (op 0, t ``event``) to every session, waiting up to ``timeout`` for one.

        A session whose connection dropped gets it when it RESUMEs. Returns how many sessions
        it was for (fewer when their intents filter it out); TimeoutError if none ever came.
        An INTERACTION_CREATE's ``interaction_deadline`` (3 s) for its first callback starts now:
        later, the callback gets 404 Unknown interaction, as on Discord.
        """
        self.wait_for(self._gateway.has_sessions, timeout)
        if event == "INTERACTION_CREATE":
            with self._lock:
                interaction = self._interactions.get(int(data["id"]))
                if interaction is not None:
                    interaction.sent_at = time.monotonic()
        return self._gateway.dispatch(event, data)

    def disconnect(self, code: int = 4000, reason: str = "", *, resumable: bool = True) -> None:
        """Drop every gateway connection with a close frame: the client reconnects and RESUMEs.

        Events dispatched meanwhile wait for the RESUME. With ``resumable=False`` the sessions
        end too, so a RESUME gets INVALID_SESSION and the client IDENTIFYs again.
        """
        self._gateway.close_all(code, reason, end_sessions=not resumable)

    # -- payloads of events ------------------------------------------------------------------

    def message_create(
        self,
        channel_id: int,
        content: str,
        author: int,
        *,
        mentions: Iterable[int] = (),
        message_reference: int | str | None = None,
        guild_id: int | None = GUILD_ID,
    ) -> dict[str, Any]:
        """Store a message ``author`` wrote and return its MESSAGE_CREATE payload to dispatch.

        Each ``<@id>`` in ``content`` mentions that user, as on Discord (``mentions`` adds
        more); ``message_reference`` makes it a reply to that message id of the channel.
        ``guild_id`` None makes it a direct message (the channel becomes a DM channel).
        """
        with self._lock:
            if guild_id is None:
                self._channels.setdefault(channel_id, _dm_channel(channel_id, self._user(author)))
            channel = self._channels.get(channel_id, {"guild_id": "none"})
            if channel.get("guild_id") != (None if guild_id is None else str(guild_id)):
                raise KeyError(f"no channel {channel_id} in guild {guild_id}")
            mentioned = dict.fromkeys([*_mentioned_ids(content), *mentions])
            fields: dict[str, Any] = {"mentions": [self._user(u) for u in mentioned]}
            if message_reference is not None:
                reference = _reference(channel_id, message_reference, guild_id)
                fields |= {"type": REPLY, "message_reference": reference}
            message = self._store_message(channel_id, author, content, **fields)
            return self._gateway_message(message)

    def interaction_create_command(
        self,
        name: str,
        options: Mapping[str, str | int | float | bool],
        user: int,
        channel_id: int = CHANNEL_ID,
        guild_id: int | None = GUILD_ID,
        *,
        member_permissions: int | None = None,
    ) -> dict[str, Any]:
        """The INTERACTION_CREATE payload of ``user`` running the slash command ``name``.

        The command's id is that of the synced command (guild commands first). The member's
        permissions are those of its roles unless ``member_permissions`` says otherwise.
        """
        with self._lock:
            command = self._synced_command(name, guild_id)
            data: dict[str, Any] = {
                "id": command["id"] if command else str(self._next_id()),
                "name": name,
                "type": 1,
                "options": [_option(key, value) for key, value in options.items()],
            }
            if command and "guild_id" in command:
                data["guild_id"] = command["guild_id"]
            return self._interaction(
                APPLICATION_COMMAND, data, user, channel_id, guild_id, member_permissions
            )

    def interaction_create_component(
        self,
        custom_id: str,
        user: int,
        channel_id: int,
        message_id: int,
        *,
        component_type: int = 2,
        values: list[str] | None = None,
    ) -> dict[str, Any]:
        """The INTERACTION_CREATE payload of ``user`` clicking ``custom_id`` (a button, or a
        select with ``values``) on the stored message ``message_id`` of ``channel_id``."""
        with self._lock:
            message = self._find(channel_id, message_id)
            if message is None:
                raise KeyError(f"no message {message_id} in channel {channel_id}")
            data: dict[str, Any] = {"custom_id": custom_id, "component_type": component_type}
            if values is not None:
                data["values"] = values
            channel = self._channels.get(channel_id, {})
            guild_id = int(channel["guild_id"]) if channel.get("guild_id") else None
            return self._interaction(
                MESSAGE_COMPONENT, data, user, channel_id, guild_id, None, message
            )

    def _notify(self) -> None:
        self._changes.notify()


class _Handler(TrackedHandler):
    """Answers for ``fake``: ``_new_server()`` binds it in a subclass made per server."""

    server_version = "FakeDiscord/1.0"
    fake: FakeDiscord

    def do_GET(self) -> None:
        if is_upgrade(self):
            self._gateway()
        else:
            self._rest()

    def do_POST(self) -> None:
        self._rest()

    def do_PUT(self) -> None:
        self._rest()

    def do_PATCH(self) -> None:
        self._rest()

    def do_DELETE(self) -> None:
        self._rest()

    def _rest(self) -> None:
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        target = urlsplit(self.path)
        headers = {name.lower(): value for name, value in self.headers.items()}
        if not target.path.startswith(API_PREFIX + "/"):
            self._send(404, {"message": "404: Not Found", "code": 0}, {})
            return
        body = None
        if raw and headers.get("content-type", "").startswith("application/json"):
            with contextlib.suppress(ValueError):
                body = json.loads(raw)
        path = target.path.removeprefix(API_PREFIX)
        query = dict(parse_qsl(target.query, keep_blank_values=True))
        status, response, extra = self.fake._rest(self.command, path, query, body, headers)
        self._send(status, response, extra)

    def _send(self, status: int, body: Any, extra: dict[str, str]) -> None:
        self.send_response(status)
        self.send_header("Via", VIA)
        for name, value in extra.items():
            self.send_header(name, value)
        if status == 204:
            self.end_headers()
            return
        data = json.dumps(body).encode()
        self.send_header("Content-Type", "application/json")  # exactly: discord.py compares it
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _gateway(self) -> None:
        """The WebSocket handshake, then the gateway protocol until either side closes."""
        key = self.headers.get("Sec-WebSocket-Key")
        self.close_connection = True
        if urlsplit(self.path).path not in (GATEWAY_PATH, RESUME_GATEWAY_PATH) or not key:
            self._send(400, {"message": "400: Bad Request", "code": 0}, {})
            return
        socket = WebSocket(self.connection)
        try:
            socket.accept(self, key)
            self.fake._gateway.serve(socket, self.path, self.rfile)
        except OSError:
            pass  # the client hung up, or stop() cut the connection


@contextlib.contextmanager
def pointed_at(fake: FakeDiscord) -> Iterator[FakeDiscord]:
    """discord.py's REST and gateway URLs set to ``fake``'s, as an app sets them from its
    settings (see the module docstring); the old values are back afterwards."""
    old_base = discord.http.Route.BASE
    old_gateway = discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY
    discord.http.Route.BASE = fake.api_url
    discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(fake.gateway_url)
    try:
        yield fake
    finally:
        discord.http.Route.BASE = old_base
        discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = old_gateway
