"""Exact against HNSW search on teambot's own vectors, size by size: where HNSW pays (#23).

    python -m bench.ann_sizes --source /tmp/qp/django.db              # ~5 minutes
    python -m bench.ann_sizes --source /tmp/qp/django.db --sizes 10000,25000,50000,100000,200000

bench/ann.py measures synthetic clustered vectors; this measures what teambot indexes: the
ONNX int8 embeddings of the Django docs (``--source``: a COPY of an ingested database, only
read), repeated as bench/query_path.py repeats them (each later copy moved by noise of norm
0.3 and renormalised: near-duplicates, the hard case for a graph), each chunk plus one
window per pair of neighbouring chunks (knowledge/retrieval/index.py), so an index of N
chunks holds about 2N vectors. Queries: the question embeddings of bench.hard_questions'
headings, one at a time on 1 thread, k = 20 labels (teambot fetches 2k for k results);
recall@20 of HNSW (M=32, efConstruction 64, as teambot builds it) against exact search.
"""

from __future__ import annotations

import argparse
import math
import sqlite3
import tempfile
import time
from pathlib import Path

import faiss
import numpy as np

from bench.query_path import NOISE_NORM, questions
from knowledge.retrieval.index import HNSW_EF_CONSTRUCTION, HNSW_M

FETCH = 20
EF_SEARCH = (64, 128, 256, 512)


def vectors_of(source: Path, chunks: int, seed: int = 0) -> np.ndarray:
    """``chunks`` chunk vectors (copies of the docs) and their windows, as teambot indexes."""
    rng = np.random.default_rng(seed)
    db = sqlite3.connect(source)
    rows = db.execute("SELECT document_id, embedding FROM chunks ORDER BY document_id, ordinal")
    documents, blobs = zip(*rows.fetchall(), strict=True)
    base = np.frombuffer(b"".join(blobs), dtype="<f4").reshape(len(blobs), -1)
    documents = np.asarray(documents)
    copies, out, owners = math.ceil(chunks / len(base)), [], []
    for copy in range(copies):
        block = base.copy()
        if copy:
            noise = rng.standard_normal(block.shape).astype(np.float32)
            block += noise * (NOISE_NORM / math.sqrt(block.shape[1]))
            block /= np.linalg.norm(block, axis=1, keepdims=True)
        out.append(block)
        owners.append(documents + copy * (documents.max() + 1))
    chunk_vectors = np.concatenate(out)[:chunks]
    owner = np.concatenate(owners)[:chunks]
    same = owner[:-1] == owner[1:]
    windows = chunk_vectors[:-1][same] + chunk_vectors[1:][same]
    windows /= np.linalg.norm(windows, axis=1, keepdims=True)
    return np.ascontiguousarray(np.concatenate([chunk_vectors, windows]), dtype=np.float32)


def timed_queries(index: faiss.Index, queries: np.ndarray, params=None) -> tuple[list, np.ndarray]:
    ms, found = [], []
    for q in queries:
        started = time.perf_counter()
        _, labels = index.search(q[None, :], FETCH, params=params)
        ms.append((time.perf_counter() - started) * 1000)
        found.append(labels[0])
    return ms, np.asarray(found)


def recall(found: np.ndarray, truth: np.ndarray) -> float:
    return float(
        np.mean([len(set(f) & set(t)) / len(t) for f, t in zip(found, truth, strict=True)])
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawTextHelpFormatter)  # fmt: skip
    parser.add_argument("--source", type=Path, required=True)
    parser.add_argument("--sizes", default="10000,25000,50000,100000")
    parser.add_argument("--questions", type=int, default=300)
    args = parser.parse_args()
    from bot.runtime import Runtime
    from bot.settings import Settings

    settings = Settings(
        database_url=f"sqlite:///{args.source}",
        embedding_backend="onnx-int8",
        data_dir=Path(tempfile.mkdtemp()),
    )
    embedder = Runtime(settings).embedder
    asked = questions(args.questions)
    queries = np.asarray([embedder.embed_query(q) for q, _ in asked], dtype=np.float32)
    print("| chunks | vectors | index | efSearch | build s | p50 ms | p99 ms | recall@20 |")
    print("|---:|---:|---|---:|---:|---:|---:|---:|")
    for size in (int(s) for s in args.sizes.split(",")):
        base = vectors_of(args.source, size)
        faiss.omp_set_num_threads(1)
        flat = faiss.IndexFlatIP(base.shape[1])
        flat.add(base)
        ms, truth = timed_queries(flat, queries)
        p50, p99 = np.percentile(ms, [50, 99])
        print(f"| {size:,} | {len(base):,} | flat | — | 0.0 | {p50:.2f} | {p99:.2f} | 1.000 |",
              flush=True)  # fmt: skip
        faiss.omp_set_num_threads(2)
        started = time.perf_counter()
        hnsw = faiss.IndexHNSWFlat(base.shape[1], HNSW_M, faiss.METRIC_INNER_PRODUCT)
        hnsw.hnsw.efConstruction = HNSW_EF_CONSTRUCTION
        hnsw.add(base)
        build = time.perf_counter() - started
        faiss.omp_set_num_threads(1)
        for ef in EF_SEARCH:
            params = faiss.SearchParametersHNSW(efSearch=ef)
            ms, found = timed_queries(hnsw, queries, params)
            p50, p99 = np.percentile(ms, [50, 99])
            print(f"| {size:,} | {len(base):,} | hnsw | {ef} | {build:.1f} | {p50:.2f} | "
                  f"{p99:.2f} | {recall(found, truth):.3f} |", flush=True)  # fmt: skip
        del flat, hnsw
    print(f"\n{len(queries)} questions; 2 shared CPUs; {time.strftime('%Y-%m-%d %H:%M')}")


if __name__ == "__main__":
    main()
