"""A polite, guarded async crawler for documentation sites, sitemaps and single pages.

Polite: robots.txt and its crawl-delay are honoured, requests per host are
bounded, conditional requests (If-None-Match / If-Modified-Since) let the
server answer 304, and a sitemap's <lastmod> skips pages without a request.
Guarded: every hop, redirects included, goes through the SSRF guard; every
body (page, robots.txt, sitemap) is read by ``BodyReader``, which decodes it
itself and stops at its cap, and every request has a deadline however slowly
its bytes trickle in; pages are redirect-capped (redirects are followed by
hand, so a hop outside the source or to a page already indexed is not even
requested, and a redirect's own body is never read); anything that is not
HTML, Markdown, text or PDF is skipped and counted. The
crawler only fetches; it never touches the database — it reports each page
as a ``Fetched`` and the caller decides.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import queue
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Literal
from urllib.parse import urlsplit

import httpx

from knowledge.crawl.bounded_body import ACCEPT_ENCODING, BodyReader, UnreadableBodyError
from knowledge.crawl.links import extract_links
from knowledge.crawl.netguard import AddressPolicy, GuardedTransport
from knowledge.crawl.robots import MAX_ROBOTS_BYTES, Robots
from knowledge.crawl.sitemap import MAX_SITEMAP_BYTES, SitemapEntry, SitemapReader
from knowledge.crawl.urls import UrlRules, canonicalize, in_scope
from knowledge.errors import BlockedURLError, SourceError
from knowledge.storage.db import as_utc

log = logging.getLogger(__name__)

USER_AGENT = "teambot/0.1 (documentation indexer; honours robots.txt)"
ROBOTS_AGENT = "teambot"
MAX_SITEMAPS = 50
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
MEDIA_SUFFIXES = {
    "text/html": ".html",
    "application/xhtml+xml": ".html",
    "text/markdown": ".md",
    "text/x-markdown": ".md",
    "text/plain": ".txt",
    "application/pdf": ".pdf",
}
# Served as "some bytes" by many static hosts: read as a PDF when the URL ends in .pdf.
GENERIC_MEDIA = frozenset({"application/octet-stream", "binary/octet-stream", "application/x-pdf"})
# "disallowed": robots.txt forbids it now; what was indexed from it before is kept.
Outcome = Literal["ok", "not_modified", "gone", "failed", "skipped", "disallowed"]
Emit = Callable[["Fetched"], None]
# What one request can fail with; _problem() words each for the run's report.
_REQUEST_ERRORS = (
    httpx.HTTPError,
    httpx.InvalidURL,  # not an HTTPError: a URL httpx cannot parse, such as http://0177.0.0.1/
    BlockedURLError,
    UnreadableBodyError,
    TimeoutError,  # the deadline of the whole request
)


@dataclass(frozen=True)
class CrawlLimits:
    """Bounds of one crawl. Sizes are decoded bytes; ``timeout`` bounds each read (and the
    connect), ``deadline`` a whole request however slowly its bytes arrive."""

    max_pages: int = 2000
    max_depth: int = 20
    max_bytes: int = 10 * 1024 * 1024
    max_sitemap_bytes: int = MAX_SITEMAP_BYTES
    max_robots_bytes: int = MAX_ROBOTS_BYTES
    max_redirects: int = 5
    timeout: float = 20.0
    deadline: float = 60.0
    per_host: int = 4


@dataclass(frozen=True)
class CrawlTarget:
    """What to crawl: a ``site`` from a start URL, a ``sitemap``, or one ``page``."""

    kind: Literal["site", "sitemap", "page"]
    start_url: str
    rules: UrlRules = field(default_factory=UrlRules)
    allow_private: bool = False
    limits: CrawlLimits = field(default_factory=CrawlLimits)

    @property
    def scope(self) -> str:
        """Site: under the start URL's folder. Sitemap: the sitemap's host. Page: itself."""
        if self.kind == "sitemap":
            parts = urlsplit(self.start_url)
            return f"{parts.scheme}://{parts.netloc}/"
        return self.start_url

    @property
    def policy(self) -> AddressPolicy:
        host = urlsplit(self.start_url).hostname or ""
        return AddressPolicy(allow_private=self.allow_private, private_hosts=frozenset({host}))


@dataclass(frozen=True)
class Validators:
    """What we know of a page from the last run, for conditional requests."""

    etag: str | None = None
    last_modified: str | None = None
    sitemap_lastmod: datetime | None = None
    links: tuple[str, ...] = ()


@dataclass(frozen=True)
class Fetched:
    """One page's outcome. ``reason`` explains failed and skipped pages."""

    url: str
    outcome: Outcome
    text: str | bytes | None = None  # bytes for a PDF
    suffix: str | None = None
    etag: str | None = None
    last_modified: str | None = None
    sitemap_lastmod: datetime | None = None
    links: tuple[str, ...] = ()
    reason: str | None = None


class _HostGate:
    """At most ``per_host`` requests at once per host, spaced by the robots crawl-delay."""

    def __init__(self, per_host: int, delay: float) -> None:
        self._slots = asyncio.Semaphore(1 if delay > 0 else per_host)
        self._delay = delay
        self._next = 0.0

    async def __aenter__(self) -> None:
        await self._slots.acquire()
        wait = self._next - time.monotonic()
        if wait > 0:
            await asyncio.sleep(wait)

    async def __aexit__(self, *exc: object) -> None:
        self._next = time.monotonic() + self._delay
        self._slots.release()


class Crawler:
    """Crawls one target; ``complete`` is False when limits or failures hid part of it.

    ``reads`` holds the ``BodyReader`` of each body read, by URL (the last read of it), so
    what the crawl held in memory can be checked through their counters.

    ``transport`` replaces the network below the SSRF guard (tests pass an
    ``httpx.MockTransport``); the guard always stays in front of it, so no caller can
    send a request to an address the target's policy refuses.
    """

    def __init__(
        self,
        target: CrawlTarget,
        known: dict[str, Validators],
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.target = target
        self.known = known
        self._transport = transport
        self.complete = True
        self.reads: dict[str, BodyReader] = {}
        self._seen: set[str] = set()
        self._robots: dict[str, Robots] = {}
        self._robots_locks: dict[str, asyncio.Lock] = {}
        self._gates: dict[str, _HostGate] = {}
        self._cancelled = threading.Event()

    def cancel(self) -> None:
        self._cancelled.set()

    async def run(self, emit: Callable[[Fetched], None]) -> None:
        limits = self.target.limits
        async with httpx.AsyncClient(
            transport=GuardedTransport(self.target.policy, inner=self._transport),
            follow_redirects=False,  # by hand, in _fetch, to judge each hop first
            timeout=httpx.Timeout(limits.timeout, connect=min(10.0, limits.timeout)),
            headers={"User-Agent": USER_AGENT, "Accept-Encoding": ACCEPT_ENCODING},
        ) as client:
            start = canonicalize(self.target.start_url)
            if start is None:
                raise SourceError(f"Not an http(s) URL: {self.target.start_url}")
            if self.target.kind == "sitemap":
                await self._crawl_sitemap(client, start, emit)
            else:
                await self._crawl_links(client, start, emit)

    async def _crawl_links(self, client: httpx.AsyncClient, start: str, emit: Emit) -> None:
        frontier: asyncio.Queue[tuple[str, int]] = asyncio.Queue()
        self._seen.add(start)
        frontier.put_nowait((start, 0))

        async def worker() -> None:
            while True:
                url, depth = await frontier.get()
                try:
                    if not self._cancelled.is_set():
                        for link in await self._visit(client, url, depth, emit):
                            frontier.put_nowait((link, depth + 1))
                except Exception as exc:  # one bad page must not stop the crawl
                    log.exception("crawling %s failed", url)
                    emit(_failed(url, f"internal error: {type(exc).__name__}: {exc}"))
                finally:
                    frontier.task_done()

        workers = [asyncio.create_task(worker()) for _ in range(self.target.limits.per_host)]
        await frontier.join()
        for task in workers:
            task.cancel()

    async def _visit(
        self, client: httpx.AsyncClient, url: str, depth: int, emit: Emit
    ) -> list[str]:
        """Fetch one page, emit it, and return the new links to follow."""
        fetched, html = await self._fetch(client, url)
        if depth == 0 and fetched.outcome not in ("ok", "not_modified"):
            self.complete = False  # without the start page, absence proves nothing
        if self.target.kind == "page":
            emit(fetched)
            return []
        if fetched.outcome == "not_modified":  # go on through the links it had last time
            known = self.known.get(fetched.url, Validators())
            emit(replace(fetched, links=known.links))
            return self._claim(list(known.links), depth + 1)
        if fetched.outcome != "ok" or html is None:
            emit(fetched)
            return []
        found = extract_links(html, fetched.url)
        for link in found.links:  # say so when a page points at addresses we never fetch
            refusal = self._refusal(link)
            if refusal and link not in self._seen:
                self._seen.add(link)
                emit(_skipped(link, f"linked from {fetched.url}, not followed: {refusal}"))
        canonical = found.canonical
        if canonical and canonical != fetched.url and self._in_scope(canonical):
            emit(_skipped(fetched.url, f"a duplicate of its canonical {canonical}"))
            return self._claim([canonical], depth)
        emit(replace(fetched, links=tuple(found.links)))
        return self._claim(found.links, depth + 1)

    def _claim(self, links: list[str], depth: int) -> list[str]:
        """The links not seen before that the source covers, within the depth and page limits."""
        if depth > self.target.limits.max_depth:
            return []
        fresh = []
        for link in links:
            if link in self._seen or not self._in_scope(link):
                continue
            if len(self._seen) >= self.target.limits.max_pages:
                self.complete = False
                break
            self._seen.add(link)
            fresh.append(link)
        return fresh

    def _in_scope(self, url: str) -> bool:
        return in_scope(url, self.target.scope) and self.target.rules.allows(url)

    async def _crawl_sitemap(self, client: httpx.AsyncClient, start: str, emit: Emit) -> None:
        pending: list[tuple[str, datetime | None]] = []

        def take(entry: SitemapEntry) -> bool:
            """Collect one listed page; False once the source's page limit is reached."""
            url = canonicalize(entry.loc)
            if url is None or url in self._seen or not self._in_scope(url):
                return True
            if len(self._seen) >= self.target.limits.max_pages:
                self.complete = False
                return False
            self._seen.add(url)
            if _unchanged_since(entry, self.known.get(url)):
                emit(Fetched(url, "not_modified"))
            else:
                pending.append((url, entry.lastmod))
            return True

        await self._read_sitemaps(client, start, take)
        slots = asyncio.Semaphore(self.target.limits.per_host)

        async def fetch(url: str, lastmod: datetime | None) -> None:
            async with slots:
                if self._cancelled.is_set():
                    return
                fetched, _ = await self._fetch(client, url)
                emit(_with_lastmod(fetched, lastmod))

        await asyncio.gather(*(fetch(url, lastmod) for url, lastmod in pending))

    async def _read_sitemaps(
        self, client: httpx.AsyncClient, start: str, take: Callable[[SitemapEntry], bool]
    ) -> None:
        """Hand ``take`` the page entries of the sitemap, following sitemap indexes, until
        it has had enough: a child sitemap is not even requested once the source is full."""
        to_read, read = [start], 0
        while to_read:
            read += 1
            children: list[str] = []
            if not await self._read_sitemap(client, to_read.pop(0), take, children):
                return
            to_read.extend(c for c in children if self._in_scope_host(c))
            room = MAX_SITEMAPS - read
            if len(to_read) > room:  # those beyond are never read: absence proves nothing
                self.complete = False
                del to_read[room:]

    async def _read_sitemap(
        self,
        client: httpx.AsyncClient,
        url: str,
        take: Callable[[SitemapEntry], bool],
        children: list[str],
    ) -> bool:
        """Stream one sitemap into ``take`` (pages) or ``children`` (an index's sitemaps),
        parsing as it arrives; False when ``take`` had enough and the reading stopped."""
        limit = self.target.limits.max_sitemap_bytes
        body, sitemap = self._reader(url, limit), SitemapReader(limit)
        wanted_more = True
        try:
            async with self._gate(url), self._open(client, url) as response:
                status = response.status_code
                if status == 200:
                    wanted_more = await _stream_sitemap(response, body, sitemap, take, children)
        except (*_REQUEST_ERRORS, SourceError) as exc:
            raise SourceError(f"Cannot read the sitemap {url}: {self._problem(exc)}") from None
        if status != 200:
            raise SourceError(f"The sitemap {url} answered HTTP {status}.")
        if sitemap.capped:  # the protocol's limit: what lies beyond is not read
            log.warning("the sitemap %s lists more than %d entries", url, sitemap.max_entries)
            self.complete = False
        return wanted_more

    def _in_scope_host(self, url: str) -> bool:
        canonical = canonicalize(url)
        return canonical is not None and in_scope(canonical, self.target.scope)

    async def _fetch(self, client: httpx.AsyncClient, url: str) -> tuple[Fetched, str | None]:
        """GET one page, following redirects by hand so each hop is judged before it is
        requested; returns its outcome and, for HTML, the markup to find links in."""
        hops, mine = [url], {url}  # mine: hops no other link or redirect claimed first
        try:
            while len(hops) <= self.target.limits.max_redirects + 1:
                current = hops[-1]
                robots = await self._robots_for(client, current)
                if not robots.allowed(current):
                    return Fetched(current, "disallowed", reason=robots.refusal), None
                known = self.known.get(current, Validators())
                async with (
                    self._gate(current),
                    self._open(client, current, _conditional(known)) as response,
                ):
                    if not _is_redirect(response):
                        if current not in mine:  # its own link fetches it
                            return _skipped(url, f"redirects to {current}, indexed once"), None
                        fetched = await self._read(current, response, known)
                        return fetched, fetched.text if fetched.suffix == ".html" else None
                    target = canonicalize(response.headers.get("location", ""), base=current)
                problem = self._redirect_problem(hops, target)
                if problem is not None:
                    return problem, None
                hops.append(target)  # type: ignore[arg-type]
                if target not in self._seen:
                    self._seen.add(target)  # type: ignore[arg-type]
                    mine.add(target)  # type: ignore[arg-type]
            return _failed(url, f"more than {self.target.limits.max_redirects} redirects"), None
        except _REQUEST_ERRORS as exc:
            return _failed(url, self._problem(exc)), None

    @contextlib.asynccontextmanager
    async def _open(
        self, client: httpx.AsyncClient, url: str, headers: dict[str, str] | None = None
    ) -> AsyncIterator[httpx.Response]:
        """GET ``url`` as a stream, all of it within the request deadline (TimeoutError)."""
        async with (
            asyncio.timeout(self.target.limits.deadline),
            client.stream("GET", url, headers=headers) as response,
        ):
            yield response

    def _reader(self, url: str, limit: int) -> BodyReader:
        reader = self.reads[url] = BodyReader(limit)
        return reader

    def _problem(self, exc: Exception) -> str:
        """What went wrong with a request, for the run's report."""
        if isinstance(exc, TimeoutError):
            return f"took longer than {self.target.limits.deadline:g} s"
        if isinstance(exc, httpx.TimeoutException):
            return f"timed out after {self.target.limits.timeout:g} s"
        if isinstance(exc, httpx.InvalidURL):
            return f"not a URL teambot can fetch ({exc})"
        if isinstance(exc, httpx.HTTPError):
            return f"{type(exc).__name__}: {exc}"
        return str(exc)  # our own errors, written to be read

    def _redirect_problem(self, hops: list[str], target: str | None) -> Fetched | None:
        """Why the redirect from ``hops[-1]`` to ``target`` is not followed, if it is not."""
        url = hops[0]
        if target is None:
            return _failed(url, "redirects to something that is not an http(s) URL")
        if target in hops:
            return _failed(url, "a redirect loop: " + " → ".join([*hops, target]))
        if not self._in_scope(target):
            refusal = self._refusal(target)
            if refusal:
                return _failed(url, f"redirects to {target}, refused: {refusal}")
            return _skipped(url, f"redirects outside the source, to {target}")
        return None

    def _refusal(self, url: str) -> str | None:
        """The guard's reason to refuse a URL whose host is an IP literal (no DNS needed)."""
        host = urlsplit(url).hostname or ""
        try:
            ip = ipaddress.ip_address(host)
        except ValueError:
            return None
        return self.target.policy.refusal(host, ip)

    async def _read(self, final: str, response: httpx.Response, known: Validators) -> Fetched:
        """Judge a final response by its status, type and size, then read its text."""
        status = response.status_code
        if status == 304:
            return Fetched(
                final, "not_modified", etag=known.etag, last_modified=known.last_modified
            )
        if status in (404, 410):
            return Fetched(final, "gone", reason=f"HTTP {status}")
        if status != 200:
            return _failed(final, f"HTTP {status}")
        media = response.headers.get("content-type", "").split(";")[0].strip().lower()
        suffix = _suffix_of(media, final)
        if suffix is None:
            return _skipped(final, f"not a type teambot reads ({media or 'no content type'})")
        limit = self.target.limits.max_bytes
        if int(response.headers.get("content-length") or 0) > limit:
            return _failed(final, _too_large(limit))
        reader = self._reader(final, limit)
        body = await reader.read(response)
        if reader.at_cap:
            return _failed(final, _too_large(limit))
        if suffix == ".pdf":  # bytes: knowledge/ingest/pdf.py reads them, bounded, apart
            return Fetched(
                final,
                "ok",
                text=body,
                suffix=suffix,
                etag=response.headers.get("etag"),
                last_modified=response.headers.get("last-modified"),
            )
        if b"\x00" in body[:8192]:
            return _failed(final, f"binary content served as {media}")
        return Fetched(
            final,
            "ok",
            text=body.decode(response.encoding or "utf-8", errors="replace"),
            suffix=suffix,
            etag=response.headers.get("etag"),
            last_modified=response.headers.get("last-modified"),
        )

    def _gate(self, url: str) -> _HostGate:
        host = urlsplit(url).netloc
        robots = self._robots.get(host)
        delay = robots.crawl_delay if robots and robots.crawl_delay else 0.0
        if host not in self._gates:
            self._gates[host] = _HostGate(self.target.limits.per_host, delay)
        return self._gates[host]

    async def _robots_for(self, client: httpx.AsyncClient, url: str) -> Robots:
        """The host's rules, fetched once per run however many requests ask at once."""
        parts = urlsplit(url)
        host = parts.netloc
        async with self._robots_locks.setdefault(host, asyncio.Lock()):
            if host not in self._robots:
                robots_url = f"{parts.scheme}://{host}/robots.txt"
                self._robots[host] = await self._read_robots(client, robots_url)
        return self._robots[host]

    async def _read_robots(self, client: httpx.AsyncClient, robots_url: str) -> Robots:
        """RFC 9309: 4xx allows all; 5xx or an unreadable file denies all for this run.
        Only the first ``max_robots_bytes`` are parsed (see knowledge/crawl/robots.py)."""
        limit = self.target.limits.max_robots_bytes
        reader = self._reader(robots_url, limit)
        try:
            async with self._open(client, robots_url) as response:
                status = response.status_code
                if status >= 500:
                    return self._robots_unreadable(robots_url, f"answered HTTP {status}")
                if status != 200:
                    return Robots.allow_all(ROBOTS_AGENT)
                body = await reader.read(response)
                has_length = "content-length" in response.headers
        except _REQUEST_ERRORS as exc:
            return self._robots_unreadable(robots_url, f"could not be read: {self._problem(exc)}")
        if reader.at_cap:
            size = f"{limit / 1024:g} KiB"
            if reader.encoding != "identity":
                return self._robots_unreadable(
                    robots_url, f"is larger than {size} once decompressed"
                )
            if not has_length:
                return self._robots_unreadable(
                    robots_url, f"goes on past {size} with no declared end"
                )
            body = body[: body.rfind(b"\n") + 1]  # the rest is ignored; a cut line is no rule
        return Robots.parse(body.decode("utf-8", errors="replace"), ROBOTS_AGENT)

    def _robots_unreadable(self, robots_url: str, why: str) -> Robots:
        log.warning("%s %s: crawling nothing on that host this run", robots_url, why)
        self.complete = False
        return Robots.deny_all(ROBOTS_AGENT, why)


def _suffix_of(media: str, url: str) -> str | None:
    """How to read a body of type ``media`` fetched from ``url`` (None: not at all)."""
    if media in GENERIC_MEDIA and urlsplit(url).path.lower().endswith(".pdf"):
        return ".pdf"
    return MEDIA_SUFFIXES.get(media)


def _is_redirect(response: httpx.Response) -> bool:
    # Not Response.is_redirect: in httpx 0.28 it is true for any 3xx, 304 included.
    return response.status_code in REDIRECT_STATUSES and "location" in response.headers


def _conditional(known: Validators) -> dict[str, str]:
    """Headers that let the server answer 304 Not Modified."""
    headers = {}
    if known.etag:
        headers["If-None-Match"] = known.etag
    if known.last_modified:
        headers["If-Modified-Since"] = known.last_modified
    return headers


def _failed(url: str, reason: str) -> Fetched:
    return Fetched(url, "failed", reason=reason)


def _skipped(url: str, reason: str) -> Fetched:
    return Fetched(url, "skipped", reason=reason)


def _too_large(limit: int) -> str:
    return f"larger than {limit / 2**20:g} MB"


async def _stream_sitemap(
    response: httpx.Response,
    body: BodyReader,
    sitemap: SitemapReader,
    take: Callable[[SitemapEntry], bool],
    children: list[str],
) -> bool:
    """Parse a sitemap's body as it streams in; False as soon as ``take`` has had enough."""
    async with contextlib.aclosing(body.stream(response)) as pieces:
        async for piece in pieces:
            if not _offer(sitemap, sitemap.feed(piece), take, children):
                return False
            if sitemap.capped:
                return True
    if body.at_cap:
        raise SourceError(f"it is {_too_large(body.limit)}")
    return _offer(sitemap, sitemap.close(), take, children)


def _offer(
    sitemap: SitemapReader,
    entries: list[SitemapEntry],
    take: Callable[[SitemapEntry], bool],
    children: list[str],
) -> bool:
    """Pass a sitemap's entries on; False as soon as ``take`` has had enough."""
    for entry in entries:
        if sitemap.is_index:
            children.append(entry.loc)
        elif not take(entry):
            return False
    return True


def _unchanged_since(entry: SitemapEntry, known: Validators | None) -> bool:
    """The sitemap says the page has not changed since we fetched it."""
    if known is None or entry.lastmod is None or known.sitemap_lastmod is None:
        return False
    return entry.lastmod <= as_utc(known.sitemap_lastmod)


def _with_lastmod(fetched: Fetched, lastmod: datetime | None) -> Fetched:
    return replace(fetched, sitemap_lastmod=lastmod)


def crawl_in_thread(
    crawler: Crawler, idle: Callable[[], None] | None = None, idle_seconds: float = 1.0
) -> Iterator[Fetched]:
    """Run the crawler on its own event loop in a thread; yield pages as they arrive.

    The caller embeds and stores on its own thread meanwhile, so network and
    CPU work overlap. While no page arrives, ``idle`` is called every
    ``idle_seconds`` (to renew a lease while slow pages are in flight); an error
    it raises ends the iteration. Stopping the iteration early cancels the crawl.
    """
    # Unbounded: a full queue would block the crawler's event loop and time out its requests.
    results: queue.Queue[Fetched | BaseException | None] = queue.Queue()

    def run() -> None:
        try:
            asyncio.run(crawler.run(results.put))
        except BaseException as exc:  # handed to the consumer, which re-raises it
            results.put(exc)
        else:
            results.put(None)

    thread = threading.Thread(target=run, name="teambot-crawl", daemon=True)
    thread.start()
    try:
        while (item := _next_result(results, idle, idle_seconds)) is not None:
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        crawler.cancel()
        thread.join()


def _next_result(
    results: queue.Queue[Fetched | BaseException | None],
    idle: Callable[[], None] | None,
    idle_seconds: float,
) -> Fetched | BaseException | None:
    while True:
        try:
            return results.get(timeout=idle_seconds if idle else None)
        except queue.Empty:  # only with a timeout, that is with idle
            if idle is not None:
                idle()
