"""The FAISS index as a cache of SQL, and its optional on-disk snapshots."""

import logging
from pathlib import Path

import faiss
import pytest
from sqlalchemy.orm import Session, sessionmaker

from knowledge.embed import Embedder
from knowledge.index import VectorIndex
from knowledge.ingest import ingest_folder
from knowledge.snapshot import SnapshotStore


def make_index(
    sessions: sessionmaker[Session], embedder: Embedder, snapshots: SnapshotStore
) -> VectorIndex:
    return VectorIndex(
        sessions,
        embedder.model_name,
        embedder.dimension,
        snapshots=snapshots,
        snapshot_min_vectors=0,
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
    caplog.set_level(logging.DEBUG, logger="knowledge.index")

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
    caplog.set_level(logging.DEBUG, logger="knowledge.index")

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
    caplog.set_level(logging.DEBUG, logger="knowledge.index")

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
