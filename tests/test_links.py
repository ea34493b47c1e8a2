"""Links, canonical URLs and JavaScript-shell detection in HTML pages."""

from __future__ import annotations

import pytest

from knowledge.crawl.links import PageLinks, extract_links, is_javascript_shell

PAGE_URL = "https://docs.example.com/guide/setup.html"

PAGE = """<!doctype html>
<html><head>
  <title>Setup</title>
  <link rel="stylesheet" href="/style.css">
  <link rel="Canonical" href="/guide/setup.html?utm_source=feed">
</head><body>
  <nav><a href="/">Home</a> <a href="../faq.html#admins">FAQ</a></nav>
  <p>See <a href="install.html">install</a>, <a href="install.html#linux">Linux</a>
     and <a href="INSTALL.html?utm_campaign=x">again</a>.</p>
  <p><a href="https://Other.example.org:443/x">elsewhere</a>
     <a href="mailto:team@example.com">mail</a>
     <a href="javascript:void(0)">click</a>
     <a href="tel:+15550100">call</a>
     <a href="#top">top</a>
     <a>no href</a>
     <a href="/login" rel="nofollow">log in</a>
     <a href="/signup" rel="external NoFollow">sign up</a></p>
  <map><area href="/map/north.html" alt="north"></map>
  <a href=" /guide/spaced.html ">spaced</a>
</body></html>
"""


def test_links_are_canonical_unique_and_in_order() -> None:
    found = extract_links(PAGE, PAGE_URL)
    assert found.links == [
        "https://docs.example.com/",
        "https://docs.example.com/faq.html",
        "https://docs.example.com/guide/install.html",
        "https://docs.example.com/guide/INSTALL.html",
        "https://other.example.org/x",
        "https://docs.example.com/guide/setup.html",
        "https://docs.example.com/map/north.html",
        "https://docs.example.com/guide/spaced.html",
    ]


def test_nofollow_links_are_skipped() -> None:
    links = extract_links(PAGE, PAGE_URL).links
    assert "https://docs.example.com/login" not in links
    assert "https://docs.example.com/signup" not in links


def test_canonical_is_resolved_and_canonicalized() -> None:
    assert extract_links(PAGE, PAGE_URL).canonical == "https://docs.example.com/guide/setup.html"


def test_base_href_changes_where_relative_links_point() -> None:
    html = """<html><head><base href="https://mirror.example.com/v2/"></head><body>
      <a href="intro.html">intro</a> <a href="../v1/old.html">old</a> <a href="/abs">abs</a>
      <link rel="canonical" href="intro.html">
    </body></html>"""
    assert extract_links(html, PAGE_URL) == PageLinks(
        links=[
            "https://mirror.example.com/v2/intro.html",
            "https://mirror.example.com/v1/old.html",
            "https://mirror.example.com/abs",
        ],
        canonical="https://mirror.example.com/v2/intro.html",
    )


def test_relative_base_href_is_resolved_against_the_page() -> None:
    html = '<base href="../api/"><a href="client.html">client</a>'
    assert extract_links(html, PAGE_URL).links == ["https://docs.example.com/api/client.html"]


def test_unusable_base_href_is_ignored() -> None:
    html = '<base href="javascript:alert(1)"><a href="next.html">next</a>'
    assert extract_links(html, PAGE_URL).links == ["https://docs.example.com/guide/next.html"]


def test_page_without_links_or_canonical() -> None:
    assert extract_links("<p>Just text.</p>", PAGE_URL) == PageLinks(links=[], canonical=None)


def test_non_http_canonical_is_dropped() -> None:
    html = '<link rel="canonical" href="ftp://example.com/x"><a href="a.html">a</a>'
    assert extract_links(html, PAGE_URL).canonical is None


SHELLS = {
    "react root": '<html><body><div id="root"></div><script src="/main.js"></script></body></html>',
    "vue app": '<body><div id="app"> </div><script>boot()</script></body>',
    "next": '<body><div id="__next"></div><script src="/_next/x.js"></script></body>',
    "noscript": "<body><noscript>This site works best with JavaScript.</noscript></body>",
    "enable phrase": "<body><p>You need to enable JavaScript to run this app.</p></body>",
    "requires phrase": "<body><p>This page requires JavaScript.</p></body>",
    "required phrase": "<body><h1>JavaScript is required</h1></body>",
}


@pytest.mark.parametrize("html", SHELLS.values(), ids=SHELLS.keys())
def test_client_rendered_shells_are_detected(html: str) -> None:
    assert is_javascript_shell(html, text="")


NOT_SHELLS = {
    "short real page": "<body><h1>Glossary</h1><p>RAG: retrieval-augmented generation.</p></body>",
    "root div with content": '<body><div id="root"><p>Server-rendered.</p></div><script></script>'
    "</body>",
    "empty root without scripts": '<body><div id="root"></div></body>',
    "phrase only inside a script": "<body><script>msg='please enable javascript'</script></body>",
    "other noscript": '<body><noscript><img src="/pixel.gif"></noscript></body>',
}


@pytest.mark.parametrize("html", NOT_SHELLS.values(), ids=NOT_SHELLS.keys())
def test_ordinary_pages_are_not_shells(html: str) -> None:
    assert not is_javascript_shell(html, text="A short page.")


def test_enough_main_text_is_never_a_shell() -> None:
    html = SHELLS["noscript"] + "<p>" + "Real documentation text. " * 20 + "</p>"
    assert not is_javascript_shell(html, text="Real documentation text. " * 20)
