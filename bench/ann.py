"""Exact (flat) against approximate (HNSW) FAISS search on embedding-like vectors.

    python -m bench.ann                  # 10k and 100k vectors, ~3-4 minutes on 2 cores
    python -m bench.ann --sizes 300000 --ef-construction 40,64   # ~8 minutes more

Vectors are synthetic but clustered like real embeddings: unit vectors drawn
around 2,000 random centres (384-d, each cluster with its own spread), so a
point's nearest neighbours are mostly in its own cluster. Uniform random
vectors have no neighbourhoods at all and make any ANN index look bad. The
queries are 500 held-out points from the same clusters, searched one at a
time (as a chat question is), k=10; recall@10 is measured against exact
search. Index bytes are the size of ``faiss.serialize_index`` (the snapshot
size; HNSW peaks higher while it builds).

Tables:

1. build time, index size, single-query p50/p99 and recall@10 per index and
   ``efSearch`` with FAISS on 1 thread, and for flat and efSearch 128 also on
   its default (all cores);
2. the same single queries while another process keeps one core busy (as
   the embedding of the next question, or an ingest, would);
3. flat search of 1, 4, 16 and 64 queries at a time with
   ``distance_compute_blas_threshold`` at FAISS's default (128000), at 20 (the
   value NOTES.md suggested) and at 4 x 384 (what knowledge/retrieval/index.py sets),
   on 1 thread and on all. FAISS 1.15 compares the threshold with queries x
   dimension: below it, its own SIMD loop; from it on, BLAS.

Searches use ``faiss.SearchParametersHNSW`` per call, as knowledge/retrieval/index.py
does. On a shared 2-core machine the timings move with whatever else runs:
compare rows of one run, and read the load average printed under the tables.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import faiss
import numpy as np

DIM = 384
CLUSTERS = 2_000
QUERIES = 500
K = 10
HNSW_M = 32
EF_SEARCH = (32, 64, 128, 256)
# BLAS from 4 queries of 384 floats on, as knowledge/retrieval/index.py sets it.
BLAS_THRESHOLD = 4 * DIM


def clustered(n: int, queries: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``n`` database and ``queries`` held-out unit vectors around the same random centres."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((CLUSTERS, DIM), dtype=np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    # Per-dimension noise 0.03-0.07: a point's cosine to its centre is 0.6-0.9,
    # and to its nearest neighbour in a 100k base about 0.6 (like MiniLM chunks).
    spread = rng.uniform(0.03, 0.07, CLUSTERS).astype(np.float32)

    def draw(m: int) -> np.ndarray:
        out = np.empty((m, DIM), dtype=np.float32)
        for start in range(0, m, 50_000):
            labels = rng.integers(0, CLUSTERS, min(50_000, m - start))
            block = centres[labels] + spread[labels, None] * rng.standard_normal(
                (len(labels), DIM), dtype=np.float32
            )
            out[start : start + len(labels)] = block / np.linalg.norm(block, axis=1, keepdims=True)
        return out

    return draw(n), draw(queries)


def flat_index(base: np.ndarray) -> faiss.Index:
    index = faiss.IndexIDMap2(faiss.IndexFlatIP(DIM))
    index.add_with_ids(base, np.arange(len(base), dtype=np.int64))
    return index


def hnsw_index(base: np.ndarray, ef_construction: int) -> faiss.Index:
    inner = faiss.IndexHNSWFlat(DIM, HNSW_M, faiss.METRIC_INNER_PRODUCT)
    inner.hnsw.efConstruction = ef_construction
    index = faiss.IndexIDMap2(inner)
    index.add_with_ids(base, np.arange(len(base), dtype=np.int64))
    return index


def timed(build: Callable[[], faiss.Index]) -> tuple[faiss.Index, float]:
    started = time.perf_counter()
    index = build()
    return index, time.perf_counter() - started


def single_queries(
    index: faiss.Index, queries: np.ndarray, params: faiss.SearchParameters | None
) -> tuple[np.ndarray, np.ndarray]:
    """Each query on its own: (ids per query, milliseconds per query)."""
    ids = np.empty((len(queries), K), dtype=np.int64)
    ms = np.empty(len(queries))
    for i, query in enumerate(queries):
        started = time.perf_counter()
        _, found = index.search(query[None, :], K, params=params)
        ms[i] = (time.perf_counter() - started) * 1000
        ids[i] = found[0]
    return ids, ms


def recall(found: np.ndarray, truth: np.ndarray) -> float:
    return float(np.mean([len(set(f) & set(t)) / K for f, t in zip(found, truth, strict=True)]))


@contextmanager
def threads(n: int) -> Iterator[None]:
    default = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(n)
    try:
        yield
    finally:
        faiss.omp_set_num_threads(default)


def _spin() -> None:
    while True:
        pass


@contextmanager
def busy_core() -> Iterator[None]:
    """Another process keeping one core at 100% for the duration."""
    spinner = multiprocessing.Process(target=_spin, daemon=True)
    spinner.start()
    time.sleep(0.2)
    try:
        yield
    finally:
        spinner.terminate()
        spinner.join()


Row = tuple[str, ...]


def query_rows(
    label: str,
    index: faiss.Index,
    queries: np.ndarray,
    truth: np.ndarray,
    runs: list[tuple[int | None, int]],
) -> Iterator[Row]:
    """One row per (efSearch or None for flat, FAISS threads) in ``runs``."""
    for ef, n in runs:
        params = None if ef is None else faiss.SearchParametersHNSW(efSearch=ef)
        with threads(n):
            single_queries(index, queries[:20], params)  # warm up
            found, ms = single_queries(index, queries, params)
        yield (
            label,
            "-" if ef is None else str(ef),
            str(n),
            f"{np.percentile(ms, 50):.2f}",
            f"{np.percentile(ms, 99):.2f}",
            f"{recall(found, truth):.3f}",
        )


def blas_rows(
    flat: faiss.Index, queries: np.ndarray, n: int, thresholds: tuple[int, ...], cores: int
) -> Iterator[Row]:
    """Flat search per threshold, batch size and thread count: interleaved, best of 2.

    From 128000 / 384 = 333 queries on, FAISS's default uses BLAS too.
    """
    best: dict[tuple[int, int, int], float] = {}
    for _ in range(2):
        for n_threads in (1, cores):
            for threshold in thresholds:
                faiss.cvar.distance_compute_blas_threshold = threshold
                for batch in (1, 4, 16, 64):
                    with threads(n_threads):
                        started = time.perf_counter()
                        flat.search(queries[:batch], K)
                        ms = (time.perf_counter() - started) * 1000
                    key = (batch, n_threads, thresholds.index(threshold))
                    best[key] = min(ms, best.get(key, ms))
    faiss.cvar.distance_compute_blas_threshold = BLAS_THRESHOLD
    for (batch, n_threads, which), ms in sorted(best.items()):
        yield (
            f"{n:,}",
            str(batch),
            str(n_threads),
            str(thresholds[which]),
            f"{ms:.1f}",
            f"{ms / batch:.2f}",
        )


def table(header: Row, rows: list[Row]) -> None:
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for row in rows:
        print("| " + " | ".join(row) + " |")
    print()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--sizes", default="10000,100000", help="database sizes, comma-separated")
    parser.add_argument(
        "--ef-construction", default="40,64", help="HNSW efConstruction values, comma-separated"
    )
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    ef_constructions = [int(s) for s in args.ef_construction.split(",")]

    blas_default = faiss.cvar.distance_compute_blas_threshold
    cores = faiss.omp_get_max_threads()
    load_before = os.getloadavg()[0]
    started = time.perf_counter()
    all_base, queries = clustered(max(sizes), QUERIES)

    builds: list[Row] = []
    single: list[Row] = []
    busy: list[Row] = []
    blas: list[Row] = []
    for n in sizes:
        base = all_base[:n]
        print(f"{n:,} vectors: flat", file=sys.stderr)
        flat, flat_s = timed(lambda base=base: flat_index(base))
        faiss.cvar.distance_compute_blas_threshold = BLAS_THRESHOLD
        _, truth = flat.search(queries, K)
        nearest, _ = flat.search(queries, 1)
        builds.append(
            (
                f"{n:,}",
                "flat",
                "-",
                f"{flat_s:.2f}",
                f"{faiss.serialize_index(flat).size / 2**20:.0f}",
            )
        )
        both = [(None, 1), (None, cores)]
        single += query_rows(f"{n:,} flat", flat, queries, truth, both)
        with busy_core():
            busy += query_rows(f"{n:,} flat", flat, queries, truth, both)

        blas += blas_rows(flat, queries, n, (blas_default, 20, BLAS_THRESHOLD), cores)
        del flat

        for efc in ef_constructions:
            print(f"{n:,} vectors: HNSW efConstruction={efc}", file=sys.stderr)
            hnsw, hnsw_s = timed(lambda base=base, efc=efc: hnsw_index(base, efc))
            builds.append(
                (
                    f"{n:,}",
                    f"HNSW M={HNSW_M}",
                    str(efc),
                    f"{hnsw_s:.2f}",
                    f"{faiss.serialize_index(hnsw).size / 2**20:.0f}",
                )
            )
            label = f"{n:,} HNSW efC={efc}"
            # Every efSearch on 1 thread (as knowledge/retrieval/index.py searches), 128 on both.
            sweep = [(ef, 1) for ef in EF_SEARCH if ef <= 128] + [(128, cores)]
            sweep += [(ef, 1) for ef in EF_SEARCH if ef > 128]
            single += query_rows(label, hnsw, queries, truth, sweep)
            with busy_core():
                busy += query_rows(label, hnsw, queries, truth, [(128, 1), (128, cores)])
            del hnsw
        print(
            f"{n:,} vectors: mean cosine of a query to its nearest neighbour "
            f"{float(nearest.mean()):.2f}",
            file=sys.stderr,
        )

    print(f"### Build (FAISS on {cores} threads)\n")
    table(("vectors", "index", "efConstruction", "build s", "index MB"), builds)
    print(f"### {QUERIES} single queries, k={K}\n")
    table(("index", "efSearch", "FAISS threads", "p50 ms", "p99 ms", "recall@10"), single)
    print("### The same, with another process keeping one core busy\n")
    table(("index", "efSearch", "FAISS threads", "p50 ms", "p99 ms", "recall@10"), busy)
    print("### Flat search by batch size and BLAS threshold (best of 2)\n")
    table(("vectors", "batch", "FAISS threads", "blas threshold", "batch ms", "ms a query"), blas)
    print(
        f"{os.cpu_count()} CPUs, Python {sys.version.split()[0]}, faiss {faiss.__version__}, "
        f"{time.strftime('%Y-%m-%d')}; load average {load_before:.1f} before, "
        f"{os.getloadavg()[0]:.1f} after; {time.perf_counter() - started:.0f} s in all."
    )


if __name__ == "__main__":
    main()
