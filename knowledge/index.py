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

log = logging.getLogger(__name__)

# FAISS's default threshold sends small batched searches through a BLAS path
# that is 6-7x slower here (measured, see NOTES.md); 20 keeps them fast.
faiss.cvar.distance_compute_blas_threshold = 20

LOAD_BATCH_ROWS = 5_000


class VectorIndex:
    """Exact inner-product search over normalised chunk embeddings of one model."""

    def __init__(self, sessions: sessionmaker[Session], model: str, dimension: int) -> None:
        self._sessions = sessions
        self.model = model
        self.dimension = dimension
        self.revision: int | None = None
        self._index = faiss.IndexIDMap2(faiss.IndexFlatIP(dimension))
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return int(self._index.ntotal)

    def sync(self) -> bool:
        """Rebuild from SQL if the database revision moved; True if it did."""
        with self._sessions() as session:
            revision = store.index_revision(session)
        if revision == self.revision:
            return False
        with self._lock:
            if revision != self.revision:
                self._rebuild(revision)
        return True

    def _rebuild(self, revision: int) -> None:
        started = time.perf_counter()
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
        self._index, self.revision = index, revision
        log.debug(
            "index rebuilt at revision %s: %d chunks in %.0f ms",
            revision,
            index.ntotal,
            (time.perf_counter() - started) * 1000,
        )

    def search(self, vector: np.ndarray, k: int) -> list[tuple[int, float]]:
        """The ``k`` nearest chunk ids with their cosine similarity, best first."""
        index = self._index
        if index.ntotal == 0 or k <= 0:
            return []
        scores, ids = index.search(vector.reshape(1, -1).astype(np.float32), min(k, index.ntotal))
        return [(int(i), float(s)) for i, s in zip(ids[0], scores[0], strict=True) if i != -1]
