"""Read sitemaps: the pages a site lists, with when each last changed.

A sitemap finds pages no link reaches and its ``lastmod`` lets a run skip pages that have
not changed. It is also untrusted XML from the network, so it is parsed without entity
expansion, DTDs or network access, and its size is capped before and after gunzip.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from datetime import UTC, datetime

from lxml import etree

from knowledge.errors import SourceError

MAX_SITEMAP_BYTES = 50 * 1024 * 1024  # the sitemaps.org limit, uncompressed
_GZIP_MAGIC = b"\x1f\x8b"
_PARTIAL_DATE_FORMATS = ("%Y-%m", "%Y")  # W3C datetime forms fromisoformat does not read


@dataclass(frozen=True)
class SitemapEntry:
    """One page a sitemap lists: its URL as written (stripped) and its lastmod, if valid."""

    loc: str
    lastmod: datetime | None


def parse_sitemap(data: bytes) -> tuple[list[SitemapEntry], list[str]]:
    """Parse a sitemap, gzipped or not: (pages of a ``<urlset>``, sitemaps of an index).

    One of the two lists is always empty. Locs are not canonicalized or scope-checked:
    the crawler does that as for any link. Raises ``SourceError`` for malformed XML, a
    root that is neither ``<urlset>`` nor ``<sitemapindex>``, or more than 50 MB of XML.
    """
    if data.startswith(_GZIP_MAGIC):
        data = _gunzip(data)
    if len(data) > MAX_SITEMAP_BYTES:
        raise SourceError("sitemap is larger than 50 MB")
    parser = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=False)
    try:
        # Leading whitespace before <?xml …?> is a common server bug that lxml rejects.
        root = etree.fromstring(data.lstrip(), parser)
    except etree.XMLSyntaxError as error:
        raise SourceError(f"sitemap is not well-formed XML: {error}") from None
    kind = etree.QName(root).localname
    if kind == "urlset":
        entries = [
            SitemapEntry(loc, _parse_lastmod(_child_text(url, "lastmod")))
            for url in _children(root, "url")
            if (loc := _child_text(url, "loc"))
        ]
        return entries, []
    if kind == "sitemapindex":
        return [], [
            loc for sitemap in _children(root, "sitemap") if (loc := _child_text(sitemap, "loc"))
        ]
    raise SourceError(
        f"not a sitemap: the root element is <{kind}>, not <urlset> or <sitemapindex>"
    )


def _gunzip(data: bytes) -> bytes:
    decompressor = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
    try:
        xml = decompressor.decompress(data, MAX_SITEMAP_BYTES + 1)
    except zlib.error as error:
        raise SourceError(f"sitemap is not valid gzip: {error}") from None
    if len(xml) > MAX_SITEMAP_BYTES:
        raise SourceError("sitemap is larger than 50 MB once decompressed")
    if not decompressor.eof:
        raise SourceError("sitemap gzip stream is truncated")
    return xml


def _children(element: etree._Element, name: str) -> list[etree._Element]:
    """Child elements called ``name`` in any namespace or none (comments skipped)."""
    return [
        child
        for child in element.iterchildren(etree.Element)
        if etree.QName(child).localname == name
    ]


def _child_text(element: etree._Element, name: str) -> str:
    """The stripped text of the first child called ``name``; "" if absent or not text."""
    children = _children(element, name)
    return (children[0].text or "").strip() if children else ""


def _parse_lastmod(value: str) -> datetime | None:
    """A W3C datetime as an aware datetime (naive or date-only means UTC); None if invalid."""
    if not value:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        moment = _parse_partial_date(value)
    if moment is None:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _parse_partial_date(value: str) -> datetime | None:
    for date_format in _PARTIAL_DATE_FORMATS:
        try:
            return datetime.strptime(value, date_format)
        except ValueError:
            continue
    return None
