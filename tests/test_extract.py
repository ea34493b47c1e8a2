"""Tests for knowledge.ingest.extract: main-content HTML, Markdown and text extraction."""

import pytest

from knowledge.ingest.extract import (
    SUPPORTED_SUFFIXES,
    extract,
    extract_html,
    extract_markdown,
    extract_text,
    slugify,
)
from knowledge.types import Page, Section

CHROME_PAGE = """<!doctype html>
<html><head><title>Deploying</title><style>.x{color:red}</style></head>
<body>
  <header>SITE HEADER</header>
  <nav><a href="/">NAV LINK</a></nav>
  <div id="cookie-banner">We use COOKIES</div>
  <div class="cookie-consent-popup">Accept COOKIES?</div>
  <div role="navigation">ROLE NAV</div>
  <div class="breadcrumbs">Home / Docs</div>
  <main>
    <div class="sidebar-left">SIDEBAR</div>
    <p>Main text about <b>deploying</b>.</p>
    <div class="subheader-text">Subheader stays</div>
    <div class="section"><div class="body">Body stays</div></div>
    <aside>ASIDE TIP</aside>
    <script>var TRACKING = 1;</script>
  </main>
  <footer>FOOTER TEXT</footer>
</body></html>"""


def _html(body: str, head: str = "") -> str:
    return f"<html><head>{head}</head><body>{body}</body></html>"


def _paths(page: Page) -> list[tuple[str, ...]]:
    return [s.heading_path for s in page.sections]


def test_chrome_is_dropped_and_main_text_kept() -> None:
    page = extract_html(CHROME_PAGE, fallback_title="fallback")
    text = page.text
    for chrome in ("SITE HEADER", "NAV LINK", "COOKIES", "ROLE NAV", "Home / Docs", "SIDEBAR"):
        assert chrome not in text
    for chrome in ("ASIDE TIP", "FOOTER TEXT", "TRACKING", "color:red"):
        assert chrome not in text
    blocks = ("Main text about deploying.", "Subheader stays", "Body stays")
    assert page.sections[0].blocks == blocks


def test_body_is_the_root_without_main_and_chrome_is_still_dropped() -> None:
    html = _html('<div class="navbar">Menu</div><p>Hello</p><div class="footer">Legal</div>')
    page = extract_html(html, fallback_title="f")
    assert page.sections == (Section((), "", ("Hello",)),)


def test_main_root_skips_article_inside_aside() -> None:
    html = _html("<aside><article>Related post</article></aside><article><p>Real</p></article>")
    assert extract_html(html, fallback_title="f").text == "Real"


def test_article_header_keeps_its_heading() -> None:
    html = _html("<header>Site</header><article><header><h1>Post</h1></header><p>B</p></article>")
    page = extract_html(html, fallback_title="f")
    assert page.sections == (Section(("Post",), "post", ("B",)),)


def test_sphinx_section_div_gives_anchor_and_headerlink_is_removed() -> None:
    html = _html(
        '<div class="body" role="main">'
        '<div class="section" id="x"><h2>X<a class="headerlink" href="#x">¶</a></h2>'
        "<p>Text¶ here</p></div></div>"
    )
    page = extract_html(html, fallback_title="f")
    assert page.sections == (Section(("X",), "x", ("Text here",)),)
    assert "¶" not in page.text


def test_section_element_id_is_anchor_only_for_its_first_heading() -> None:
    html = _html('<section id="setup"><h2>Setup</h2><p>a</p><h3>More</h3><p>b</p></section>')
    page = extract_html(html, fallback_title="f")
    assert [s.anchor for s in page.sections] == ["setup", "more"]


def test_heading_paths_nest_and_pop() -> None:
    html = _html(
        "<p>intro</p><h1>Guide</h1><p>g</p><h2>Install</h2><p>i</p>"
        "<h3>Linux</h3><p>l</p><h2>Usage</h2><p>u</p><h1>Other</h1><p>o</p>"
    )
    page = extract_html(html, fallback_title="f")
    assert _paths(page) == [
        (),
        ("Guide",),
        ("Guide", "Install"),
        ("Guide", "Install", "Linux"),
        ("Guide", "Usage"),
        ("Other",),
    ]
    assert page.sections[0].anchor == ""


def test_heading_without_text_below_it_is_dropped_but_stays_in_paths() -> None:
    page = extract_html(_html("<h1>A</h1><h2>B</h2><p>b</p>"), fallback_title="f")
    assert page.sections == (Section(("A", "B"), "b", ("b",)),)


def test_heading_id_and_inner_anchor_are_used() -> None:
    html = _html('<h2 id="own-id">Configure</h2><p>a</p><h2><a name="legacy"></a>Old</h2><p>b</p>')
    page = extract_html(html, fallback_title="f")
    assert [s.anchor for s in page.sections] == ["own-id", "legacy"]


def test_slug_fallback_is_unique() -> None:
    html = _html("<h2>Usage</h2><p>a</p><h2>Usage</h2><p>b</p><h2>Usage</h2><p>c</p>")
    page = extract_html(html, fallback_title="f")
    assert [s.anchor for s in page.sections] == ["usage", "usage-1", "usage-2"]


@pytest.mark.parametrize(
    ("heading", "slug"),
    [
        ("Configure Slack", "configure-slack"),
        ("What's new in v2.0?", "whats-new-in-v20"),
        ("Foo & Bar", "foo--bar"),
        ("snake_case-name", "snake_case-name"),
        ("  Ünïcode Título ", "ünïcode-título"),
    ],
)
def test_slugify_matches_github(heading: str, slug: str) -> None:
    assert slugify(heading) == slug


def test_pre_keeps_newlines_and_inline_whitespace_collapses() -> None:
    html = _html("<p>one\n   two\tthree<br>next line</p><pre>\ndef f():\n    return 1\n\n</pre>")
    page = extract_html(html, fallback_title="f")
    assert page.sections[0].blocks == ("one two three\nnext line", "def f():\n    return 1")


def test_lists_and_table_rows_become_blocks() -> None:
    html = _html(
        "<ul><li>first</li><li>second <code>item</code></li></ul>"
        "<table><tr><th>Name</th><th>Default</th></tr><tr><td><p>port</p></td><td>80</td></tr>"
        "</table>"
    )
    blocks = extract_html(html, fallback_title="f").sections[0].blocks
    assert blocks == ("first", "second item", "Name | Default", "port | 80")


@pytest.mark.parametrize(
    ("head", "body", "title"),
    [
        ("<title>Install — MyDocs</title>", "<h1>Install</h1><p>x</p>", "Install"),
        ("<title>Install | MyDocs</title>", "<h1>Setup</h1><p>x</p>", "Install | MyDocs"),
        ("<title>  Spaced\n  Title </title>", "<p>x</p>", "Spaced Title"),
        ("", '<h1>Only H1<a class="headerlink">¶</a></h1><p>x</p>', "Only H1"),
        ("", "<p>x</p>", "fallback"),
    ],
)
def test_title_sources(head: str, body: str, title: str) -> None:
    assert extract_html(_html(body, head), fallback_title="fallback").title == title


def test_h1_is_part_of_the_heading_path() -> None:
    html = _html('<h1 id="install">Install</h1><p>x</p>', "<title>Install - Docs</title>")
    page = extract_html(html, fallback_title="f")
    assert page.title == "Install"
    assert page.sections == (Section(("Install",), "install", ("x",)),)


MARKDOWN = """---
title: "Front Matter Title"
tags: [a, b]
---
Intro paragraph.

## Configure Slack

Set `SLACK_TOKEN`.

```python
def main():
    return 1
```

### Tokens & Scopes

| scope | why |
|-------|-----|
| chat:write | replies |

## Configure Slack

Again.
"""


def test_markdown_headings_anchors_and_code() -> None:
    page = extract_markdown(MARKDOWN, fallback_title="guide")
    assert page.title == "Front Matter Title"
    assert "tags:" not in page.text
    assert [(s.heading_path, s.anchor) for s in page.sections] == [
        ((), ""),
        (("Configure Slack",), "configure-slack"),
        (("Configure Slack", "Tokens & Scopes"), "tokens--scopes"),
        (("Configure Slack",), "configure-slack-1"),
    ]
    assert page.sections[1].blocks == ("Set SLACK_TOKEN.", "def main():\n    return 1")
    assert page.sections[2].blocks == ("scope | why", "chat:write | replies")


def test_markdown_title_prefers_h1_then_fallback() -> None:
    page = extract_markdown("---\ntitle: FM\n---\n# Real\n\nx\n", fallback_title="f")
    assert page.title == "Real"
    assert extract_markdown("just text\n", fallback_title="readme").title == "readme"


def test_markdown_without_closing_front_matter_keeps_text() -> None:
    page = extract_markdown("---\n\nNot front matter.\n", fallback_title="f")
    assert page.text == "Not front matter."


def test_text_paragraphs() -> None:
    text = "First line\nsame para.\n\n\n  Second\tpara  \r\n\r\nThird"
    blocks = ("First line same para.", "Second para", "Third")
    assert extract_text(text, fallback_title="notes") == Page("notes", (Section((), "", blocks),))


def test_rst_titles_become_headings() -> None:
    rst = "=====\nTitle\n=====\n\nIntro.\n\nPart A\n------\na text\n\nSub\n~~~\n\nsub text\n"
    page = extract(rst, suffix=".rst", fallback_title="f")
    assert page.title == "Title"
    assert [(s.heading_path, s.anchor, s.blocks) for s in page.sections] == [
        (("Title",), "title", ("Intro.",)),
        (("Title", "Part A"), "part-a", ("a text",)),
        (("Title", "Part A", "Sub"), "sub", ("sub text",)),
    ]


@pytest.mark.parametrize(
    ("html", "kept"),
    [
        (
            "<div><p>unclosed <b>bold <i>italic</div></span></table>&&& <<< >>>",
            "unclosed bold italic",
        ),
        ("\x00\x01 garbage <<!-- <![CDATA[ x", "garbage"),
        ("<html><body>" + "<div>" * 5000 + "deep text", "deep text"),
        ("<?xml version='1.0'?><svg><title>Icon</title></svg><p>after svg</p>", "after svg"),
        ("</p></body><td>cell<th>head</html><h2>", "head"),
    ],
)
@pytest.mark.filterwarnings("ignore::bs4.XMLParsedAsHTMLWarning")
def test_malformed_html_does_not_raise_and_keeps_text(html: str, kept: str) -> None:
    page = extract_html(html, fallback_title="f")
    assert page.title == "f"
    assert kept in page.text


@pytest.mark.parametrize("suffix", [".html", ".md", ".txt", ".rst"])
def test_empty_document_has_no_sections(suffix: str) -> None:
    page = extract("  \n\n ", suffix=suffix, fallback_title="empty")
    assert page == Page("empty", ())


def test_comments_and_doctype_are_not_text() -> None:
    page = extract_html("<!DOCTYPE html><p>a<!-- secret --></p>", fallback_title="f")
    assert page.text == "a"


@pytest.mark.parametrize(
    ("suffix", "text", "expected"),
    [
        (".html", "<h2>A</h2><p>b</p>", ("A",)),
        (".HTM", "<h2>A</h2><p>b</p>", ("A",)),
        (".md", "## A\n\nb\n", ("A",)),
        (".markdown", "## A\n\nb\n", ("A",)),
        (".txt", "## A\n\nb\n", ()),
    ],
)
def test_extract_dispatches_by_suffix(suffix: str, text: str, expected: tuple[str, ...]) -> None:
    page = extract(text, suffix=suffix, fallback_title="f")
    assert page.sections[0].heading_path == expected
    assert page.sections[-1].blocks[-1] == "b"


def test_extract_rejects_unsupported_suffix() -> None:
    assert sorted(SUPPORTED_SUFFIXES) == [
        ".adoc",
        ".asciidoc",
        ".htm",
        ".html",
        ".markdown",
        ".md",
        ".pdf",
        ".rst",
        ".txt",
    ]
    with pytest.raises(ValueError, match="png"):
        extract("binary", suffix=".png", fallback_title="f")


def test_sphinx_permalinks_and_span_markers_name_the_anchor() -> None:
    html = """<html><body><div class="body">
    <div class="section" id="s-login"><span id="login"></span>
    <h2>Logging in<a class="headerlink" href="#login" title="Permalink">¶</a></h2>
    <p>Set SESSION_COOKIE_DOMAIN.</p></div>
    <div class="section" id="s-other"><span id="other"></span><h2>Other</h2><p>Text.</p></div>
    </div></body></html>"""
    page = extract_html(html, fallback_title="faq")
    assert [s.anchor for s in page.sections] == ["login", "other"]


def test_yui_layout_header_and_footer_are_dropped() -> None:
    html = """<html><body><div id="hd"><h1>Django documentation</h1>
    <div id="global-nav"><a href="/">Home</a> | <a href="/contents">Table of contents</a></div>
    </div><div id="bd"><h1>FAQ: The admin</h1><p>Real answer text.</p></div>
    <div id="ft">Last update: today</div></body></html>"""
    text = extract_html(html, fallback_title="faq").text
    assert "Real answer text." in text
    assert "Table of contents" not in text and "Last update" not in text
