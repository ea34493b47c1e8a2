"""`teambot serve`: the chat adapters in one process — Slack (HTTP events or Socket Mode) and
Discord (a gateway client on a thread of its own) when their tokens are set.

HTTP mode serves ``POST /slack/events`` (events, slash commands and button clicks;
bolt checks Slack's signature), ``GET /healthz`` and ``GET /metrics`` (Prometheus)
on TEAMBOT_HOST:TEAMBOT_PORT.
Bolt's dispatch runs in a worker thread so one slow request never stalls the
event loop; the answer itself runs on bolt's listener pool after the ack.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from collections.abc import Awaitable, Callable
from typing import Any

from slack_bolt import App
from slack_bolt.request import BoltRequest
from sqlalchemy import text

from bot.errors import SettingsError
from bot.metrics import CONTENT_TYPE
from bot.runtime import Runtime

log = logging.getLogger(__name__)

SLACK_PATH = "/slack/events"
MAX_BODY_BYTES = 1_000_000  # Slack payloads are a few kB; refuse anything absurd early

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


def health(runtime: Runtime) -> tuple[bool, dict[str, Any]]:
    """Whether this process can answer: the database answers and the index is loaded."""
    try:
        with runtime.sessions() as session:
            session.execute(text("SELECT 1"))
        chunks = runtime.retriever.indexed_chunks()
    except Exception as exc:  # any failure is the answer to "are you healthy?"
        return False, {"ok": False, "error": f"{type(exc).__name__}: {exc}"[:300]}
    return True, {"ok": True, "database": "ok", "chunks": chunks}


def asgi_app(
    slack: App,
    check: Callable[[], tuple[bool, dict[str, Any]]] | None = None,
    metrics: Callable[[], bytes] | None = None,
) -> Callable[[Scope, Receive, Send], Awaitable[None]]:
    """An ASGI app: Slack's endpoint, a health check (``check``; always healthy without one)
    and Prometheus metrics (``metrics``), 404 for anything else."""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        if scope["type"] != "http":
            return
        method, path = scope["method"], scope["path"]
        if path == "/healthz" and method == "GET":
            healthy, report = await asyncio.to_thread(check) if check else (True, {"ok": True})
            await _respond(send, 200 if healthy else 503, json.dumps(report), "application/json")
        elif path == "/metrics" and method == "GET" and metrics is not None:
            body = (await asyncio.to_thread(metrics)).decode("utf-8")
            await _respond(send, 200, body, CONTENT_TYPE)
        elif path == SLACK_PATH and method == "POST":
            body = await _body(receive)
            if body is None:
                await _respond(send, 413, "payload too large")
                return
            headers: dict[str, list[str]] = {}
            for name, value in scope["headers"]:
                headers.setdefault(name.decode("latin-1"), []).append(value.decode("latin-1"))
            request = BoltRequest(
                body=body.decode("utf-8"),
                query=scope.get("query_string", b"").decode("latin-1"),
                headers=headers,
            )
            response = await asyncio.to_thread(slack.dispatch, request)
            content_type = response.headers.get("content-type", ["text/plain"])[0]
            await _respond(send, response.status, response.body, content_type)
        else:
            await _respond(send, 404, "not found")

    return app


def serve(runtime: Runtime) -> None:
    """Run every adapter the settings enable (Slack, Discord or both), until stopped."""
    settings = runtime.settings
    slack = bool(settings.slack_bot_token.get_secret_value())
    discord = bool(settings.discord_token.get_secret_value())
    if not (slack or discord):
        raise SettingsError(
            "No chat platform is configured: set SLACK_BOT_TOKEN (and SLACK_SIGNING_SECRET for "
            "HTTP events, or SLACK_APP_TOKEN for Socket Mode) and/or DISCORD_TOKEN. "
            "See docs/chat-platforms.md."
        )
    if discord:
        from bot.discord.app import run_discord

        if not slack:
            run_discord(runtime)
            return
        threading.Thread(target=run_discord, args=(runtime,), name="discord", daemon=True).start()
    run_slack(runtime)


def run_slack(runtime: Runtime) -> None:
    """Slack over Socket Mode when SLACK_APP_TOKEN is set, else HTTP events (ASGI)."""
    settings = runtime.settings
    from bot.slack.app import build_app

    slack = build_app(runtime)
    if settings.slack_app_token.get_secret_value():
        from slack_bolt.adapter.socket_mode import SocketModeHandler

        log.info("Slack: Socket Mode")
        SocketModeHandler(slack, settings.slack_app_token.get_secret_value()).start()
        return
    if not settings.slack_signing_secret.get_secret_value():
        raise SettingsError(
            "SLACK_SIGNING_SECRET is empty: HTTP events cannot be checked. Copy it from your "
            "Slack app's Basic Information page, or set SLACK_APP_TOKEN to use Socket Mode."
        )
    import uvicorn

    log.info("Slack: HTTP events at http://%s:%d%s", settings.host, settings.port, SLACK_PATH)
    app = asgi_app(slack, lambda: health(runtime), runtime.metrics.render)
    uvicorn.run(app, host=settings.host, port=settings.port, log_level="warning")


async def _body(receive: Receive) -> bytes | None:
    chunks, size = [], 0
    while True:
        message = await receive()
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            return None
        chunks.append(chunk)
        if not message.get("more_body"):
            return b"".join(chunks)


async def _respond(send: Send, status: int, body: str, content_type: str = "text/plain") -> None:
    data = body.encode("utf-8")
    headers = [
        (b"content-type", content_type.encode()),
        (b"content-length", str(len(data)).encode()),
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": data})
