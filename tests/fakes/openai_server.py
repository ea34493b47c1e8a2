"""A fake OpenAI-compatible chat server, served for real over HTTP on 127.0.0.1.

Tests point the real ``openai`` client (or anything that speaks the Chat Completions API) at this
server instead of a provider: it speaks HTTP/1.1 (standard library only) on 127.0.0.1 with a
random port, in a background thread, and answers ``POST /v1/chat/completions`` (one JSON body, or
Server-Sent Events in chunked encoding when ``"stream": true``) and ``GET /v1/models``.

What a chat request gets is scripted. ``script()`` queues steps that are used one per chat request,
first in first out; once the queue is empty every request gets ``default`` (see ``always()``):

- ``Reply(text, first_token_delay, token_delay)``: answer ``text``, optionally slowly;
- ``Respond(fn)``: answer ``fn(request_json)``, for replies that depend on the prompt;
- ``Echo()``: answer the last user message;
- ``Status(code, body, retry_after)``: an error status with an OpenAI-style JSON error body;
- ``Hang()``: accept the request and never answer (until the server stops);
- ``Malformed()``: a 200 whose body (or ``data:`` event) is not JSON;
- ``DropMidStream(text, after_deltas)``: cut the connection part-way through the body.

Every request is recorded, before any delay, so tests can assert what the client sent. Token
counts in ``usage`` are whitespace-split words: the prompt's over every message's content.

    with FakeOpenAI() as fake:
        fake.script(Status(429, retry_after=1), Reply("Restart the node [1]."))
        client = openai.OpenAI(base_url=fake.base_url, api_key="x", max_retries=1)
        answer = client.chat.completions.create(model="fake-model", messages=messages)
        assert answer.choices[0].message.content == "Restart the node [1]."
        assert len(fake.chat_requests()) == 2
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any
from urllib.parse import urlsplit

from tests.fakes.http import FakeHTTPServer, LocalFake, TrackedHandler, shutdown_connection

DEFAULT_TEXT = "This is the fake model's answer."
CHAT_PATH = "/v1/chat/completions"
MODELS_PATH = "/v1/models"
MALFORMED_JSON = b'{"id": "chatcmpl-broken", "object": "chat.completion", "choices": [{"ind'

# (type, code, message) of the error body for a status, as the OpenAI API words them.
ERRORS: dict[int, tuple[str, str | None, str]] = {
    400: ("invalid_request_error", None, "Invalid request."),
    401: ("invalid_request_error", "invalid_api_key", "Incorrect API key provided."),
    404: ("invalid_request_error", None, "The requested resource does not exist."),
    429: ("requests", "rate_limit_exceeded", "Rate limit reached. Please try again later."),
    500: ("server_error", None, "The server had an error while processing your request."),
    503: ("server_error", None, "The engine is currently overloaded, please try again later."),
}


# -- steps -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Reply:
    """Answer ``text``. Streams wait ``first_token_delay`` before the first delta and
    ``token_delay`` between deltas; plain answers wait ``first_token_delay`` before sending."""

    text: str
    first_token_delay: float = 0.0
    token_delay: float = 0.0


@dataclass(frozen=True)
class Respond:
    """Answer ``fn(request_json)``; if ``fn`` raises, the answer is a 500 naming the error."""

    fn: Callable[[dict[str, Any]], str]
    first_token_delay: float = 0.0
    token_delay: float = 0.0


@dataclass(frozen=True)
class Echo:
    """Answer with the text of the last user message."""


@dataclass(frozen=True)
class Status:
    """Answer ``code``. ``body``: None → the usual OpenAI error body for the code, a str → that
    error message, a dict → sent as is. ``retry_after`` (seconds) → a Retry-After header."""

    code: int
    body: dict[str, Any] | str | None = None
    retry_after: float | None = None


@dataclass(frozen=True)
class Hang:
    """Read the request and never answer, until the server stops: for client timeouts."""


@dataclass(frozen=True)
class Malformed:
    """200 with a body that is not JSON (streams: a ``data:`` event that is not JSON)."""


@dataclass(frozen=True)
class DropMidStream:
    """Stream the first ``after_deltas`` deltas of ``text``, then cut the connection without
    ending the chunked body (plain answers: half the declared body, then cut)."""

    text: str
    after_deltas: int = 2


Step = Reply | Respond | Echo | Status | Hang | Malformed | DropMidStream


@dataclass(frozen=True)
class Request:
    """One request as the server saw it, recorded before any delay."""

    method: str
    path: str  # the request target as sent, query string included
    headers: dict[str, str]  # lower-cased names
    json: dict[str, Any] | None  # the body, if it was a JSON object
    received_at: float  # time.monotonic()


# -- the fake --------------------------------------------------------------------------------


class FakeOpenAI(LocalFake):
    """An OpenAI-compatible server on 127.0.0.1; script it before or after start().

    ``api_key``: when set, requests without ``Authorization: Bearer <api_key>`` get a 401 (and
    do not use up a step). ``default``: the step for requests the script does not cover.
    """

    def __init__(
        self,
        *,
        models: Iterable[str] = ("fake-model",),
        api_key: str | None = None,
        default: Step | None = None,
    ) -> None:
        self.models = tuple(models)
        self.api_key = api_key
        self.default: Step = default if default is not None else Reply(DEFAULT_TEXT)
        self._lock = threading.Lock()
        self._script: deque[Step] = deque()
        self._requests: list[Request] = []
        self._serial = 0

    # -- lifecycle ---------------------------------------------------------------------------

    def _new_server(self) -> _Server:
        return _Server(self)

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT/v1``, the ``base_url`` for ``openai.OpenAI``."""
        return self._origin() + "/v1"

    # -- scripting ---------------------------------------------------------------------------

    def script(self, *steps: Step) -> None:
        """Queue ``steps``, used one per chat request in order, after any already queued."""
        with self._lock:
            self._script.extend(steps)

    def always(self, step: Step) -> None:
        """Use ``step`` for every chat request the script does not cover."""
        with self._lock:
            self.default = step

    @property
    def pending(self) -> int:
        """How many scripted steps are not used yet."""
        with self._lock:
            return len(self._script)

    def reset(self) -> None:
        """Forget the queued steps and the recorded requests (``default`` stays)."""
        with self._lock:
            self._script.clear()
            self._requests.clear()

    # -- observation -------------------------------------------------------------------------

    @property
    def requests(self) -> list[Request]:
        """Every request so far, in arrival order (a copy)."""
        with self._lock:
            return list(self._requests)

    def chat_requests(self) -> list[dict[str, Any]]:
        """The JSON bodies of the chat completion requests, in arrival order."""
        return [
            r.json
            for r in self.requests
            if r.method == "POST" and _route_of(r.path) == CHAT_PATH and r.json is not None
        ]

    # -- used by the request handler ---------------------------------------------------------

    def _record(self, request: Request) -> None:
        with self._lock:
            self._requests.append(request)

    def _next_step(self) -> Step:
        with self._lock:
            return self._script.popleft() if self._script else self.default

    def _next_serial(self) -> int:
        with self._lock:
            self._serial += 1
            return self._serial

    def _is_authorized(self, authorization: str | None) -> bool:
        return self.api_key is None or authorization == f"Bearer {self.api_key}"


# -- HTTP ------------------------------------------------------------------------------------


class _Server(FakeHTTPServer):
    """Serves one FakeOpenAI (its handlers reach it as ``self.server.fake``)."""

    def __init__(self, fake: FakeOpenAI) -> None:
        super().__init__(_Handler, "fake-openai")
        self.fake = fake


class _Handler(TrackedHandler):
    server_version = "FakeOpenAI/1.0"
    server: _Server

    def do_GET(self) -> None:
        self._handle(b"")

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        self._handle(self.rfile.read(length))

    def _handle(self, raw: bytes) -> None:
        fake = self.server.fake
        headers = {name.lower(): value for name, value in self.headers.items()}
        body = _json_object(raw)
        fake._record(Request(self.command, self.path, headers, body, time.monotonic()))
        try:
            self._route(fake, body)
        except OSError:  # the client hung up, or stop() cut the connection
            self.close_connection = True

    def _route(self, fake: FakeOpenAI, body: dict[str, Any] | None) -> None:
        route = _route_of(self.path)
        if not fake._is_authorized(self.headers.get("Authorization")):
            self._send_json(401, _error_body(401))
        elif self.command == "GET" and route == MODELS_PATH:
            self._send_json(200, {"object": "list", "data": [_model(m) for m in fake.models]})
        elif self.command == "GET" and route.startswith(MODELS_PATH + "/"):
            name = route.removeprefix(MODELS_PATH + "/")
            if name in fake.models:
                self._send_json(200, _model(name))
            else:
                self._send_json(404, _error_body(404, f"The model '{name}' does not exist"))
        elif self.command == "POST" and route == CHAT_PATH:
            if body is None or not isinstance(body.get("messages"), list):
                self._send_json(400, _error_body(400, "The body needs a 'messages' list."))
            else:
                self._chat(body, fake._next_step())
        else:
            self._send_json(404, _error_body(404, f"Invalid URL ({self.command} {route})"))

    # -- chat completions --------------------------------------------------------------------

    def _chat(self, body: dict[str, Any], step: Step) -> None:
        is_stream = body.get("stream") is True
        match step:
            case Hang():
                self.server.stopping.wait()
                self.close_connection = True
            case Status():
                is_raw = isinstance(step.body, dict)
                payload = step.body if is_raw else _error_body(step.code, step.body)
                extra = {} if step.retry_after is None else {"Retry-After": f"{step.retry_after:g}"}
                self._send_json(step.code, payload, extra)
            case Malformed() if is_stream:
                self._start_events()
                self._send_chunk(b"data: " + MALFORMED_JSON + b"\n\n")
                self._send_chunk(b"data: [DONE]\n\n")
                self._send_chunk(b"")
            case Malformed():
                self._send_bytes(200, MALFORMED_JSON, "application/json")
            case DropMidStream() if is_stream:
                self._stream(body, step.text, 0.0, 0.0, drop_after=step.after_deltas)
            case DropMidStream():
                data = json.dumps(self._completion(body, step.text)).encode()
                self._send_bytes(200, data, "application/json", cut_at=len(data) // 2)
            case _:
                try:
                    text, first_delay, token_delay = _reply_of(step, body)
                except Exception as error:
                    message = f"Respond step failed: {error!r}"
                    self._send_json(500, _error_body(500, message))
                    return
                if is_stream:
                    self._stream(body, text, first_delay, token_delay)
                elif self._wait(first_delay):
                    self._send_json(200, self._completion(body, text))

    def _completion(self, body: dict[str, Any], text: str) -> dict[str, Any]:
        message = {"role": "assistant", "content": text, "refusal": None}
        return {
            **self._head(body, "chat.completion"),
            "choices": [
                {"index": 0, "message": message, "logprobs": None, "finish_reason": "stop"}
            ],
            "usage": _usage(body, text),
        }

    def _head(self, body: dict[str, Any], kind: str) -> dict[str, Any]:
        model = body.get("model") or self.server.fake.models[0]
        serial = self.server.fake._next_serial()
        created = int(time.time())
        return {
            "id": f"chatcmpl-fake{serial:06d}",
            "object": kind,
            "created": created,
            "model": model,
        }

    def _stream(
        self,
        body: dict[str, Any],
        text: str,
        first_delay: float,
        token_delay: float,
        *,
        drop_after: int | None = None,
    ) -> None:
        options = body.get("stream_options")
        include_usage = isinstance(options, dict) and options.get("include_usage") is True
        head = self._head(body, "chat.completion.chunk")
        if include_usage:
            head["usage"] = None  # as the API does: null in every chunk but the last

        def event(choices: list[dict[str, Any]], **extra: Any) -> None:
            data = json.dumps({**head, "choices": choices, **extra})
            self._send_chunk(f"data: {data}\n\n".encode())

        def choice(delta: dict[str, Any], finish_reason: str | None) -> dict[str, Any]:
            return {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}

        self._start_events()
        if not self._wait(first_delay):
            return
        for index, piece in enumerate(_pieces(text)):
            if drop_after is not None and index >= drop_after:
                break
            if index and not self._wait(token_delay):
                return
            delta = {"role": "assistant", "content": piece} if index == 0 else {"content": piece}
            event([choice(delta, None)])
        if drop_after is not None:
            self._cut()
            return
        event([choice({}, "stop")])
        if include_usage:
            event([], usage=_usage(body, text))
        self._send_chunk(b"data: [DONE]\n\n")
        self._send_chunk(b"")  # the last chunk: the body is complete

    # -- writing -----------------------------------------------------------------------------

    def _wait(self, seconds: float) -> bool:
        """Sleep ``seconds``; False (and the connection is to close) if the server stops."""
        if seconds > 0 and self.server.stopping.wait(seconds):
            self.close_connection = True
            return False
        return True

    def _send_json(self, status: int, payload: Any, extra: dict[str, str] | None = None) -> None:
        self._send_bytes(status, json.dumps(payload).encode(), "application/json", extra)

    def _send_bytes(
        self,
        status: int,
        body: bytes,
        content_type: str,
        extra: dict[str, str] | None = None,
        *,
        cut_at: int | None = None,
    ) -> None:
        """Answer ``body``; with ``cut_at``, only its first ``cut_at`` bytes, then cut."""
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("X-Request-Id", f"req_fake{self.server.fake._next_serial():06d}")
        for name, value in (extra or {}).items():
            self.send_header(name, value)
        self.end_headers()
        if cut_at is None:
            self.wfile.write(body)
            return
        self.wfile.write(body[:cut_at])
        self._cut()

    def _start_events(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header("X-Request-Id", f"req_fake{self.server.fake._next_serial():06d}")
        self.end_headers()

    def _send_chunk(self, data: bytes) -> None:
        """One chunk of a chunked body, sent at once; empty ``data`` ends the body."""
        self.wfile.write(b"%x\r\n%b\r\n" % (len(data), data))
        self.wfile.flush()

    def _cut(self) -> None:
        """End the connection here, whatever the client still expects."""
        self.wfile.flush()
        self.close_connection = True
        shutdown_connection(self.connection)


# -- generated bodies ------------------------------------------------------------------------


def _route_of(target: str) -> str:
    return urlsplit(target).path.rstrip("/")


def _json_object(raw: bytes) -> dict[str, Any] | None:
    try:
        value = json.loads(raw)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def _error_body(status: int, message: str | None = None) -> dict[str, Any]:
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        phrase = "Error"
    fallback = ("server_error" if status >= 500 else "invalid_request_error", None, phrase)
    kind, code, default_message = ERRORS.get(status, fallback)
    error = {"message": message or default_message, "type": kind, "param": None, "code": code}
    return {"error": error}


def _model(name: str) -> dict[str, Any]:
    return {"id": name, "object": "model", "created": 1700000000, "owned_by": "teambot-fake"}


def _reply_of(step: Step, body: dict[str, Any]) -> tuple[str, float, float]:
    """(text, first_token_delay, token_delay) of a replying step."""
    match step:
        case Reply():
            return step.text, step.first_token_delay, step.token_delay
        case Respond():
            return str(step.fn(body)), step.first_token_delay, step.token_delay
        case Echo():
            users = [m for m in body["messages"] if isinstance(m, dict) and m.get("role") == "user"]
            return (_text_of(users[-1].get("content")) if users else ""), 0.0, 0.0
    raise TypeError(f"not a replying step: {step!r}")


def _text_of(content: Any) -> str:
    """The text of a message's content: a string, or a list of parts with ``text``."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(
            str(part.get("text", "")) for part in content if isinstance(part, dict)
        ).strip()
    return ""


def _pieces(text: str) -> list[str]:
    """``text`` in word-sized deltas that join back to it exactly ("a b" → "a ", "b")."""
    return [piece for piece in re.split(r"(?<=\s)(?=\S)", text) if piece] or [""]


def _usage(body: dict[str, Any], reply: str) -> dict[str, int]:
    messages = body.get("messages") or []
    prompt = sum(len(_text_of(m.get("content")).split()) for m in messages if isinstance(m, dict))
    completion = len(reply.split())
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }
