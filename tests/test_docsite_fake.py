"""Tests for tests/fakes/docsite.py: the local doc site the crawler tests crawl over HTTP."""

from __future__ import annotations

import re
import threading
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from email.utils import formatdate, parsedate_to_datetime

import httpx
import pytest

from tests.fakes.docsite import (
    DOC_PAGES,
    FAULT_PAGES,
    HTML_PAGES,
    METADATA_URL,
    PRIVATE_URL,
    DocSite,
)

NS = {"sm": "http://www.sitemaps.org/schemas/sitemap/0.9"}


@pytest.fixture
def site() -> Iterator[DocSite]:
    with DocSite.with_default_site() as running:
        yield running


@pytest.fixture
def client(site: DocSite) -> Iterator[httpx.Client]:
    with httpx.Client(
        base_url=site.base_url, follow_redirects=False, timeout=2.0, trust_env=False
    ) as http:
        yield http


def _locs(xml: bytes, tag: str) -> list[str]:
    return [loc.text or "" for loc in ET.fromstring(xml).findall(f"sm:{tag}/sm:loc", NS)]


def _main_text(html: str) -> str:
    main = re.search(r"<main>(.*)</main>", html, re.S)
    assert main, "no <main>"
    return re.sub(r"<[^>]+>", " ", main.group(1))


# -- validators and conditional requests ---------------------------------------------------


def test_page_has_etag_and_last_modified(site: DocSite, client: httpx.Client) -> None:
    response = client.get("/docs/guide/configure.html")
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    assert "ACME_PORT=7421" in response.text
    assert re.fullmatch(r'"[0-9a-f]{16}"', response.headers["etag"])
    assert parsedate_to_datetime(response.headers["last-modified"]).timestamp() <= time.time()


def test_if_none_match_gives_304(client: httpx.Client) -> None:
    etag = client.get("/docs/faq.html").headers["etag"]
    not_modified = client.get("/docs/faq.html", headers={"If-None-Match": etag})
    assert not_modified.status_code == 304
    assert not_modified.content == b""
    assert not_modified.headers["etag"] == etag
    listed = client.get("/docs/faq.html", headers={"If-None-Match": f'"nope", W/{etag}'})
    assert listed.status_code == 304
    assert client.get("/docs/faq.html", headers={"If-None-Match": '"nope"'}).status_code == 200


def test_if_modified_since_gives_304(client: httpx.Client) -> None:
    last_modified = client.get("/docs/faq.html").headers["last-modified"]
    same = client.get("/docs/faq.html", headers={"If-Modified-Since": last_modified})
    assert same.status_code == 304
    assert same.content == b""
    earlier = formatdate(parsedate_to_datetime(last_modified).timestamp() - 3600, usegmt=True)
    assert client.get("/docs/faq.html", headers={"If-Modified-Since": earlier}).status_code == 200


def test_set_page_changes_validators_only_when_body_changes(
    site: DocSite, client: httpx.Client
) -> None:
    before = client.get("/docs/faq.html").headers
    site.set_page("/docs/faq.html", "<html><main><h1>New FAQ</h1></main></html>")
    after = client.get("/docs/faq.html")
    assert after.text.startswith("<html><main><h1>New FAQ")
    assert after.headers["etag"] != before["etag"]
    assert parsedate_to_datetime(after.headers["last-modified"]) > parsedate_to_datetime(
        before["last-modified"]
    )
    stale = {"If-None-Match": before["etag"]}
    assert client.get("/docs/faq.html", headers=stale).status_code == 200
    stale = {"If-Modified-Since": before["last-modified"]}
    assert client.get("/docs/faq.html", headers=stale).status_code == 200

    site.set_page("/docs/faq.html", "<html><main><h1>New FAQ</h1></main></html>")
    again = client.get("/docs/faq.html").headers
    assert (again["etag"], again["last-modified"]) == (
        after.headers["etag"],
        after.headers["last-modified"],
    )


def test_validators_can_be_switched_off(site: DocSite, client: httpx.Client) -> None:
    site.set_page("/docs/plain.html", "<p>plain</p>", etag=False, last_modified=False)
    response = client.get("/docs/plain.html")
    assert response.status_code == 200
    assert "etag" not in response.headers
    assert "last-modified" not in response.headers
    conditional = {"If-None-Match": "*", "If-Modified-Since": formatdate(usegmt=True)}
    assert client.get("/docs/plain.html", headers=conditional).status_code == 200


# -- statuses, redirects, HEAD --------------------------------------------------------------


def test_unknown_and_removed_pages_are_404(site: DocSite, client: httpx.Client) -> None:
    missing = client.get("/docs/nowhere.html")
    assert missing.status_code == 404
    assert "<h1>404 Not Found</h1>" in missing.text
    site.remove_page("/docs/faq.html")
    assert client.get("/docs/faq.html").status_code == 404


def test_set_status(site: DocSite, client: httpx.Client) -> None:
    site.set_status("/docs/faq.html", 410)
    assert client.get("/docs/faq.html").status_code == 410
    site.set_status("/docs/faq.html", 500)
    assert client.get("/docs/faq.html").status_code == 500
    site.set_status("/docs/faq.html", 200)
    assert "dead-letter queue" in client.get("/docs/faq.html").text


def test_redirects(site: DocSite, client: httpx.Client) -> None:
    old = client.get("/docs/old-page.html")
    assert old.status_code == 301
    assert old.headers["location"] == "/docs/guide/install.html"
    site.redirect("/docs/moved.html", site.url("/docs/faq.html"), 302)
    moved = client.get("/docs/moved.html")
    assert (moved.status_code, moved.headers["location"]) == (302, site.url("/docs/faq.html"))


def test_head_has_headers_but_no_body(client: httpx.Client) -> None:
    get = client.get("/docs/guide/install.html")
    head = client.head("/docs/guide/install.html")
    assert head.status_code == 200
    assert head.content == b""
    for name in ("content-length", "content-type", "etag", "last-modified"):
        assert head.headers[name] == get.headers[name]
    assert int(head.headers["content-length"]) == len(get.content)


# -- robots.txt and sitemaps ----------------------------------------------------------------


def test_robots(site: DocSite, client: httpx.Client) -> None:
    robots = client.get("/robots.txt")
    assert robots.status_code == 200
    assert robots.headers["content-type"].startswith("text/plain")
    assert robots.text == (
        "User-agent: *\nDisallow: /docs/private/\nCrawl-delay: 0\n"
        f"Sitemap: {site.base_url}/sitemap.xml\n"
    )
    site.set_robots_status(503)
    assert client.get("/robots.txt").status_code == 503
    site.set_robots("User-agent: *\nDisallow: /\n")
    assert client.get("/robots.txt").text == "User-agent: *\nDisallow: /\n"
    site.set_robots(None)
    assert client.get("/robots.txt").status_code == 404


def test_sitemap_lists_html_pages_with_lastmod(site: DocSite, client: httpx.Client) -> None:
    response = client.get("/sitemap.xml")
    assert response.status_code == 200
    root = ET.fromstring(response.content)
    entries = {
        url.findtext("sm:loc", namespaces=NS): url.findtext("sm:lastmod", namespaces=NS)
        for url in root.findall("sm:url", NS)
    }
    expected = {*HTML_PAGES, "/docs/canonical-dup.html", "/docs/app.html"}
    assert set(entries) == {site.url(path) for path in expected}
    last_modified = client.get("/docs/faq.html").headers["last-modified"]
    lastmod = entries[site.url("/docs/faq.html")]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", lastmod or "")
    assert lastmod == parsedate_to_datetime(last_modified).strftime("%Y-%m-%dT%H:%M:%SZ")

    site.set_status("/docs/faq.html", 410)
    assert site.url("/docs/faq.html") not in _locs(client.get("/sitemap.xml").content, "url")
    site.sitemap_enabled = False
    assert client.get("/sitemap.xml").status_code == 404


def test_sitemap_index_splits_pages(site: DocSite, client: httpx.Client) -> None:
    flat = set(_locs(client.get("/sitemap.xml").content, "url"))
    assert client.get("/sitemap-1.xml").status_code == 404
    site.set_sitemap_index(True)
    index = client.get("/sitemap.xml")
    assert ET.fromstring(index.content).tag == f"{{{NS['sm']}}}sitemapindex"
    parts = _locs(index.content, "sitemap")
    assert parts == [site.url("/sitemap-1.xml"), site.url("/sitemap-2.xml")]
    first, second = (set(_locs(client.get(part).content, "url")) for part in parts)
    assert first and second
    assert not first & second
    assert first | second == flat


# -- slow and huge pages --------------------------------------------------------------------


def _count_streamed(client: httpx.Client, path: str) -> tuple[httpx.Headers, int]:
    with client.stream("GET", path) as response:
        return response.headers, sum(len(chunk) for chunk in response.iter_raw(65536))


def test_huge_page_streams_declared_length(site: DocSite, client: httpx.Client) -> None:
    size = 5 * 1024 * 1024 + 123
    site.set_huge("/docs/big.html", size)
    headers, received = _count_streamed(client, "/docs/big.html")
    assert (int(headers["content-length"]), received) == (size, size)
    assert headers["content-type"] == "text/html"

    site.set_huge("/docs/big.txt", size, declare_length=False, content_type="text/plain")
    headers, received = _count_streamed(client, "/docs/big.txt")
    assert headers["transfer-encoding"] == "chunked"
    assert "content-length" not in headers
    assert received == size


def test_client_hanging_up_on_huge_page_is_harmless(site: DocSite) -> None:
    site.set_huge("/docs/big.html", 50 * 1024 * 1024)
    with (
        httpx.Client(base_url=site.base_url, timeout=2.0, trust_env=False) as http,
        http.stream("GET", "/docs/big.html") as response,
    ):
        assert len(next(response.iter_raw(65536))) > 0
    with httpx.Client(base_url=site.base_url, timeout=2.0, trust_env=False) as http:
        assert http.get("/docs/faq.html").status_code == 200


def test_delay_times_out_and_is_still_recorded(site: DocSite) -> None:
    site.set_delay("/docs/faq.html", 10.0)
    with (
        httpx.Client(base_url=site.base_url, timeout=0.2, trust_env=False) as http,
        pytest.raises(httpx.ReadTimeout),
    ):
        http.get("/docs/faq.html")
    assert [r.method for r in site.hits("/docs/faq.html")] == ["GET"]


def test_stop_wakes_delayed_requests_and_joins_threads() -> None:
    site = DocSite.with_default_site().start()
    site.set_delay("/docs/faq.html", 10.0)
    base_url = site.base_url
    port = base_url.rsplit(":", 1)[1]
    errors: list[Exception] = []

    def fetch() -> None:
        try:
            httpx.get(base_url + "/docs/faq.html", timeout=30.0, trust_env=False)
        except httpx.HTTPError as error:
            errors.append(error)

    waiting = threading.Thread(target=fetch)
    waiting.start()
    deadline = time.monotonic() + 2.0
    while not site.hits("/docs/faq.html") and time.monotonic() < deadline:
        time.sleep(0.01)
    started = time.monotonic()
    site.stop()
    assert time.monotonic() - started < 2.0
    assert not [t for t in threading.enumerate() if t.name.startswith(f"docsite-{port}")]
    waiting.join(timeout=2.0)
    assert not waiting.is_alive()
    assert len(errors) == 1  # the server hung up without answering
    with pytest.raises(httpx.ConnectError):
        httpx.get(base_url + "/docs/index.html", timeout=1.0, trust_env=False)


# -- request log ----------------------------------------------------------------------------


def test_requests_record_user_agent_and_query(site: DocSite, client: httpx.Client) -> None:
    client.get("/docs/faq.html?utm_source=x", headers={"User-Agent": "teambot-test/1.0"})
    client.head("/docs/faq.html")
    first, second = site.hits("/docs/faq.html")
    assert (first.method, first.path, first.status) == ("GET", "/docs/faq.html?utm_source=x", 200)
    assert first.user_agent == "teambot-test/1.0"
    assert first.headers["user-agent"] == "teambot-test/1.0"
    assert (second.method, second.path) == ("HEAD", "/docs/faq.html")
    assert site.hits("/docs/faq.html?utm_source=x") == [first]
    site.reset_requests()
    assert site.requests == []


# -- the default site -----------------------------------------------------------------------


def test_default_pages_have_chrome_and_enough_prose(client: httpx.Client) -> None:
    for path in HTML_PAGES:
        html = client.get(path).text
        assert re.search(r"<title>[^<]+ — Acme Docs</title>", html), path
        for marker in ("<nav>", "<header>", '<div class="sidebar">', "<footer>©"):
            assert marker in html, (path, marker)
        assert '<div id="cookie-banner">We use cookies' in html
        assert html.count("<h1>") == 1
        assert 2 <= len(re.findall(r'<h2 id="[a-z-]+">', html)) <= 3, path
        assert 100 <= len(_main_text(html).split()) <= 300, path


def test_index_links_to_everything(client: httpx.Client) -> None:
    html = client.get("/docs/index.html").text
    for href in (
        "guide/install.html",
        "guide/configure.html#network-port",
        "/docs/guide/backups.html?utm_source=x",
        "reference/cli.html",
        "old-page.html",
        "canonical-dup.html",
        "app.html",
        "notes.md",
        "readme.txt",
        "data.bin",
        "private/secret.html",
        "/outside/page.html",
        "mailto:docs@acme.example",
        "https://example.com/",
        PRIVATE_URL,
        METADATA_URL,
    ):
        assert f'href="{href}"' in html, href
    for path in DOC_PAGES:
        assert f'href="{path}"' in html  # the nav
    cli = client.get("/docs/reference/cli.html").text
    assert 'href="../guide/install.html"' in cli


def test_special_default_pages(site: DocSite, client: httpx.Client) -> None:
    dup = client.get("/docs/canonical-dup.html").text
    assert '<link rel="canonical" href="/docs/faq.html">' in dup
    assert _main_text(dup) == _main_text(client.get("/docs/faq.html").text)
    app = client.get("/docs/app.html").text
    assert '<div id="root"></div>' in app
    assert '<script src="/static/app.js"></script>' in app
    content_types = {
        "/docs/data.bin": "application/octet-stream",
        "/docs/notes.md": "text/markdown; charset=utf-8",
        "/docs/readme.txt": "text/plain; charset=utf-8",
    }
    for path, content_type in content_types.items():
        assert client.get(path).headers["content-type"] == content_type
    assert b"\x00" in client.get("/docs/data.bin").content
    assert client.get("/docs/notes.md").text.startswith("# Acme Queue 2.4 release notes")
    assert client.get("/docs/private/secret.html").status_code == 200  # robots only asks


def test_faults(site: DocSite, client: httpx.Client) -> None:
    assert client.get("/docs/faults/error.html").status_code == 404  # not set up by default
    site.add_faults()
    index = client.get("/docs/index.html").text
    for path in FAULT_PAGES:
        assert f'href="{path}"' in index
    assert client.get("/docs/faults/error.html").status_code == 500
    loop_a = client.get("/docs/faults/loop-a.html").headers["location"]
    assert client.get(loop_a).headers["location"] == "/docs/faults/loop-a.html"
    for path, target in (
        ("/docs/faults/to-metadata.html", METADATA_URL),
        ("/docs/faults/to-private.html", PRIVATE_URL),
    ):
        response = client.get(path)
        assert (response.status_code, response.headers["location"]) == (302, target)
    binary = client.get("/docs/faults/binary.html")
    assert binary.headers["content-type"].startswith("text/html")
    assert b"\x00" in binary.content
    assert "acmeq consumer reset" in client.get("/docs/faults/malformed.html").text
    huge = client.head("/docs/faults/huge.html")
    assert int(huge.headers["content-length"]) == 50 * 1024 * 1024
    assert site.hits("/docs/faults/slow.html") == []
