"""What a site's robots.txt lets the crawler fetch, and how fast.

teambot crawls other people's servers on a schedule, so it asks first. Parsing is the
stdlib's ``urllib.robotparser``; this module picks the answers for our user agent and
fixes two of its habits: rules are tried longest path first (RFC 9309's longest match,
instead of file order) and a fractional ``Crawl-delay`` (which it would ignore) is
rounded up to whole seconds. Like the stdlib it does not understand ``*`` or ``$`` inside
rule paths: such rules match only URLs that contain them literally.

How the crawler maps the fetch of ``/robots.txt`` (RFC 9309 §2.3.1):

- 2xx: ``Robots.parse(body, user_agent)``;
- 4xx (no robots.txt): ``Robots.allow_all(user_agent)``;
- 5xx, a network error or a body that cannot be read: ``Robots.deny_all(user_agent, why)``
  — the server cannot say what it allows, so nothing on that host is fetched during this
  run, and the crawl removes nothing.

Size (RFC 9309 §2.5): only the first ``MAX_ROBOTS_BYTES`` are parsed. A file the server
sends as is, with its length declared, is cut there and parsed (content beyond the limit is
ignored). A compressed body that inflates past the limit (a decompression bomb) or one
that streams past it with no declared end is not a robots.txt anyone wrote by hand: it
counts as unreadable, so it denies, never allows.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from urllib.robotparser import RobotFileParser

MAX_ROBOTS_BYTES = 500 * 1024  # RFC 9309 §2.5: crawlers must parse at least 500 KiB
DENIED = "disallowed by robots.txt"
_FRACTIONAL_DELAY = re.compile(r"^(\s*crawl-delay\s*:\s*)(\d*\.\d+)", re.IGNORECASE | re.MULTILINE)


@dataclass
class Robots:
    """The robots.txt rules of one host as they apply to ``user_agent``.

    ``crawl_delay`` is the seconds to wait between requests the site asks for (the larger
    of ``Crawl-delay`` and ``Request-rate``), or None; ``sitemaps`` are its ``Sitemap:``
    URLs as written.
    """

    user_agent: str
    _parser: RobotFileParser = field(repr=False)
    crawl_delay: float | None = None
    sitemaps: list[str] = field(default_factory=list)
    refusal: str = DENIED
    """Why a URL it does not allow is not fetched, for the run's report."""

    @classmethod
    def parse(cls, text: str, user_agent: str) -> Robots:
        rounded = _FRACTIONAL_DELAY.sub(
            lambda match: f"{match[1]}{math.ceil(float(match[2]))}", text.lstrip("\ufeff")
        )
        parser = RobotFileParser()
        parser.parse(rounded.splitlines())
        for entry in [*parser.entries, parser.default_entry]:
            if entry is not None:  # longest path first; on a tie, Allow wins
                entry.rulelines.sort(key=lambda rule: (-len(rule.path), not rule.allowance))
        return cls(
            user_agent,
            parser,
            crawl_delay=_delay(parser, user_agent),
            sitemaps=list(parser.site_maps() or []),
        )

    @classmethod
    def allow_all(cls, user_agent: str) -> Robots:
        """The rules of a host without robots.txt (it answered 4xx): everything allowed."""
        parser = RobotFileParser()
        parser.allow_all = True
        return cls(user_agent, parser)

    @classmethod
    def deny_all(cls, user_agent: str, why: str = "it could not be read") -> Robots:
        """The rules of a host whose robots.txt failed (5xx, network, unreadable): nothing
        allowed; ``why`` completes "robots.txt …: nothing on this host is fetched"."""
        parser = RobotFileParser()
        parser.disallow_all = True
        return cls(user_agent, parser, refusal=f"robots.txt {why}: nothing on this host is fetched")

    def allowed(self, url: str) -> bool:
        return self._parser.can_fetch(self.user_agent, url)


def _delay(parser: RobotFileParser, user_agent: str) -> float | None:
    delays = []
    crawl_delay = parser.crawl_delay(user_agent)
    if crawl_delay is not None:
        delays.append(float(crawl_delay))
    rate = parser.request_rate(user_agent)
    if rate is not None and rate.requests > 0:
        delays.append(rate.seconds / rate.requests)
    return max(delays, default=None)
