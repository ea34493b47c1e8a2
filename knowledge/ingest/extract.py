"""Turn HTML, Markdown, reStructuredText, AsciiDoc, plain-text and PDF documents into a
``Page`` of sectioned text (PDF: knowledge/ingest/pdf.py; reST and AsciiDoc: markup.py).

Answers quote the docs and link to ``page#anchor``, so extraction keeps only what a
reader sees in the main content, split at headings, with the anchor each heading can
be linked by. Site chrome (navigation, sidebars, footers, cookie banners) is dropped
so that it is neither embedded nor quoted back as an answer.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator

from bs4 import BeautifulSoup, NavigableString, Tag
from bs4.element import PreformattedString
from markdown_it import MarkdownIt

from knowledge.ingest.markup import MarkupError, asciidoc_to_markdown, rst_to_html
from knowledge.ingest.pdf import extract_pdf
from knowledge.types import Page, Section

_DROP_TAGS = frozenset(
    {"script", "style", "noscript", "template", "svg", "form", "button", "iframe"}
    | {"nav", "header", "footer", "aside"}
)
_DROP_ROLES = frozenset({"navigation", "banner", "contentinfo", "complementary", "search"})
# Whole class/id tokens that mark chrome; prefixes catch variants like "cookie-notice".
_CHROME_TOKENS = frozenset(
    {"nav", "navigation", "menu", "header", "footer", "site-header", "site-footer", "related"}
    | {"toc", "skip-link", "skiplink", "headerlink", "global-nav"}
    | {"hd", "ft"}  # the YUI grids layout's header and footer (Django's docs use it)
)
_CHROME_PREFIXES = ("sidebar", "sphinxsidebar", "navbar", "breadcrumb", "cookie", "consent")
_BLOCK_TAGS = frozenset(
    {"p", "div", "section", "article", "main", "header", "body", "address", "hr"}
    | {"li", "ul", "ol", "dl", "dt", "dd", "table", "caption", "tr", "td", "th"}
    | {"blockquote", "figure", "figcaption", "details", "summary"}
)
_HEADING = re.compile(r"^h[1-6]$")
_ROOT_SELECTORS = ("main", "[role=main]", "article", "div.body", "[itemprop=articleBody]")
_TITLE_SEPARATORS = (" \u2014 ", " \u2013 ", " | ", " - ", " \u00b7 ")  # em/en dash, middot
_MAX_DEPTH = 150  # deeper markup is flattened to text instead of recursing further
_WS = re.compile(r"\s+")
_FRONT_MATTER = re.compile(r"\A\ufeff?---[ \t]*\r?\n(.*?)^(?:---|\.\.\.)[ \t]*\r?$\n?", re.S | re.M)
_FRONT_MATTER_TITLE = re.compile(r"^title:[ \t]*(.*?)[ \t\r]*$", re.M)
_RST_TITLE = re.compile(  # optional overline, title, underline of one repeated character
    r"^(?:([=\-~^\"'`#*+])\1+[ \t]*\n)?[ \t]*(\S.*)\n(([=\-~^\"'`#*+])\4+)[ \t]*$", re.M
)
_MARKDOWN = MarkdownIt("commonmark").enable("table")


def slugify(heading: str) -> str:
    """Return the GitHub-style anchor for a heading ("Configure Slack!" -> "configure-slack")."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def _squash(text: str) -> str:
    return " ".join(text.replace("¶", "").split())


def _is_text(node: object) -> bool:
    return isinstance(node, NavigableString) and not isinstance(node, PreformattedString)


def _is_chrome(tag: Tag) -> bool:
    # An article's own <header> holds its title, not site chrome.
    own_header = tag.name == "header" and tag.find_parent(("article", "main")) is not None
    if (tag.name in _DROP_TAGS and not own_header) or tag.has_attr("hidden"):
        return True
    if str(tag.get("role", "")).lower() in _DROP_ROLES:
        return True
    tokens = [str(t).lower() for t in (*tag.get("class", ()), *str(tag.get("id", "")).split())]
    return any(t in _CHROME_TOKENS or t.startswith(_CHROME_PREFIXES) for t in tokens)


def _strings(tag: Tag, depth: int = 0) -> Iterator[str]:
    """Yield the visible strings under ``tag``, with spaces where blocks meet."""
    if depth > _MAX_DEPTH:
        yield tag.get_text(" ")
        return
    for child in tag.children:
        if isinstance(child, Tag) and not _is_chrome(child):
            pad = " " if child.name in _BLOCK_TAGS or child.name == "br" else ""
            yield pad
            yield from _strings(child, depth + 1)
            yield pad
        elif _is_text(child):
            yield str(child)


def _inline_text(tag: Tag) -> str:
    return _squash("".join(_strings(tag)))


def _anchor(heading: Tag, root: Tag) -> str:
    """The id a link to this heading would use, or "" when the page gives it none."""
    if heading.get("id"):
        return str(heading["id"]).strip()
    for link in heading.find_all("a"):
        href = str(link.get("href") or "")
        if "headerlink" in (link.get("class") or ()) and href.startswith("#") and len(href) > 1:
            return href[1:].strip()  # the page's own permalink for this heading (Sphinx)
        if link.get("id") or link.get("name"):
            return str(link.get("id") or link.get("name")).strip()
    marker = heading.find_previous_sibling()  # Sphinx: <span id="x"></span><h2>X</h2>
    if (
        isinstance(marker, Tag)
        and marker.name == "span"
        and marker.get("id")
        and not marker.get_text(strip=True)
    ):
        return str(marker["id"]).strip()
    parent = heading.parent  # Sphinx/Django: <div class="section" id="x"><h2>X</h2>
    if parent is None or parent is root or parent.name in ("body", "html") or not parent.get("id"):
        return ""
    return str(parent["id"]).strip() if parent.find(_HEADING) is heading else ""


class _Sections:
    """Collects blocks into sections under a stack of headings, with unique anchors."""

    def __init__(self) -> None:
        self.sections: list[Section] = []
        self.stack: list[tuple[int, str]] = []
        self.anchor = ""
        self.blocks: list[str] = []
        self.used_anchors: set[str] = set()

    def add(self, block: str) -> None:
        if block:
            self.blocks.append(block)

    def heading(self, level: int, text: str, anchor: str = "") -> None:
        self._close()
        while self.stack and self.stack[-1][0] >= level:
            self.stack.pop()
        self.stack.append((level, text))
        if not anchor:
            base = anchor = slugify(text) or "section"
            count = 0
            while anchor in self.used_anchors:
                count += 1
                anchor = f"{base}-{count}"
        self.used_anchors.add(anchor)
        self.anchor = anchor

    def _close(self) -> None:
        if self.blocks:
            path = tuple(text for _, text in self.stack)
            self.sections.append(Section(path, self.anchor, tuple(self.blocks)))
        self.blocks = []

    def result(self) -> tuple[Section, ...]:
        self._close()
        return tuple(self.sections)


class _HtmlWalker(_Sections):
    """Walks the main content in document order, buffering inline text into blocks."""

    def __init__(self, root: Tag) -> None:
        super().__init__()
        self.root = root
        self.buffer: list[str] = []
        self.first_h1 = ""

    def flush(self) -> None:
        lines = "".join(self.buffer).split("\n")
        self.buffer = []
        self.add("\n".join(filter(None, map(_squash, lines))))

    def walk(self, node: Tag, depth: int = 0) -> None:
        if depth > _MAX_DEPTH:
            self.buffer.append(_WS.sub(" ", node.get_text(" ")))
            return
        for child in node.children:
            if isinstance(child, Tag):
                self._visit(child, depth + 1)
            elif _is_text(child):
                self.buffer.append(_WS.sub(" ", child))

    def _visit(self, tag: Tag, depth: int) -> None:
        if _is_chrome(tag):
            return
        if tag.name == "br":
            self.buffer.append("\n")
        elif tag.name == "pre":
            self.flush()
            self.add(tag.get_text().strip("\n").rstrip())
        elif _HEADING.match(tag.name):
            self.flush()
            text = _inline_text(tag)
            if text:
                if tag.name == "h1" and not self.first_h1:
                    self.first_h1 = text
                self.heading(int(tag.name[1]), text, _anchor(tag, self.root))
        elif tag.name == "tr":
            self.flush()
            cells = [_inline_text(c) for c in tag.find_all(("td", "th"), recursive=False)]
            self.add(" | ".join(cells) if any(cells) else "")
        elif tag.name in _BLOCK_TAGS:
            self.flush()
            self.walk(tag, depth)
            self.flush()
        else:
            self.walk(tag, depth)


def _main_root(soup: BeautifulSoup) -> Tag:
    for selector in _ROOT_SELECTORS:
        for candidate in soup.select(selector):
            if candidate.find_parent(("nav", "aside", "header", "footer")) is None:
                return candidate
    return soup.body or soup


def _title(soup: BeautifulSoup, first_h1: str, fallback_title: str) -> str:
    tag = next((t for t in soup.find_all("title") if t.find_parent("svg") is None), None)
    title = _squash(tag.get_text()) if tag else ""
    if first_h1 and any(title.startswith(first_h1 + sep) for sep in _TITLE_SEPARATORS):
        return first_h1  # "Install — MyDocs" with <h1>Install</h1>: drop the site name
    return title or first_h1 or fallback_title


def extract_html(html: str, *, fallback_title: str) -> Page:
    """Extract the main content of an HTML page, split into sections at its headings."""
    soup = BeautifulSoup(html, "lxml")
    walker = _HtmlWalker(_main_root(soup))
    walker.walk(walker.root)
    walker.flush()
    return Page(_title(soup, walker.first_h1, fallback_title), walker.result())


def extract_markdown(text: str, *, fallback_title: str) -> Page:
    """Extract a Markdown document; headings get GitHub-style anchors.

    The title is the first h1, else the front matter's ``title:``, else ``fallback_title``.
    """
    front_matter = _FRONT_MATTER.match(text)
    if front_matter:
        found = _FRONT_MATTER_TITLE.search(front_matter.group(1))
        fallback_title = (found and found.group(1).strip("'\"")) or fallback_title
        text = text[front_matter.end() :]
    return extract_html(_MARKDOWN.render(text), fallback_title=fallback_title)


def _paragraphs(text: str) -> list[str]:
    return list(filter(None, map(_squash, re.split(r"\n\s*\n", text))))


def extract_text(text: str, *, fallback_title: str) -> Page:
    """Extract plain text as one untitled section of blank-line-separated paragraphs."""
    blocks = tuple(_paragraphs(text))
    return Page(fallback_title, (Section((), "", blocks),) if blocks else ())


def _extract_rst(text: str, *, fallback_title: str) -> Page:
    """Paragraphs like ``extract_text``, plus reStructuredText section titles as headings.

    Heading levels follow the order in which title styles first appear, as in docutils;
    the first title is the page title.
    """
    text = text.replace("\r\n", "\n")
    sections, title, position = _Sections(), "", 0
    styles: list[tuple[str, bool]] = []  # (character, overlined), in order of appearance
    for match in _RST_TITLE.finditer(text):
        heading, underline = match.group(2).strip(), match.group(3).strip()
        if len(underline) < len(heading):
            continue  # too short to be an underline: leave it as text
        for block in _paragraphs(text[position : match.start()]):
            sections.add(block)
        style = (underline[0], match.group(1) is not None)
        if style not in styles:
            styles.append(style)
        sections.heading(styles.index(style) + 1, heading)
        title, position = title or heading, match.end()
    for block in _paragraphs(text[position:]):
        sections.add(block)
    return Page(title or fallback_title, sections.result())


def extract_rst(text: str, *, fallback_title: str) -> Page:
    """reStructuredText through docutils (knowledge/ingest/markup.py), headings with the ids
    docutils gives them; the regex reading above when docutils cannot parse it at all."""
    try:
        return extract_html(rst_to_html(text), fallback_title=fallback_title)
    except MarkupError:
        return _extract_rst(text, fallback_title=fallback_title)


def extract_asciidoc(text: str, *, fallback_title: str) -> Page:
    """AsciiDoc as text, with its ``=`` title lines as headings."""
    return extract_markdown(asciidoc_to_markdown(text), fallback_title=fallback_title)


_EXTRACTORS: dict[str, Callable[..., Page]] = {
    ".html": extract_html,
    ".htm": extract_html,
    ".md": extract_markdown,
    ".markdown": extract_markdown,
    ".txt": extract_text,
    ".rst": extract_rst,
    ".adoc": extract_asciidoc,
    ".asciidoc": extract_asciidoc,
}
# Formats read from bytes, not text: their extractor takes the file's bytes.
_BINARY_EXTRACTORS: dict[str, Callable[..., Page]] = {".pdf": extract_pdf}
BINARY_SUFFIXES: frozenset[str] = frozenset(_BINARY_EXTRACTORS)
SUPPORTED_SUFFIXES: frozenset[str] = frozenset(_EXTRACTORS) | BINARY_SUFFIXES


def extract(content: str | bytes, *, suffix: str, fallback_title: str) -> Page:
    """Extract a document by its file suffix (".md", ".html", ".pdf", ...): text formats
    from ``str``, binary ones (``BINARY_SUFFIXES``) from ``bytes``.

    Raises ``ValueError`` when the suffix is not in ``SUPPORTED_SUFFIXES`` or the content is
    not of the kind the suffix needs, and ``PdfError`` for a PDF that cannot be indexed.
    """
    suffix = suffix.lower()
    binary = _BINARY_EXTRACTORS.get(suffix)
    extractor = binary or _EXTRACTORS.get(suffix)
    if extractor is None:
        raise ValueError(f"unsupported document suffix {suffix!r}")
    if isinstance(content, bytes) != (binary is not None):
        raise ValueError(f"a {suffix} document given as {type(content).__name__}")
    return extractor(content, fallback_title=fallback_title)
