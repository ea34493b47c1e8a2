"""PDFs made on the spot with reportlab, whose text, headings and reading order are known.

Used by tests/test_pdf*.py and by bench/pdf_extract.py; nothing here is committed as a file.
"""

from __future__ import annotations

import io
import zlib
from dataclasses import dataclass

from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import getSampleStyleSheet
from reportlab.lib.units import cm
from reportlab.pdfgen import canvas
from reportlab.platypus import (
    BaseDocTemplate,
    Frame,
    PageTemplate,
    Paragraph,
    Spacer,
)
from reportlab.platypus.flowables import PageBreak

WORDS = [
    "queue",
    "worker",
    "retry",
    "backoff",
    "tenant",
    "schema",
    "replica",
    "lease",
    "index",
    "token",
    "cache",
    "shard",
    "cluster",
    "snapshot",
    "rollout",
    "budget",
    "ledger",
    "invoice",
    "payroll",
    "badge",
    "laptop",
    "vacation",
]


@dataclass(frozen=True)
class Made:
    """A generated PDF and what a perfect extractor would return: headings and paragraphs in
    reading order (each paragraph is one numbered sentence, so order can be checked)."""

    data: bytes
    headings: list[str]
    paragraphs: list[str]


def sentence(n: int) -> str:
    """A distinct sentence whose words say where it belongs (``Marker 7 ...``)."""
    words = " ".join(WORDS[(n * 7 + i) % len(WORDS)] for i in range(14))
    return f"Marker {n} says {words}."


def handbook(
    *, chapters: int = 3, sections: int = 2, paragraphs: int = 4, columns: int = 1
) -> Made:
    """A handbook: chapters (Heading1) and sections (Heading2) with outline entries, page
    breaks between chapters, body text in one or two columns."""
    styles = getSampleStyleSheet()
    out = io.BytesIO()
    document = _Outlined(out, pagesize=A4, title="Team Handbook", author="teambot tests")
    width, height = A4
    margin = 2 * cm
    gap = 1 * cm
    column = (width - 2 * margin - (columns - 1) * gap) / columns
    frames = [
        Frame(margin + i * (column + gap), margin, column, height - 2 * margin, id=f"c{i}")
        for i in range(columns)
    ]
    document.addPageTemplates([PageTemplate(id="body", frames=frames)])
    story: list = []
    headings: list[str] = []
    texts: list[str] = []
    n = 0
    for c in range(1, chapters + 1):
        if c > 1:
            story.append(PageBreak())
        title = f"Chapter {c} {WORDS[c % len(WORDS)].title()} policy"
        headings.append(title)
        story.append(Paragraph(title, styles["Heading1"]))
        for s in range(1, sections + 1):
            name = f"Section {c}.{s} {WORDS[(c + s) % len(WORDS)].title()} rules"
            headings.append(name)
            story.append(Paragraph(name, styles["Heading2"]))
            for _ in range(paragraphs):
                n += 1
                texts.append(sentence(n))
                story.append(Paragraph(sentence(n), styles["BodyText"]))
                story.append(Spacer(1, 4))
    document.build(story)
    return Made(out.getvalue(), headings, texts)


class _Outlined(BaseDocTemplate):
    """Adds an outline entry (a bookmark) for every Heading1 and Heading2."""

    def afterFlowable(self, flowable: object) -> None:
        if not isinstance(flowable, Paragraph):
            return
        level = {"Heading1": 0, "Heading2": 1}.get(flowable.style.name)
        if level is None:
            return
        text = flowable.getPlainText()
        key = f"h{id(flowable)}"
        self.canv.bookmarkPage(key)
        self.canv.addOutlineEntry(text, key, level=level, closed=False)


def plain(pages: list[str], *, password: str | None = None) -> bytes:
    """One line of text per page; with ``password``, encrypted with it as the user password."""
    out = io.BytesIO()
    encrypt = None
    if password is not None:
        from reportlab.lib import pdfencrypt

        encrypt = pdfencrypt.StandardEncryption(password, ownerPassword="owner", strength=128)
    sheet = canvas.Canvas(out, pagesize=A4, encrypt=encrypt)
    for text in pages:
        sheet.setFont("Helvetica", 11)
        sheet.drawString(2 * cm, A4[1] - 3 * cm, text)
        sheet.showPage()
    sheet.save()
    return out.getvalue()


def image_only(pages: int = 2) -> bytes:
    """Pages holding only drawn shapes (a scanned handbook has no text layer either)."""
    out = io.BytesIO()
    sheet = canvas.Canvas(out, pagesize=A4)
    for i in range(pages):
        sheet.rect(2 * cm, 2 * cm, 10 * cm + i * cm, 5 * cm, fill=1)
        sheet.showPage()
    sheet.save()
    return out.getvalue()


def deflate_bomb(inflated_bytes: int) -> bytes:
    """A one-page PDF whose content stream inflates to ``inflated_bytes`` (mostly spaces)
    from a few hundred kilobytes, then shows one line of text."""
    raw = b" " * inflated_bytes + b"BT /F1 12 Tf 72 720 Td (Hello bomb) Tj ET"
    packer = zlib.compressobj(9)
    stream = packer.compress(raw) + packer.flush()
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R"
        b" /Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length %d /Filter /FlateDecode >>\nstream\n" % len(stream) + stream + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer << /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1,
        xref,
    )
    return bytes(out)
