"""Read sitemaps: the pages a site lists, with when each last changed.

A sitemap finds pages no link reaches and its ``lastmod`` lets a run skip pages that have
not changed. It is also untrusted XML from the network, so it is parsed without entity
expansion, DTDs or network access, as it arrives (a pull parser that forgets each entry
once read, so a 200k-entry sitemap is never held whole), with its size capped before and
after gunzip and at most ``MAX_SITEMAP_ENTRIES`` entries taken from one sitemap.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from lxml import etree

from knowledge.crawl.bounded_body import Inflater, UnreadableBodyError
from knowledge.errors import SourceError

MAX_SITEMAP_BYTES = 50 * 1024 * 1024  # the sitemaps.org limit, uncompressed
MAX_SITEMAP_ENTRIES = 50_000  # the sitemaps.org limit of URLs (or child sitemaps) per file
_GZIP_MAGIC = b"\x1f\x8b"
_ENTRY_TAGS = {"urlset": "url", "sitemapindex": "sitemap"}
_PARTIAL_DATE_FORMATS = ("%Y-%m", "%Y")  # W3C datetime forms fromisoformat does not read


@dataclass(frozen=True)
class SitemapEntry:
    """One page (or, in an index, one sitemap) a sitemap lists: its URL as written
    (stripped) and its lastmod, if valid."""

    loc: str
    lastmod: datetime | None


class SitemapReader:
    """Parses one sitemap, gzipped or not, from the pieces of its body as they arrive.

    ``feed`` returns the entries completed so far; ``is_index`` tells whether they are
    pages (``<urlset>``) or child sitemaps (``<sitemapindex>``). After ``max_entries``
    entries ``capped`` is True and the rest is ignored. Locs are not canonicalized or
    scope-checked: the crawler does that as for any link. Raises ``SourceError`` for
    malformed XML or gzip, a root that is neither ``<urlset>`` nor ``<sitemapindex>``, or
    more than ``max_bytes`` of XML.
    """

    def __init__(
        self, max_bytes: int = MAX_SITEMAP_BYTES, max_entries: int = MAX_SITEMAP_ENTRIES
    ) -> None:
        self.max_bytes = max_bytes
        self.max_entries = max_entries
        self.is_index = False
        self.capped = False
        self.entries = 0
        self._xml_bytes = 0
        self._head: bytes | None = b""  # the first bytes, until we know whether they are gzip
        self._gunzip: Inflater | None = None
        self._in_document = False  # past the leading whitespace lxml would reject
        self._root: etree._Element | None = None
        self._parser = etree.XMLPullParser(
            events=("start", "end"),
            resolve_entities=False,
            no_network=True,
            huge_tree=False,
            remove_comments=True,  # or a sitemap of comments would pile up in the tree
            remove_pis=True,
        )

    def feed(self, data: bytes) -> list[SitemapEntry]:
        if self.capped:
            return []
        if self._head is not None and len(self._head) + len(data) < len(_GZIP_MAGIC):
            self._head += data
            return []
        if self._head is not None:
            data, self._head = self._head + data, None
            if data.startswith(_GZIP_MAGIC):
                self._gunzip = Inflater("gzip", self.max_bytes)
        if self._gunzip is None:
            return self._parse(data)
        entries = []
        pieces = self._gunzip.feed(data)
        try:
            for piece in pieces:
                entries += self._parse(piece)
        except UnreadableBodyError as error:
            raise SourceError(f"sitemap is {error}") from None
        except SourceError:
            for _ in pieces:  # a bomb's XML often breaks first: say what it really is
                pass
            if not self._gunzip.at_cap:
                raise
        if self._gunzip.at_cap:
            raise SourceError(
                f"sitemap is larger than {_megabytes(self.max_bytes)} once decompressed"
            )
        return entries

    def close(self) -> list[SitemapEntry]:
        """The last entries, once the whole body was fed; checks that the sitemap is whole."""
        if self.capped:
            return []
        if self._gunzip is not None and not self._gunzip.eof:
            raise SourceError("sitemap gzip stream is truncated")
        head, self._head = self._head or b"", None  # a body shorter than the gzip magic
        entries = self._parse(head, last=True)
        if self._root is None:
            raise SourceError("sitemap is not well-formed XML: it is empty")
        return entries

    def _parse(self, xml: bytes, *, last: bool = False) -> list[SitemapEntry]:
        if not self._in_document:
            xml = xml.lstrip()  # whitespace before <?xml …?> is a common server bug
            self._in_document = bool(xml)
        self._xml_bytes += len(xml)
        if self._xml_bytes > self.max_bytes:
            raise SourceError(f"sitemap is larger than {_megabytes(self.max_bytes)}")
        try:
            if xml:
                self._parser.feed(xml)
            if last and self._in_document:
                self._parser.close()
            return self._entries()
        except etree.XMLSyntaxError as error:
            raise SourceError(f"sitemap is not well-formed XML: {error}") from None

    def _entries(self) -> list[SitemapEntry]:
        entries = []
        for event, element in self._parser.read_events():
            if self._root is None:
                self._root = element
                self._check_root(element)
            elif event == "end" and element.getparent() is self._root:
                if self._is_entry(element) and (loc := _child_text(element, "loc")):
                    if self.entries == self.max_entries:
                        self.capped = True
                        break
                    self.entries += 1
                    entries.append(
                        SitemapEntry(loc, _parse_lastmod(_child_text(element, "lastmod")))
                    )
                self._forget(element)
        return entries

    def _check_root(self, root: etree._Element) -> None:
        kind = etree.QName(root).localname
        if kind not in _ENTRY_TAGS:
            raise SourceError(
                f"not a sitemap: the root element is <{kind}>, not <urlset> or <sitemapindex>"
            )
        self.is_index = kind == "sitemapindex"

    def _is_entry(self, element: etree._Element) -> bool:
        tag = _ENTRY_TAGS[etree.QName(self._root).localname]
        return isinstance(element.tag, str) and etree.QName(element).localname == tag

    def _forget(self, element: etree._Element) -> None:
        """Drop a finished entry and whatever came before it, so memory stays flat."""
        element.clear()
        while element.getprevious() is not None:
            del self._root[0]  # type: ignore[index]


def parse_sitemap(data: bytes) -> tuple[list[SitemapEntry], list[str]]:
    """Parse a whole sitemap at once: (pages of a ``<urlset>``, sitemaps of an index).

    One of the two lists is always empty; errors are those of ``SitemapReader``.
    """
    reader = SitemapReader()
    entries = reader.feed(data) + reader.close()
    if reader.is_index:
        return [], [entry.loc for entry in entries]
    return entries, []


def _megabytes(size: int) -> str:
    return f"{size / 2**20:g} MB"


def _child_text(element: etree._Element, name: str) -> str:
    """The stripped text of the first child called ``name``; "" if absent or not text."""
    for child in element.iterchildren(etree.Element):
        if etree.QName(child).localname == name:
            return (child.text or "").strip()
    return ""


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
