"""A PDF as a ``Page``: one section per page, cited ``file.pdf#page=N``, under its outline.

The bytes are read by ``knowledge/ingest/pdf_reader.py`` in a child process with a total
deadline, an address-space cap and caps on pages and characters, so a hostile PDF costs at
most that and is reported by name (``PdfError``). A page's text is cut at the lines that
carry the outline headings pointing at it, so the text above a heading stays under the
heading before; without an outline, a page's sections carry no heading, only the page.
"""

from __future__ import annotations

import json
import logging
import os
import re
import subprocess
import sys

from knowledge.errors import KnowledgeError
from knowledge.types import Page, Section

MAX_PDF_PAGES = 2000
MAX_PDF_CHARS = 5_000_000
PDF_DEADLINE_SECONDS = 60.0
# What the reader's process needs of the environment: no tokens or keys go to a process that
# parses hostile files.
log = logging.getLogger(__name__)
_CHILD_ENV = frozenset({"PATH", "PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "LANG", "TMPDIR"})
_ENDS_SENTENCE = re.compile(r"[.!?:]['\")\]]?$")
_STARTS = re.compile(r"[A-Z0-9\u2022\-*(\"']")


class PdfError(KnowledgeError):
    """A PDF that was not indexed; the message says why, and is shown with its name."""


def extract_pdf(
    data: bytes,
    *,
    fallback_title: str,
    max_pages: int = MAX_PDF_PAGES,
    max_chars: int = MAX_PDF_CHARS,
    deadline: float = PDF_DEADLINE_SECONDS,
) -> Page:
    """The PDF's text by page, with outline headings; raises ``PdfError`` for a PDF that is
    encrypted, image-only, too large, malformed or too slow to read."""
    if b"%PDF-" not in data[:1024]:
        raise PdfError("not a PDF (no %PDF- header)")
    try:
        child = subprocess.run(
            [sys.executable, "-m", "knowledge.ingest.pdf_reader", str(max_pages), str(max_chars)],
            input=data,
            capture_output=True,
            timeout=deadline,
            check=False,
            env={k: v for k, v in os.environ.items() if k in _CHILD_ENV},  # no secrets
        )
    except subprocess.TimeoutExpired:
        raise PdfError(f"took longer than {deadline:g} s to read; not indexed") from None
    try:
        result = json.loads(child.stdout)
    except ValueError:
        log.warning("the PDF reader stopped: %s", child.stderr[-2000:].decode("utf-8", "replace"))
        raise PdfError(
            f"could not be read (the reader stopped with code {child.returncode})"
        ) from None
    if "error" in result:
        raise PdfError(str(result["error"]))
    return pdf_page(result["pages"], result["outline"], result["title"] or fallback_title)


def pdf_page(pages: list[str], outline: list[list], title: str) -> Page:
    """Sections page by page (anchor ``page=N``), each under the outline heading in force."""
    by_page: dict[int, list[tuple[int, str]]] = {}
    for level, heading, index in outline:
        by_page.setdefault(int(index), []).append((int(level), str(heading)))
    sections: list[Section] = []
    stack: list[tuple[int, str]] = []
    for index, text in enumerate(pages):
        anchor = f"page={index + 1}"
        lines = text.splitlines()
        start = 0
        for level, heading in by_page.get(index, []):
            at = _line_of(lines, heading, start)
            if at is not None:
                _add(sections, stack, anchor, lines[start:at])
                start = at + 1
            while stack and stack[-1][0] >= level:
                stack.pop()
            stack.append((level, heading))
        _add(sections, stack, anchor, lines[start:])
    return Page(title, tuple(sections))


def _line_of(lines: list[str], heading: str, start: int) -> int | None:
    wanted = " ".join(heading.split())
    for i in range(start, len(lines)):
        if " ".join(lines[i].split()) == wanted:
            return i
    return None


def _add(
    sections: list[Section], stack: list[tuple[int, str]], anchor: str, lines: list[str]
) -> None:
    blocks = tuple(_paragraphs(lines))
    if blocks:
        sections.append(Section(tuple(h for _, h in stack), anchor, blocks))


def _paragraphs(lines: list[str]) -> list[str]:
    """Lines joined into paragraphs. A PDF keeps no paragraphs, only lines, so a paragraph
    ends at a blank line, or where a line ends a sentence and the next starts like one."""
    paragraphs: list[str] = []
    current: list[str] = []
    for line in lines:
        words = " ".join(line.split())
        if current and (not words or (_ENDS_SENTENCE.search(current[-1]) and _STARTS.match(words))):
            paragraphs.append(" ".join(current))
            current = []
        if words:
            current.append(words)
    if current:
        paragraphs.append(" ".join(current))
    return paragraphs
