"""The fake Discord's gateway: sessions and WebSocket connections, HELLO and heartbeats,
IDENTIFY (READY, GUILD_CREATE), RESUME with a replay of what a session missed, and events
filtered by each session's intents as on Discord."""

from __future__ import annotations

import copy
import json
import threading
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlsplit

from tests.fakes.discord.payloads import (
    BOT_USER_ID,
    DIRECT_MESSAGES,
    GUILD_MESSAGES,
    MESSAGE_CONTENT,
)
from tests.fakes.websocket import WebSocket

if TYPE_CHECKING:
    from tests.fakes.discord.fake import FakeDiscord

GATEWAY_PATH = "/gateway"
RESUME_GATEWAY_PATH = (
    "/gateway-resume"  # READY's resume_gateway_url: a second address, as on Discord
)
HEARTBEAT_INTERVAL_MS = 1000
# Gateway opcodes
DISPATCH, HEARTBEAT, IDENTIFY, RESUME, INVALID_SESSION, HELLO, HEARTBEAT_ACK = 0, 1, 2, 6, 9, 10, 11
IGNORED_OPS = frozenset({3, 4, 8})  # presence update, voice state, request guild members
SESSION_ENDING_CLOSES = frozenset({1000, 1001})  # a client closing with these ends its session
MESSAGE_EVENTS = frozenset({"MESSAGE_CREATE", "MESSAGE_UPDATE", "MESSAGE_DELETE"})


@dataclass
class _Session:
    id: str
    intents: int
    socket: WebSocket | None
    seq: int = 0
    sent: list[dict[str, Any]] = field(default_factory=list)  # every event, for RESUME


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
