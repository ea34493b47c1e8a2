"""A fake documentation web site, served for real over HTTP on 127.0.0.1.

Crawler tests point the real crawler at this site instead of the internet: it speaks plain
HTTP/1.1 (standard library only) on 127.0.0.1 with a random port, in a background thread, and
behaves like a small static doc host: ETag / Last-Modified with 304 answers to conditional
requests, HEAD, robots.txt, sitemap.xml (or a sitemap index), redirects, error statuses, slow
and huge responses. Every request is recorded so tests can assert what the crawler did
(including requests it gave up on: they are recorded before any delay).

The site never makes outgoing connections. Its links and redirects to ``10.0.0.1``,
``169.254.169.254`` and ``example.com`` exist only so the crawler can be seen to refuse them.

    with DocSite.with_default_site() as site:
        crawl(site.url("/docs/index.html"))
        assert site.hits("/docs/private/secret.html") == []
"""

from __future__ import annotations

import hashlib
import random
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import Message
from email.utils import formatdate, parsedate_to_datetime
from http import HTTPStatus
from urllib.parse import urlsplit
from xml.sax.saxutils import escape

from tests.fakes.http import FakeHTTPServer, LocalFake, TrackedHandler

CHUNK_SIZE = 64 * 1024
SITEMAP_NS = "http://www.sitemaps.org/schemas/sitemap/0.9"
BASE_URL_TOKEN = "{base_url}"  # replaced by the live base URL in robots.txt text


@dataclass
class Request:
    """One request as the site saw it; ``status`` is None until the answer is sent."""

    method: str
    path: str  # the request target as sent, query string included
    headers: dict[str, str]  # lower-cased names
    status: int | None = None
    user_agent: str = ""


@dataclass(frozen=True)
class _Page:
    body: bytes
    content_type: str
    modified: int  # epoch seconds of the last change of the body
    send_etag: bool
    send_last_modified: bool

    @property
    def etag(self) -> str:
        return '"' + hashlib.sha256(self.body).hexdigest()[:16] + '"'

    @property
    def last_modified(self) -> str:
        return formatdate(self.modified, usegmt=True)

    def validators(self) -> dict[str, str]:
        headers = {}
        if self.send_etag:
            headers["ETag"] = self.etag
        if self.send_last_modified:
            headers["Last-Modified"] = self.last_modified
        return headers

    def is_not_modified(self, headers: Message) -> bool:
        """RFC 9110 §13.2.2: If-None-Match decides when present, else If-Modified-Since."""
        if_none_match = headers.get("If-None-Match")
        if if_none_match is not None:
            tags = {tag.strip().removeprefix("W/") for tag in if_none_match.split(",")}
            return self.send_etag and ("*" in tags or self.etag in tags)
        if_modified_since = headers.get("If-Modified-Since")
        if if_modified_since is None or not self.send_last_modified:
            return False
        try:
            since = parsedate_to_datetime(if_modified_since).timestamp()
        except (TypeError, ValueError):
            return False
        return since >= self.modified


@dataclass(frozen=True)
class _Redirect:
    location: str
    status: int


@dataclass(frozen=True)
class _Huge:
    size: int
    declare_length: bool
    content_type: str


@dataclass(frozen=True)
class _Plain:
    """A generated answer: errors, robots.txt, sitemaps."""

    status: int
    body: bytes
    content_type: str


_Route = _Page | _Redirect | _Huge


class DocSite(LocalFake):
    """A doc site on 127.0.0.1; configure it with the setters, before or after start()."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._routes: dict[str, _Route] = {}
        self._statuses: dict[str, int] = {}
        self._delays: dict[str, float] = {}
        self._requests: list[Request] = []
        self._robots: str | None = None
        self._sitemap_index = False
        self.sitemap_enabled = True

    # -- lifecycle ---------------------------------------------------------------------------

    def _new_server(self) -> _Server:
        return _Server(self)

    @property
    def base_url(self) -> str:
        return self._origin()

    def url(self, path: str) -> str:
        return self.base_url + path

    # -- content -----------------------------------------------------------------------------

    def set_page(
        self,
        path: str,
        body: str | bytes,
        *,
        content_type: str = "text/html; charset=utf-8",
        etag: bool = True,
        last_modified: bool = True,
    ) -> None:
        """Serve ``body`` at ``path``; Last-Modified moves (by at least 1 s) only if it changed."""
        data = body.encode() if isinstance(body, str) else body
        with self._lock:
            old = self._routes.get(path)
            now = int(time.time())
            if isinstance(old, _Page):
                modified = old.modified if old.body == data else max(now, old.modified + 1)
            else:
                modified = now
            self._routes[path] = _Page(data, content_type, modified, etag, last_modified)
            self._statuses.pop(path, None)

    def remove_page(self, path: str) -> None:
        with self._lock:
            self._routes.pop(path, None)
            self._statuses.pop(path, None)

    def set_status(self, path: str, status: int) -> None:
        """Answer ``status`` (with a small HTML body) instead of the route; 200 restores it."""
        with self._lock:
            if status == 200:
                self._statuses.pop(path, None)
            else:
                self._statuses[path] = status

    def redirect(self, path: str, location: str, status: int = 301) -> None:
        with self._lock:
            self._routes[path] = _Redirect(location, status)
            self._statuses.pop(path, None)

    def set_robots(self, text: str | None) -> None:
        """robots.txt text (``{base_url}`` is filled in when served); None → 404."""
        with self._lock:
            self._robots = text
            self._statuses.pop("/robots.txt", None)

    def set_robots_status(self, status: int) -> None:
        self.set_status("/robots.txt", status)

    def set_delay(self, path: str, seconds: float) -> None:
        """Sleep ``seconds`` before answering ``path`` (0 removes the delay)."""
        with self._lock:
            if seconds > 0:
                self._delays[path] = seconds
            else:
                self._delays.pop(path, None)

    def set_huge(
        self,
        path: str,
        size_bytes: int,
        *,
        declare_length: bool = True,
        content_type: str = "text/html",
    ) -> None:
        """Stream ``size_bytes`` of filler; without a declared length it is sent chunked."""
        with self._lock:
            self._routes[path] = _Huge(size_bytes, declare_length, content_type)
            self._statuses.pop(path, None)

    def set_sitemap_index(self, enabled: bool) -> None:
        """True → /sitemap.xml is an index of /sitemap-1.xml and /sitemap-2.xml."""
        with self._lock:
            self._sitemap_index = enabled

    def add_links(self, path: str, hrefs: Iterable[str]) -> None:
        """Append links to the page at ``path`` (before ``</main>``), changing its body."""
        with self._lock:
            page = self._routes[path]
        if not isinstance(page, _Page):
            raise TypeError(f"{path} is not a page")
        items = "".join(f'<li><a href="{escape(href)}">{escape(href)}</a></li>\n' for href in hrefs)
        html = page.body.decode()
        block = f'<ul class="more-links">\n{items}</ul>\n'
        html = html.replace("</main>", block + "</main>", 1) if "</main>" in html else html + block
        self.set_page(
            path,
            html,
            content_type=page.content_type,
            etag=page.send_etag,
            last_modified=page.send_last_modified,
        )

    def add_faults(self) -> None:
        """Set up the pages under /docs/faults/ and link every one from /docs/index.html."""
        self.set_page(FAULT_SLOW, _page_html("Slow page", SLOW_MAIN))
        self.set_delay(FAULT_SLOW, 10.0)
        self.set_status(FAULT_ERROR, 500)
        self.redirect(FAULT_LOOP_A, FAULT_LOOP_B)
        self.redirect(FAULT_LOOP_B, FAULT_LOOP_A)
        self.set_huge(FAULT_HUGE, 50 * 1024 * 1024)
        self.set_page(FAULT_BINARY, _binary_bytes(seed=2, size=4096))
        self.set_page(FAULT_MALFORMED, MALFORMED_HTML)
        self.redirect(FAULT_TO_METADATA, METADATA_URL, 302)
        self.redirect(FAULT_TO_PRIVATE, PRIVATE_URL, 302)
        self.add_links("/docs/index.html", FAULT_PAGES)

    # -- observation -------------------------------------------------------------------------

    @property
    def requests(self) -> list[Request]:
        """Every request so far, in arrival order (a copy)."""
        with self._lock:
            return list(self._requests)

    def hits(self, path: str) -> list[Request]:
        """Requests for ``path``; a ``path`` without ``?`` matches it with any query string."""
        if "?" in path:
            return [r for r in self.requests if r.path == path]
        return [r for r in self.requests if r.path.split("?", 1)[0] == path]

    def reset_requests(self) -> None:
        with self._lock:
            self._requests.clear()

    # -- the default site --------------------------------------------------------------------

    @classmethod
    def with_default_site(cls) -> DocSite:
        """A fresh, not yet started site with the Acme Queue docs (see HTML_PAGES)."""
        site = cls()
        for path, (title, main) in HTML_PAGES.items():
            site.set_page(path, _page_html(title, main))
        faq_title, faq_main = HTML_PAGES["/docs/faq.html"]
        site.set_page(
            "/docs/canonical-dup.html", _page_html(faq_title, faq_main, canonical="/docs/faq.html")
        )
        site.set_page("/docs/app.html", APP_SHELL_HTML)
        site.set_page("/static/app.js", APP_JS, content_type="application/javascript")
        site.set_page(
            "/docs/data.bin",
            _binary_bytes(seed=1, size=2048),
            content_type="application/octet-stream",
        )
        site.set_page("/docs/notes.md", NOTES_MD, content_type="text/markdown; charset=utf-8")
        site.set_page("/docs/readme.txt", README_TXT, content_type="text/plain; charset=utf-8")
        site.redirect("/docs/old-page.html", "/docs/guide/install.html")
        site.set_robots(DEFAULT_ROBOTS)
        return site

    # -- used by the request handler ---------------------------------------------------------

    def _record(self, request: Request) -> None:
        with self._lock:
            self._requests.append(request)

    def _delay(self, path: str) -> float:
        with self._lock:
            return self._delays.get(path, 0.0)

    def _resolve(self, path: str) -> _Route | _Plain:
        """What to answer for ``path`` (query string already removed)."""
        with self._lock:
            if path in self._statuses:
                return _error(self._statuses[path])
            if path in self._routes:
                return self._routes[path]
            if path == "/robots.txt":
                return self._robots_answer()
            if path in ("/sitemap.xml", "/sitemap-1.xml", "/sitemap-2.xml"):
                return self._sitemap_answer(path)
            return _error(404)

    def _robots_answer(self) -> _Plain:
        if self._robots is None:
            return _error(404)
        text = self._robots.replace(BASE_URL_TOKEN, self.base_url)
        return _Plain(200, text.encode(), "text/plain; charset=utf-8")

    def _sitemap_answer(self, path: str) -> _Plain:
        is_part = path != "/sitemap.xml"
        if not self.sitemap_enabled or (is_part and not self._sitemap_index):
            return _error(404)
        pages = self._sitemap_pages()
        half = (len(pages) + 1) // 2
        parts = {"/sitemap-1.xml": pages[:half], "/sitemap-2.xml": pages[half:]}
        if path in parts:
            xml = _urlset(self.base_url, parts[path])
        elif self._sitemap_index:
            xml = _sitemap_index(self.base_url, parts)
        else:
            xml = _urlset(self.base_url, pages)
        return _Plain(200, xml.encode(), "application/xml; charset=utf-8")

    def _sitemap_pages(self) -> list[tuple[str, int]]:
        """(path, modified) of every HTML page answered with 200, sorted by path."""
        return sorted(
            (path, route.modified)
            for path, route in self._routes.items()
            if isinstance(route, _Page)
            and route.content_type.startswith("text/html")
            and path not in self._statuses
        )


# -- HTTP ------------------------------------------------------------------------------------


class _Server(FakeHTTPServer):
    """Serves one DocSite (its handlers reach it as ``self.server.site``)."""

    def __init__(self, site: DocSite) -> None:
        super().__init__(_Handler, "docsite")
        self.site = site


class _Handler(TrackedHandler):
    server_version = "AcmeDocs/1.0"
    server: _Server
    record: Request | None = None

    def handle_one_request(self) -> None:
        self.record = None  # a fresh request on this connection
        super().handle_one_request()

    def send_response(self, code: int, message: str | None = None) -> None:
        if self.record is not None:
            self.record.status = code
        super().send_response(code, message)

    def do_GET(self) -> None:
        self._answer(head=False)

    def do_HEAD(self) -> None:
        self._answer(head=True)

    def _answer(self, *, head: bool) -> None:
        site = self.server.site
        headers = {name.lower(): value for name, value in self.headers.items()}
        self.record = Request(self.command, self.path, headers, None, headers.get("user-agent", ""))
        site._record(self.record)
        path = urlsplit(self.path).path
        delay = site._delay(path)
        if delay and self.server.stopping.wait(delay):
            self.close_connection = True
            return
        try:
            self._send(site._resolve(path), head=head)
        except (BrokenPipeError, ConnectionResetError, ConnectionAbortedError):
            self.close_connection = True

    def _send(self, answer: _Route | _Plain, *, head: bool) -> None:
        match answer:
            case _Page():
                self._send_page(answer, head=head)
            case _Redirect():
                body = f'<!doctype html><p>Moved to <a href="{escape(answer.location)}">here</a>.'
                headers = {"Location": answer.location}
                self._send_body(
                    answer.status, body.encode(), "text/html; charset=utf-8", head, headers
                )
            case _Huge():
                self._send_huge(answer, head=head)
            case _Plain():
                self._send_body(answer.status, answer.body, answer.content_type, head)

    def _send_page(self, page: _Page, *, head: bool) -> None:
        if page.is_not_modified(self.headers):
            self.send_response(304)
            for name, value in page.validators().items():
                self.send_header(name, value)
            self.end_headers()
            return
        self._send_body(200, page.body, page.content_type, head, page.validators())

    def _send_body(
        self,
        status: int,
        body: bytes,
        content_type: str,
        head: bool,
        extra: dict[str, str] | None = None,
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in (extra or {}).items():
            self.send_header(name, value)
        self.end_headers()
        if not head:
            self.wfile.write(body)

    def _send_huge(self, huge: _Huge, *, head: bool) -> None:
        self.send_response(200)
        self.send_header("Content-Type", huge.content_type)
        if huge.declare_length:
            self.send_header("Content-Length", str(huge.size))
        else:
            self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        if head:
            return
        remaining = huge.size
        while remaining > 0:
            block = FILLER[: min(remaining, CHUNK_SIZE)]
            if huge.declare_length:
                self.wfile.write(block)
            else:
                self.wfile.write(b"%x\r\n%b\r\n" % (len(block), block))
            remaining -= len(block)
        if not huge.declare_length:
            self.wfile.write(b"0\r\n\r\n")


# -- generated bodies ------------------------------------------------------------------------


def _error(status: int) -> _Plain:
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        phrase = "Error"
    body = (
        f"<!doctype html><html><head><title>{status} {phrase}</title></head>"
        f"<body><h1>{status} {phrase}</h1><p>Acme Docs could not serve this page.</p></body></html>"
    )
    return _Plain(status, body.encode(), "text/html; charset=utf-8")


def _w3c_datetime(epoch_seconds: int) -> str:
    return datetime.fromtimestamp(epoch_seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _urlset(base_url: str, pages: list[tuple[str, int]]) -> str:
    entries = "".join(
        f"  <url><loc>{escape(base_url + path)}</loc>"
        f"<lastmod>{_w3c_datetime(modified)}</lastmod></url>\n"
        for path, modified in pages
    )
    return (
        f'<?xml version="1.0" encoding="UTF-8"?>\n'
        f'<urlset xmlns="{SITEMAP_NS}">\n{entries}</urlset>\n'
    )


def _sitemap_index(base_url: str, parts: dict[str, list[tuple[str, int]]]) -> str:
    entries = ""
    for path, pages in parts.items():
        lastmod = f"<lastmod>{_w3c_datetime(max(m for _, m in pages))}</lastmod>" if pages else ""
        entries += f"  <sitemap><loc>{escape(base_url + path)}</loc>{lastmod}</sitemap>\n"
    return (
        f'<?xml version="1.0" encoding="UTF-8"?>\n'
        f'<sitemapindex xmlns="{SITEMAP_NS}">\n{entries}</sitemapindex>\n'
    )


def _binary_bytes(*, seed: int, size: int) -> bytes:
    """Random-looking bytes with NULs in them, the same on every run."""
    return b"\x00ACME\x00\x01\x02" + random.Random(seed).randbytes(size)


# -- the default site's content --------------------------------------------------------------

METADATA_URL = "http://169.254.169.254/latest/meta-data/"
PRIVATE_URL = "http://10.0.0.1/internal"
EXTERNAL_URL = "https://example.com/"

DEFAULT_ROBOTS = (
    "User-agent: *\nDisallow: /docs/private/\nCrawl-delay: 0\nSitemap: {base_url}/sitemap.xml\n"
)

FAULT_SLOW = "/docs/faults/slow.html"
FAULT_ERROR = "/docs/faults/error.html"
FAULT_LOOP_A = "/docs/faults/loop-a.html"
FAULT_LOOP_B = "/docs/faults/loop-b.html"
FAULT_HUGE = "/docs/faults/huge.html"
FAULT_BINARY = "/docs/faults/binary.html"
FAULT_MALFORMED = "/docs/faults/malformed.html"
FAULT_TO_METADATA = "/docs/faults/to-metadata.html"
FAULT_TO_PRIVATE = "/docs/faults/to-private.html"
FAULT_PAGES = (
    FAULT_SLOW,
    FAULT_ERROR,
    FAULT_LOOP_A,
    FAULT_LOOP_B,
    FAULT_HUGE,
    FAULT_BINARY,
    FAULT_MALFORMED,
    FAULT_TO_METADATA,
    FAULT_TO_PRIVATE,
)

FILLER = (b"<p>Acme Queue filler text for size limits.</p>\n" * (CHUNK_SIZE // 40 + 1))[:CHUNK_SIZE]

NAV = """<nav>
  <a href="/docs/index.html">Home</a>
  <a href="/docs/guide/install.html">Install</a>
  <a href="/docs/guide/configure.html">Configure</a>
  <a href="/docs/guide/backups.html">Backups</a>
  <a href="/docs/reference/cli.html">CLI reference</a>
  <a href="/docs/faq.html">FAQ</a>
</nav>"""

SIDEBAR = """<div class="sidebar">
  <p>In this guide</p>
  <ul>
    <li><a href="/docs/guide/install.html#requirements">System requirements</a></li>
    <li><a href="/docs/guide/configure.html#network-port">Network port</a></li>
    <li><a href="/docs/guide/backups.html#restore">Restoring a snapshot</a></li>
    <li><a href="/docs/faq.html#dead-letters">Dead letters</a></li>
  </ul>
</div>"""


def _page_html(title: str, main: str, *, canonical: str | None = None) -> str:
    """A full page in the site's chrome (banner, nav, sidebar, cookie banner, footer)."""
    canonical_link = f'\n<link rel="canonical" href="{canonical}">' if canonical else ""
    return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{title} — Acme Docs</title>{canonical_link}
</head>
<body>
<header><div class="banner">Acme Docs · Acme Queue 2.4 documentation</div></header>
{NAV}
{SIDEBAR}
<div id="cookie-banner">We use cookies to remember your preferences. <button>Accept</button></div>
<main>
{main.strip()}
</main>
<footer>© 2024 Acme Corp. All rights reserved. <a href="/docs/readme.txt">Licensing</a></footer>
</body>
</html>
"""


INDEX_MAIN = f"""
<h1>Acme Queue documentation</h1>
<h2 id="overview">What Acme Queue does</h2>
<p>Acme Queue is a durable message broker for small teams that want reliable background work
without running a cluster of specialised services. Producers publish messages to named topics,
and consumers read them in groups, acknowledging each message once it has been handled.
Messages that are not acknowledged within the visibility timeout are delivered again, so a
crashed worker never silently loses work. A single node handles tens of thousands of messages
per second on ordinary hardware, and every message is written to disk before the publish call
returns.</p>
<h2 id="where-to-start">Where to start</h2>
<p>New operators should begin with <a href="guide/install.html">installing Acme Queue</a>, then
read how to <a href="guide/configure.html#network-port">configure the network port</a> and
<a href="/docs/guide/backups.html?utm_source=x">back up a node</a>. The
<a href="reference/cli.html">command-line reference</a> lists every acmeq subcommand, and the
<a href="faq.html?utm_source=x&amp;utm_medium=docs">frequently asked questions</a> cover
ordering, message size and dead letters.</p>
<h2 id="more">More resources</h2>
<ul>
  <li><a href="old-page.html">The old installation page</a> (moved)</li>
  <li><a href="canonical-dup.html">FAQ mirror</a> and the <a href="app.html">web console</a></li>
  <li><a href="notes.md">Release notes</a>, <a href="readme.txt">support and licensing</a>,
    <a href="data.bin">sample data file</a></li>
  <li><a href="private/secret.html">Staff runbook</a> and
    <a href="/outside/page.html">the Acme blog</a></li>
  <li><a href="mailto:docs@acme.example">Report a docs problem</a> or visit the
    <a href="{EXTERNAL_URL}">community forum</a></li>
  <li><a href="{PRIVATE_URL}">Internal wiki</a> and the
    <a href="{METADATA_URL}">instance metadata</a></li>
</ul>
"""

INSTALL_MAIN = """
<h1>Installing Acme Queue</h1>
<h2 id="requirements">System requirements</h2>
<p>Acme Queue runs on Linux (x86-64 and ARM64) and on macOS 13 or newer. A node needs at least
two CPU cores, 4 GB of memory and a local SSD. Network file systems are not supported, because
the write-ahead log relies on fsync behaving honestly; a node on NFS may lose acknowledged
messages after a power cut.</p>
<h2 id="packages">Installing the package</h2>
<p>On Debian and Ubuntu, add the Acme package repository and run <code>apt install
acme-queue</code>. On Red Hat based systems use <code>dnf install acme-queue</code>, and on macOS
use <code>brew install acme/tap/acme-queue</code>. The package creates an acme system user,
installs the acmeq command-line tool and registers a systemd unit called acme-queue.service that
is enabled but not started.</p>
<h2 id="verify">Verifying the installation</h2>
<p>Start the service with <code>systemctl start acme-queue</code>, then run <code>acmeq
status</code>. A healthy node reports its version, its data directory and the word ready. If the
status command cannot connect, check the port described in
<a href="configure.html#network-port">Configuring Acme Queue</a> and make sure no other program
already listens on it.</p>
"""

CONFIGURE_MAIN = """
<h1>Configuring Acme Queue</h1>
<h2 id="config-file">Configuration file</h2>
<p>Acme Queue reads its settings from <code>/etc/acme/queue.toml</code> at start-up. Every
setting can also be given as an environment variable, which wins over the file; this keeps
container deployments simple because nothing needs to be mounted. Changes take effect after a
restart of the service, except the log level, which is read again when the process receives
SIGHUP.</p>
<h2 id="network-port">Network port</h2>
<p>By default a node listens for producers and consumers on TCP port 7421, set with
<code>ACME_PORT=7421</code>. To move it, give another free port, for example
<code>ACME_PORT=8800</code>, or set <code>port</code> in the <code>[network]</code> table of the
configuration file. The admin dashboard always listens on the client port plus one, so open both
ports in your firewall and update the address your clients use.</p>
<h2 id="storage">Storage directory</h2>
<p>Messages and the write-ahead log live under <code>ACME_DATA_DIR</code>, which defaults to
<code>/var/lib/acme-queue</code>. Put it on a local SSD with at least twice the space of your
largest expected backlog, because compaction temporarily copies segments. Read
<a href="backups.html">Backups and restore</a> before moving the directory to another disk.</p>
"""

BACKUPS_MAIN = """
<h1>Backups and restore</h1>
<h2 id="snapshots">Taking a snapshot</h2>
<p>Run <code>acmeq snapshot create</code> to write a consistent copy of every topic to the
snapshot directory. The command pauses compaction for a few seconds but never blocks publishers
or consumers. Snapshots are compressed with zstd and are usually about a fifth of the size of the
live data, so keeping several of them is cheap.</p>
<h2 id="restore">Restoring a snapshot</h2>
<p>Stop the service, run <code>acmeq snapshot restore</code> with the snapshot file name, and
start the service again. Restoring replaces all topics on the node: messages published after the
snapshot was taken are lost, so restore into a fresh node when you only need to recover a single
topic and copy its messages across by hand.</p>
<h2 id="retention">Snapshot schedule and retention</h2>
<p>Schedule a snapshot every night with the timer unit acme-queue-snapshot.timer that ships with
the package. The node keeps seven daily and four weekly snapshots by default; change this with
<code>ACME_SNAPSHOT_KEEP</code>. Copy snapshots off the machine, for instance to object storage,
because a snapshot on the same disk does not protect you from a disk failure.</p>
"""

CLI_MAIN = """
<h1>Command-line reference</h1>
<h2 id="publish">acmeq publish</h2>
<p><code>acmeq publish</code> sends one message to a topic, as in <code>acmeq publish orders
'payload'</code>. Use <code>--key</code> to route related messages to the same partition so that
they keep their order, and <code>--delay 30s</code> to hide a message from consumers for thirty
seconds after it is published.</p>
<h2 id="consume">acmeq consume</h2>
<p><code>acmeq consume</code> reads from a topic as a member of a consumer group, as in
<code>acmeq consume orders --group billing --exec ./handle.sh</code>. Each message is passed to
the command and acknowledged once the command exits with status zero; a non-zero exit makes the
message visible again after the visibility timeout.</p>
<h2 id="status">acmeq status and topics</h2>
<p><code>acmeq status</code> prints the health of the node, and <code>acmeq topics list</code>
shows each topic with its backlog and the age of its oldest message. All commands accept
<code>--host</code> and <code>--port</code>; they default to localhost and to the port from the
<a href="../guide/configure.html#network-port">network settings</a>. Setting up the tool is
covered in <a href="../guide/install.html">Installing Acme Queue</a>.</p>
"""

FAQ_MAIN = f"""
<h1>Frequently asked questions</h1>
<h2 id="ordering">Is message order guaranteed?</h2>
<p>Order is kept within a partition. Messages published with the same key always land on the
same partition, so they are delivered in the order they were published; messages with different
keys may be interleaved. If you need a strict global order, use a topic with one partition and
accept the lower throughput.</p>
<h2 id="message-size">What is the largest message I can publish?</h2>
<p>A single message may be at most 1 MiB. Larger payloads belong elsewhere, for example in object
storage, with only a reference placed on the queue. The limit protects consumers from unbounded
memory use and keeps snapshots small.</p>
<h2 id="dead-letters">What happens to messages that keep failing?</h2>
<p>After five failed deliveries a message moves to the dead-letter queue of its topic, named after
the topic with a <code>.dlq</code> suffix. Inspect it with <code>acmeq consume orders.dlq</code>
and republish repaired messages by hand. Still stuck? Write to
<a href="mailto:support@acme.example">support@acme.example</a> or ask in the
<a href="{EXTERNAL_URL}">community forum</a>.</p>
"""

SECRET_MAIN = """
<h1>Internal on-call runbook</h1>
<h2 id="escalation">Escalation</h2>
<p>This page is for Acme staff only and must never appear in public answers. When the backlog of
a production node grows for more than twenty minutes, the on-call engineer pages the storage team
through the red escalation channel and opens an incident in the tracker. Customer communication
is handled by the duty manager, never by the engineer on call.</p>
<h2 id="break-glass">Break-glass access</h2>
<p>The staging break-glass code word is PELICAN-ORANGE. It unlocks the emergency admin account
for one hour and is rotated every Tuesday morning. Every use is logged and reviewed at the
weekly operations meeting, so write down why you needed it before you use it.</p>
"""

OUTSIDE_MAIN = """
<h1>Why we built Acme Queue</h1>
<h2 id="origins">Where it started</h2>
<p>Acme Queue began as a weekend project in the office of a small logistics company whose
invoices kept disappearing between two cron jobs. The team wanted something that stored every
message on disk, retried failures on its own and could be understood by one person in an
afternoon. The first version was four hundred lines long and ran on a single spare laptop.</p>
<h2 id="today">Where it is today</h2>
<p>Today the project has contributors on five continents and runs in hospitals, bakeries and
railway depots. We still judge every feature by the same question: can a tired operator at three
in the morning understand what the queue is doing? This blog collects the stories of the people
who run it.</p>
"""

HTML_PAGES: dict[str, tuple[str, str]] = {
    "/docs/index.html": ("Acme Queue documentation", INDEX_MAIN),
    "/docs/guide/install.html": ("Installing Acme Queue", INSTALL_MAIN),
    "/docs/guide/configure.html": ("Configuring Acme Queue", CONFIGURE_MAIN),
    "/docs/guide/backups.html": ("Backups and restore", BACKUPS_MAIN),
    "/docs/reference/cli.html": ("Command-line reference", CLI_MAIN),
    "/docs/faq.html": ("Frequently asked questions", FAQ_MAIN),
    "/docs/private/secret.html": ("Internal on-call runbook", SECRET_MAIN),
    "/outside/page.html": ("Acme blog", OUTSIDE_MAIN),
}
"""Pages in the site's chrome; the first six are the docs a crawl of /docs/ should index."""

DOC_PAGES = tuple(HTML_PAGES)[:6]

APP_SHELL_HTML = """<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>Acme Console — Acme Docs</title></head>
<body>
<div id="root"></div>
<noscript>You need to enable JavaScript to run this app.</noscript>
<script src="/static/app.js"></script>
</body>
</html>
"""

APP_JS = 'document.getElementById("root").textContent = "Acme Console";\n'

NOTES_MD = """# Acme Queue 2.4 release notes

## Highlights

Version 2.4 adds per-topic retention limits. Set `retention.max_age` on a topic to drop
acknowledged messages older than the given age, for example `7d`, and `retention.max_bytes` to
cap the disk space a topic may use. Both limits are checked during compaction, so space is freed
within a few minutes rather than instantly.

## Upgrading from 2.3

Upgrades are rolling: stop one node, install the new package and start it again before moving to
the next. The on-disk format is unchanged, so a node can be downgraded to 2.3 as long as no topic
uses the new retention settings. Read the [backup guide](guide/backups.html) and take a snapshot
before you begin.

## Fixed problems

The `acmeq topics list` command no longer reports a negative backlog after a restore, and the
dashboard now shows the consumer group lag in messages instead of bytes.
"""

README_TXT = """ACME QUEUE SUPPORT AND LICENSING

Acme Queue is released under the Acme Community License 1.1. You may run it in production,
modify it and ship it inside your own products free of charge; you may not offer it as a hosted
queue service to third parties without a commercial agreement.

Commercial support contracts come in two tiers. Standard support answers tickets within one
business day. Enterprise support adds a four-hour response time around the clock, a named
engineer and help with capacity planning before large launches.

To reach the support desk, write to support@acme.example with your contract number, the output
of `acmeq status` and the relevant part of the service log. Security problems should be reported
privately to security@acme.example; we acknowledge reports within two days.
"""

SLOW_MAIN = """
<h1>Slow page</h1>
<h2 id="why">Why this page is slow</h2>
<p>This page takes ten seconds to answer, longer than any sensible crawl timeout.</p>
"""

MALFORMED_HTML = """<html><head><title>Recovering a stuck consumer — Acme Docs
<body><main><h1>Recovering a stuck consumer<p>If a consumer group stops acknowledging messages,
run acmeq consumer reset --group billing to release its leases. <<<>> <div <b>unclosed bold
<h2 id="checks">Checks<p>Look at the group lag first <table><tr><td>lag<td>age
<p>Garbage follows: </div></span>&&&; <script>not closed
"""
