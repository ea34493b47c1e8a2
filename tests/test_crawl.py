"""Crawling: the crawler alone on an ``httpx.MockTransport``, then refresh end to end
against a real local doc site over HTTP (scope, politeness, incremental refresh, faults)."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from knowledge.crawl.crawler import (
    USER_AGENT,
    Crawler,
    CrawlLimits,
    CrawlTarget,
    Fetched,
    Validators,
    crawl_in_thread,
)
from knowledge.embed.embedder import Embedder
from knowledge.errors import SourceError
from knowledge.ingest.refresh import refresh
from knowledge.ingest.report import RunReport
from knowledge.ingest.sources import SourceSpec, add_source
from knowledge.retrieval.index import VectorIndex
from knowledge.retrieval.search import Retriever
from knowledge.storage.documents import Chunk, Document, IngestionRun, Source
from knowledge.storage.lease import Lease, SourceBusyError
from tests.fakes.docsite import DOC_PAGES, DocSite

LIMITS = CrawlLimits(timeout=1.0, max_bytes=5 * 2**20, max_redirects=5, per_host=4)

# -- the crawler alone, on an httpx.MockTransport ------------------------------------------

DOCS = "http://127.0.0.1:8000/docs/"
Handler = Callable[[httpx.Request], httpx.Response]


def respond(body: str, media: str = "text/html", **headers: str) -> httpx.Response:
    """A 200 whose body is still to be streamed: the crawler reads raw bytes itself, and a
    Response built from ``text=`` would arrive already read."""
    headers = {"content-type": media, **headers}
    return httpx.Response(200, headers=headers, stream=httpx.ByteStream(body.encode()))


def crawl_mock(
    target: CrawlTarget, handler: Handler, known: dict[str, Validators] | None = None
) -> tuple[dict[str, Fetched], list[httpx.Request]]:
    """Each URL's outcome, and every request that got past the SSRF guard to ``handler``."""
    seen: list[httpx.Request] = []

    def record(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return handler(request)

    crawler = Crawler(target, known or {}, transport=httpx.MockTransport(record))
    return {f.url: f for f in crawl_in_thread(crawler)}, seen


def test_the_crawler_asks_conditionally_and_follows_a_304_pages_known_links() -> None:
    known = {DOCS + "index.html": Validators(etag='"v1"', links=(DOCS + "next.html",))}

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/docs/index.html":
            assert request.headers["if-none-match"] == '"v1"'
            return httpx.Response(304)
        if request.url.path == "/docs/next.html":
            return respond("<h1>Next</h1><p>Still here.</p>", etag='"n1"')
        return httpx.Response(404)

    target = CrawlTarget("site", DOCS + "index.html", allow_private=True, limits=LIMITS)
    found, seen = crawl_mock(target, handler, known)

    assert found[DOCS + "index.html"].outcome == "not_modified"
    assert found[DOCS + "index.html"].links == (DOCS + "next.html",)
    assert (found[DOCS + "next.html"].outcome, found[DOCS + "next.html"].etag) == ("ok", '"n1"')
    assert all(r.headers["user-agent"] == USER_AGENT for r in seen)
    assert all(r.headers["host"] == "127.0.0.1:8000" for r in seen)


def test_robots_txt_keeps_a_disallowed_page_from_being_requested() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/robots.txt":
            return respond("User-agent: *\nDisallow: /docs/private/\n", "text/plain")
        return respond('<h1>Docs</h1><p><a href="private/secret.html">secret</a></p>')

    target = CrawlTarget("site", DOCS + "index.html", allow_private=True, limits=LIMITS)
    found, seen = crawl_mock(target, handler)

    assert found[DOCS + "private/secret.html"].outcome == "disallowed"
    assert [r.url.path for r in seen].count("/robots.txt") == 1
    assert "/docs/private/secret.html" not in {r.url.path for r in seen}


def test_an_injected_transport_still_sits_behind_the_ssrf_guard() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return respond("<h1>Credentials</h1><p>secret-key</p>")

    metadata = "http://169.254.169.254/latest/meta-data/"
    target = CrawlTarget("page", metadata, allow_private=True, limits=LIMITS)
    found, seen = crawl_mock(target, handler)

    assert seen == []  # not even its robots.txt reached the transport
    assert found[metadata].outcome == "disallowed"
    assert "169.254.169.254 is a cloud metadata address" in (found[metadata].reason or "")


# -- refresh end to end, against a real doc site on 127.0.0.1 -------------------------------


@pytest.fixture
def site() -> Iterator[DocSite]:
    with DocSite.with_default_site() as running:
        yield running


def add(sessions: sessionmaker[Session], url: str, name: str = "acme", **options) -> None:
    with sessions.begin() as session:
        add_source(session, SourceSpec(name=name, location=url, allow_private=True, **options))


def run(sessions: sessionmaker[Session], embedder: Embedder, name: str = "acme") -> RunReport:
    return refresh(sessions, embedder, name, limits=LIMITS)


def documents(sessions: sessionmaker[Session]) -> dict[str, list[str]]:
    """url path → its chunks' texts, for every stored document."""
    with sessions() as session:
        rows = session.execute(
            select(Document.url, Chunk.text).join(Chunk).order_by(Document.url, Chunk.ordinal)
        ).all()
    found: dict[str, list[str]] = {}
    for url, text in rows:
        found.setdefault(url.split("://", 1)[1].split("/", 1)[1], []).append(text)
    return found


def issues(report: RunReport) -> dict[str, str]:
    return {i.url.split("/", 3)[-1]: i.error for i in report.issues}


def test_a_site_crawl_indexes_main_content_inside_its_scope(
    sessions: sessionmaker[Session], embedder: Embedder, site: DocSite
) -> None:
    add(sessions, site.url("/docs/index.html"))
    report = run(sessions, embedder)

    stored = documents(sessions)
    assert {f"/{p}".lstrip("/") for p in stored} >= {p.lstrip("/") for p in DOC_PAGES}
    assert "docs/notes.md" in stored and "docs/readme.txt" in stored
    for absent in ("docs/private/secret.html", "outside/page.html", "docs/old-page.html"):
        assert absent not in stored
    problems = issues(report)
    assert problems["docs/private/secret.html"] == "disallowed by robots.txt"
    assert "JavaScript" in problems["docs/app.html"]
    assert "application/octet-stream" in problems["docs/data.bin"]
    assert "canonical" in problems["docs/canonical-dup.html"]
    assert report.pages_failed == 0 and report.pages_new == len(stored)
    text = " ".join(t for texts in stored.values() for t in texts)
    for chrome in ("We use cookies", "All rights reserved", "In this guide"):
        assert chrome not in text
    assert all(r.user_agent == USER_AGENT for r in site.requests)
    with sessions() as session:
        port = session.scalars(select(Chunk).where(Chunk.anchor == "network-port")).one()
        assert "ACME_PORT=7421" in port.text


def test_the_index_follows_a_refresh_without_restarting(
    sessions: sessionmaker[Session], embedder: Embedder, site: DocSite
) -> None:
    retriever = Retriever(sessions, embedder, VectorIndex(sessions, embedder.model_name, 384))
    assert retriever.indexed_chunks() == 0
    add(sessions, site.url("/docs/index.html"))
    run(sessions, embedder)

    best = retriever.search("Which TCP port does an Acme Queue node listen on?", k=1)[0]

    assert best.document_url.endswith("/docs/guide/configure.html")
    assert best.anchor == "network-port"


def test_a_refresh_with_nothing_changed_embeds_nothing_and_gets_304s(
    sessions: sessionmaker[Session], embedder: Embedder, site: DocSite
) -> None:
    add(sessions, site.url("/docs/index.html"))
    first = run(sessions, embedder)
    before = documents(sessions)
    site.reset_requests()

    second = run(sessions, embedder)

    assert second.chunks_embedded == 0
    assert (second.pages_new, second.pages_changed, second.pages_removed) == (0, 0, 0)
    assert second.pages_unchanged == first.pages_new
    for path in DOC_PAGES:  # a page that a redirect also leads to may be asked twice
        assert {r.status for r in site.hits(path)} == {304}
        assert all(r.headers["if-none-match"] for r in site.hits(path))
    assert documents(sessions) == before


def test_changing_one_section_re_embeds_only_that_chunk(
    sessions: sessionmaker[Session], embedder: Embedder, site: DocSite
) -> None:
    add(sessions, site.url("/docs/index.html"))
    run(sessions, embedder)
    path = "/docs/guide/configure.html"
    page = site.hits(path)  # served once; now edit one sentence of it
    assert page
    html = _served_body(site, path)
    site.set_page(path, html.replace("7421", "7500"))

    report = run(sessions, embedder)

    assert (report.pages_changed, report.pages_new) == (1, 0)
    assert report.chunks_embedded == 1
    assert report.chunks_reused >= 1
    assert any("7500" in t for t in documents(sessions)["docs/guide/configure.html"])


def test_a_removed_page_loses_its_chunks(
    sessions: sessionmaker[Session], embedder: Embedder, site: DocSite
) -> None:
    add(sessions, site.url("/docs/index.html"))
    run(sessions, embedder)
    site.remove_page("/docs/guide/backups.html")

    report = run(sessions, embedder)

    assert report.pages_removed == 1
    assert "docs/guide/backups.html" not in documents(sessions)


def test_a_page_no_longer_linked_goes_after_the_grace_runs(
    sessions: sessionmaker[Session], embedder: Embedder, site: DocSite
) -> None:
    site.set_page("/small/index.html", '<h1>Small</h1><p>See <a href="a.html">A</a>.</p>')
    site.set_page("/small/a.html", "<h1>A page</h1><p>Alpha content about retention.</p>")
    add(sessions, site.url("/small/index.html"), name="small")
    run(sessions, embedder, "small")
    site.set_page("/small/index.html", "<h1>Small</h1><p>No more links here.</p>")

    first = run(sessions, embedder, "small")
    assert first.pages_removed == 0 and "small/a.html" in documents(sessions)
    second = run(sessions, embedder, "small")
    assert second.pages_removed == 1 and "small/a.html" not in documents(sessions)


def test_faults_are_reported_and_lose_nothing(
    sessions: sessionmaker[Session], embedder: Embedder, site: DocSite
) -> None:
    add(sessions, site.url("/docs/index.html"))
    run(sessions, embedder)
    before = documents(sessions)
    site.add_faults()

    report = run(sessions, embedder)

    problems = issues(report)
    assert problems["docs/faults/slow.html"] == "timed out after 1 s"
    assert problems["docs/faults/error.html"] == "HTTP 500"
    assert "redirect loop" in problems["docs/faults/loop-a.html"]
    assert problems["docs/faults/huge.html"] == "larger than 5 MB"
    assert problems["docs/faults/binary.html"] == "binary content served as text/html"
    metadata, private = "169.254.169.254 is a cloud metadata address", "10.0.0.1 is a private"
    assert metadata in problems["docs/faults/to-metadata.html"]
    assert private in problems["docs/faults/to-private.html"]
    assert metadata in problems["latest/meta-data/"]  # the link on every page, reported once
    assert private in problems["internal"]
    stored = documents(sessions)
    assert "docs/faults/malformed.html" in stored  # broken markup, real text: indexed
    for path, texts in before.items():
        if path != "docs/index.html":  # the index page gained links to the faults
            assert stored[path] == texts
    with sessions() as session:
        last = session.scalars(select(IngestionRun).order_by(IngestionRun.id.desc())).first()
        assert last is not None and last.status == "partial"
        assert {e["url"].split("/", 3)[-1] for e in last.errors} >= set(problems) - {""}


def test_a_robots_txt_that_disallows_everything_indexes_and_removes_nothing(
    sessions: sessionmaker[Session], embedder: Embedder, site: DocSite
) -> None:
    add(sessions, site.url("/docs/index.html"))
    run(sessions, embedder)
    before = documents(sessions)
    site.set_robots("User-agent: *\nDisallow: /\n")

    for _ in range(3):  # more than the grace runs
        report = run(sessions, embedder)
        assert report.pages_fetched == 0
        assert set(issues(report).values()) == {"disallowed by robots.txt"}
    assert documents(sessions) == before


def test_a_sitemap_source_skips_pages_whose_lastmod_did_not_move(
    sessions: sessionmaker[Session], embedder: Embedder, site: DocSite
) -> None:
    site.set_sitemap_index(True)
    add(sessions, site.url("/sitemap.xml"), kind="sitemap", exclude=("/private/",))
    first = run(sessions, embedder)
    assert first.pages_new >= len(DOC_PAGES)
    assert "outside/page.html" in documents(sessions)  # a sitemap covers its whole host
    site.reset_requests()

    second = run(sessions, embedder)

    assert second.pages_unchanged == first.pages_new and second.chunks_embedded == 0
    assert all(not site.hits(path) for path in DOC_PAGES)  # not even a conditional GET


def test_robots_txt_is_fetched_once_per_run_though_pages_are_fetched_at_once(
    sessions: sessionmaker[Session], embedder: Embedder, site: DocSite
) -> None:
    add(sessions, site.url("/sitemap.xml"), kind="sitemap")  # its pages are fetched 4 at once
    report = run(sessions, embedder)
    assert report.pages_new >= len(DOC_PAGES)
    assert len(site.hits("/robots.txt")) == 1


def test_a_single_page_source_follows_no_links(
    sessions: sessionmaker[Session], embedder: Embedder, site: DocSite
) -> None:
    add(sessions, site.url("/docs/faq.html"), kind="page")
    report = run(sessions, embedder)
    assert (report.pages_seen, report.pages_new) == (1, 1)
    assert list(documents(sessions)) == ["docs/faq.html"]


def test_private_and_metadata_addresses_are_refused_when_adding(
    sessions: sessionmaker[Session], site: DocSite
) -> None:
    with sessions.begin() as session, pytest.raises(SourceError, match="--allow-private"):
        add_source(session, SourceSpec(name="local", location=site.url("/docs/")))
    with sessions.begin() as session, pytest.raises(SourceError, match="metadata"):
        add_source(
            session,
            SourceSpec(name="meta", location="http://169.254.169.254/latest/", allow_private=True),
        )
    with sessions() as session:
        assert session.scalars(select(Source)).all() == []


def test_one_refresh_of_a_source_at_a_time(
    any_sessions: sessionmaker[Session], embedder: Embedder, site: DocSite
) -> None:
    sessions = any_sessions  # on SQLite and PostgreSQL
    add(sessions, site.url("/docs/index.html"))
    with sessions() as session:
        source_id = session.scalars(select(Source.id)).one()
    held = Lease(sessions, source_id)
    held.acquire()
    with pytest.raises(SourceBusyError, match="being refreshed"):
        run(sessions, embedder)
    held.release()
    assert run(sessions, embedder).pages_new > 0


def test_a_lease_left_by_a_dead_process_on_this_host_is_taken_over(
    sessions: sessionmaker[Session], embedder: Embedder, site: DocSite
) -> None:
    add(sessions, site.url("/docs/faq.html"), kind="page")
    with sessions.begin() as session:
        source = session.scalars(select(Source)).one()
        source.lease_owner = f"{Lease(sessions, source.id).owner.split(':')[0]}:999999999:dead"
        source.lease_expires_at = source.updated_at.replace(year=2999)
    assert run(sessions, embedder).pages_new == 1


def test_a_page_served_under_two_addresses_is_stored_once_under_the_shorter(
    sessions: sessionmaker[Session], embedder: Embedder, site: DocSite
) -> None:
    install = _served_body(site, "/docs/guide/install.html")
    site.set_page("/docs/guide/install-copy.html", install)  # a mirror, as / and /index.html
    site.add_links("/docs/index.html", ["guide/install-copy.html"])
    add(sessions, site.url("/docs/index.html"))

    first = run(sessions, embedder)
    second = run(sessions, embedder)

    stored = documents(sessions)
    assert "docs/guide/install.html" in stored
    assert "docs/guide/install-copy.html" not in stored
    assert site.hits("/docs/guide/install-copy.html")
    for report in (first, second):
        assert issues(report)["docs/guide/install-copy.html"] == (
            f"the same content as {site.url('/docs/guide/install.html')}"
        )
    assert second.chunks_embedded == 0 and second.pages_removed == 0
    retriever = Retriever(sessions, embedder, VectorIndex(sessions, embedder.model_name, 384))
    found = retriever.search("How do I install Acme Queue?", k=5)
    assert len({c.text for c in found}) == len(found)


def test_a_stored_page_that_becomes_a_copy_of_another_is_removed(
    sessions: sessionmaker[Session], embedder: Embedder, site: DocSite
) -> None:
    install = _served_body(site, "/docs/guide/install.html")
    site.set_page("/docs/guide/install-old.html", install.replace("Acme Queue", "Acme Queue 1"))
    site.add_links("/docs/index.html", ["guide/install-old.html"])
    add(sessions, site.url("/docs/index.html"))
    run(sessions, embedder)
    assert "docs/guide/install-old.html" in documents(sessions)
    site.set_page("/docs/guide/install-old.html", install)

    report = run(sessions, embedder)

    assert report.pages_removed == 1
    assert report.chunks_embedded == 0
    assert "docs/guide/install-old.html" not in documents(sessions)
    assert "docs/guide/install.html" in documents(sessions)


def _served_body(site: DocSite, path: str) -> str:
    import httpx

    return httpx.get(site.url(path)).text
