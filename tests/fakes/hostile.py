"""A hostile web site on 127.0.0.1: one attack on the crawler per instance, real HTTP.

Each case of ``CASES`` is something a site can do to a crawler that reads it on a schedule:
decompression bombs, bodies that never end or trickle in, encodings nobody asked for,
sitemaps that multiply, URLs a client cannot parse. A site starts harmless — its start
URL leads to one good page, ``/good.html`` — so a first refresh indexes it;
``turn_hostile()`` turns the attack on for the next. Tests and benches use it alike, choosing
the attack's size in bytes:

    with HostileSite("page-gzip-bomb", size=2 * 2**30) as site:
        add a source of kind ``site.kind`` at ``site.start_url``; refresh;
        ``site.turn_hostile()``; refresh again; the good page must still be there.

Bombs are built once, when the site is made (a 2 GB one takes a few seconds); every other
body is generated while it is sent, so a big ``size`` costs the site no memory.
"""

from __future__ import annotations

import gzip
import threading
import zlib
from collections import Counter
from collections.abc import Iterator
from typing import Literal

from tests.fakes.http import FakeHTTPServer, LocalFake, TrackedHandler

CASES: dict[str, str] = {
    "page-gzip-gzip": "a page sent as Content-Encoding: gzip, gzip, inflating to SIZE bytes",
    "page-gzip-bomb": "a page sent as Content-Encoding: gzip, inflating to SIZE bytes",
    "page-unknown-encoding": "a page sent as Content-Encoding: br",
    "robots-gzip-bomb": "a robots.txt sent as Content-Encoding: gzip, inflating to SIZE bytes",
    "robots-endless": "a robots.txt streamed in chunks with no length, SIZE bytes (no end)",
    "robots-huge": "a plain robots.txt of SIZE bytes of Disallow rules, its length declared",
    "sitemap-gzip-bomb": "a sitemap sent as Content-Encoding: gzip, inflating to SIZE bytes",
    "sitemap-xml-gz-bomb": "a sitemap.xml.gz file whose gzip inflates to SIZE bytes",
    "sitemap-index-amplification": "a sitemap index of 49 sitemaps of SIZE bytes of entries each",
    "slow-page": "a page of SIZE bytes sent one byte every INTERVAL seconds (keep SIZE small)",
    "invalid-url": "a sitemap listing URLs httpx cannot parse besides the good page",
}
DEFAULT_SIZES = {
    "sitemap-index-amplification": 200_000 * 60,  # about 200k entries
    "slow-page": 90,
    "robots-huge": 50 * 2**20,
    "robots-endless": 2**62,  # as good as endless
}
DEFAULT_SIZE = 2 * 2**30  # the bombs: 2 GiB once inflated
CHILD_SITEMAPS = 49
GOOD_PATH = "/good.html"
HOSTILE_PATH = "/hostile.html"
GOOD_QUESTION = "How many daily snapshots does the Zephyr backup rotation keep?"
GOOD_MARKER = "teambot-good-page-marker"  # in the good page's text, for a bench to count
GOOD_HTML = b"""<!doctype html>
<html><head><meta charset="utf-8"><title>Zephyr backups</title></head>
<body><main><h1>Zephyr backups</h1>
<h2 id="rotation">Backup rotation</h2>
<p>The Zephyr backup rotation keeps fourteen daily snapshots and six monthly snapshots.
Older snapshots are deleted after the nightly run, at 03:00 UTC
(teambot-good-page-marker).</p>
</main></body></html>
"""
SLOW_HTML = b"<title>Slow</title><p>A page that arrives one byte at a time.</p>"
ROBOTS_RULES = f"User-agent: *\nDisallow: {HOSTILE_PATH}\n".encode()
TOO_LONG_PATH = "/" + "a" * 70_000  # longer than the 65,536 characters httpx accepts
_BLOCK = 2**20
_SITEMAP_NS = "http://www.sitemaps.org/schemas/sitemap/0.9"


class HostileSite(LocalFake):
    """One ``case`` of ``CASES``; ``size`` is its SIZE, ``interval`` the slow page's pace.
    ``harmless=False`` serves the attack from the start."""

    def __init__(
        self, case: str, size: int | None = None, interval: float = 1.0, harmless: bool = True
    ) -> None:
        if case not in CASES:
            raise ValueError(f"unknown case {case!r}; one of {', '.join(CASES)}")
        self.case = case
        self.size = size if size is not None else DEFAULT_SIZES.get(case, DEFAULT_SIZE)
        self.interval = interval
        self.hostile = not harmless
        self._hits: Counter[str] = Counter()
        self._lock = threading.Lock()
        self.payload = _payload(case, self.size)

    def _new_server(self) -> FakeHTTPServer:
        server = FakeHTTPServer(_Handler, "hostile-site")
        server.site = self  # type: ignore[attr-defined]
        return server

    @property
    def kind(self) -> Literal["site", "sitemap"]:
        """The source kind to register: "sitemap" or "site"."""
        is_sitemap = self.case.startswith("sitemap") or self.case == "invalid-url"
        return "sitemap" if is_sitemap else "site"

    @property
    def start_url(self) -> str:
        if self.case == "sitemap-xml-gz-bomb":
            return self.url("/sitemap.xml.gz")
        return self.url("/sitemap.xml" if self.kind == "sitemap" else "/index.html")

    def url(self, path: str) -> str:
        return self._origin() + path

    def turn_hostile(self) -> None:
        """From now on, serve the attack."""
        self.hostile = True

    def hits(self, path: str) -> int:
        """How many requests for ``path`` (query strings included) arrived."""
        with self._lock:
            return self._hits[path]

    def record(self, path: str) -> None:
        with self._lock:
            self._hits[path] += 1


class _Handler(TrackedHandler):
    def do_GET(self) -> None:
        site: HostileSite = self.server.site  # type: ignore[attr-defined]
        path = self.path
        site.record(path)
        hostile, case = site.hostile, site.case
        if path == "/robots.txt":
            self._robots(site) if hostile and case.startswith("robots") else self._send(404, b"")
        elif path == "/index.html":
            links = [GOOD_PATH, HOSTILE_PATH] if hostile else [GOOD_PATH]
            anchors = "".join(f'<a href="{link}">{link}</a>\n' for link in links)
            self._send(200, f"<title>Home</title><main><p>Start here.</p>{anchors}</main>".encode())
        elif path == GOOD_PATH or path.startswith("/page-"):
            self._send(200, GOOD_HTML if path == GOOD_PATH else b"<title>Filler</title><p>x</p>")
        elif path == HOSTILE_PATH and hostile:
            self._hostile_page(site)
        elif path in ("/sitemap.xml", "/sitemap.xml.gz") or path.startswith("/sitemap-"):
            self._sitemap(site, path)
        else:
            self._send(404, b"")

    def _hostile_page(self, site: HostileSite) -> None:
        if site.case == "page-gzip-gzip":
            self._send(200, site.payload, encoding="gzip, gzip")
        elif site.case == "page-gzip-bomb":
            self._send(200, site.payload, encoding="gzip")
        elif site.case == "page-unknown-encoding":
            self._send(200, b"\x1b\x00\x00\x00 not really brotli", encoding="br")
        elif site.case == "slow-page":
            self._send_slowly(SLOW_HTML.ljust(site.size), site.interval)
        else:  # robots-huge: an ordinary page its robots.txt disallows
            self._send(200, GOOD_HTML.replace(b"Zephyr", b"Hidden"))

    def _robots(self, site: HostileSite) -> None:
        if site.case == "robots-gzip-bomb":
            self._send(200, site.payload, content_type="text/plain", encoding="gzip")
        elif site.case == "robots-endless":
            self._send_chunked(_robots_stream(site.size))
        else:
            self._send(200, site.payload, content_type="text/plain")

    def _sitemap(self, site: HostileSite, path: str) -> None:
        good = _urlset([site.url(GOOD_PATH)])
        hostile, case = site.hostile, site.case
        if path == "/sitemap.xml.gz":
            body = site.payload if hostile else gzip.compress(good)
            self._send(200, body, content_type="application/gzip")
        elif not hostile and path == "/sitemap.xml":
            self._send(200, good, content_type="application/xml")
        elif case == "sitemap-gzip-bomb" and path == "/sitemap.xml":
            self._send(200, site.payload, content_type="application/xml", encoding="gzip")
        elif case == "invalid-url" and path == "/sitemap.xml":
            bad = [site.url(TOO_LONG_PATH), "http://0177.0.0.1/page.html"]
            self._send(200, _urlset([site.url(GOOD_PATH), *bad]), content_type="application/xml")
        elif case == "sitemap-index-amplification" and path == "/sitemap.xml":
            children = [site.url(f"/sitemap-{n}.xml") for n in range(1, CHILD_SITEMAPS + 1)]
            self._send(200, _index(children), content_type="application/xml")
        elif case == "sitemap-index-amplification" and path.startswith("/sitemap-"):
            number = path.removeprefix("/sitemap-").removesuffix(".xml")
            entries = site.size // len(f"<url><loc>{site.url('/page-1-1.html')}</loc></url>\n")
            pages = (site.url(f"/page-{number}-{n}.html") for n in range(entries))
            self._send_chunked(_streamed_urlset(pages), content_type="application/xml")
        else:
            self._send(404, b"")

    # -- the wire ----------------------------------------------------------------------------

    def _send(
        self,
        status: int,
        body: bytes,
        *,
        content_type: str = "text/html; charset=utf-8",
        encoding: str | None = None,
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        if encoding:
            self.send_header("Content-Encoding", encoding)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        for start in range(0, len(body), _BLOCK):
            self.wfile.write(body[start : start + _BLOCK])

    def _send_chunked(self, pieces: Iterator[bytes], content_type: str = "text/plain") -> None:
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        for piece in pieces:
            if self.server.stopping.is_set():
                return
            self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
        self.wfile.write(b"0\r\n\r\n")

    def _send_slowly(self, body: bytes, interval: float) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        for index in range(len(body)):
            self.wfile.write(body[index : index + 1])
            self.wfile.flush()
            if self.server.stopping.wait(interval):
                return


def _gzip_bomb(size: int) -> bytes:
    """gzip of ``size`` spaces, made a block at a time so a big bomb needs little memory."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    block = b" " * _BLOCK
    parts = [compressor.compress(block) for _ in range(size // _BLOCK)]
    parts += [compressor.compress(b" " * (size % _BLOCK)), compressor.flush()]
    return b"".join(parts)


def _payload(case: str, size: int) -> bytes:
    """The case's hostile body, made once, before any request is timed (b"": made as sent)."""
    if case == "page-gzip-gzip":
        return gzip.compress(_gzip_bomb(size))
    if case == "robots-huge":
        return _huge_robots(size)
    return _gzip_bomb(size) if "bomb" in case else b""


def _huge_robots(size: int) -> bytes:
    """The rules, then Disallow lines for other paths until ``size`` bytes: every one a rule
    the stdlib parser keeps and checks each URL against."""
    lines, total, n = [ROBOTS_RULES], len(ROBOTS_RULES), 0
    while total < size:
        line = f"Disallow: /archive/{n}/\n".encode()
        lines.append(line)
        total, n = total + len(line), n + 1
    return b"".join(lines)[:size]


def _robots_stream(size: int) -> Iterator[bytes]:
    """An allow-all group, then comment lines until ``size`` bytes went out."""
    head, filler = b"User-agent: *\nAllow: /\n", b"# more to come\n" * 4096
    yield head
    for _ in range((size - len(head)) // len(filler)):
        yield filler


def _urlset(urls: list[str]) -> bytes:
    return b"".join(_streamed_urlset(iter(urls)))


def _streamed_urlset(urls: Iterator[str]) -> Iterator[bytes]:
    yield f'<?xml version="1.0" encoding="UTF-8"?>\n<urlset xmlns="{_SITEMAP_NS}">\n'.encode()
    batch = []
    for url in urls:
        batch.append(f"<url><loc>{url}</loc></url>\n")
        if len(batch) == 1000:
            yield "".join(batch).encode()
            batch = []
    yield ("".join(batch) + "</urlset>\n").encode()


def _index(urls: list[str]) -> bytes:
    entries = "".join(f"<sitemap><loc>{url}</loc></sitemap>\n" for url in urls)
    return f'<sitemapindex xmlns="{_SITEMAP_NS}">\n{entries}</sitemapindex>\n'.encode()
