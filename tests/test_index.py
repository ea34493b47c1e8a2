"""The FAISS index as a cache of SQL, and its optional on-disk snapshots."""

import itertools
import logging
import threading
from pathlib import Path

import faiss
import numpy as np
import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from knowledge.embed.embedder import Embedder
from knowledge.ingest.local import ingest_folder
from knowledge.retrieval import index as index_module
from knowledge.retrieval.index import VectorIndex
from knowledge.retrieval.snapshot import SnapshotStore
from knowledge.storage import store
from knowledge.storage.documents import Chunk


def make_index(
    sessions: sessionmaker[Session],
    embedder: Embedder,
    snapshots: SnapshotStore | None,
    hnsw_min_chunks: int = index_module.HNSW_MIN_CHUNKS,
) -> VectorIndex:
    return VectorIndex(
        sessions,
        embedder.model_name,
        embedder.dimension,
        snapshots=snapshots,
        snapshot_min_vectors=0,
        hnsw_min_chunks=hnsw_min_chunks,
    )


@pytest.fixture
def snapshots(
    sessions: sessionmaker[Session], embedder: Embedder, corpus: Path, tmp_path: Path
) -> SnapshotStore:
    """A snapshot folder for a database that holds the ingested corpus."""
    ingest_folder(sessions, embedder, corpus)
    return SnapshotStore(tmp_path / "data", "sqlite:/x.db", embedder.model_name)


def snapshot_files(snapshots_folder: Path) -> set[Path]:
    return set(snapshots_folder.glob("index-*.faiss"))


def loaded_from(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [m.split(" loaded from the ")[1].split(":")[0] for m in caplog.messages if "loaded" in m]


def test_a_snapshot_is_written_then_used_by_the_next_process(
    sessions: sessionmaker[Session],
    embedder: Embedder,
    snapshots: SnapshotStore,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="knowledge.retrieval.index")

    first = make_index(sessions, embedder, snapshots)
    first.sync()
    second = make_index(sessions, embedder, snapshots)
    second.sync()

    assert loaded_from(caplog) == ["database", "snapshot"]
    assert len(second) == len(first) > 0
    assert len(snapshot_files(tmp_path / "data")) == 1


def test_a_new_revision_replaces_the_snapshot(
    sessions: sessionmaker[Session],
    embedder: Embedder,
    snapshots: SnapshotStore,
    corpus: Path,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    index = make_index(sessions, embedder, snapshots)
    index.sync()
    before = snapshot_files(tmp_path / "data")
    (corpus / "faq.txt").unlink()
    ingest_folder(sessions, embedder, corpus)
    caplog.set_level(logging.DEBUG, logger="knowledge.retrieval.index")

    assert index.sync() is True

    after = snapshot_files(tmp_path / "data")
    assert loaded_from(caplog) == ["database"]
    assert len(after) == 1 and after != before


def test_a_snapshot_that_disagrees_with_the_database_is_ignored(
    sessions: sessionmaker[Session],
    embedder: Embedder,
    snapshots: SnapshotStore,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    make_index(sessions, embedder, snapshots).sync()
    [snapshot] = snapshot_files(tmp_path / "data")
    snapshot.write_bytes(b"not a faiss index")
    caplog.set_level(logging.DEBUG, logger="knowledge.retrieval.index")

    index = make_index(sessions, embedder, snapshots)
    index.sync()

    assert loaded_from(caplog) == ["database"]
    assert len(index) > 0


def test_other_databases_do_not_share_snapshots(tmp_path: Path) -> None:
    folder = tmp_path / "data"
    one = SnapshotStore(folder, "sqlite:/a.db", "m")
    other = SnapshotStore(folder, "sqlite:/b.db", "m")
    index = faiss.IndexIDMap2(faiss.IndexFlatIP(4))
    one.save("r1-x", index)
    assert one.load("r1-x", 0) is not None
    assert other.load("r1-x", 0) is None


QUESTIONS = [
    "Which port does the server listen on?",
    "How do I restore a backup?",
    "What Python version is required?",
    "My job never runs, it stays queued",
    "How do I encrypt connections?",
    "How do I upgrade Zephyr?",
]


def top_ids(index: VectorIndex, vectors: list[np.ndarray], k: int = 3) -> list[list[int]]:
    return [[chunk_id for chunk_id, _ in index.search(vector, k)] for vector in vectors]


def test_from_the_threshold_on_the_index_is_hnsw_and_answers_like_exact_search(
    sessions: sessionmaker[Session], embedder: Embedder, corpus: Path
) -> None:
    ingest_folder(sessions, embedder, corpus)
    exact = make_index(sessions, embedder, None)
    hnsw = make_index(sessions, embedder, None, hnsw_min_chunks=0)
    exact.sync()
    hnsw.sync()

    assert exact.kind == "flat"
    assert isinstance(faiss.downcast_index(exact._index.index), faiss.IndexFlatIP)
    assert hnsw.kind == "hnsw"
    assert isinstance(faiss.downcast_index(hnsw._index.index), faiss.IndexHNSWFlat)
    assert len(hnsw) == len(exact) > 3
    vectors = [embedder.embed_query(q) for q in QUESTIONS]
    assert top_ids(hnsw, vectors) == top_ids(exact, vectors)
    for vector in vectors:
        for (_, approximate), (_, truth) in zip(
            hnsw.search(vector, 3), exact.search(vector, 3), strict=True
        ):
            assert approximate == pytest.approx(truth, abs=1e-5)


def test_the_threshold_counts_chunks_at_or_above(
    sessions: sessionmaker[Session], embedder: Embedder, corpus: Path
) -> None:
    ingest_folder(sessions, embedder, corpus)
    probe = make_index(sessions, embedder, None)
    probe.sync()
    chunks = len(probe)

    below = make_index(sessions, embedder, None, hnsw_min_chunks=chunks + 1)
    at = make_index(sessions, embedder, None, hnsw_min_chunks=chunks)
    below.sync()
    at.sync()

    assert (probe.kind, below.kind, at.kind) == ("flat", "flat", "hnsw")


def test_hnsw_returns_k_results_when_k_exceeds_its_search_width(
    sessions: sessionmaker[Session],
    embedder: Embedder,
    corpus: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(index_module, "HNSW_EF_SEARCH", 1)
    ingest_folder(sessions, embedder, corpus)
    index = make_index(sessions, embedder, None, hnsw_min_chunks=0)
    index.sync()

    hits = index.search(embedder.embed_query(QUESTIONS[0]), len(index))

    assert len({chunk_id for chunk_id, _ in hits}) == len(index)
    assert [s for _, s in hits] == sorted((s for _, s in hits), reverse=True)


def test_an_hnsw_snapshot_loads_back_as_hnsw_and_answers_the_same(
    sessions: sessionmaker[Session],
    embedder: Embedder,
    snapshots: SnapshotStore,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="knowledge.retrieval.index")

    first = make_index(sessions, embedder, snapshots, hnsw_min_chunks=0)
    first.sync()
    second = make_index(sessions, embedder, snapshots, hnsw_min_chunks=0)
    second.sync()

    assert loaded_from(caplog) == ["database", "snapshot"]
    assert first.kind == second.kind == "hnsw"
    hnsw = faiss.downcast_index(second._index.index)
    assert isinstance(hnsw, faiss.IndexHNSWFlat)
    assert hnsw.hnsw.efSearch == index_module.HNSW_EF_SEARCH
    vectors = [embedder.embed_query(q) for q in QUESTIONS]
    assert top_ids(second, vectors, 5) == top_ids(first, vectors, 5)


def test_a_snapshot_of_the_other_kind_is_rebuilt_from_the_database(
    sessions: sessionmaker[Session],
    embedder: Embedder,
    snapshots: SnapshotStore,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    make_index(sessions, embedder, snapshots).sync()  # a flat snapshot
    caplog.set_level(logging.DEBUG, logger="knowledge.retrieval.index")

    index = make_index(sessions, embedder, snapshots, hnsw_min_chunks=0)
    index.sync()
    again = make_index(sessions, embedder, snapshots, hnsw_min_chunks=0)
    again.sync()

    assert loaded_from(caplog) == ["database", "snapshot"]
    assert index.kind == again.kind == "hnsw"
    assert len(snapshot_files(tmp_path / "data")) == 1


def test_a_rebuild_in_progress_does_not_hold_up_searches(
    sessions: sessionmaker[Session], embedder: Embedder, corpus: Path
) -> None:
    ingest_folder(sessions, embedder, corpus)
    index = make_index(sessions, embedder, None)
    index.sync()
    before, stamp = len(index), index.stamp
    (corpus / "faq.txt").unlink()
    ingest_folder(sessions, embedder, corpus)

    synced: list[bool] = []
    with index._lock:  # as if another thread were rebuilding
        other = threading.Thread(target=lambda: synced.append(index.sync()))
        other.start()
        other.join(timeout=10)
        assert not other.is_alive(), "sync() waited for the rebuild in progress"
        assert synced == [False]
        assert (len(index), index.stamp) == (before, stamp)
        assert index.search(embedder.embed_query(QUESTIONS[0]), 3)

    assert index.sync() is True
    assert len(index) < before and index.stamp != stamp


@pytest.mark.parametrize("hnsw_min_chunks", [index_module.HNSW_MIN_CHUNKS, 0])
def test_neighbouring_chunks_of_a_page_are_also_searched_as_one_window(
    sessions: sessionmaker[Session], embedder: Embedder, corpus: Path, hnsw_min_chunks: int
) -> None:
    ingest_folder(sessions, embedder, corpus)
    index = make_index(sessions, embedder, None, hnsw_min_chunks=hnsw_min_chunks)
    index.sync()
    with sessions() as session:
        rows = session.execute(
            select(Chunk.id, Chunk.document_id, Chunk.embedding).order_by(
                Chunk.document_id, Chunk.ordinal
            )
        ).all()
    vectors = {cid: np.frombuffer(blob, dtype="<f4") for cid, _, blob in rows}
    pairs = [(a[0], b[0]) for a, b in itertools.pairwise(rows) if a[1] == b[1]]
    first, second = pairs[0]
    window = vectors[first] + vectors[second]
    window /= np.linalg.norm(window)

    hits = index.search(window, len(index))

    assert len(hits) == len(index) == len(rows)  # one result per chunk, never a window label
    assert {chunk_id for chunk_id, _ in hits} == set(vectors)
    # the window's score goes to both halves, the one more like the question first
    own = {c: float(vectors[c] @ window) for c in (first, second)}
    assert [c for c, _ in hits[:2]] == sorted((first, second), key=lambda c: -own[c])
    assert [s for _, s in hits[:2]] == pytest.approx([1.0, 1.0], abs=1e-4)
    scores = dict(hits)
    for chunk_id, vector in vectors.items():  # a chunk scores at least its own similarity
        assert scores[chunk_id] >= float(vector @ window) - 1e-4
    with sessions() as session:
        assert store.window_count(session, embedder.model_name) == len(pairs)
