"""A fake Discord: the REST API (v10) and the gateway, served for real on 127.0.0.1.

Tests point the real discord.py client at this server instead of discord.com. It speaks
HTTP/1.1 (standard library only) on 127.0.0.1 with a random port, in a background thread, and
answers like Discord does:

- REST under ``api_url`` (``http://127.0.0.1:PORT/api/v10``): the bot user and application,
  ``/gateway`` and ``/gateway/bot``, application command sync (global and per guild), interaction
  callbacks (types 4-7) and their webhook follow-ups and edits, channel messages (create, edit,
  read back one), channels and typing. JSON bodies only (multipart uploads are not understood).
  Errors carry Discord's ``{"message", "code"}`` bodies (Unknown Message 10008, Cannot send an
  empty message 50006, Invalid Form Body 50035 for content over 2,000 characters or a reply to
  an unknown message, ...). Bot routes want ``Authorization: Bot <token>``; interaction and
  webhook routes are authorised by the token in their path.
- The gateway at ``gateway_url`` (a WebSocket on the same port): HELLO, heartbeats answered with
  HEARTBEAT_ACK, IDENTIFY answered with READY then GUILD_CREATE, RESUME (at READY's
  ``resume_gateway_url``) answered by replaying what the session missed, then RESUMED; a RESUME
  of an unknown session gets INVALID_SESSION. Events are filtered by the IDENTIFY intents as on
  Discord: no MESSAGE_* without GUILD_MESSAGES (or DIRECT_MESSAGES), and guild messages that
  neither come from nor mention the bot lose their content without MESSAGE_CONTENT.
- Messages the app sends (channel messages, non-ephemeral interaction responses and follow-ups)
  come back to it over the gateway as MESSAGE_CREATE / MESSAGE_UPDATE, as on Discord, so a bot
  must ignore its own messages. After a deferred (thinking) response, the first follow-up
  replaces the loading message (same id), as on Discord. An interaction's first callback must
  come within ``interaction_deadline`` (3 s) of its dispatch, or it gets Unknown interaction.

Everything is recorded (``calls``, ``calls_to()``, ``messages()``, ``commands()``, ``identifies``,
``resumes``) and ``wait_for()`` polls for a condition. Faults are scripted with ``fail_next()``:
a 429 with Discord's body and headers (discord.py sleeps ``retry_after`` and retries), or any
other status. The world is fixed: the bot user ``teambot`` (``BOT_USER_ID``, token ``BOT_TOKEN``)
of the application ``APPLICATION_ID``, one guild (``GUILD_ID``) with the text channel #general
(``CHANNEL_ID``) and the roles @everyone, Managers (Manage Server) and the bot's own role.
``add_member()`` adds users, with or without Manage Server; the builders ``message_create()``,
``interaction_create_command()`` and ``interaction_create_component()`` make what ``dispatch()``
sends, and ``disconnect()`` drops the gateway so the client RESUMEs.

Pointing discord.py at it
-------------------------
discord.py (2.4 to 2.7) has no base-URL option on the client, but reads both URLs from public
class attributes. Every REST call, the interaction callbacks and webhook follow-ups included,
builds its URL from ``discord.http.Route.BASE`` (default ``https://discord.com/api/v10``).
``discord.Client`` does not ask ``GET /gateway``: it connects to
``discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY`` (a ``yarl.URL``, default
``wss://gateway.discord.gg/``) plus ``?v=10&encoding=json&compress=zlib-stream``, and resumes at
READY's ``resume_gateway_url``. So an app sets both once, before ``client.start()``:

    discord.http.Route.BASE = DISCORD_API_URL.rstrip("/")  # must end in /api/v10
    discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(DISCORD_GATEWAY_URL)

Both are process-wide: fine for a bot process, which runs one client. (``AutoShardedClient``
takes its gateway from ``GET /gateway/bot``, so it needs only the first; ``discord.http.
_set_api_version()`` would reset the first to discord.com.) The fake ignores ``compress`` and
sends text frames, which discord.py reads as they are. ``pointed_at(fake)`` sets both for a test
and restores them after. discord.py waits ``guild_ready_timeout`` (2 s by default) after the
last GUILD_CREATE before ``on_ready``: tests pass ``guild_ready_timeout=0.1`` to the client.

    with FakeDiscord() as fake, pointed_at(fake):
        client = discord.Client(intents=intents, guild_ready_timeout=0.1)
        ...  # client.start(BOT_TOKEN) in a thread with its own event loop
        fake.add_member(ALICE, "alice")
        fake.dispatch("MESSAGE_CREATE", fake.message_create(CHANNEL_ID, "<@BOT> hi", ALICE))
        fake.wait_for(lambda: fake.calls_to("POST", r"/channels/\\d+/messages"))
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import json
import math
import re
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar
from urllib.parse import parse_qsl, urlsplit

import discord.gateway
import discord.http
import yarl

from tests.fakes.http import Changes, FakeHTTPServer, LocalFake, TrackedHandler
from tests.fakes.websocket import WebSocket, is_upgrade

BOT_TOKEN = "fake-discord-bot-token"
API_PREFIX = "/api/v10"
GATEWAY_PATH = "/gateway"
RESUME_GATEWAY_PATH = (
    "/gateway-resume"  # READY's resume_gateway_url: a second address, as on Discord
)
HEARTBEAT_INTERVAL_MS = 1000
INTERACTION_DEADLINE = 3.0  # seconds Discord waits for an interaction's first callback
DISCORD_EPOCH_MS = 1_420_070_400_000
VIA = "1.1 google"  # discord.py takes a 429 without Via for a Cloudflare ban and gives up
RATE_LIMIT = 5  # X-RateLimit-Limit of every bucket; answers say 4 remain
MAX_CONTENT = 2000

BOT_USER_ID = 1_200_000_000_000_000_001
BOT_NAME = "teambot"
# On Discord a bot's user id often equals its application id; distinct ids here catch mix-ups.
APPLICATION_ID = 1_200_000_000_000_000_002
OWNER_ID = 1_200_000_000_000_000_003
GUILD_ID = 1_200_000_000_000_000_010
CHANNEL_ID = 1_200_000_000_000_000_011  # #general, a text channel of the guild
MANAGER_ROLE_ID = 1_200_000_000_000_000_012  # "Managers": Manage Server
BOT_ROLE_ID = 1_200_000_000_000_000_013  # the bot's managed role
APPLICATION_FLAGS = (1 << 19) | (1 << 23)  # GATEWAY_MESSAGE_CONTENT_LIMITED, COMMAND_BADGE

# Permissions
MANAGE_GUILD = 1 << 5
EVERYONE_PERMISSIONS = (
    (1 << 6)  # ADD_REACTIONS
    | (1 << 10)  # VIEW_CHANNEL
    | (1 << 11)  # SEND_MESSAGES
    | (1 << 14)  # EMBED_LINKS
    | (1 << 15)  # ATTACH_FILES
    | (1 << 16)  # READ_MESSAGE_HISTORY
    | (1 << 31)  # USE_APPLICATION_COMMANDS
    | (1 << 38)  # SEND_MESSAGES_IN_THREADS
)
# Gateway intents
GUILD_MEMBERS, GUILD_MESSAGES, DIRECT_MESSAGES, MESSAGE_CONTENT = 1 << 1, 1 << 9, 1 << 12, 1 << 15
# Message flags and types
SUPPRESS_EMBEDS, EPHEMERAL, LOADING = 1 << 2, 1 << 6, 1 << 7
DEFAULT, REPLY, CHAT_INPUT_COMMAND = 0, 19, 20
# Interaction types and interaction callback types
APPLICATION_COMMAND, MESSAGE_COMPONENT = 2, 3
PONG, CHANNEL_MESSAGE, DEFERRED_CHANNEL_MESSAGE, DEFERRED_UPDATE, UPDATE_MESSAGE = 1, 4, 5, 6, 7
CALLBACK_TYPES = frozenset({1, 4, 5, 6, 7, 8, 9})
# Gateway opcodes
DISPATCH, HEARTBEAT, IDENTIFY, RESUME, INVALID_SESSION, HELLO, HEARTBEAT_ACK = 0, 1, 2, 6, 9, 10, 11
IGNORED_OPS = frozenset({3, 4, 8})  # presence update, voice state, request guild members
SESSION_ENDING_CLOSES = frozenset({1000, 1001})  # a client closing with these ends its session
MESSAGE_EVENTS = frozenset({"MESSAGE_CREATE", "MESSAGE_UPDATE", "MESSAGE_DELETE"})
TRUE_QUERY = frozenset({"1", "true", "True"})
OPTION_TYPES = ((bool, 5), (int, 4), (float, 10), (str, 3))  # bool first: it is an int too

T = TypeVar("T")


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


@dataclass
class _Interaction:
    id: int
    type: int  # APPLICATION_COMMAND or MESSAGE_COMPONENT
    token: str
    user_id: int
    channel_id: int
    guild_id: int | None
    message_id: int | None  # the message of a component interaction
    sent_at: float  # time.monotonic() when built, then when dispatched
    callback_type: int | None = None
    original_id: int | None = None
    message_ids: set[int] = field(default_factory=set)  # the original and follow-ups


@dataclass
class _Session:
    id: str
    intents: int
    socket: WebSocket | None
    seq: int = 0
    sent: list[dict[str, Any]] = field(default_factory=list)  # every event, for RESUME


@dataclass(frozen=True)
class _Request:
    params: dict[str, str]  # from the path
    json: Any
    query: dict[str, str]


_Answer = tuple[int, Any]  # HTTP status and JSON body (None: 204, no body)


class FakeDiscord(LocalFake):
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

    # -- the world, with the lock held -------------------------------------------------------

    def _next_id(self) -> int:
        """A fresh snowflake: from the clock, and always above the last one."""
        now = (int(time.time() * 1000) - DISCORD_EPOCH_MS) << 22
        self._last_id = max(self._last_id + 1, now)
        return self._last_id

    def _add_user(
        self, user_id: int, username: str, *, is_bot: bool = False, roles: list[int]
    ) -> dict[str, Any]:
        user = {
            "id": str(user_id),
            "username": username,
            "discriminator": "0",
            "global_name": None if is_bot else username.title(),
            "avatar": None,
            "bot": is_bot,
            "public_flags": 0,
        }
        self._users[user_id] = user
        self._roles[user_id] = roles
        return user

    def _user(self, user_id: int) -> dict[str, Any]:
        """The user ``user_id`` (a made-up human, not a member, if unknown)."""
        user = self._users.get(user_id)
        if user is None:
            name = f"user{user_id % 10_000}"
            user = {"id": str(user_id), "username": name, "discriminator": "0", "avatar": None}
            user |= {"global_name": name.title(), "bot": False, "public_flags": 0}
        return copy.deepcopy(user)

    def _member(self, user_id: int) -> dict[str, Any]:
        """The guild member fields of ``user_id``, without ``user``."""
        return {
            "roles": [str(role) for role in self._roles.get(user_id, [])],
            "nick": None,
            "avatar": None,
            "joined_at": "2024-01-01T00:00:00.000000+00:00",
            "premium_since": None,
            "deaf": False,
            "mute": False,
            "flags": 0,
            "pending": False,
            "communication_disabled_until": None,
        }

    def _permissions(self, user_id: int) -> int:
        granted = EVERYONE_PERMISSIONS
        for role in _roles():
            if int(role["id"]) in self._roles.get(user_id, []):
                granted |= int(role["permissions"])
        return granted

    def _synced_command(self, name: str, guild_id: int | None) -> dict[str, Any] | None:
        for scope in (guild_id, None) if guild_id is not None else (None,):
            for command in self._commands.get(scope, []):
                if command["name"] == name and command.get("type", 1) == 1:
                    return command
        return None

    def _interaction(
        self,
        kind: int,
        data: dict[str, Any],
        user_id: int,
        channel_id: int,
        guild_id: int | None,
        permissions: int | None,
        message: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        message_id = int(message["id"]) if message else None
        token = f"fake-interaction-token-{uuid.uuid4().hex}"
        interaction = _Interaction(
            self._next_id(),
            kind,
            token,
            user_id,
            channel_id,
            guild_id,
            message_id,
            time.monotonic(),
        )
        self._interactions[interaction.id] = interaction
        channel = self._channels.get(channel_id) or {"id": str(channel_id), "type": 1}
        payload: dict[str, Any] = {
            "id": str(interaction.id),
            "application_id": str(APPLICATION_ID),
            "type": kind,
            "data": data,
            "token": interaction.token,
            "version": 1,
            "channel_id": str(channel_id),
            "channel": copy.deepcopy(channel),
            "locale": "en-US",
            "app_permissions": str(self._permissions(BOT_USER_ID)),
            "entitlements": [],
            "attachment_size_limit": 10 * 1024 * 1024,
        }
        if guild_id is None:
            payload |= {"user": self._user(user_id), "context": 1}
        else:
            if permissions is None:
                permissions = self._permissions(user_id)
            member = self._member(user_id) | {"user": self._user(user_id)}
            payload |= {"member": member | {"permissions": str(permissions)}, "context": 0}
            payload |= {"guild_id": str(guild_id), "guild_locale": "en-US"}
            payload["guild"] = {"id": str(guild_id), "locale": "en-US", "features": []}
        payload["authorizing_integration_owners"] = _owners(guild_id, user_id)
        if message is not None:
            payload["message"] = self._rest_message(message)
        return payload

    # -- messages, with the lock held --------------------------------------------------------

    def _store_message(
        self, channel_id: int, author: int, content: str, **fields: Any
    ) -> dict[str, Any]:
        message: dict[str, Any] = {
            "id": str(self._next_id()),
            "channel_id": str(channel_id),
            "type": DEFAULT,
            "content": content,
            "author": self._user(author),
            "timestamp": _now(),
            "edited_timestamp": None,
            "tts": False,
            "mention_everyone": False,
            "mentions": [self._user(u) for u in dict.fromkeys(_mentioned_ids(content))],
            "mention_roles": [],
            "attachments": [],
            "embeds": [],
            "components": [],
            "pinned": False,
            "flags": 0,
            **fields,
        }
        self._messages.setdefault(channel_id, []).append(message)
        if channel_id in self._channels:
            self._channels[channel_id]["last_message_id"] = message["id"]
        return message

    def _find(self, channel_id: int, message_id: int) -> dict[str, Any] | None:
        messages = self._messages.get(channel_id, [])
        return next((m for m in messages if m["id"] == str(message_id)), None)

    def _rest_message(self, message: dict[str, Any]) -> dict[str, Any]:
        """A copy of ``message`` as REST returns it: with the message it replies to."""
        shown = copy.deepcopy(message)
        reference = message.get("message_reference")
        if message["type"] == REPLY and reference:
            channel_id = int(reference.get("channel_id") or message["channel_id"])
            replied = self._find(channel_id, int(reference["message_id"]))
            shown["referenced_message"] = copy.deepcopy(replied)
        return shown

    def _gateway_message(self, message: dict[str, Any]) -> dict[str, Any]:
        """A copy of ``message`` as the gateway sends it: with guild id and members."""
        shown = self._rest_message(message)
        guild_id = self._channels.get(int(message["channel_id"]), {}).get("guild_id")
        if guild_id is None:
            return shown
        shown["guild_id"] = guild_id
        shown["member"] = self._member(int(message["author"]["id"]))
        for user in shown["mentions"]:
            user["member"] = self._member(int(user["id"]))
        return shown

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

    # -- REST --------------------------------------------------------------------------------

    def _notify(self) -> None:
        self._changes.notify()

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
            return route.handler(self, request)

    def _bot_user(self) -> dict[str, Any]:
        """The bot user as ``GET /users/@me`` and READY describe it."""
        user = self._user(BOT_USER_ID) | {"verified": True, "mfa_enabled": False, "flags": 0}
        return user | {"email": None, "locale": "en-US", "premium_type": 0}

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

    def _interaction_callback(self, request: _Request) -> _Answer:
        interaction = self._interactions.get(int(request.params["interaction"]))
        if interaction is None or interaction.token != request.params["token"]:
            return _error(404, 10062, "Unknown interaction")
        if time.monotonic() - interaction.sent_at > self.interaction_deadline:
            return _error(404, 10062, "Unknown interaction")  # answered too late: expired
        if interaction.callback_type is not None:
            return _error(400, 40060, "Interaction has already been acknowledged.")
        body = request.json if isinstance(request.json, dict) else {}
        kind, data = body.get("type"), body.get("data") or {}
        if kind not in CALLBACK_TYPES:
            return _error(400, 50035, "Invalid Form Body", {"type": _field_error("BASE_TYPE")})
        message = None
        if kind == CHANNEL_MESSAGE:
            error = _content_error(data)
            if error is not None:
                return 400, error
            message = self._interaction_message(interaction, data, loading=False)
        elif kind == DEFERRED_CHANNEL_MESSAGE:
            message = self._interaction_message(interaction, data, loading=True)
        elif kind in (DEFERRED_UPDATE, UPDATE_MESSAGE) and interaction.message_id is not None:
            message = self._find(interaction.channel_id, interaction.message_id)
            if message is not None and kind == UPDATE_MESSAGE:
                error = self._edit(message, data)
                if error is not None:
                    return 400, error
        interaction.callback_type = kind
        if message is not None:
            interaction.original_id = int(message["id"])
            interaction.message_ids.add(int(message["id"]))
        if request.query.get("with_response") not in TRUE_QUERY:
            return 204, None
        return 200, self._callback_response(interaction, kind, message)

    def _interaction_message(
        self, interaction: _Interaction, data: dict[str, Any], *, loading: bool
    ) -> dict[str, Any]:
        """The original response (type 4) or the loading message of a deferral (type 5)."""
        flags = int(data.get("flags") or 0) & (EPHEMERAL | SUPPRESS_EMBEDS)
        fields = {k: data[k] for k in ("embeds", "components") if data.get(k) and not loading}
        message = self._store_message(
            interaction.channel_id,
            BOT_USER_ID,
            "" if loading else data.get("content") or "",
            type=CHAT_INPUT_COMMAND if interaction.type == APPLICATION_COMMAND else DEFAULT,
            flags=flags | (LOADING if loading else 0),
            webhook_id=str(APPLICATION_ID),
            application_id=str(APPLICATION_ID),
            interaction_metadata=self._interaction_metadata(interaction),
            **fields,
        )
        self._echo("MESSAGE_CREATE", message)
        return message

    def _interaction_metadata(self, interaction: _Interaction) -> dict[str, Any]:
        metadata: dict[str, Any] = {"id": str(interaction.id), "type": interaction.type}
        metadata["user"] = self._user(interaction.user_id)
        metadata["authorizing_integration_owners"] = _owners(
            interaction.guild_id, interaction.user_id
        )
        if interaction.message_id is not None:
            metadata["interacted_message_id"] = str(interaction.message_id)
        return metadata

    def _callback_response(
        self, interaction: _Interaction, kind: int, message: dict[str, Any] | None
    ) -> dict[str, Any]:
        """The body of a callback ``?with_response=true``: the interaction and its message."""
        described: dict[str, Any] = {"id": str(interaction.id), "type": interaction.type}
        answer: dict[str, Any] = {"interaction": described}
        if message is not None:
            described |= {
                "response_message_id": message["id"],
                "response_message_loading": bool(message["flags"] & LOADING),
                "response_message_ephemeral": bool(message["flags"] & EPHEMERAL),
            }
            answer["resource"] = {"type": kind, "message": self._rest_message(message)}
        return answer

    def _webhook_interaction(self, request: _Request) -> _Interaction | None:
        """The acknowledged interaction whose token is in the webhook path."""
        if int(request.params["app"]) != APPLICATION_ID:
            return None
        token = request.params["token"]
        found = next((i for i in self._interactions.values() if i.token == token), None)
        return found if found is not None and found.callback_type is not None else None

    def _execute_webhook(self, request: _Request) -> _Answer:
        interaction = self._webhook_interaction(request)
        if interaction is None:
            return _error(404, 10015, "Unknown Webhook")
        body = request.json if isinstance(request.json, dict) else {}
        error = _content_error(body)
        if error is not None:
            return 400, error
        original = self._original(interaction)
        if original is not None and original["flags"] & LOADING:
            self._edit(original, body)  # the first follow-up replaces the loading message
            message = original
        else:
            fields = {k: body[k] for k in ("embeds", "components", "tts") if body.get(k)}
            message = self._store_message(
                interaction.channel_id,
                BOT_USER_ID,
                body.get("content") or "",
                flags=int(body.get("flags") or 0) & (EPHEMERAL | SUPPRESS_EMBEDS),
                webhook_id=str(APPLICATION_ID),
                application_id=str(APPLICATION_ID),
                **fields,
            )
            interaction.message_ids.add(int(message["id"]))
            self._echo("MESSAGE_CREATE", message)
        if request.query.get("wait") not in TRUE_QUERY:
            return 204, None
        return 200, self._rest_message(message)

    def _original(self, interaction: _Interaction) -> dict[str, Any] | None:
        if interaction.original_id is None:
            return None
        return self._find(interaction.channel_id, interaction.original_id)

    def _webhook_message(self, request: _Request) -> dict[str, Any] | None:
        interaction = self._webhook_interaction(request)
        if interaction is None:
            return None
        wanted = request.params["message"]
        if wanted == "@original":
            return self._original(interaction)
        if int(wanted) not in interaction.message_ids:
            return None
        return self._find(interaction.channel_id, int(wanted))

    def _get_webhook_message(self, request: _Request) -> _Answer:
        message = self._webhook_message(request)
        if message is None:
            return _error(404, 10008, "Unknown Message")
        return 200, self._rest_message(message)

    def _edit_webhook_message(self, request: _Request) -> _Answer:
        message = self._webhook_message(request)
        if message is None:
            return _error(404, 10008, "Unknown Message")
        error = self._edit(message, request.json if isinstance(request.json, dict) else {})
        return (400, error) if error is not None else (200, self._rest_message(message))

    # -- what the gateway sends, with the lock held ------------------------------------------

    def _ready(self, session_id: str) -> dict[str, Any]:
        return {
            "v": 10,
            "user": self._bot_user(),
            "guilds": [{"id": str(GUILD_ID), "unavailable": True}],
            "session_id": session_id,
            "session_type": "normal",
            "resume_gateway_url": self.resume_gateway_url,
            "application": {"id": str(APPLICATION_ID), "flags": APPLICATION_FLAGS},
            "private_channels": [],
            "relationships": [],
            "presences": [],
            "geo_ordered_rtc_regions": ["rotterdam"],
            "auth": {},
            "user_settings": {},
            "_trace": ['["fake-discord-gateway",{"micros":0}]'],
        }

    def _guild_create(self, intents: int) -> dict[str, Any]:
        """GUILD_CREATE: members all with GUILD_MEMBERS, else the bot's own (as on Discord)."""
        everyone = [self._member(u) | {"user": self._user(u)} for u in self._roles]
        members = everyone if intents & GUILD_MEMBERS else [m for m in everyone if m["user"]["bot"]]
        channels = [c for c in self._channels.values() if c.get("guild_id") == str(GUILD_ID)]
        return {
            "id": str(GUILD_ID),
            "name": "Teambot Test",
            "icon": None,
            "splash": None,
            "discovery_splash": None,
            "banner": None,
            "description": None,
            "owner_id": str(OWNER_ID),
            "afk_channel_id": None,
            "afk_timeout": 300,
            "verification_level": 0,
            "default_message_notifications": 0,
            "explicit_content_filter": 0,
            "mfa_level": 0,
            "nsfw_level": 0,
            "premium_tier": 0,
            "premium_subscription_count": 0,
            "premium_progress_bar_enabled": False,
            "preferred_locale": "en-US",
            "features": [],
            "roles": _roles(),
            "emojis": [],
            "stickers": [],
            "system_channel_id": str(CHANNEL_ID),
            "system_channel_flags": 0,
            "rules_channel_id": None,
            "public_updates_channel_id": None,
            "vanity_url_code": None,
            "application_id": None,
            "joined_at": "2024-01-01T00:00:00.000000+00:00",
            "large": False,
            "unavailable": False,
            "member_count": len(everyone),
            "members": members,
            "channels": copy.deepcopy(channels),
            "threads": [],
            "presences": [],
            "voice_states": [],
            "stage_instances": [],
            "guild_scheduled_events": [],
            "soundboard_sounds": [],
        }


# -- the gateway -----------------------------------------------------------------------------


class _Gateway:
    """Sessions and WebSocket connections; sends under one lock, so ``s`` comes in order."""

    def __init__(self, fake: FakeDiscord) -> None:
        self._fake = fake
        self._lock = threading.RLock()
        self._sessions: dict[str, _Session] = {}
        self._sockets: list[WebSocket] = []
        self._identifies = 0
        self._resumes = 0
        self._connects: list[str] = []

    @property
    def identifies(self) -> int:
        with self._lock:
            return self._identifies

    @property
    def resumes(self) -> int:
        with self._lock:
            return self._resumes

    @property
    def connects(self) -> list[str]:
        with self._lock:
            return list(self._connects)

    def has_sessions(self) -> bool:
        with self._lock:
            return bool(self._sessions)

    def is_connected(self) -> bool:
        with self._lock:
            return any(s.socket is not None for s in self._sessions.values())

    def serve(self, socket: WebSocket, target: str, rfile: Any) -> None:
        """HELLO, then answer the client until either side closes."""
        with self._lock:
            self._sockets.append(socket)
            self._connects.append(target)
        self._fake._notify()
        state: dict[str, _Session] = {}  # "session" once identified or resumed
        code = None
        try:
            error = _gateway_query_error(dict(parse_qsl(urlsplit(target).query)))
            if error is not None:
                socket.close(*error)
                return
            socket.send_json(
                _frame(HELLO, {"heartbeat_interval": self._fake.heartbeat_interval_ms})
            )
            code = socket.serve(rfile, lambda raw: self._receive(socket, state, raw))
        finally:
            self._closed(socket, state.get("session"), code)

    def _receive(self, socket: WebSocket, state: dict[str, _Session], raw: bytes) -> None:
        try:
            payload = json.loads(raw)
            op, data = payload["op"], payload.get("d")
        except (ValueError, KeyError, TypeError):
            socket.close(4002, "Error while decoding payload.")
            return
        if op == HEARTBEAT:
            socket.send_json(_frame(HEARTBEAT_ACK, None))
        elif op in (IDENTIFY, RESUME) and "session" in state:
            socket.close(4005, "Already authenticated.")
        elif op in (IDENTIFY, RESUME) and not isinstance(data, dict):
            socket.close(4002, "Error while decoding payload.")
        elif op in (IDENTIFY, RESUME) and data.get("token") != self._fake.token:
            socket.close(4004, "Authentication failed.")
        elif op == IDENTIFY:
            self._identify(socket, state, data)
        elif op == RESUME:
            self._resume(socket, state, data)
        elif op in IGNORED_OPS:
            if "session" not in state:
                socket.close(4003, "Not authenticated.")
        else:
            socket.close(4001, "Unknown opcode.")

    def _identify(self, socket: WebSocket, state: dict[str, _Session], data: dict) -> None:
        intents = data.get("intents")
        if not isinstance(intents, int) or isinstance(intents, bool):
            socket.close(4013, "Invalid intent(s).")
            return
        with self._lock:
            session = _Session(uuid.uuid4().hex, intents, socket)
            self._sessions[session.id] = session
            state["session"] = session
            self._identifies += 1
            with self._fake._lock:
                ready = self._fake._ready(session.id)
                guild = self._fake._guild_create(intents)
            if isinstance(data.get("shard"), list):
                ready["shard"] = data["shard"]
            self._send(session, "READY", ready)
            self._send(session, "GUILD_CREATE", guild)
        self._fake._notify()

    def _resume(self, socket: WebSocket, state: dict[str, _Session], data: dict) -> None:
        with self._lock:
            session = self._sessions.get(data.get("session_id") or "")
            if session is None:
                socket.send_json(_frame(INVALID_SESSION, False))
                return
            seq = data.get("seq") or 0
            if seq > session.seq:
                socket.close(4007, "Invalid seq.")
                return
            session.socket = socket
            state["session"] = session
            self._resumes += 1
            for event in session.sent:
                if event["s"] > seq:
                    self._write(session, event)
            self._send(session, "RESUMED", {"_trace": ['["fake-discord-gateway",{"micros":0}]']})
        self._fake._notify()

    def dispatch(self, event: str, data: dict[str, Any]) -> int:
        with self._lock:
            count = 0
            for session in list(self._sessions.values()):
                shown = _as_seen_with(session.intents, event, data)
                if shown is not None:
                    self._send(session, event, shown)
                    count += 1
        self._fake._notify()
        return count

    def close_all(self, code: int, reason: str, *, end_sessions: bool = False) -> None:
        """Close every connection; its session waits for a RESUME unless ``end_sessions``."""
        with self._lock:
            sockets = list(self._sockets)
            for session in self._sessions.values():
                session.socket = None
            if end_sessions:
                self._sessions.clear()
        for socket in sockets:
            socket.close(code, reason)
        self._fake._notify()

    def _send(self, session: _Session, event: str, data: dict[str, Any]) -> None:
        session.seq += 1
        frame = _frame(DISPATCH, copy.deepcopy(data), session.seq, event)
        session.sent.append(frame)
        self._write(session, frame)

    def _write(self, session: _Session, frame: dict[str, Any]) -> None:
        if session.socket is None:
            return  # kept in session.sent for the RESUME
        try:
            session.socket.send_json(frame)
        except OSError:
            session.socket = None

    def _closed(self, socket: WebSocket, session: _Session | None, code: int | None) -> None:
        with self._lock:
            if socket in self._sockets:
                self._sockets.remove(socket)
            # A session that resumed on another connection meanwhile is left alone.
            if session is not None and session.socket in (socket, None):
                session.socket = None
                if code in SESSION_ENDING_CLOSES:
                    self._sessions.pop(session.id, None)
        self._fake._notify()


def _frame(op: int, data: Any, seq: int | None = None, event: str | None = None) -> dict:
    return {"op": op, "d": data, "s": seq, "t": event}


def _gateway_query_error(query: dict[str, str]) -> tuple[int, str] | None:
    """The close code and reason for a connection URL Discord would refuse, or None."""
    if query.get("v", "10") != "10":
        return 4012, "Invalid API version."
    if query.get("encoding", "json") != "json":
        return 4002, "Error while decoding payload."  # etf is not spoken here
    return None


def _as_seen_with(intents: int, event: str, data: dict[str, Any]) -> dict[str, Any] | None:
    """``data`` as a session with ``intents`` gets it, or None if it does not get ``event``."""
    if event not in MESSAGE_EVENTS:
        return data
    in_guild = "guild_id" in data
    if not intents & (GUILD_MESSAGES if in_guild else DIRECT_MESSAGES):
        return None
    if intents & MESSAGE_CONTENT or not in_guild or "content" not in data:
        return data
    bot = str(BOT_USER_ID)
    is_exempt = data["author"]["id"] == bot or any(u["id"] == bot for u in data["mentions"])
    if is_exempt:
        return data
    return data | {"content": "", "embeds": [], "attachments": [], "components": []}


# -- REST routing ----------------------------------------------------------------------------


@dataclass
class _Route:
    method: str
    template: str  # "/channels/{channel}/messages": ids are digits, a {token} anything but /
    handler: Callable[[FakeDiscord, _Request], _Answer]
    needs_bot_token: bool = True
    pattern: re.Pattern[str] = field(init=False)

    def __post_init__(self) -> None:
        def group(match: re.Match[str]) -> str:
            name = match.group(1)
            value = {"token": r"[^/]+", "message": r"@original|\d+"}.get(name, r"\d+")
            return f"(?P<{name}>{value})"

        self.pattern = re.compile(re.sub(r"\{(\w+)\}", group, self.template))


_ROUTES = (
    _Route("GET", "/users/@me", FakeDiscord._get_me),
    _Route("GET", "/applications/@me", FakeDiscord._get_application),
    _Route("GET", "/oauth2/applications/@me", FakeDiscord._get_application),
    _Route("GET", "/gateway", FakeDiscord._get_gateway, needs_bot_token=False),
    _Route("GET", "/gateway/bot", FakeDiscord._get_gateway_bot),
    _Route("GET", "/applications/{app}/commands", FakeDiscord._get_commands),
    _Route("PUT", "/applications/{app}/commands", FakeDiscord._put_commands),
    _Route("GET", "/applications/{app}/guilds/{guild}/commands", FakeDiscord._get_commands),
    _Route("PUT", "/applications/{app}/guilds/{guild}/commands", FakeDiscord._put_commands),
    _Route(
        "POST",
        "/interactions/{interaction}/{token}/callback",
        FakeDiscord._interaction_callback,
        needs_bot_token=False,
    ),
    _Route("POST", "/webhooks/{app}/{token}", FakeDiscord._execute_webhook, False),
    _Route(
        "GET", "/webhooks/{app}/{token}/messages/{message}", FakeDiscord._get_webhook_message, False
    ),
    _Route(
        "PATCH",
        "/webhooks/{app}/{token}/messages/{message}",
        FakeDiscord._edit_webhook_message,
        False,
    ),
    _Route("GET", "/channels/{channel}", FakeDiscord._get_channel),
    _Route("POST", "/channels/{channel}/typing", FakeDiscord._typing),
    _Route("POST", "/channels/{channel}/messages", FakeDiscord._create_message),
    _Route("GET", "/channels/{channel}/messages/{message}", FakeDiscord._get_message),
    _Route("PATCH", "/channels/{channel}/messages/{message}", FakeDiscord._edit_message),
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
    if not isinstance(name, str) or not re.fullmatch(r"[-_\w]{1,32}", name):
        return {"name": _field_error("APPLICATION_COMMAND_INVALID_NAME")}
    is_chat_input = command.get("type", 1) == 1
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


# -- payload pieces --------------------------------------------------------------------------


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")


def _text_channel(channel_id: int, name: str = "general") -> dict[str, Any]:
    return {
        "id": str(channel_id),
        "type": 0,
        "guild_id": str(GUILD_ID),
        "name": name,
        "position": 0,
        "permission_overwrites": [],
        "parent_id": None,
        "nsfw": False,
        "topic": None,
        "last_message_id": None,
        "rate_limit_per_user": 0,
        "flags": 0,
    }


def _dm_channel(channel_id: int, recipient: dict[str, Any]) -> dict[str, Any]:
    return {"id": str(channel_id), "type": 1, "recipients": [recipient], "last_message_id": None}


def _roles() -> list[dict[str, Any]]:
    """@everyone, Managers (Manage Server) and the bot's managed role."""
    everyone = _role(GUILD_ID, "@everyone", 0, EVERYONE_PERMISSIONS)
    managers = _role(MANAGER_ROLE_ID, "Managers", 1, EVERYONE_PERMISSIONS | MANAGE_GUILD)
    bot = _role(BOT_ROLE_ID, BOT_NAME, 2, EVERYONE_PERMISSIONS)
    bot |= {"managed": True, "tags": {"bot_id": str(BOT_USER_ID)}}
    return [everyone, managers, bot]


def _role(role_id: int, name: str, position: int, permissions: int) -> dict[str, Any]:
    return {
        "id": str(role_id),
        "name": name,
        "color": 0,
        "hoist": False,
        "icon": None,
        "unicode_emoji": None,
        "position": position,
        "permissions": str(permissions),
        "managed": False,
        "mentionable": False,
        "flags": 0,
    }


def _reference(channel_id: int, message_id: int, guild_id: Any) -> dict[str, Any]:
    reference = {"type": 0, "message_id": str(message_id), "channel_id": str(channel_id)}
    if guild_id is not None:
        reference["guild_id"] = str(guild_id)
    return reference


def _mentioned_ids(content: str) -> list[int]:
    """The users ``<@id>`` (or ``<@!id>``) in ``content`` mentions."""
    return [int(user_id) for user_id in re.findall(r"<@!?(\d+)>", content)]


def _owners(guild_id: int | None, user_id: int) -> dict[str, str]:
    """``authorizing_integration_owners``: the guild install, or the user's in a DM."""
    return {"0": str(guild_id)} if guild_id is not None else {"1": str(user_id)}


def _option(name: str, value: str | int | float | bool) -> dict[str, Any]:
    kind = next(kind for cls, kind in OPTION_TYPES if isinstance(value, cls))
    return {"name": name, "type": kind, "value": value}


# -- HTTP ------------------------------------------------------------------------------------


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
