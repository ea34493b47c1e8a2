"""Ingestion and storage on SQLite and PostgreSQL: hashes decide what is embedded."""

from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from knowledge.embed.embedder import Embedder
from knowledge.errors import SourceError
from knowledge.ingest import pipeline
from knowledge.ingest.local import ingest_folder
from knowledge.retrieval.index import VectorIndex
from knowledge.storage.documents import Chunk, Document, IngestionRun
from knowledge.storage.store import index_revision, source_summaries


class CountingEmbedder(Embedder):
    """The real embedder, counting the passages it is asked to embed."""

    def __init__(self, real: Embedder) -> None:
        super().__init__(real.model_name)
        self._model = real.model
        self.embedded: list[str] = []

    def embed_texts(self, texts, progress=None):  # type: ignore[no-untyped-def]
        self.embedded.extend(texts)
        return super().embed_texts(texts, progress)


@pytest.fixture
def counting(embedder: Embedder) -> CountingEmbedder:
    return CountingEmbedder(embedder)


def chunk_rows(sessions: sessionmaker[Session]) -> list[tuple[str, int, str, bytes]]:
    with sessions() as session:
        return list(
            session.execute(
                select(Document.url, Chunk.ordinal, Chunk.text, Chunk.embedding)
                .join(Document)
                .order_by(Document.url, Chunk.ordinal)
            ).all()
        )


def test_first_ingest_stores_documents_chunks_and_their_embeddings(
    any_sessions: sessionmaker[Session], counting: CountingEmbedder, corpus: Path
) -> None:
    report = ingest_folder(any_sessions, counting, corpus, name="zephyr")

    assert (report.pages_seen, report.pages_new, report.issues) == (4, 4, [])
    rows = chunk_rows(any_sessions)
    assert {url for url, *_ in rows} == {
        "install.md", "guide/network.md", "guide/backups.html", "faq.txt",
    }  # fmt: skip
    assert report.chunks_embedded == len(rows) == len(counting.embedded)
    with any_sessions() as session:
        chunk = session.scalars(select(Chunk).where(Chunk.anchor == "listening-port")).one()
        stored = np.frombuffer(chunk.embedding, dtype="<f4")
        assert chunk.heading_path == ["Network settings", "Listening port"]
        assert chunk.model == "all-MiniLM-L6-v2"
        assert session.get_one(Document, chunk.document_id).title == "Network settings"
    expected = counting.embed_texts([f"Network settings > Listening port\n\n{chunk.text}"])[0]
    assert np.allclose(stored, expected, atol=1e-5)
    with any_sessions() as session:
        run = session.scalars(select(IngestionRun)).one()
        assert run.status == "ok" and run.counts["chunks_embedded"] == len(rows)
        assert run.finished_at is not None
        assert index_revision(session) > 0


def test_reingesting_an_unchanged_folder_embeds_nothing(
    any_sessions: sessionmaker[Session], counting: CountingEmbedder, corpus: Path
) -> None:
    ingest_folder(any_sessions, counting, corpus)
    before = chunk_rows(any_sessions)
    with any_sessions() as session:
        revision = index_revision(session)
    counting.embedded.clear()

    report = ingest_folder(any_sessions, counting, corpus)

    assert counting.embedded == []
    assert (report.pages_unchanged, report.chunks_embedded) == (4, 0)
    assert chunk_rows(any_sessions) == before
    with any_sessions() as session:
        assert index_revision(session) == revision


@pytest.mark.parametrize("group", [1, pipeline.EMBED_GROUP_CHUNKS], ids=["stored", "pending"])
def test_a_copied_file_is_stored_once_under_the_shorter_path(
    any_sessions: sessionmaker[Session],
    counting: CountingEmbedder,
    corpus: Path,
    monkeypatch: pytest.MonkeyPatch,
    group: int,
) -> None:
    # Walked before install.md, so it is already stored (group 1) or waiting when that wins.
    copy = corpus / "a-copy-of-install.md"
    copy.write_text((corpus / "install.md").read_text())
    monkeypatch.setattr(pipeline, "EMBED_GROUP_CHUNKS", group)

    first = ingest_folder(any_sessions, counting, corpus)
    second = ingest_folder(any_sessions, counting, corpus)

    assert {url for url, *_ in chunk_rows(any_sessions)} == {
        "install.md", "guide/network.md", "guide/backups.html", "faq.txt",
    }  # fmt: skip
    for report in (first, second):
        assert {i.url: i.error for i in report.issues} == {
            "a-copy-of-install.md": "the same content as install.md"
        }
    assert (second.pages_unchanged, second.chunks_embedded, second.pages_removed) == (4, 0, 0)


@pytest.mark.parametrize(
    ("taker", "giver"),
    [("a.md", "b.md"), ("b-long.md", "z.md")],
    ids=["shorter-taker-walked-first", "longer-taker-walked-first"],
)
def test_a_file_that_takes_another_files_old_content_leaves_both_indexed(
    any_sessions: sessionmaker[Session],
    counting: CountingEmbedder,
    tmp_path: Path,
    taker: str,
    giver: str,
) -> None:
    # In one run `taker` gets `giver`'s stored content and `giver` new text: neither is a
    # copy, whichever url is shorter (it keeps shared content) and is walked first.
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / taker).write_text("# Alpha\n\nThe alpha service sends mail.\n")
    (folder / giver).write_text("# Beta\n\nThe beta service stores files.\n")
    ingest_folder(any_sessions, counting, folder)

    (folder / taker).write_text((folder / giver).read_text())
    (folder / giver).write_text("# Gamma\n\nThe gamma service resizes images.\n")
    report = ingest_folder(any_sessions, counting, folder)

    assert report.issues == [] and report.pages_removed == 0
    assert report.pages_changed == 2
    texts = {url: text for url, _, text, _ in chunk_rows(any_sessions)}
    assert texts == {
        taker: "The beta service stores files.",
        giver: "The gamma service resizes images.",
    }


def test_a_changed_file_re_embeds_only_its_changed_chunks(
    any_sessions: sessionmaker[Session], counting: CountingEmbedder, corpus: Path
) -> None:
    ingest_folder(any_sessions, counting, corpus)
    counting.embedded.clear()
    network = corpus / "guide" / "network.md"
    network.write_text(network.read_text().replace("8731", "9000"))

    report = ingest_folder(any_sessions, counting, corpus)

    assert (report.pages_changed, report.pages_unchanged) == (1, 3)
    assert len(counting.embedded) == 1 and "port 9000" in counting.embedded[0]
    assert report.chunks_reused == 1  # the TLS section did not change
    texts = [text for url, _, text, _ in chunk_rows(any_sessions) if url == "guide/network.md"]
    assert any("9000" in t for t in texts) and not any("8731" in t for t in texts)


def test_a_deleted_file_loses_its_document_and_chunks(
    any_sessions: sessionmaker[Session], counting: CountingEmbedder, corpus: Path
) -> None:
    ingest_folder(any_sessions, counting, corpus)
    (corpus / "faq.txt").unlink()

    report = ingest_folder(any_sessions, counting, corpus)

    assert report.pages_removed == 1
    assert "faq.txt" not in {url for url, *_ in chunk_rows(any_sessions)}
    with any_sessions() as session:
        orphans = session.scalar(
            select(func.count(Chunk.id)).where(Chunk.document_id.not_in(select(Document.id)))
        )
        assert orphans == 0


def test_binary_and_non_utf8_files_are_reported_and_what_was_stored_is_kept(
    any_sessions: sessionmaker[Session], counting: CountingEmbedder, corpus: Path
) -> None:
    ingest_folder(any_sessions, counting, corpus)
    before = chunk_rows(any_sessions)
    (corpus / "logo.png").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")
    (corpus / "latin1.txt").write_bytes("Caf\xe9 cr\xe8me".encode("latin-1"))
    (corpus / "faq.txt").write_bytes(b"\x00\x01binary now")  # a known file turned unreadable

    report = ingest_folder(any_sessions, counting, corpus)

    reasons = {i.url: i.error for i in report.issues}
    assert reasons["logo.png"] == "not a format teambot reads"
    assert reasons["latin1.txt"].startswith("not UTF-8")
    assert reasons["faq.txt"] == "binary, not text"
    assert chunk_rows(any_sessions) == before  # faq.txt keeps its last good text
    with any_sessions() as session:
        run = session.scalars(select(IngestionRun).order_by(IngestionRun.id.desc())).first()
        assert run is not None and run.status == "partial"
        assert {e["url"] for e in run.errors} == {"logo.png", "latin1.txt", "faq.txt"}
        assert (run.counts["pages_failed"], run.counts["pages_skipped"]) == (2, 1)


def test_a_missing_path_is_refused_before_anything_is_written(
    any_sessions: sessionmaker[Session], counting: CountingEmbedder, tmp_path: Path
) -> None:
    with pytest.raises(SourceError, match="No such folder"):
        ingest_folder(any_sessions, counting, tmp_path / "nowhere")
    with any_sessions() as session:
        assert source_summaries(session) == []


def test_a_source_name_cannot_be_reused_for_another_folder(
    any_sessions: sessionmaker[Session], counting: CountingEmbedder, corpus: Path, tmp_path: Path
) -> None:
    ingest_folder(any_sessions, counting, corpus, name="docs")
    other = tmp_path / "other"
    other.mkdir()
    with pytest.raises(SourceError, match="already exists"):
        ingest_folder(any_sessions, counting, other, name="docs")
    assert len(chunk_rows(any_sessions)) > 0


def test_the_index_is_built_from_sql_without_embedding(
    any_sessions: sessionmaker[Session], counting: CountingEmbedder, corpus: Path
) -> None:
    ingest_folder(any_sessions, counting, corpus)
    counting.embedded.clear()

    index = VectorIndex(any_sessions, counting.model_name, counting.dimension)
    assert index.sync() is True
    assert index.sync() is False  # nothing changed since

    assert counting.embedded == []
    assert len(index) == len(chunk_rows(any_sessions))
    with any_sessions() as session:
        port = session.scalars(select(Chunk).where(Chunk.anchor == "listening-port")).one()
    vector = np.frombuffer(port.embedding, dtype="<f4")
    best_id, best_score = index.search(vector, 1)[0]
    assert best_id == port.id and best_score == pytest.approx(1.0, abs=1e-5)


def test_source_summaries_count_documents_chunks_and_the_last_run(
    any_sessions: sessionmaker[Session], counting: CountingEmbedder, corpus: Path
) -> None:
    ingest_folder(any_sessions, counting, corpus, name="zephyr")
    with any_sessions() as session:
        [summary] = source_summaries(session)
    assert (summary.name, summary.kind, summary.documents) == ("zephyr", "folder", 4)
    assert summary.chunks == len(chunk_rows(any_sessions))
    assert summary.last_run is not None and summary.last_run.status == "ok"
