"""reStructuredText and AsciiDoc turned into markup ``extract.py`` already reads.

reStructuredText goes through docutils to HTML, so section titles, their ids (the anchors a
rendered page uses) and literal blocks come out as docutils sees them. A document is hostile
like any other: ``include`` and file-reading ``csv-table``/``raw`` are off
(``file_insertion_enabled``, ``raw_enabled``), docutils reads no configuration file, and its
messages about unknown Sphinx roles or directives are dropped (``report_level`` 5) instead of
ending up in the text. AsciiDoc is read as text whose ``=`` title lines become headings.
"""

from __future__ import annotations

import re

from docutils.core import publish_parts
from docutils.parsers.rst import directives
from docutils.parsers.rst.directives.body import CodeBlock
from docutils.utils import SystemMessage

from knowledge.errors import KnowledgeError

_SILENT = 5  # above docutils' "severe" (4): no message is reported, none stops the parse
DOCUTILS_SETTINGS = {
    "file_insertion_enabled": False,
    "raw_enabled": False,
    "_disable_config": True,
    "report_level": _SILENT,
    "halt_level": _SILENT,
    "traceback": True,  # raise instead of writing to stderr or exiting
    "warning_stream": False,
    "syntax_highlight": "none",
    "embed_stylesheet": False,
    "stylesheet_path": "",
    "math_output": "HTML",
    "input_encoding": "unicode",
    "doctitle_xform": True,
    "sectsubtitle_xform": False,
    "section_self_link": False,
}
_ASCIIDOC_TITLE = re.compile(r"^(={1,6})[ \t]+(\S.*?)[ \t]*$", re.M)

# Sphinx's names for docutils' own code directive, so code in Sphinx sources is kept.
directives.register_directive("code-block", CodeBlock)
directives.register_directive("sourcecode", CodeBlock)


class MarkupError(KnowledgeError):
    """A document docutils could not parse at all."""


def rst_to_html(text: str) -> str:
    """reStructuredText as an HTML page whose ``<title>`` is the document's title."""
    try:
        parts = publish_parts(source=text, writer="html5", settings_overrides=DOCUTILS_SETTINGS)
    except (SystemMessage, RecursionError, IndexError, AttributeError, KeyError) as exc:
        raise MarkupError(f"not readable reStructuredText ({type(exc).__name__})") from None
    head = f"<head><title>{parts['title']}</title></head>"
    return f"<html>{head}<body>{parts['html_body']}</body></html>"


def asciidoc_to_markdown(text: str) -> str:
    """AsciiDoc as text, its ``= Title`` and ``== Section`` lines as Markdown headings."""
    return _ASCIIDOC_TITLE.sub(lambda m: f"{'#' * len(m[1])} {m[2]}", text)
