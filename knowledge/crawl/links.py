"""Find where a page leads: its links, its declared canonical URL, and whether it is empty.

The crawler follows links to discover pages, stores each page under its canonical URL
so mirrors are not indexed twice, and must notice a client-rendered app whose HTML
holds no text at all — indexing it would store an empty page, and the admin needs to
hear why a source yields nothing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from bs4 import BeautifulSoup, Tag

from knowledge.crawl.urls import canonicalize

_SHELL_TEXT_CHARS = 200  # less main text than this, and the page may be an empty app shell
_APP_ROOT_IDS = ("root", "app", "__next")
_NEEDS_JAVASCRIPT = re.compile(
    r"\b(?:enable|enabling|requires?|turn on|needs?)\s+javascript\b"
    r"|\bjavascript\s+(?:is\s+)?(?:required|disabled|must be enabled)\b",
    re.IGNORECASE,
)
_NOT_TEXT = frozenset({"script", "style", "template"})


@dataclass(frozen=True)
class PageLinks:
    """A page's outgoing links, canonical and unique in document order, and its canonical."""

    links: list[str]
    canonical: str | None


def extract_links(html: str, base_url: str) -> PageLinks:
    """Collect ``<a href>`` and ``<area href>`` targets, resolved against the document base.

    ``<base href>`` overrides ``base_url``; ``rel="nofollow"`` links and anything that is
    not http(s) are skipped. ``canonical`` is the first ``<link rel="canonical">``.
    """
    soup = BeautifulSoup(html, "lxml")
    base = _document_base(soup, base_url)
    links: dict[str, None] = {}
    for anchor in soup.find_all(["a", "area"], href=True):
        if "nofollow" in _rel(anchor):
            continue
        url = canonicalize(str(anchor["href"]), base)
        if url is not None:
            links.setdefault(url)
    canonical_tag = next(
        (tag for tag in soup.find_all("link", href=True) if "canonical" in _rel(tag)), None
    )
    canonical = canonicalize(str(canonical_tag["href"]), base) if canonical_tag else None
    return PageLinks(list(links), canonical)


def is_javascript_shell(html: str, text: str) -> bool:
    """Whether a page with almost no main ``text`` is an app that renders in the browser.

    Signs: a ``<noscript>`` that mentions JavaScript, visible words asking to enable it,
    or an empty ``root``/``app``/``__next`` div next to scripts.
    """
    if len(text.strip()) >= _SHELL_TEXT_CHARS:
        return False
    soup = BeautifulSoup(html, "lxml")
    if any("javascript" in tag.get_text().lower() for tag in soup.find_all("noscript")):
        return True
    visible = " ".join(
        string for string in soup.find_all(string=True) if string.parent.name not in _NOT_TEXT
    )
    if _NEEDS_JAVASCRIPT.search(visible):
        return True
    has_scripts = soup.find("script") is not None
    return has_scripts and any(
        not root.get_text(strip=True) and root.find(True) is None
        for root in soup.find_all("div", id=_APP_ROOT_IDS)
    )


def _document_base(soup: BeautifulSoup, base_url: str) -> str:
    base_tag = soup.find("base", href=True)
    if isinstance(base_tag, Tag):
        declared = canonicalize(str(base_tag["href"]), base_url)
        if declared is not None:
            return declared
    return base_url


def _rel(tag: Tag) -> list[str]:
    """The lowercased tokens of a tag's ``rel`` (BeautifulSoup already splits it)."""
    rel = tag.get("rel") or []
    return [token.lower() for token in (rel.split() if isinstance(rel, str) else rel)]
