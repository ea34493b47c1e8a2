"""`teambot serve`: the chat adapters in one process — Slack (HTTP events or Socket Mode) and
Discord (a gateway client on a thread of its own) when their tokens are set.

Every mode serves ``GET /healthz`` and ``GET /metrics`` (Prometheus) on
TEAMBOT_HOST:TEAMBOT_PORT, so any deployment can be health-checked and scraped;
Slack's HTTP-events mode adds ``POST /slack/events`` (events, slash commands and
button clicks): Slack's signature is checked on the raw bytes before anything parses
them, and a request refused (unsigned, forged, stale, malformed) is one log line that
never holds its body. That endpoint is slack-bolt's own ASGI handler with teambot's edge in
its ``dispatch``: the body capped, the signature checked, then bolt's dispatch on a worker
thread so one slow request never stalls the event loop; the answer itself runs on bolt's
listener pool after the ack. uvicorn owns the main thread and the signals; its shutdown
closes the Socket Mode and Discord connections.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import json
import logging
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import uvicorn
from slack_bolt.adapter.asgi import SlackRequestHandler
from slack_bolt.adapter.asgi.http_request import AsgiHttpRequest
from slack_bolt.request import BoltRequest
from slack_bolt.response import BoltResponse
from sqlalchemy import text

from bot.asgi_body import capped_body
from bot.delivery.replica import ReplicaDuties
from bot.errors import SettingsError
from bot.metrics import CONTENT_TYPE
from bot.runtime import Runtime
from knowledge.storage.processes import Notice

if TYPE_CHECKING:
    from slack_sdk.signature import SignatureVerifier

    from bot.slack.app import SlackApp

log = logging.getLogger(__name__)

SLACK_PATH = "/slack/events"
CONSOLE_PATH = "/console"
MAX_BODY_BYTES = 1_000_000  # Slack payloads are a few kB; refuse anything absurd early
DISCORD_STOP_SECONDS = 10  # a Discord client slower to close is left to end with the process

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
# Who sent the request being dispatched, for the one log line a refusal gets (bolt's handler
# hands ``dispatch`` the body and headers but not the ASGI scope).
_client: contextvars.ContextVar[str] = contextvars.ContextVar("client", default="unknown")


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
    slack: SlackApp | None = None,
    check: Callable[[], tuple[bool, dict[str, Any]]] | None = None,
    metrics: Callable[[], bytes] | None = None,
    on_shutdown: Callable[[], None] | None = None,
    console: Callable[[Scope, Receive, Send], Awaitable[None]] | None = None,
) -> Callable[[Scope, Receive, Send], Awaitable[None]]:
    """An ASGI app: Slack's endpoint (only with ``slack``: HTTP-events mode), a health check
    (``check``; always healthy without one), Prometheus metrics (``metrics``) and the web
    console under /console (``console``), 404 for anything else. ``on_shutdown`` runs when
    the server stops, before it re-raises a signal."""
    slack_handler = CheckedSlackHandler(slack) if slack is not None else None

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            if on_shutdown is not None:
                await asyncio.to_thread(on_shutdown)
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
        elif console is not None and (path == CONSOLE_PATH or path.startswith(CONSOLE_PATH + "/")):
            await console(scope, receive, send)
        elif path == SLACK_PATH and method == "POST" and slack_handler is not None:
            _client.set((scope.get("client") or ("unknown", 0))[0])
            await slack_handler(scope, receive, send)
        else:
            await _respond(send, 404, "not found")

    return app


def serve(runtime: Runtime, *, with_worker: bool = False) -> None:
    """Run every adapter the settings enable (Slack, Discord or both) and the HTTP server, until
    a signal stops the server or the Discord client ends (its error is raised here).
    ``with_worker``: the refresh scheduler too, on threads of this process."""
    settings = runtime.settings
    has_slack = bool(settings.slack_bot_token.get_secret_value())
    has_discord = bool(settings.discord_token.get_secret_value())
    if not (has_slack or has_discord):
        raise SettingsError(
            "No chat platform is configured: set SLACK_BOT_TOKEN (and SLACK_SIGNING_SECRET for "
            "HTTP events, or SLACK_APP_TOKEN for Socket Mode) and/or DISCORD_TOKEN. "
            "See docs/chat-platforms.md. Without a chat platform, `teambot console` serves the "
            "web console alone."
        )
    app_token = settings.slack_app_token.get_secret_value()
    if has_slack and not app_token and not settings.slack_signing_secret.get_secret_value():
        raise SettingsError(
            "SLACK_SIGNING_SECRET is empty: HTTP events cannot be checked. Copy it from your "
            "Slack app's Basic Information page, or set SLACK_APP_TOKEN to use Socket Mode."
        )
    from bot.slack.app import build_app, post_notice, redeliver

    slack = build_app(runtime) if has_slack else None
    posters: dict[str, Callable[[Notice], None]] = {}  # who posts a worker's notices
    if slack:
        posters["slack"] = functools.partial(post_notice, slack)
    duties = ReplicaDuties(
        runtime, {"slack": functools.partial(redeliver, slack)} if slack else {}, posters
    )
    adapters = contextlib.ExitStack()  # closed on shutdown, whatever stopped the server
    app = asgi_app(None if app_token else slack, lambda: health(runtime), runtime.metrics.render,
                   on_shutdown=adapters.close, console=web_console(runtime))  # fmt: skip
    server = uvicorn.Server(
        uvicorn.Config(app, host=settings.host, port=settings.port, log_level="warning")
    )
    discord: _DiscordThread | None = None
    warm_up(runtime)
    with adapters:
        duties.start()
        adapters.callback(duties.stop)
        if with_worker:
            from apscheduler.schedulers.background import BackgroundScheduler

            from bot.digest import post_digest
            from bot.retention import forget_expired
            from workers.scheduler import start_worker

            worker = start_worker(runtime, forget_expired, BackgroundScheduler, post_digest)
            worker.scheduler.start()
            adapters.callback(worker.leave)
            adapters.callback(worker.scheduler.shutdown, wait=False)
        if slack is not None and app_token:
            from slack_bolt.adapter.socket_mode import SocketModeHandler

            handler = SocketModeHandler(slack, app_token)
            handler.connect()
            adapters.callback(handler.close)
            log.info("Slack: Socket Mode")
        elif slack is not None:
            log.info("Slack: HTTP events at http://%s:%d%s", settings.host, settings.port,
                     SLACK_PATH)  # fmt: skip
        if has_discord:
            discord = _DiscordThread(runtime, server)
            posters["discord"] = discord.post_notice
            adapters.callback(discord.stop)
            log.info("Discord: gateway client started")
        base = f"http://{settings.host}:{settings.port}"
        log.info("Health at %s/healthz, metrics at %s/metrics, console at %s/console", base,
                 base, base)  # fmt: skip
        server.run()
    if discord is not None and discord.error is not None:
        raise discord.error


def web_console(runtime: Runtime) -> Callable[[Scope, Receive, Send], Awaitable[None]]:
    """The console for this process's database and settings (bot.console)."""
    from bot.console.app import console_app, public_url

    return console_app(runtime, public_url(runtime.settings))


def serve_console(runtime: Runtime) -> None:
    """`teambot console`: only the web console (with /healthz and /metrics), for a team that
    uses teambot from the terminal and has no chat platform."""
    settings = runtime.settings
    app = asgi_app(None, lambda: health(runtime), runtime.metrics.render,
                   console=web_console(runtime))  # fmt: skip
    server = uvicorn.Server(
        uvicorn.Config(app, host=settings.host, port=settings.port, log_level="warning")
    )
    warm_up(runtime)
    log.info("Console at http://%s:%d%s; sign in with a link from `teambot console login`",
             settings.host, settings.port, CONSOLE_PATH)  # fmt: skip
    server.run()


def warm_up(runtime: Runtime) -> None:
    """Load the embedder and the index before the first question, not during a burst of them:
    the first answers are not slowed, and /healthz is true only once the process can answer."""
    started = time.perf_counter()
    runtime.retriever.search("warm up", k=1)  # embeds a question; loads FAISS and BM25
    log.info("ready: %d chunks searchable, loaded in %.1f s",
             runtime.retriever.indexed_chunks(), time.perf_counter() - started)  # fmt: skip


class _DiscordThread:
    """The Discord client on a thread of its own. When it ends the server stops too, so a
    failed client ends the process rather than leave a healthy-looking one; ``error`` keeps
    the failure for serve() to raise on the main thread."""

    def __init__(self, runtime: Runtime, server: uvicorn.Server) -> None:
        from bot.discord.app import DiscordRunner

        self.error: Exception | None = None
        self._runner = DiscordRunner(runtime)
        self._server = server
        self._thread = threading.Thread(target=self._run, name="discord", daemon=True)
        self._thread.start()

    def post_notice(self, notice: Notice) -> None:
        self._runner.post_notice(notice)

    def stop(self) -> None:
        """Close the client and wait for it (a while at most: the thread is a daemon)."""
        if self._thread.is_alive():
            self._runner.stop()
            self._thread.join(timeout=DISCORD_STOP_SECONDS)

    def _run(self) -> None:
        try:
            self._runner.run()
        except Exception as exc:
            self.error = exc
        finally:
            self._server.should_exit = True


@dataclass(frozen=True)
class Refusal:
    """Why a request to Slack's endpoint is not handed to bolt: said in the response and the
    log, so it never holds the body or a header's value."""

    status: int
    reason: str


class CheckedSlackHandler(SlackRequestHandler):
    """slack-bolt's ASGI handler with teambot's edge in front of bolt: the body capped at
    MAX_BODY_BYTES, Slack's signature checked on the raw bytes before anything parses them
    (``verified_request``), and bolt's dispatch on a worker thread."""

    def __init__(self, app: SlackApp) -> None:
        super().__init__(app, path=SLACK_PATH)
        self.verifier = app.verifier

    async def dispatch(self, request: AsgiHttpRequest) -> BoltResponse:
        body = await capped_body(request.receive, MAX_BODY_BYTES)
        if body is None:
            return BoltResponse(status=413, body="payload too large")
        headers: dict[str, list[str]] = {}
        for name, value in request.raw_headers:
            headers.setdefault(name.decode("latin-1").lower(), []).append(value.decode("latin-1"))
        checked = verified_request(self.verifier, body, headers, request.query_string)
        if isinstance(checked, Refusal):
            log.warning("refused a request to %s from %s: %s", SLACK_PATH, _client.get(),
                        checked.reason)  # fmt: skip
            return BoltResponse(status=checked.status, body=checked.reason)
        return await asyncio.to_thread(self.app.dispatch, checked)


def verified_request(
    verifier: SignatureVerifier | None, body: bytes, headers: dict[str, list[str]], query: str
) -> BoltRequest | Refusal:
    """The request for bolt, if Slack signed ``body`` (checked before anything parses it) and
    it is the JSON object or form Slack sends; else why not (401 not signed, 400 malformed)."""
    if verifier is None:
        return Refusal(401, "no SLACK_SIGNING_SECRET to check the signature with")
    timestamp = (headers.get("x-slack-request-timestamp") or [""])[0]
    signature = (headers.get("x-slack-signature") or [""])[0]
    if not (timestamp and signature):
        return Refusal(401, "not signed (no X-Slack-Signature or X-Slack-Request-Timestamp)")
    if not (timestamp.isascii() and timestamp.isdigit()):
        return Refusal(401, "X-Slack-Request-Timestamp is not a number")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:  # Slack signs UTF-8 text; these bytes cannot carry its signature
        return Refusal(401, "not signed by Slack (the body is not UTF-8)")
    if not verifier.is_valid(text, timestamp, signature):
        return Refusal(401, "invalid signature, or a timestamp over 5 minutes old")
    try:  # bolt parses in the constructor and reads the result as an object: a JSON array
        return BoltRequest(body=text, query=query, headers=headers)  # is an AttributeError
    except (ValueError, TypeError, AttributeError, KeyError):
        return Refusal(400, "the body is not the JSON object or form Slack sends")


async def _respond(send: Send, status: int, body: str, content_type: str = "text/plain") -> None:
    data = body.encode("utf-8")
    headers = [
        (b"content-type", content_type.encode()),
        (b"content-length", str(len(data)).encode()),
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": data})
