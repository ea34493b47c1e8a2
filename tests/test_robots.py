"""robots.txt rules for teambot's user agent."""

from __future__ import annotations

import pytest

from knowledge.crawl.robots import Robots

AGENT = "teambot/0.1 (documentation indexer)"
SITE = "https://docs.example.com"

ROBOTS_TXT = """\
\ufeffUser-agent: *
Disallow: /private/
Disallow: /search
Crawl-delay: 7

User-agent: teambot
Allow: /
Disallow: /drafts/
Allow: /drafts/published/
Crawl-delay: 2
Request-rate: 1/5

User-agent: greedybot
Disallow: /

Sitemap: https://docs.example.com/sitemap.xml
Sitemap: https://docs.example.com/sitemap-blog.xml.gz
"""


@pytest.fixture
def robots() -> Robots:
    return Robots.parse(ROBOTS_TXT, AGENT)


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/guide/setup.html", True),
        ("/private/keys.html", True),  # our own group replaces the "*" group
        ("/drafts/wip.html", False),
        ("/drafts/published/final.html", True),  # the longer Allow wins over Disallow
        ("/", True),
    ],
)
def test_our_group_decides(robots: Robots, path: str, expected: bool) -> None:
    assert robots.allowed(f"{SITE}{path}") is expected


def test_other_agents_follow_the_star_group() -> None:
    robots = Robots.parse(ROBOTS_TXT, "otherbot/1.0")
    assert not robots.allowed(f"{SITE}/private/keys.html")
    assert not robots.allowed(f"{SITE}/search?q=x")
    assert robots.allowed(f"{SITE}/guide/")
    assert robots.crawl_delay == 7.0


def test_longest_rule_wins_whatever_the_order() -> None:
    robots = Robots.parse("User-agent: *\nAllow: /\nDisallow: /admin\n", AGENT)
    assert robots.allowed(f"{SITE}/docs/")
    assert not robots.allowed(f"{SITE}/admin/users")


def test_crawl_delay_is_the_slower_of_crawl_delay_and_request_rate(robots: Robots) -> None:
    assert robots.crawl_delay == 5.0  # Request-rate 1/5 asks for more than Crawl-delay 2


def test_request_rate_alone_becomes_seconds_per_request() -> None:
    robots = Robots.parse("User-agent: *\nRequest-rate: 3/6\n", AGENT)
    assert robots.crawl_delay == 2.0


def test_fractional_crawl_delay_is_rounded_up() -> None:
    robots = Robots.parse("User-agent: *\nCrawl-delay: 1.5\nDisallow: /tmp/\n", AGENT)
    assert robots.crawl_delay == 2.0
    assert not robots.allowed(f"{SITE}/tmp/x")


def test_no_delay_when_none_is_asked() -> None:
    assert Robots.parse("User-agent: *\nDisallow: /tmp/\n", AGENT).crawl_delay is None


def test_sitemaps_are_listed_in_order(robots: Robots) -> None:
    assert robots.sitemaps == [
        "https://docs.example.com/sitemap.xml",
        "https://docs.example.com/sitemap-blog.xml.gz",
    ]


def test_disallow_everything_for_everyone() -> None:
    robots = Robots.parse("User-agent: *\nDisallow: /\n", AGENT)
    assert not robots.allowed(f"{SITE}/")
    assert not robots.allowed(f"{SITE}/guide/setup.html")


def test_empty_disallow_allows_everything() -> None:
    robots = Robots.parse("User-agent: *\nDisallow:\n", AGENT)
    assert robots.allowed(f"{SITE}/anything")


def test_empty_file_allows_everything() -> None:
    robots = Robots.parse("", AGENT)
    assert robots.allowed(f"{SITE}/guide/")
    assert robots.crawl_delay is None
    assert robots.sitemaps == []


def test_missing_robots_txt_allows_everything() -> None:
    robots = Robots.allow_all(AGENT)
    assert robots.allowed(f"{SITE}/private/anything")
    assert robots.crawl_delay is None
    assert robots.sitemaps == []


def test_failing_robots_txt_denies_everything() -> None:
    robots = Robots.deny_all(AGENT)
    assert not robots.allowed(f"{SITE}/")
    assert not robots.allowed(f"{SITE}/guide/setup.html")
