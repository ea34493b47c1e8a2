"""The HTTP plumbing every local protocol fake shares.

Each fake (the doc site, the OpenAI-compatible server, and the chat platforms to come) serves
real HTTP on 127.0.0.1 with a random port, in a background thread, so the code under test talks
to it exactly as it would to the real service. Tests start and stop many of them, often while a
client is still waiting on a slow, hanging or streaming answer, so stopping must be prompt and
complete: it cuts every open connection, wakes handlers that wait on ``stopping`` and joins every
handler thread, so no thread or socket outlives the test that made it. This module does that
once: a fake is a ``LocalFake`` (start, stop, ``with``) whose ``FakeHTTPServer`` subclass holds
what its ``TrackedHandler`` subclass answers with.
"""

from __future__ import annotations

import contextlib
import socket
import sys
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Self, TypeVar


class FakeHTTPServer(ThreadingHTTPServer):
    """A server on 127.0.0.1 (random port) that tracks its connections and handler threads.

    ``thread_name`` prefixes the names of its threads: ``NAME-PORT`` serves, and each
    ``NAME-PORT-handler`` answers one connection. ``stop()`` sets ``stopping``: a handler that
    sleeps or waits should wait on it instead, so that it ends at once when the fake stops.
    """

    daemon_threads = True  # a forgotten stop() never blocks the interpreter's exit

    def __init__(self, handler_class: type[BaseHTTPRequestHandler], thread_name: str) -> None:
        super().__init__(("127.0.0.1", 0), handler_class)
        self.thread_name = thread_name
        self.stopping = threading.Event()
        self._lock = threading.Lock()
        self._connections: set[socket.socket] = set()
        self._handlers: list[threading.Thread] = []
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Serve in a background (daemon) thread."""
        self._thread = threading.Thread(
            target=self.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"{self.thread_name}-{self.server_address[1]}",
            daemon=True,
        )
        self._thread.start()

    def stop(self) -> None:
        """Stop serving, cut open connections, wake waiting handlers and join every thread."""
        thread = self._thread
        if thread is not None:
            self.shutdown()  # waits for serve_forever() to return: only if it runs
        self.close_connections()
        self.server_close()  # joins the handler threads
        if thread is not None:
            thread.join()

    def process_request(self, request: Any, client_address: Any) -> None:
        # ThreadingMixIn does not keep daemon threads for server_close() to join: we do.
        thread = threading.Thread(
            target=self.process_request_thread,
            args=(request, client_address),
            name=f"{self.thread_name}-{self.server_address[1]}-handler",
            daemon=True,
        )
        with self._lock:
            self._handlers = [handler for handler in self._handlers if handler.is_alive()]
            self._handlers.append(thread)
        thread.start()

    def server_close(self) -> None:
        super().server_close()
        with self._lock:
            handlers = list(self._handlers)
        for handler in handlers:
            handler.join(timeout=5.0)
            if handler.is_alive():
                raise RuntimeError(f"{handler.name} did not stop")

    def track(self, connection: socket.socket) -> None:
        with self._lock:
            self._connections.add(connection)
            if self.stopping.is_set():
                shutdown_connection(connection)

    def untrack(self, connection: socket.socket) -> None:
        with self._lock:
            self._connections.discard(connection)

    def close_connections(self) -> None:
        with self._lock:
            self.stopping.set()
            for connection in self._connections:
                shutdown_connection(connection)

    def handle_error(self, request: Any, client_address: Any) -> None:
        if isinstance(sys.exc_info()[1], OSError):
            return  # the client went away (or stop() cut it off): nothing to report
        super().handle_error(request, client_address)


class TrackedHandler(BaseHTTPRequestHandler):
    """HTTP/1.1 keep-alive, quiet, sends at once, and known to its ``FakeHTTPServer``."""

    protocol_version = "HTTP/1.1"
    timeout = 30  # idle keep-alive connections end by themselves
    server: FakeHTTPServer

    def setup(self) -> None:
        super().setup()
        # Headers, bodies and stream events go out in separate small writes: each must leave at
        # once, not wait for Nagle's algorithm and delayed ACKs (~40 ms per keep-alive answer).
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.server.track(self.connection)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.untrack(self.connection)

    def log_message(self, format: str, *args: object) -> None:
        pass  # quiet: tests read the fake's recorded requests instead


class LocalFake:
    """Start, stop and ``with`` for a fake; a subclass makes its server in ``_new_server()``."""

    _server: FakeHTTPServer | None = None

    def _new_server(self) -> FakeHTTPServer:
        raise NotImplementedError

    def start(self) -> Self:
        if self._server is not None:
            raise RuntimeError(f"{type(self).__name__} already started")
        self._server = self._new_server()
        self._server.start()
        return self

    def stop(self) -> None:
        """Stop serving, cut open connections, wake waiting handlers and join every thread."""
        if self._server is None:
            return
        self._server.stop()
        self._server = None

    def __enter__(self) -> Self:
        return self if self._server is not None else self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _origin(self) -> str:
        """``http://127.0.0.1:PORT`` of the running server."""
        if self._server is None:
            raise RuntimeError(f"{type(self).__name__} not started")
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"


def shutdown_connection(connection: socket.socket) -> None:
    """Shut ``connection`` down both ways (it may already be closed)."""
    with contextlib.suppress(OSError):
        connection.shutdown(socket.SHUT_RDWR)


T = TypeVar("T")


class Changes:
    """Lets a test wait until a fake has recorded what it expects (bots answer on other
    threads): the fake calls ``notify()`` whenever it records something."""

    def __init__(self) -> None:
        self._changed = threading.Condition()
        self._version = 0

    def notify(self) -> None:
        with self._changed:
            self._version += 1
            self._changed.notify_all()

    def wait_for(self, predicate: Callable[[], T], timeout: float = 10.0) -> T:
        """Poll ``predicate`` until it returns something true, and return that.

        It is checked again whenever the fake records something (and every 50 ms, for
        conditions on other things); TimeoutError after ``timeout`` seconds.
        """
        deadline = time.monotonic() + timeout
        while True:
            with self._changed:
                seen = self._version
            value = predicate()
            if value:
                return value
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"condition not met within {timeout} s")
            with self._changed:
                if self._version == seen:
                    self._changed.wait(min(remaining, 0.05))
