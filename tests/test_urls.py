"""Canonical URLs, source scope and include/exclude rules."""

from __future__ import annotations

import pytest

from knowledge.crawl.urls import UrlRules, canonicalize, in_scope, relative_path
from knowledge.errors import SourceError


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("HTTP://Docs.Example.ORG/Guide", "http://docs.example.org/Guide"),
        ("http://x.org:80/a", "http://x.org/a"),
        ("https://x.org:443/a", "https://x.org/a"),
        ("https://x.org:80/a", "https://x.org:80/a"),
        ("http://x.org:8000/a", "http://x.org:8000/a"),
        ("http://x.org", "http://x.org/"),
        ("http://x.org?", "http://x.org/"),
        ("http://x.org/a#install", "http://x.org/a"),
        ("http://x.org/a/./b/../c", "http://x.org/a/c"),
        ("http://x.org/a/b/..", "http://x.org/a/"),
        ("http://x.org/../../a", "http://x.org/a"),
        ("http://user:secret@x.org/a", "http://x.org/a"),
        ("http://[::1]:80/a", "http://[::1]/a"),
        ("http://[::1]:8080/a", "http://[::1]:8080/a"),
        ("https://Bücher.example/a", "https://xn--bcher-kva.example/a"),
        ("http://x.org/a b/café", "http://x.org/a%20b/caf%C3%A9"),
        ("http://x.org/a%2Fb", "http://x.org/a%2Fb"),
        ("  http://x.org/a\n", "http://x.org/a"),
    ],
)
def test_canonicalize_normalises_spelling(url: str, expected: str) -> None:
    assert canonicalize(url) == expected


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (
            "http://x.org/p?utm_source=news&b=2&gclid=1&a=1&utm_medium=mail#top",
            "http://x.org/p?b=2&a=1",
        ),
        (
            "http://x.org/p?fbclid=1&msclkid=2&mc_cid=3&mc_eid=4&_ga=5&ref_src=6&yclid=7",
            "http://x.org/p",
        ),
        ("http://x.org/p?UTM_Campaign=x&q=search+term", "http://x.org/p?q=search+term"),
        ("http://x.org/p?z=1&&a=&flag", "http://x.org/p?z=1&a=&flag"),
        ("http://x.org/p?reference=1", "http://x.org/p?reference=1"),
    ],
)
def test_canonicalize_drops_tracking_parameters_only(url: str, expected: str) -> None:
    assert canonicalize(url) == expected


@pytest.mark.parametrize(
    "url",
    [
        "mailto:team@x.org",
        "javascript:void(0)",
        "data:text/html,<p>hi</p>",
        "tel:+15550100",
        "ftp://x.org/file",
        "file:///etc/passwd",
        "http://[::1",
        "http://x.org:99999/",
        "http://x.org:port/",
        "http:///path-only",
        "http://exa mple.org/",
        "relative/page.html",
        "",
    ],
)
def test_canonicalize_refuses_what_is_not_an_http_url(url: str) -> None:
    assert canonicalize(url) is None


@pytest.mark.parametrize(
    ("href", "expected"),
    [
        ("b.html", "https://x.org/docs/guide/b.html"),
        ("../api/", "https://x.org/docs/api/"),
        ("/root.html?utm_source=x", "https://x.org/root.html"),
        ("?page=2", "https://x.org/docs/guide/a.html?page=2"),
        ("#section", "https://x.org/docs/guide/a.html"),
        ("//cdn.x.org/lib.js", "https://cdn.x.org/lib.js"),
        ("http://other.org", "http://other.org/"),
        ("mailto:me@x.org", None),
    ],
)
def test_canonicalize_joins_relative_links_against_base(href: str, expected: str | None) -> None:
    assert canonicalize(href, "https://x.org/docs/guide/a.html") == expected


@pytest.mark.parametrize("prefix", ["https://x.org/docs", "https://x.org/docs/"])
@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://x.org/docs", True),
        ("https://x.org/docs/", True),
        ("https://x.org/docs/a/b.html", True),
        ("https://X.org:443/docs/a#frag", True),
        ("https://x.org/docsearch", False),
        ("https://x.org/docs.html", False),
        ("https://x.org/", False),
        ("http://x.org/docs/a", False),
        ("https://x.org:8443/docs/a", False),
        ("https://docs.x.org/docs/a", False),
        ("mailto:docs@x.org", False),
    ],
)
def test_in_scope_stops_at_segment_boundary(prefix: str, url: str, expected: bool) -> None:
    assert in_scope(url, prefix) is expected


def test_in_scope_of_a_file_prefix_is_its_directory() -> None:
    prefix = "https://x.org/docs/index.html"
    assert in_scope("https://x.org/docs/other.html", prefix)
    assert in_scope("https://x.org/docs/", prefix)
    assert not in_scope("https://x.org/blog/post.html", prefix)


def test_in_scope_of_a_site_root_is_the_whole_origin() -> None:
    assert in_scope("http://127.0.0.1:8000/faq/admin.html", "http://127.0.0.1:8000")
    assert not in_scope("http://127.0.0.1:8001/faq/admin.html", "http://127.0.0.1:8000/")


@pytest.mark.parametrize(
    ("url", "root", "expected"),
    [
        ("http://127.0.0.1:8000/faq/admin.html", "http://127.0.0.1:8000/", "faq/admin.html"),
        ("http://127.0.0.1:8000/", "http://127.0.0.1:8000/", ""),
        ("https://x.org/docs/a/b.html?x=1", "https://x.org/docs", "a/b.html"),
        ("https://x.org/docs", "https://x.org/docs/", ""),
        ("https://x.org/docs/setup.html", "https://x.org/docs/index.html", "setup.html"),
        ("https://x.org/docs/a%20b.html", "https://x.org/docs/", "a%20b.html"),
    ],
)
def test_relative_path_is_below_the_root_directory(url: str, root: str, expected: str) -> None:
    assert relative_path(url, root) == expected


def test_relative_path_refuses_a_url_outside_the_root() -> None:
    with pytest.raises(ValueError, match="not under"):
        relative_path("https://x.org/blog/a.html", "https://x.org/docs/")


def test_rules_without_patterns_allow_everything() -> None:
    assert UrlRules().allows("https://x.org/anything")


def test_rules_need_one_include_and_no_exclude() -> None:
    rules = UrlRules(include=(r"/docs/", r"/faq/"), exclude=(r"/docs/v1/", r"\.pdf$"))
    assert rules.allows("https://x.org/docs/setup.html")
    assert rules.allows("https://x.org/faq/admin.html")
    assert not rules.allows("https://x.org/blog/post.html")
    assert not rules.allows("https://x.org/docs/v1/setup.html")
    assert not rules.allows("https://x.org/docs/manual.pdf")


def test_rules_exclude_alone_filters() -> None:
    rules = UrlRules(exclude=(r"[?&]page=",))
    assert rules.allows("https://x.org/list")
    assert not rules.allows("https://x.org/list?sort=a&page=2")


def test_rules_with_invalid_regex_name_the_pattern() -> None:
    with pytest.raises(SourceError, match=r"pattern '/docs/\(': missing \)"):
        UrlRules(include=("/docs/(",))


def test_rules_are_comparable_values() -> None:
    assert UrlRules(include=("a",)) == UrlRules(include=("a",))
    assert hash(UrlRules(exclude=("b",))) == hash(UrlRules(exclude=("b",)))
