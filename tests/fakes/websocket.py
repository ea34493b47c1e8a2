"""The server side of a WebSocket (RFC 6455), for the fakes whose protocol runs over one.

A fake's request handler sees a GET with ``Upgrade: websocket``, checks the request, makes a
``WebSocket`` on its connection and calls ``accept()`` (the 101 answer). Then it sends what its
protocol opens with and calls ``serve()``: that reads frames until either side closes, answers
pings, and hands each whole text or binary message to a callback. Only what the fakes need: no
extensions (so no permessage-deflate), and what the server sends is never fragmented.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import struct
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler
from typing import Any

from tests.fakes.http import shutdown_connection

WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
OP_CONTINUATION, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA
NO_STATUS_CODE = 1005  # what a close frame without a status code stands for


def is_upgrade(handler: BaseHTTPRequestHandler) -> bool:
    """Whether the request asks to switch to WebSocket."""
    return handler.headers.get("Upgrade", "").lower() == "websocket"


def accept_key(key: str) -> str:
    """``Sec-WebSocket-Accept`` for the client's ``Sec-WebSocket-Key``."""
    return base64.b64encode(hashlib.sha1((key + WS_GUID).encode()).digest()).decode()


class WebSocket:
    """The server side of one WebSocket connection: unmasked frames out, masked frames in."""

    def __init__(self, connection: Any) -> None:
        self._connection = connection
        self._send_lock = threading.Lock()

    def accept(self, handler: BaseHTTPRequestHandler, key: str) -> None:
        """Answer the handshake (101 Switching Protocols) for ``handler``'s request."""
        handler.send_response(101, "Switching Protocols")
        handler.send_header("Upgrade", "websocket")
        handler.send_header("Connection", "Upgrade")
        handler.send_header("Sec-WebSocket-Accept", accept_key(key))
        handler.end_headers()
        self._connection.settimeout(None)  # idle is normal; the fake's stop() cuts the connection

    def send_json(self, message: Any) -> None:
        self._send_frame(OP_TEXT, json.dumps(message).encode())

    def close(self, code: int, reason: str) -> None:
        """Send a close frame and cut the connection (the client's reply is not awaited)."""
        with contextlib.suppress(OSError):
            self._send_frame(OP_CLOSE, struct.pack("!H", code) + reason.encode())
        shutdown_connection(self._connection)

    def _send_frame(self, opcode: int, data: bytes) -> None:
        size = len(data)
        if size < 126:
            head = struct.pack("!BB", 0x80 | opcode, size)
        elif size < 1 << 16:
            head = struct.pack("!BBH", 0x80 | opcode, 126, size)
        else:
            head = struct.pack("!BBQ", 0x80 | opcode, 127, size)
        with self._send_lock:
            self._connection.sendall(head + data)

    def serve(self, rfile: Any, on_message: Callable[[bytes], None]) -> int | None:
        """Answer pings and pass each whole message to ``on_message`` until the socket closes.

        Returns the status code of the client's close frame (which is echoed), or None when the
        stream just ended.
        """
        parts: list[bytes] = []
        while (frame := read_frame(rfile)) is not None:
            is_final, opcode, data = frame
            if opcode == OP_PING:
                self._send_frame(OP_PONG, data)
            elif opcode == OP_CLOSE:
                self._send_frame(OP_CLOSE, data[:2])
                return struct.unpack("!H", data[:2])[0] if len(data) >= 2 else NO_STATUS_CODE
            elif opcode in (OP_TEXT, OP_BINARY, OP_CONTINUATION):
                parts.append(data)
                if is_final:
                    on_message(b"".join(parts))
                    parts = []
        return None


def read_frame(rfile: Any) -> tuple[bool, int, bytes] | None:
    """(FIN, opcode, unmasked payload) of the next frame; None at the end of the stream."""
    head = rfile.read(2)
    if len(head) < 2:
        return None
    size = head[1] & 0x7F
    if size in (126, 127):
        length_bytes = rfile.read(2 if size == 126 else 8)
        size = int.from_bytes(length_bytes, "big")
    mask = rfile.read(4) if head[1] & 0x80 else b""
    data = rfile.read(size)
    if len(data) < size:
        return None
    if mask:
        key = (mask * (size // 4 + 1))[:size]
        data = (int.from_bytes(data, "big") ^ int.from_bytes(key, "big")).to_bytes(size, "big")
    return bool(head[0] & 0x80), head[0] & 0x0F, data
