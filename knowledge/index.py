"""The in-memory FAISS index: a cache of the embeddings stored in SQL.

Built from the chunks table when a process starts (nothing is re-embedded)
and rebuilt whenever the database's index revision moves, so every process
follows what any other process ingested.
"""

from __future__ import annotations

import logging
import threading
import time

import faiss
import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from knowledge import store
from knowledge.models import Chunk
from knowledge.snapshot import SnapshotStore

log = logging.getLogger(__name__)

# FAISS's default threshold sends small batched searches through a BLAS path
# that is 6-7x slower here (measured, see NOTES.md); 20 keeps them fast.
faiss.cvar.distance_compute_blas_threshold = 20

LOAD_BATCH_ROWS = 5_000
# Below this many vectors SQL loads in well under a second: no snapshot is written.
SNAPSHOT_MIN_VECTORS = 20_000


class VectorIndex:
    """Exact inner-product search over normalised chunk embeddings of one model."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        model: str,
        dimension: int,
        *,
        snapshots: SnapshotStore | None = None,
        snapshot_min_vectors: int = SNAPSHOT_MIN_VECTORS,
    ) -> None:
        self._sessions = sessions
        self.model = model
        self.dimension = dimension
        self.stamp: str | None = None
        self._index = faiss.IndexIDMap2(faiss.IndexFlatIP(dimension))
        self._lock = threading.Lock()
        self._snapshots = snapshots
        self._snapshot_min_vectors = snapshot_min_vectors

    def __len__(self) -> int:
        return int(self._index.ntotal)

    def sync(self) -> bool:
        """Rebuild if the database's index revision moved; True if it did."""
        with self._sessions() as session:
            stamp = store.index_stamp(session)
        if stamp == self.stamp:
            return False
        with self._lock:
            if stamp != self.stamp:
                self._rebuild(stamp)
        return True

    def _rebuild(self, stamp: str) -> None:
        started = time.perf_counter()
        index = self._from_snapshot(stamp)
        source = "snapshot"
        if index is None:
            index, source = self._from_sql(), "database"
            if self._snapshots is not None and index.ntotal >= self._snapshot_min_vectors:
                self._snapshots.save(stamp, index)
        self._index, self.stamp = index, stamp
        log.debug(
            "index %s loaded from the %s: %d chunks in %.0f ms",
            stamp,
            source,
            index.ntotal,
            (time.perf_counter() - started) * 1000,
        )

    def _from_snapshot(self, stamp: str) -> faiss.Index | None:
        if self._snapshots is None:
            return None
        with self._sessions() as session:
            expected = store.chunk_count(session, self.model)
        return self._snapshots.load(stamp, expected)

    def _from_sql(self) -> faiss.Index:
        index = faiss.IndexIDMap2(faiss.IndexFlatIP(self.dimension))
        with self._sessions() as session:
            rows = session.execute(
                select(Chunk.id, Chunk.embedding)
                .where(Chunk.model == self.model)
                .execution_options(yield_per=LOAD_BATCH_ROWS)
            )
            for batch in rows.partitions():
                ids = np.fromiter((row[0] for row in batch), dtype=np.int64, count=len(batch))
                vectors = np.frombuffer(b"".join(row[1] for row in batch), dtype="<f4")
                index.add_with_ids(vectors.reshape(len(batch), self.dimension), ids)
        return index

    def search(self, vector: np.ndarray, k: int) -> list[tuple[int, float]]:
        """The ``k`` nearest chunk ids with their cosine similarity, best first."""
        index = self._index
        if index.ntotal == 0 or k <= 0:
            return []
        scores, ids = index.search(vector.reshape(1, -1).astype(np.float32), min(k, index.ntotal))
        return [(int(i), float(s)) for i, s in zip(ids[0], scores[0], strict=True) if i != -1]
