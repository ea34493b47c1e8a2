"""The child process that reads one PDF with pypdf: bytes on stdin, JSON on stdout.

pypdf is pure Python and a hostile file can make it loop, recurse or allocate without end, so
it never runs inside teambot's own process: ``knowledge/ingest/pdf.py`` starts this module
with a deadline and kills it when the deadline passes. Here the process caps its own address
space, the pages it reads and the characters it keeps, and answers either
``{"title", "pages", "outline"}`` or ``{"error"}`` (a sentence for the run's report).

pypdf rather than pdfminer.six: on generated handbooks it keeps reading order as well or
better (two columns: 1.00 against 0.94), finds the same headings and outline entries, and
takes half the time per page (bench/pdf_extract.py; numbers in bench/README.md).
"""

from __future__ import annotations

import io
import json
import logging
import resource
import sys
from typing import Any

MEMORY_BYTES = 1024 * 1024 * 1024
MAX_OUTLINE_ENTRIES = 5000
MAX_OUTLINE_DEPTH = 20
# Titles that tools write when the author gave none: the file name says more.
_NO_TITLE = frozenset({"untitled", "untitled document", "anonymous", "(anonymous)", "title"})
ENCRYPTED = "encrypted with a password; save a copy without one to have it indexed"


class _Refused(Exception):
    """A PDF teambot will not index; the message says why, for the run's report."""


def read(data: bytes, max_pages: int, max_chars: int) -> dict[str, Any]:
    """Title, page texts and outline ``[level, title, page index]`` of the PDF in ``data``."""
    from pypdf import PdfReader
    from pypdf.errors import FileNotDecryptedError, LimitReachedError

    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted and not reader.decrypt(""):
            raise _Refused(ENCRYPTED)
        count = len(reader.pages)
        if count > max_pages:
            raise _Refused(f"has {count:,} pages; teambot reads PDFs of at most {max_pages:,}")
        pages, chars = [], 0
        for page in reader.pages:
            text = page.extract_text() or ""
            chars += len(text)
            if chars > max_chars:
                raise _Refused(
                    f"holds more than {max_chars:,} characters of text; split it into smaller files"
                )
            pages.append(text)
        if not any(text.strip() for text in pages):
            raise _Refused(
                "has no text layer (scanned or image-only); teambot does not read images, "
                "so export it with its text"
            )
        return {"title": _title(reader), "pages": pages, "outline": _outline(reader)}
    except FileNotDecryptedError:
        raise _Refused(ENCRYPTED) from None
    except LimitReachedError:  # a compression bomb, or a stream pypdf will not inflate whole
        raise _Refused("holds a compressed stream larger than teambot inflates") from None
    except RecursionError:
        raise _Refused("not a readable PDF (nested too deeply)") from None
    except (_Refused, MemoryError):
        raise
    except Exception as exc:  # this process reads one hostile file: any error is the file's
        raise _Refused(f"not a readable PDF ({type(exc).__name__}: {str(exc)[:200]})") from None


def _title(reader: Any) -> str:
    try:
        title = reader.metadata.title if reader.metadata else None
    except Exception:  # a broken Info dictionary costs only the title
        return ""
    title = " ".join(str(title or "").split())[:300]
    return "" if title.lower() in _NO_TITLE else title


def _outline(reader: Any) -> list[list[Any]]:
    """The outline as ``[level, title, page index]`` in document order; a broken one is []."""
    entries: list[list[Any]] = []

    def walk(items: list[Any], level: int) -> None:
        for item in items:
            if len(entries) >= MAX_OUTLINE_ENTRIES or level > MAX_OUTLINE_DEPTH:
                return
            if isinstance(item, list):
                walk(item, level + 1)
                continue
            page = reader.get_destination_page_number(item)
            title = " ".join(str(item.title or "").split())[:300]
            if title and page is not None and page >= 0:
                entries.append([level, title, page])

    try:
        walk(reader.outline, 1)
    except Exception:  # headings are a bonus: the pages' text is still indexed
        return []
    return entries


def main() -> None:
    """``python -m knowledge.ingest.pdf_reader MAX_PAGES MAX_CHARS`` < file.pdf > result.json"""
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_BYTES, MEMORY_BYTES))
    logging.disable(logging.CRITICAL)  # pypdf warns on every odd object; the report says enough
    max_pages, max_chars = int(sys.argv[1]), int(sys.argv[2])
    data = sys.stdin.buffer.read()
    try:
        result = read(data, max_pages, max_chars)
    except _Refused as exc:
        result = {"error": str(exc)}
    except MemoryError:
        result = {"error": "needs more memory than teambot gives one PDF"}
    json.dump(result, sys.stdout)


if __name__ == "__main__":
    main()
