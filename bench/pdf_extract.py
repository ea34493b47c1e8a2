"""pypdf against pdfminer.six: which keeps reading order and headings, and how fast.

Generated handbooks (tests/pdf_maker.py: one and two columns, outline headings in larger
fonts) have a known order: each paragraph is "Marker N …". Scores:

- ``order``: the share of consecutive paragraphs (N, N+1) whose markers come out in that order;
- ``found``: the share of paragraphs whose marker comes out at all;
- ``headings``: the share of headings that come out as a line of their own;
- ``outline``: headings the library gives with their page numbers, from the PDF outline.

Real PDFs (any given with --pdf, e.g. /usr/share/doc/libtasn1-doc/libtasn1.pdf) have no
known order: for them the table shows pages, characters, outline entries and time.

    python -m bench.pdf_extract [--pdf FILE ...]
"""

from __future__ import annotations

import argparse
import io
import re
import time
from collections.abc import Callable
from pathlib import Path

from tests.pdf_maker import Made, handbook

_MARKER = re.compile(r"Marker (\d+)\b")


def pypdf_pages(data: bytes) -> list[str]:
    from pypdf import PdfReader

    return [page.extract_text() or "" for page in PdfReader(io.BytesIO(data)).pages]


def pdfminer_pages(data: bytes) -> list[str]:
    from pdfminer.high_level import extract_pages
    from pdfminer.layout import LAParams, LTTextContainer

    pages = []
    for layout in extract_pages(io.BytesIO(data), laparams=LAParams()):
        pages.append("\n".join(e.get_text() for e in layout if isinstance(e, LTTextContainer)))
    return pages


def pypdf_outline(data: bytes) -> int:
    from pypdf import PdfReader

    reader = PdfReader(io.BytesIO(data))

    def count(items: list) -> int:
        return sum(count(i) if isinstance(i, list) else 1 for i in items)

    return count(reader.outline)


def pdfminer_outline(data: bytes) -> int:
    from pdfminer.pdfdocument import PDFDocument, PDFNoOutlines
    from pdfminer.pdfparser import PDFParser

    document = PDFDocument(PDFParser(io.BytesIO(data)))
    try:
        return sum(1 for _ in document.get_outlines())
    except PDFNoOutlines:
        return 0


LIBRARIES: dict[str, tuple[Callable[[bytes], list[str]], Callable[[bytes], int]]] = {
    "pypdf": (pypdf_pages, pypdf_outline),
    "pdfminer.six": (pdfminer_pages, pdfminer_outline),
}


def scores(made: Made, pages: list[str]) -> tuple[float, float, float]:
    text = "\n".join(pages)
    seen = [int(m) for m in _MARKER.findall(text)]
    position = {n: i for i, n in reversed(list(enumerate(seen)))}
    total = len(made.paragraphs)
    found = sum(1 for n in range(1, total + 1) if n in position) / total
    pairs = [(n, n + 1) for n in range(1, total)]
    ordered = sum(
        1 for a, b in pairs if a in position and b in position and position[a] < position[b]
    )
    lines = {" ".join(line.split()) for line in text.splitlines()}
    headings = sum(1 for h in made.headings if h in lines) / len(made.headings)
    return ordered / len(pairs), found, headings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pdf", action="append", default=[], type=Path, help="a real PDF")
    args = parser.parse_args()
    generated = {
        "handbook, 1 column": handbook(chapters=6, sections=3, paragraphs=6),
        "handbook, 2 columns": handbook(chapters=6, sections=3, paragraphs=6, columns=2),
    }
    print("| PDF | library | pages | order | found | headings as lines | outline | ms/page |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for name, made in generated.items():
        for library, (pages_of, outline_of) in LIBRARIES.items():
            started = time.perf_counter()
            pages = pages_of(made.data)
            outline = outline_of(made.data)
            ms = (time.perf_counter() - started) * 1000 / max(1, len(pages))
            order, found, headings = scores(made, pages)
            print(
                f"| {name} | {library} | {len(pages)} | {order:.2f} | {found:.2f} | "
                f"{headings:.2f} | {outline}/{len(made.headings)} | {ms:.1f} |"
            )
    for path in args.pdf:
        data = path.read_bytes()
        for library, (pages_of, outline_of) in LIBRARIES.items():
            started = time.perf_counter()
            pages = pages_of(data)
            outline = outline_of(data)
            ms = (time.perf_counter() - started) * 1000 / max(1, len(pages))
            chars = sum(len(p) for p in pages)
            print(
                f"| {path.name} | {library} | {len(pages)} | – | {chars:,} chars | – | "
                f"{outline} | {ms:.1f} |"
            )


if __name__ == "__main__":
    main()
