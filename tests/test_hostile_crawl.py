"""Crawling hostile sites: every response is read within its cap and its deadline, and a
hostile run loses nothing that an earlier run indexed (issue #16, items 1-3 and 11)."""

from __future__ import annotations

import gzip
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from dataclasses import replace

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from knowledge.crawl.bounded_body import Inflater
from knowledge.crawl.crawler import Crawler, CrawlLimits, CrawlTarget, crawl_in_thread
from knowledge.embed.embedder import Embedder
from knowledge.errors import SourceError
from knowledge.ingest.refresh import refresh
from knowledge.ingest.report import RunReport
from knowledge.ingest.sources import SourceSpec, add_source
from knowledge.retrieval.index import VectorIndex
from knowledge.retrieval.search import Retriever
from knowledge.storage.documents import Document, Source
from knowledge.storage.lease import Lease, SourceBusyError
from tests.fakes.hostile import (
    CASES,
    GOOD_PATH,
    GOOD_QUESTION,
    HOSTILE_PATH,
    TOO_LONG_PATH,
    HostileSite,
)

MB = 2**20
ROBOTS_CAP = 64 * 1024
LIMITS = CrawlLimits(
    max_bytes=MB,
    max_sitemap_bytes=MB,
    max_robots_bytes=ROBOTS_CAP,
    timeout=5.0,
    deadline=2.0,
    per_host=4,
)
BOMB = 4 * MB  # inflated: four times every cap, a few kB on the wire
NAME = "hostile"


@pytest.fixture
def hostile(request: pytest.FixtureRequest) -> Iterator[HostileSite]:
    case, size = request.param
    with HostileSite(case, size=size, interval=0.1) as site:
        yield site


def cases(*names: str, size: int = BOMB) -> pytest.MarkDecorator:
    assert set(names) <= set(CASES)
    return pytest.mark.parametrize("hostile", [(n, size) for n in names], indirect=True, ids=names)


def add(sessions: sessionmaker[Session], site: HostileSite, **options: int) -> None:
    with sessions.begin() as session:
        add_source(
            session,
            SourceSpec(
                name=NAME, location=site.start_url, kind=site.kind, allow_private=True, **options
            ),
        )


def run(
    sessions: sessionmaker[Session], embedder: Embedder, limits: CrawlLimits = LIMITS
) -> RunReport:
    return refresh(sessions, embedder, NAME, limits=limits)


def index_good_page_then_turn_hostile(
    sessions: sessionmaker[Session], embedder: Embedder, site: HostileSite, **options: int
) -> None:
    """A first, harmless run stores the good page; the next one meets the attack."""
    add(sessions, site, **options)
    first = run(sessions, embedder)
    assert first.pages_failed == 0
    with sessions() as session:
        assert site.url(GOOD_PATH) in session.scalars(select(Document.url)).all()
    site.turn_hostile()


def assert_good_page_answers(
    sessions: sessionmaker[Session], embedder: Embedder, site: HostileSite
) -> None:
    retriever = Retriever(sessions, embedder, VectorIndex(sessions, embedder.model_name, 384))
    best = retriever.search(GOOD_QUESTION, k=1)[0]
    assert best.document_url == site.url(GOOD_PATH)
    assert "fourteen daily snapshots" in best.text


def problems(report: RunReport) -> dict[str, str]:
    return {issue.url: issue.error for issue in report.issues}


def crawl_hostile(site: HostileSite, limits: CrawlLimits = LIMITS) -> Crawler:
    """Crawl the hostile site directly, for the counters of each body it read."""
    target = CrawlTarget(site.kind, site.start_url, allow_private=True, limits=limits)
    crawler = Crawler(target, {})
    list(crawl_in_thread(crawler))
    return crawler


# -- pages ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("hostile", "reason"),
    [
        (("page-gzip-gzip", BOMB), "stacked Content-Encoding 'gzip, gzip' is refused"),
        (("page-gzip-bomb", BOMB), "larger than 1 MB"),
        (("page-unknown-encoding", BOMB), "Content-Encoding 'br' is not one teambot reads"),
    ],
    indirect=["hostile"],
    ids=["gzip-gzip", "gzip-bomb", "br"],
)
def test_a_page_bomb_fails_that_page_within_its_cap(
    sessions: sessionmaker[Session], embedder: Embedder, hostile: HostileSite, reason: str
) -> None:
    index_good_page_then_turn_hostile(sessions, embedder, hostile)

    report = run(sessions, embedder)

    assert reason in problems(report)[hostile.url(HOSTILE_PATH)]
    assert report.pages_failed == 1 and report.pages_removed == 0
    assert_good_page_answers(sessions, embedder, hostile)
    read = crawl_hostile(hostile).reads[hostile.url(HOSTILE_PATH)]
    assert read.decoded_bytes <= LIMITS.max_bytes  # all the bomb ever cost in memory
    assert read.at_cap == (hostile.case == "page-gzip-bomb")


@pytest.mark.parametrize(
    ("encoding", "wbits"),
    [("gzip", 31), ("x-gzip", 31), ("deflate", 15), ("deflate", -15)],
    ids=["gzip", "x-gzip", "deflate", "raw-deflate"],
)
def test_honest_compressed_bodies_are_read_whole(encoding: str, wbits: int) -> None:
    text = b"<p>Zephyr keeps fourteen daily snapshots.</p>\n" * 5000
    compressor = zlib.compressobj(6, zlib.DEFLATED, wbits)
    data = compressor.compress(text) + compressor.flush()
    inflater = Inflater(encoding, MB)
    pieces = [
        p for start in range(0, len(data), 1000) for p in inflater.feed(data[start : start + 1000])
    ]
    inflater.finish()
    assert b"".join(pieces) == text and not inflater.at_cap


def test_one_call_never_inflates_past_the_cap() -> None:
    bomb = gzip.compress(b" " * (13 * MB))
    assert len(bomb) < 20_000
    inflater = Inflater("gzip", MB)
    pieces = list(inflater.feed(bomb))  # the whole bomb in one feed
    assert sum(map(len, pieces)) == MB and inflater.at_cap
    assert max(map(len, pieces)) <= 256 * 1024


# -- robots.txt ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("hostile", "why"),
    [
        (("robots-gzip-bomb", BOMB), "robots.txt is larger than 64 KiB once decompressed"),
        (("robots-endless", 8 * MB), "robots.txt goes on past 64 KiB with no declared end"),
    ],
    indirect=["hostile"],
    ids=["gzip-bomb", "endless"],
)
def test_a_robots_txt_that_cannot_be_read_whole_denies_the_host(
    sessions: sessionmaker[Session], embedder: Embedder, hostile: HostileSite, why: str
) -> None:
    index_good_page_then_turn_hostile(sessions, embedder, hostile)
    good_fetches = hostile.hits(GOOD_PATH)

    report = run(sessions, embedder)

    assert report.pages_fetched == 0
    assert set(problems(report).values()) == {f"{why}: nothing on this host is fetched"}
    assert hostile.hits(GOOD_PATH) == good_fetches  # denied, not treated as "allow all"
    assert_good_page_answers(sessions, embedder, hostile)
    crawler = crawl_hostile(hostile)
    read = crawler.reads[hostile.url("/robots.txt")]
    assert read.at_cap and read.decoded_bytes == ROBOTS_CAP
    assert not crawler.complete  # so a run like it removes nothing


@cases("robots-huge", size=8 * MB)
def test_a_huge_robots_txt_is_cut_at_its_cap_and_its_rules_still_apply(
    sessions: sessionmaker[Session], embedder: Embedder, hostile: HostileSite
) -> None:
    index_good_page_then_turn_hostile(sessions, embedder, hostile)
    robots_fetches = hostile.hits("/robots.txt")

    report = run(sessions, embedder)

    assert problems(report) == {hostile.url(HOSTILE_PATH): "disallowed by robots.txt"}
    assert hostile.hits("/robots.txt") == robots_fetches + 1  # once per run
    assert report.pages_failed == 0
    assert_good_page_answers(sessions, embedder, hostile)
    read = crawl_hostile(hostile).reads[hostile.url("/robots.txt")]
    assert read.at_cap and read.decoded_bytes == ROBOTS_CAP


# -- sitemaps ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("hostile", "reason"),
    [
        (("sitemap-gzip-bomb", BOMB), "/sitemap.xml: it is larger than 1 MB"),
        (("sitemap-xml-gz-bomb", BOMB), "/sitemap.xml.gz: sitemap is larger than 1 MB once"),
    ],
    indirect=["hostile"],
    ids=["content-encoding", "xml-gz"],
)
def test_a_sitemap_bomb_fails_the_run_within_its_cap_and_loses_nothing(
    sessions: sessionmaker[Session], embedder: Embedder, hostile: HostileSite, reason: str
) -> None:
    index_good_page_then_turn_hostile(sessions, embedder, hostile)

    with pytest.raises(SourceError, match="Cannot read the sitemap .*" + reason):
        run(sessions, embedder)

    assert_good_page_answers(sessions, embedder, hostile)


@cases("sitemap-gzip-bomb")
def test_a_sitemap_sent_compressed_is_read_only_up_to_its_cap(hostile: HostileSite) -> None:
    hostile.turn_hostile()
    target = CrawlTarget("sitemap", hostile.start_url, allow_private=True, limits=LIMITS)
    crawler = Crawler(target, {})
    with pytest.raises(SourceError):
        list(crawl_in_thread(crawler))
    read = crawler.reads[hostile.start_url]
    assert read.at_cap and read.decoded_bytes == LIMITS.max_sitemap_bytes


@cases("sitemap-index-amplification", size=MB // 2)  # about 9,000 entries a sitemap
def test_a_sitemap_index_is_read_only_until_the_source_is_full(
    sessions: sessionmaker[Session], embedder: Embedder, hostile: HostileSite
) -> None:
    index_good_page_then_turn_hostile(sessions, embedder, hostile, max_pages=5)
    robots_fetches = hostile.hits("/robots.txt")

    report = run(sessions, embedder)

    assert report.pages_fetched == 5
    assert hostile.hits("/sitemap-1.xml") == 1
    assert hostile.hits("/sitemap-2.xml") == 0  # the source was full: never requested
    assert hostile.hits("/robots.txt") == robots_fetches + 1  # 4 pages at once, asked once
    assert report.pages_removed == 0  # cut short: absence proves nothing
    assert_good_page_answers(sessions, embedder, hostile)
    read = crawl_hostile(hostile, replace(LIMITS, max_pages=5)).reads[hostile.url("/sitemap-1.xml")]
    assert read.decoded_bytes < 200_000 < MB // 2  # a few pieces of each sitemap


@cases("invalid-url")
def test_a_url_httpx_cannot_parse_fails_that_page_only(
    sessions: sessionmaker[Session], embedder: Embedder, hostile: HostileSite
) -> None:
    index_good_page_then_turn_hostile(sessions, embedder, hostile)

    report = run(sessions, embedder)

    found = problems(report)
    assert found[hostile.url(TOO_LONG_PATH)] == "not a URL teambot can fetch (URL too long)"
    assert report.pages_failed == 1 and report.pages_fetched == 1
    assert_good_page_answers(sessions, embedder, hostile)


def test_a_source_at_a_url_httpx_cannot_parse_is_refused_when_added(
    sessions: sessionmaker[Session],
) -> None:
    spec = SourceSpec(name="octal", location="http://0177.0.0.1/docs/", allow_private=True)
    with sessions.begin() as session, pytest.raises(SourceError, match="cannot be fetched"):
        add_source(session, spec)
    with sessions() as session:
        assert session.scalars(select(Source)).all() == []


# -- slow pages ----------------------------------------------------------------------------


@cases("slow-page", size=60)
def test_a_page_that_trickles_in_fails_at_the_deadline(
    sessions: sessionmaker[Session], embedder: Embedder, hostile: HostileSite
) -> None:
    index_good_page_then_turn_hostile(sessions, embedder, hostile)

    report = run(sessions, embedder)  # 1 byte per 0.1 s: never a read timeout (5 s)

    assert problems(report) == {hostile.url(HOSTILE_PATH): "took longer than 2 s"}
    assert_good_page_answers(sessions, embedder, hostile)


def test_a_slow_run_keeps_its_lease_while_pages_are_in_flight(
    sessions: sessionmaker[Session], embedder: Embedder
) -> None:
    lease_seconds = 2
    with HostileSite("slow-page", size=0, interval=0.08) as site:  # ~5 s for the page
        add(sessions, site)
        site.turn_hostile()
        with sessions() as session:
            source_id = session.scalars(select(Source.id)).one()
        reports: list[RunReport] = []
        limits = replace(LIMITS, deadline=60.0)
        worker = threading.Thread(
            target=lambda: reports.append(
                refresh(sessions, embedder, NAME, limits=limits, lease_seconds=lease_seconds)
            )
        )
        worker.start()
        try:
            _wait_for(lambda: site.hits(HOSTILE_PATH) == 1)
            time.sleep(lease_seconds + 0.5)  # the lease taken at the start has run out by now
            assert worker.is_alive()  # the slow page is still in flight
            with pytest.raises(SourceBusyError, match="being refreshed"):
                Lease(sessions, source_id, lease_seconds).acquire()
        finally:
            worker.join()
        slow_page = site.url(HOSTILE_PATH)
    assert reports and reports[0].pages_failed == 0 and reports[0].pages_new == 3
    with sessions() as session:
        assert slow_page in session.scalars(select(Document.url)).all()


def _wait_for(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not met")
        time.sleep(0.02)
