"""The console's gate, in front of every route so none can be forgotten: a session for every
page and API but sign-in and static files (a browser is sent to sign in, a script gets 401),
a CSRF token on every request that is not GET or HEAD (403), and the security headers.

It is plain ASGI, so a streamed answer passes through untouched. A form's token is read from
the body, capped at MAX_FORM_BYTES, which is then handed on to the route as it came.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qs, quote

from starlette.requests import Request

from bot.asgi_body import capped_body
from bot.console.auth import COOKIE, PREFIX, ConsoleAuth

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

PUBLIC = (f"{PREFIX}/login", f"{PREFIX}/auth/slack", f"{PREFIX}/auth/slack/callback")
STATIC = f"{PREFIX}/static/"
SAFE_METHODS = ("GET", "HEAD")
MAX_FORM_BYTES = 64_000
CSRF_FIELD = "csrf"
CSRF_HEADER = "x-csrf-token"
HEADERS = [
    (b"content-security-policy",
     b"default-src 'self'; img-src 'self' data:; style-src 'self'; "
     b"script-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),  # a login link's token never leaves in a Referer
    (b"x-frame-options", b"DENY"),
]  # fmt: skip
NO_STORE = (b"cache-control", b"no-store")
CSRF_REFUSED = (
    "This form is out of date or did not come from the console (no valid CSRF token). "
    "Reload the page and try again."
)


def wants_json(request: Request) -> bool:
    """A script's request (fetch, server-sent events), answered with 401 rather than a
    redirect to the sign-in page."""
    accept = request.headers.get("accept", "")
    return (
        "x-requested-with" in request.headers
        or "hx-request" in request.headers
        or "text/event-stream" in accept
        or accept.startswith("application/json")
    )


class Guard:
    """Wraps the console app: see the module's docstring."""

    def __init__(self, app: ASGIApp, auth: ConsoleAuth, refused_page: Callable[..., Any]) -> None:
        self.app = app  # the routes behind the gate (tests walk them)
        self._auth = auth
        self._refused_page = refused_page  # (request, status, message) → Response

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        send = _with_headers(send, static=scope["path"].startswith(STATIC))
        path = scope["path"]
        if path in PUBLIC or path.startswith(STATIC):
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        user = await asyncio.to_thread(self._auth.user_of, request.cookies.get(COOKIE))
        if user is None:
            await _unauthorised(request, scope, receive, send)
            return
        if scope["method"] not in SAFE_METHODS:
            receive, token = await _csrf_token(request, receive)
            if receive is None:
                response = self._refused_page(request, 413, "The form is too large.")
                await response(scope, _empty, send)
                return
            if not self._auth.csrf_ok(user, token):
                await self._refused_page(request, 403, CSRF_REFUSED)(scope, _empty, send)
                return
        scope.setdefault("state", {})["user"] = user
        await self.app(scope, receive, send)


async def _unauthorised(request: Request, scope: Scope, receive: Receive, send: Send) -> None:
    from starlette.responses import JSONResponse, RedirectResponse

    if wants_json(request) or request.method not in SAFE_METHODS:
        body = {"error": "Sign in to the console first (`teambot console login`)."}
        await JSONResponse(body, status_code=401)(scope, receive, send)
        return
    here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    target = f"{PREFIX}/login?next={quote(here, safe='')}"
    await RedirectResponse(target, status_code=303)(scope, receive, send)


async def _csrf_token(request: Request, receive: Receive) -> tuple[Receive | None, str | None]:
    """The request's CSRF token (header, else the form field) and a ``receive`` that replays
    the body; None for ``receive`` when the body is over MAX_FORM_BYTES."""
    raw = await capped_body(receive, MAX_FORM_BYTES)
    if raw is None:
        return None, None
    token = request.headers.get(CSRF_HEADER)
    kind = request.headers.get("content-type", "")
    if token is None and kind.startswith("application/x-www-form-urlencoded"):
        fields = parse_qs(raw.decode("utf-8", "replace"), max_num_fields=200)
        token = (fields.get(CSRF_FIELD) or [None])[0]
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if sent:
            return await receive()  # disconnect, when the client goes
        sent = True
        return {"type": "http.request", "body": raw, "more_body": False}

    return replay, token


async def _empty() -> Message:
    return {"type": "http.request", "body": b"", "more_body": False}


def _with_headers(send: Send, *, static: bool) -> Send:
    async def sending(message: Message) -> None:
        if message["type"] == "http.response.start":
            extra = HEADERS if static else [*HEADERS, NO_STORE]
            message = {**message, "headers": [*message.get("headers", []), *extra]}
        await send(message)

    return sending
