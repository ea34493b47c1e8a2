"""The in-memory FAISS index: a cache of the embeddings stored in SQL.

Built from the chunks table when a process starts (nothing is re-embedded)
and rebuilt whenever the database's index revision moves, so every process
follows what any other process ingested.

Small knowledge bases are searched exactly (flat inner product); big ones
through an HNSW graph, whose recall against exact search is measured by
``bench/ann.py``.

Besides each chunk, the index holds one "window" per pair of neighbouring
chunks of a page: the normalised sum of their two vectors, labelled with the
first chunk's id. A question whose answer straddles a section boundary, or a
page whose topic is spread over short sections, then matches the pair even
when neither half matches alone. A window's score goes to both its chunks
(each keeps the better of its own and its windows' scores), and equal scores
are ordered by each chunk's own similarity, so the half that matches the
question best is the one cited. The windows cost no embedding (they come from stored
vectors) and double the index; on the Django docs they lifted hard-mode
recall@10 / nDCG@10 from 0.667 / 0.489 to 0.685 / 0.528 with known-item nDCG
unchanged (bench/README.md).
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import faiss
import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from knowledge.retrieval.changes import Change
from knowledge.retrieval.revision import RevisionWatch
from knowledge.retrieval.snapshot import SnapshotStore
from knowledge.storage import store
from knowledge.storage.documents import Chunk

if TYPE_CHECKING:
    from knowledge.retrieval.prefilter import Filter

log = logging.getLogger(__name__)

# Flat search goes through BLAS when queries x dimension >= this threshold (FAISS
# 1.15 counts floats, not queries), else through its own SIMD loop. FAISS's default
# (128000: up to 333 queries of 384-d on the loop) makes batched search 3-7x slower
# (NOTES.md; bench/ann.py, 100k, 1 thread: 16 queries 209 against 62-72 ms, 64
# queries 857 against 183-201 ms). The value 20 in NOTES.md also sends single
# queries, all the bot makes, to BLAS, which is 2x slower for them (28 against 14
# ms); from 4 queries on BLAS wins (34 against 53 ms). So: BLAS from 4 queries of
# 384 floats on.
faiss.cvar.distance_compute_blas_threshold = 4 * 384

# Rows read, and vectors added to the index, per batch. HNSW inserts each batch in
# parallel: 40k clustered vectors (efConstruction 64, 2 threads) took 33-43 s added
# 100 at a time, 17-19 s 5,000 at a time and 17-18 s all at once.
LOAD_BATCH_ROWS = 5_000
# Below this many vectors SQL loads in well under a second: no snapshot is written.
SNAPSHOT_MIN_VECTORS = 20_000

# Exact search costs O(n) a query, on top of the ~10-14 ms it takes to embed the
# question. Flat single queries, 1 thread, clustered 384-d (bench/ann.py), p50 with
# the other core idle / busy: 50k 3 / 10 ms, 75k 7 / 18 ms, 100k 12 / 23 ms, 150k
# 18 / 37 ms, 1M ~142 ms (NOTES.md). HNSW stays under 1.5 ms but must build a graph
# on every rebuild (100k: 20-44 s on 2 cores, against 0.1 s flat), so it takes over
# where exact search would start to cost as much as the embedding.
# Counted in chunks: with their windows the index holds about twice as many vectors,
# so 25k chunks are the 50k vectors where exact search starts to cost.
# Measured again on teambot's own vectors (bench/ann_sizes.py: the Django docs' ONNX int8
# embeddings repeated as near-duplicates, the hard case for a graph; 1 thread, k=20, p50,
# shared machine): flat 0.9 ms at 10k chunks, 2.9-3.5 at 25k, 8.6 at 50k, 11.6-27.6 at
# 100k; HNSW 0.3-0.7 ms throughout. At 10k HNSW would save 0.6 ms for a 5 s build and
# approximate answers; from 25k flat costs as much as embedding the question (~3 ms int8)
# and HNSW at efSearch 512 finds 0.996 of the exact top 20. So the threshold stays 25k.
HNSW_MIN_CHUNKS = 25_000
# Graph degree: M=32 is the usual choice for 384-d embeddings (NOTES.md: recall@10
# 0.999 at 100k, 0.95 at 1M). Index size 173 MB against 147 MB flat at 100k.
HNSW_M = 32
# Build-time beam width. bench/ann.py, clustered 384-d vectors, recall@10 at
# efSearch 128: 100k 0.997 with 40 (build 11-25 s) and 1.000 with 64 (20-44 s); 300k
# 0.953 with 40 (127 s; efSearch 512 still only 0.971) and 0.998 with 64 (171 s).
# Below 64 the graph itself caps recall as the index grows: 64 is worth ~35-80% more
# build time.
HNSW_EF_CONSTRUCTION = 64
# Search-time beam width, raised to k when more neighbours are asked for. On synthetic
# clustered vectors (bench/ann.py) 128 was enough: 100k recall@10 1.000, 300k 0.998. On
# teambot's own near-duplicate-rich vectors (bench/ann_sizes.py, recall@20 / p50 ms):
#   efSearch   25k chunks     100k chunks
#   128        0.969 / 0.17   0.921 / 0.20
#   256        0.987 / 0.29   0.950 / 0.38
#   512        0.996 / 0.53   0.975 / 0.67
# 512 keeps recall near 1 up to 100k chunks for well under a millisecond.
HNSW_EF_SEARCH = 512

# FAISS threads. omp_set_num_threads holds for the calling thread only (libgomp keeps
# it per thread, and a new Python thread starts from the process default), so it is
# set before every search and every build rather than once at import.
# A search runs on 1 thread. Two never help a single query, even with the other
# core idle (flat 100k: 12-15 ms on 1, 12-13 on 2; 50k: 3.5 against 4.8 ms; HNSW
# 0.6 ms either way), and whenever the other core is busy (embedding the next
# question, an ingest, another process) OpenMP waits for it. bench/ann.py on a
# loaded machine, p50 / p99 on 1 thread and on 2: HNSW 100k efSearch 128 0.5 / 0.8
# against 8 / 10 ms, and 0.7 / 5.5 against 12 / 18 ms with one core kept busy; flat
# 100k with a busy core 28 / 44 against 72 / 124 ms.
SEARCH_THREADS = 1
# A build (HNSW inserts each batch in parallel) uses every core FAISS may use.
BUILD_THREADS = faiss.omp_get_max_threads()

IndexKind = Literal["flat", "hnsw"]
# FAISS label of a window: the first chunk's id with this bit set (ids stay below 2^62).
WINDOW_BIT = 1 << 62

# A change is applied as a delta (a small flat index searched beside the main one, and the
# main one's labels it replaces hidden) until the delta and the hidden labels together reach
# this share of the main index, or DELTA_MIN_LABELS if more; then the next change rebuilds.
DELTA_MAX_SHARE = 0.05
DELTA_MIN_LABELS = 4_096


@dataclass(frozen=True)
class VectorState:
    """One version of the vector index: searches read all of it or none (replaced whole).

    ``main`` is a full build; ``delta`` holds the vectors added since (chunks and windows
    of the pages that changed), ``hidden`` the labels of ``main`` that are no longer
    current. ``following`` maps each chunk to the next one of its page."""

    stamp: str | None
    main: faiss.IndexIDMap2
    kind: IndexKind
    following: dict[int, int]
    chunks: int
    delta: faiss.IndexIDMap2 | None = None
    delta_labels: frozenset[int] = frozenset()
    hidden: frozenset[int] = frozenset()


def new_index(kind: IndexKind, dimension: int) -> faiss.IndexIDMap2:
    """An empty index of ``kind`` that stores chunk ids as FAISS labels."""
    if kind == "hnsw":
        inner = faiss.IndexHNSWFlat(dimension, HNSW_M, faiss.METRIC_INNER_PRODUCT)
        inner.hnsw.efConstruction = HNSW_EF_CONSTRUCTION
        inner.hnsw.efSearch = HNSW_EF_SEARCH
    else:
        inner = faiss.IndexFlatIP(dimension)
    return faiss.IndexIDMap2(inner)


def index_kind(index: faiss.Index) -> IndexKind | None:
    """The kind of an index made by :func:`new_index` (or read back), else None."""
    if not isinstance(index, faiss.IndexIDMap2):
        return None
    inner = faiss.downcast_index(index.index)
    if isinstance(inner, faiss.IndexHNSWFlat):
        return "hnsw"
    if isinstance(inner, faiss.IndexFlatIP):
        return "flat"
    return None


class VectorIndex:
    """Inner-product search over normalised chunk embeddings of one model.

    Exact below ``hnsw_min_chunks`` chunks, approximate (HNSW) from there on.
    """

    def __init__(
        self,
        sessions: sessionmaker[Session],
        model: str,
        dimension: int,
        *,
        snapshots: SnapshotStore | None = None,
        snapshot_min_vectors: int = SNAPSHOT_MIN_VECTORS,
        hnsw_min_chunks: int = HNSW_MIN_CHUNKS,
        revisions: RevisionWatch | None = None,
    ) -> None:
        self._sessions = sessions
        # Shared with the BM25 index by the Retriever: one read of the revision a second.
        self.revisions = revisions or RevisionWatch(sessions)
        self.model = model
        self.dimension = dimension
        self.state = VectorState(None, new_index("flat", dimension), "flat", {}, 0)
        self._lock = threading.Lock()
        self._snapshots = snapshots
        self._snapshot_min_vectors = snapshot_min_vectors
        self._hnsw_min_chunks = hnsw_min_chunks

    def __len__(self) -> int:
        """Chunks searchable (windows not counted)."""
        return self.state.chunks

    @property
    def stamp(self) -> str | None:
        return self.state.stamp

    @property
    def kind(self) -> IndexKind:
        """What the current index is: "flat" (exact search) or "hnsw" (approximate)."""
        return self.state.kind

    @property
    def _index(self) -> faiss.IndexIDMap2:
        return self.state.main

    def sync(self, stamp: str | None = None) -> bool:
        """Rebuild if the index revision (``stamp``, else the watch's) moved; True if it did.

        While another thread rebuilds, an index that was already built keeps
        answering (a cache one revision behind) instead of making every
        question wait for the rebuild; only the very first build is waited for.
        """
        stamp = stamp or self.revisions.stamp()
        if stamp == self.stamp:
            return False
        if not self._lock.acquire(blocking=self.stamp is None):
            return False
        try:
            if stamp == self.stamp:
                return False
            self._rebuild(stamp)
        finally:
            self._lock.release()
        return True

    def _kind_for(self, chunks: int) -> IndexKind:
        return "hnsw" if chunks >= self._hnsw_min_chunks else "flat"

    def _rebuild(self, stamp: str) -> None:
        started = time.perf_counter()
        faiss.omp_set_num_threads(BUILD_THREADS)  # this thread may have searched on 1
        with self._sessions() as session:
            chunks = store.chunk_count(session, self.model)
            expected = chunks + store.window_count(session, self.model)
        kind = self._kind_for(chunks)
        index = self._from_snapshot(stamp, expected, kind)
        source = "snapshot"
        if index is None:
            index, source = self._from_sql(kind), "database"
            if self._snapshots is not None and index.ntotal >= self._snapshot_min_vectors:
                self._snapshots.save(stamp, index)
        self.state = VectorState(stamp, index, kind, self._neighbours(), chunks)
        log.debug(
            "index %s loaded from the %s: %d chunks in %.0f ms (%s)",
            stamp,
            source,
            index.ntotal,
            (time.perf_counter() - started) * 1000,
            kind,
        )

    def _from_snapshot(self, stamp: str, expected: int, kind: IndexKind) -> faiss.Index | None:
        if self._snapshots is None:
            return None
        index = self._snapshots.load(stamp, expected)
        if index is None:
            return None
        if index_kind(index) != kind:  # written under other settings: build what they say now
            log.info("index snapshot %s is not a %s index: rebuilding", stamp, kind)
            return None
        if kind == "hnsw":  # the file keeps the efSearch it was written with
            faiss.downcast_index(index.index).hnsw.efSearch = HNSW_EF_SEARCH
        return index

    def _from_sql(self, kind: IndexKind) -> faiss.Index:
        index = new_index(kind, self.dimension)
        previous: tuple[int, int, np.ndarray] | None = None  # (document, chunk id, vector)
        with self._sessions() as session:
            rows = session.execute(
                select(Chunk.id, Chunk.document_id, Chunk.embedding)
                .where(Chunk.model == self.model)
                .order_by(Chunk.document_id, Chunk.ordinal, Chunk.id)
                .execution_options(yield_per=LOAD_BATCH_ROWS)
            )
            for batch in rows.partitions():  # one add per LOAD_BATCH_ROWS rows, never per row
                ids = np.fromiter((row[0] for row in batch), dtype=np.int64, count=len(batch))
                vectors = np.frombuffer(b"".join(row[2] for row in batch), dtype="<f4").reshape(
                    len(batch), self.dimension
                )
                window_ids, windows = [], []
                for (chunk_id, document_id, _), vector in zip(batch, vectors, strict=True):
                    if previous is not None and previous[0] == document_id:
                        window_ids.append(previous[1] | WINDOW_BIT)
                        windows.append(previous[2] + vector)
                    previous = (document_id, chunk_id, vector)
                index.add_with_ids(vectors, ids)
                if windows:
                    pairs = np.asarray(windows, dtype=np.float32)
                    pairs /= np.linalg.norm(pairs, axis=1, keepdims=True)
                    index.add_with_ids(pairs, np.asarray(window_ids, dtype=np.int64))
        return index

    def _neighbours(self) -> dict[int, int]:
        """Each chunk's id → the id of the next chunk on its page (the windows' pairs)."""
        following: dict[int, int] = {}
        with self._sessions() as session:
            rows = session.execute(
                select(Chunk.id, Chunk.document_id)
                .where(Chunk.model == self.model)
                .order_by(Chunk.document_id, Chunk.ordinal, Chunk.id)
            )
            previous: tuple[int, int] | None = None
            for chunk_id, document_id in rows:
                if previous is not None and previous[1] == document_id:
                    following[previous[0]] = chunk_id
                previous = (chunk_id, document_id)
        return following

    def changed(self, stamp: str, change: Change) -> VectorState | None:
        """``state`` with ``change`` applied as a delta; None when the delta would grow past
        its bound (rebuild instead). Only the pages ``change`` touched are re-windowed."""
        state = self.state
        before, after = change.before, change.after
        added = {c.id: c for c in change.added}
        replaced = set(change.removed.tolist()) | set(added)
        old_chunks = before.ids[np.isin(before.documents, change.documents)].tolist()
        hide = replaced | {c | WINDOW_BIT for c in old_chunks}
        hidden = state.hidden | hide
        kept = sorted(state.delta_labels - hide)
        if len(kept) + len(added) * 2 + len(hidden) > max(
            DELTA_MIN_LABELS, DELTA_MAX_SHARE * state.main.ntotal
        ):
            return None
        following = dict(state.following)
        for chunk_id in old_chunks:
            following.pop(chunk_id, None)
        # The touched pages' chunks as they are now, in page order, and their vectors.
        mask = np.isin(after.documents, change.documents)
        ids, documents, ordinals = after.ids[mask], after.documents[mask], after.ordinals[mask]
        order = np.lexsort((ids, ordinals, documents))
        ids, documents = ids[order].tolist(), documents[order].tolist()
        vectors = {c: np.frombuffer(added[c].embedding, dtype="<f4") for c in ids if c in added}
        unchanged = [c for c in ids if c not in added]
        if unchanged:
            vectors.update(zip(unchanged, self._vectors(state, unchanged), strict=True))
        labels, rows = [c for c in ids if c in added], [vectors[c] for c in ids if c in added]
        for (first, page), (second, other) in itertools.pairwise(zip(ids, documents, strict=True)):
            if page == other:
                following[first] = second
                window = vectors[first] + vectors[second]
                labels.append(first | WINDOW_BIT)
                rows.append(window / np.linalg.norm(window))
        if kept:
            labels += kept
            rows += list(self._vectors(state, kept))
        delta = new_index("flat", self.dimension)
        if labels:
            delta.add_with_ids(
                np.asarray(rows, dtype=np.float32).reshape(len(labels), self.dimension),
                np.asarray(labels, dtype=np.int64),
            )
        return VectorState(stamp, state.main, state.kind, following, len(after), delta,
                           frozenset(labels), frozenset(hidden))  # fmt: skip

    def _vectors(self, state: VectorState, labels: list[int]) -> np.ndarray:
        """The vectors of these labels, from the delta when it holds them, else the main."""
        if not state.delta_labels:  # no change since the main index was built
            return state.main.reconstruct_batch(np.asarray(labels, dtype=np.int64))
        out = np.empty((len(labels), self.dimension), dtype=np.float32)
        in_delta = [i for i, label in enumerate(labels) if label in state.delta_labels]
        in_main = [i for i, label in enumerate(labels) if label not in state.delta_labels]
        for positions, index in ((in_delta, state.delta), (in_main, state.main)):
            if positions and index is not None:
                wanted = np.asarray([labels[i] for i in positions], dtype=np.int64)
                out[positions] = index.reconstruct_batch(wanted)
        return out

    def search(
        self,
        vector: np.ndarray,
        k: int,
        state: VectorState | None = None,
        only: Filter | None = None,
    ) -> list[tuple[int, float]]:
        """The ``k`` best chunk ids, each scored by the better of its own cosine similarity
        and its window's, best first; with ``only``, the best of those chunks (FAISS skips
        the others while it searches, or searches their own exact index when they are few)."""
        state = state or self.state
        index, kind, following, hidden = state.main, state.kind, state.following, state.hidden
        selector = None if only is None else only.main_selector  # FAISS skips the others
        if only is not None and only.exact is not None:
            index, kind, selector = only.exact, "flat", only.exact_selector
        delta = state.delta
        recent: list[tuple[float, int]] = []
        query = vector.reshape(1, -1).astype(np.float32)
        faiss.omp_set_num_threads(SEARCH_THREADS)
        if delta is not None and delta.ntotal:  # small: searched whole
            scores, labels = delta.search(query, delta.ntotal)
            if only is not None:
                mine = only.allows(labels[0])
                scores, labels = scores[:, mine], labels[:, mine]
            recent = [(float(s), int(lb)) for s, lb in zip(scores[0], labels[0], strict=True)]
        # Labels the main index can return: with ``only``, at most its labels.
        total = index.ntotal if only is None else only.most(index.ntotal)
        if total + len(recent) == 0 or k <= 0:
            return []
        fetch = min(2 * k, total)  # a chunk may come back twice: itself and its window
        while True:
            found = list(recent)
            if fetch:
                params = _search_parameters(kind, fetch, selector)
                scores, labels = index.search(query, fetch, params=params)
                found += [
                    (float(s), int(lb))
                    for s, lb in zip(scores[0], labels[0], strict=True)
                    if lb != -1 and int(lb) not in hidden
                ]
                if recent:
                    found.sort(key=lambda pair: -pair[0])
            best: dict[int, float] = {}
            for score, label in found:
                chunk_id = label & ~WINDOW_BIT
                best.setdefault(chunk_id, score)  # results come best first
                if label & WINDOW_BIT and chunk_id in following:
                    best.setdefault(following[chunk_id], score)
            if len(best) >= k or fetch >= total:
                cosines = (self._vectors(state, list(best)) @ query[0]).tolist()
                own = dict(zip(best, cosines, strict=True))
                ranked = sorted(best.items(), key=lambda item: (-item[1], -own[item[0]]))
                return ranked[:k]
            fetch = min(2 * fetch, total)

    def similarities(
        self, chunk_ids: list[int], vector: np.ndarray, state: VectorState | None = None
    ) -> dict[int, float]:
        """Each chunk's cosine to ``vector``, from the vectors the index holds (a chunk the
        index does not hold, from a newer revision than this state, is left out)."""
        state = state or self.state
        if not chunk_ids:
            return {}
        try:
            vectors = self._vectors(state, chunk_ids)
        except RuntimeError:  # an id it does not hold: the rare slow path, one by one
            held = [c for c in chunk_ids if _holds(state, c)]
            return self.similarities(held, vector, state) if len(held) < len(chunk_ids) else {}
        return dict(zip(chunk_ids, (vectors @ vector).tolist(), strict=True))


def _search_parameters(
    kind: IndexKind, fetch: int, selector: faiss.IDSelector | None
) -> faiss.SearchParameters | None:
    """Per call, so concurrent searches with different k or filters don't race; HNSW keeps
    an efSearch of at least HNSW_EF_SEARCH with a filter too."""
    if kind == "hnsw":
        return faiss.SearchParametersHNSW(efSearch=max(HNSW_EF_SEARCH, fetch), sel=selector)
    return None if selector is None else faiss.SearchParameters(sel=selector)


def _holds(state: VectorState, chunk_id: int) -> bool:
    if chunk_id in state.delta_labels:
        return True
    if chunk_id in state.hidden:
        return False
    try:
        state.main.reconstruct(chunk_id)
    except RuntimeError:
        return False
    return True
