"""PDFs: extraction of generated files (pages, outline headings, order), the ones refused
(encrypted, image-only, malformed, too large, too slow) and PDFs as files of a folder source
and as pages of a site served over HTTP by the fake doc site."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from knowledge.crawl.crawler import CrawlLimits
from knowledge.embed.embedder import Embedder
from knowledge.ingest.extract import extract
from knowledge.ingest.pdf import PdfError, extract_pdf
from knowledge.ingest.refresh import refresh
from knowledge.ingest.sources import SourceSpec, add_source
from knowledge.storage.documents import Chunk, Document
from tests.fakes.docsite import DocSite
from tests.pdf_maker import deflate_bomb, handbook, image_only, plain, sentence

ENCRYPTED = "encrypted with a password"


def test_a_handbook_comes_out_by_page_under_its_outline_headings() -> None:
    made = handbook(chapters=3, sections=2, paragraphs=3)
    page = extract_pdf(made.data, fallback_title="handbook")
    assert page.title == "Team Handbook"  # the PDF's own title, not the file name
    # Each chapter starts a page: the anchors say which page a passage is on.
    anchors = sorted({s.anchor for s in page.sections}, key=lambda a: int(a.split("=")[1]))
    assert anchors == ["page=1", "page=2", "page=3"]
    first = next(s for s in page.sections if sentence(1) in s.blocks)
    assert first.anchor == "page=1"
    assert first.heading_path == (made.headings[0], made.headings[1])
    last = next(s for s in page.sections if sentence(18) in s.blocks)
    assert last.anchor == "page=3"
    assert last.heading_path == (made.headings[6], made.headings[8])
    # Every paragraph once, in reading order; no heading repeated as body text.
    text = page.text
    positions = [text.index(p) for p in made.paragraphs]
    assert positions == sorted(positions)
    assert not any(h in block for s in page.sections for block in s.blocks for h in made.headings)


def test_two_columns_keep_their_reading_order() -> None:
    made = handbook(chapters=2, sections=2, paragraphs=8, columns=2)
    text = extract_pdf(made.data, fallback_title="x").text
    positions = [text.index(p) for p in made.paragraphs]
    assert positions == sorted(positions)


def test_pages_without_an_outline_are_cited_by_page_alone() -> None:
    data = plain(["Rotate the keys monthly.", "Badges open the lab.", "Ask IT for laptops."])
    page = extract(data, suffix=".pdf", fallback_title="security")
    assert page.title == "security"
    assert [(s.anchor, s.heading_path, s.blocks) for s in page.sections] == [
        ("page=1", (), ("Rotate the keys monthly.",)),
        ("page=2", (), ("Badges open the lab.",)),
        ("page=3", (), ("Ask IT for laptops.",)),
    ]


def test_an_empty_user_password_is_no_lock() -> None:
    page = extract_pdf(plain(["Open to all."], password=""), fallback_title="x")
    assert page.sections[0].blocks == ("Open to all.",)


@pytest.mark.parametrize(
    ("data", "kwargs", "reason"),
    [
        (plain(["Secret plans."], password="hunter2"), {}, ENCRYPTED),
        (image_only(), {}, "no text layer"),
        (b"%PDF-1.7\n1 0 obj << /Type /Catalog /Pages 9 0 R >>\ntrailer<</Root 1 0 R>>", {},
         "not a readable PDF"),
        (handbook().data[:3000], {}, "not a readable PDF"),
        (b"<html>not a pdf</html>", {}, "not a PDF"),
        (plain(["one", "two", "three"]), {"max_pages": 2}, "has 3 pages; teambot reads PDFs of"),
        (plain(["x" * 80, "y" * 80]), {"max_chars": 100}, "more than 100 characters"),
        (handbook(chapters=8).data, {"deadline": 0.05}, "took longer than 0.05 s"),
    ],
    ids=["encrypted", "image-only", "malformed", "truncated", "not-pdf", "pages", "chars", "slow"],
)  # fmt: skip
def test_a_pdf_that_cannot_be_indexed_says_why(data: bytes, kwargs: dict, reason: str) -> None:
    with pytest.raises(PdfError, match=reason):
        extract_pdf(data, fallback_title="x", **kwargs)


def test_a_deflate_bomb_is_refused_and_a_small_stream_of_the_same_shape_is_read() -> None:
    assert extract_pdf(deflate_bomb(1000), fallback_title="x").text == "Hello bomb"
    with pytest.raises(PdfError, match="a compressed stream larger than teambot inflates"):
        extract_pdf(deflate_bomb(120 * 2**20), fallback_title="x")  # 120 MB from ~120 kB


def _chunks(sessions: sessionmaker[Session], url: str) -> list[Chunk]:
    with sessions() as session:
        document = session.scalar(select(Document).where(Document.url == url))
        assert document is not None, url
        return list(document.chunks)


def test_a_folder_indexes_its_pdfs_and_keeps_one_that_breaks_later(
    sessions: sessionmaker[Session], embedder: Embedder, tmp_path: Path
) -> None:
    folder = tmp_path / "handbooks"
    folder.mkdir()
    made = handbook(chapters=2, sections=1, paragraphs=2)
    (folder / "handbook.pdf").write_bytes(made.data)
    (folder / "locked.pdf").write_bytes(plain(["Salaries."], password="hunter2"))
    (folder / "scan.pdf").write_bytes(image_only())
    with sessions.begin() as session:
        add_source(session, SourceSpec(name="hb", location=str(folder)))
    report = refresh(sessions, embedder, "hb")
    assert report.pages_new == 1
    errors = {e["url"]: e["error"] for e in report.errors()}
    assert ENCRYPTED in errors["locked.pdf"]
    assert "no text layer" in errors["scan.pdf"]
    chunks = _chunks(sessions, "handbook.pdf")
    assert {c.anchor for c in chunks} == {"page=1", "page=2"}
    assert any(c.heading_path == [made.headings[2], made.headings[3]] for c in chunks)
    # The handbook is replaced by a broken copy: reported, and what was indexed stays.
    (folder / "handbook.pdf").write_bytes(b"%PDF-1.4\ngarbage")
    second = refresh(sessions, embedder, "hb")
    assert "not a readable PDF" in {e["url"]: e["error"] for e in second.errors()}["handbook.pdf"]
    assert second.pages_removed == 0
    assert [c.id for c in _chunks(sessions, "handbook.pdf")] == [c.id for c in chunks]
    # Too large for the folder cap: refused by name before any PDF reading.
    shutil.copy(folder / "locked.pdf", folder / "copy.pdf")
    (folder / "huge.pdf").write_bytes(b"%PDF-1.4\n" + b"0" * (10 * 2**20 + 1))
    third = refresh(sessions, embedder, "hb")
    assert "larger than 10 MB" in {e["url"]: e["error"] for e in third.errors()}["huge.pdf"]


def test_a_site_indexes_a_linked_pdf_and_reports_a_broken_one(
    sessions: sessionmaker[Session], embedder: Embedder
) -> None:
    with DocSite() as site:
        site.set_page(
            "/docs/index.html",
            "<html><head><title>Docs</title></head><body><main><h1>Docs</h1>"
            "<p>Read the <a href='handbook.pdf'>handbook</a>, the <a href='raw.pdf'>raw one</a>"
            " and the <a href='locked.pdf'>locked one</a>.</p></main></body></html>",
        )
        site.set_page(
            "/docs/handbook.pdf", handbook(chapters=2).data, content_type="application/pdf"
        )
        site.set_page(
            "/docs/raw.pdf", plain(["Served as bytes."]), content_type="application/octet-stream"
        )
        site.set_page(
            "/docs/locked.pdf", plain(["No."], password="x"), content_type="application/pdf"
        )
        with sessions.begin() as session:
            add_source(
                session,
                SourceSpec(name="site", location=site.url("/docs/index.html"), allow_private=True),
            )
        limits = CrawlLimits(timeout=2.0, max_bytes=2**20)
        report = refresh(sessions, embedder, "site", limits=limits)
        pdf_url = site.url("/docs/handbook.pdf")
        assert {c.anchor for c in _chunks(sessions, pdf_url)} == {"page=1", "page=2"}
        assert _chunks(sessions, site.url("/docs/raw.pdf"))[0].text == "Served as bytes."
        errors = {e["url"]: e["error"] for e in report.errors()}
        assert ENCRYPTED in errors[site.url("/docs/locked.pdf")]
        # Over the crawl's byte cap, a PDF is refused like any other page; nothing is lost.
        site.set_page(
            "/docs/handbook.pdf", handbook(chapters=30).data, content_type="application/pdf"
        )
        small = CrawlLimits(timeout=2.0, max_bytes=20_000)
        capped = refresh(sessions, embedder, "site", limits=small)
        assert "larger than" in {e["url"]: e["error"] for e in capped.errors()}[pdf_url]
        assert {c.anchor for c in _chunks(sessions, pdf_url)} == {"page=1", "page=2"}
