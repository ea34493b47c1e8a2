"""teambot's query path against the tutorial's, at about 10k, 100k and 1M chunks (issue #23).

    python -m bench.query_path --source /tmp/qp/django.db                  # 10k and 100k
    python -m bench.query_path --source /tmp/qp/django.db --sizes 1000000  # ~20 minutes more

Corpora: the real Django 3.2 docs as teambot indexed them (``--source``: a COPY of an
ingested database, e.g. /work/data/django.db; it is only read), repeated. Copy ``c`` of the
docs is a source of its own, ``django-c``, with the same page URLs; copy 0 is the real docs,
every later copy drops each word of a chunk's text with probability 5% (BM25 then sees
different passages) and moves each embedding by Gaussian noise of norm ~0.3, renormalised
(cosine ~0.96 to the original: near-duplicates, like versions of the same docs). The last
copy is cut to reach the size. Embedding 1M chunks with the real model would take days here.

Questions: the section headings of ``bench.hard_questions`` (``--questions`` of them).
"plain" searches the whole corpus; "filtered" leaves out faq/ and the question's own page
in every copy (``teambot eval``'s hard mode: a ``Scope`` that skips the faq/ pages and, for
this search only, the question's own pages); "by source" searches copy 0 only (a channel's
``sources=`` setting). A ``--baseline`` checkout from before scopes filters as it did then
(``keep=`` after fusion, ``sources=``).

Each corpus is measured by child processes, one after another, on the same vectors:
- ``serve``: a teambot process (Runtime, ONNX int8 embedder, FAISS + BM25 from SQL) times
  hybrid search, plain and filtered, single queries; recall@10 of its vector index against
  exact search of the same vectors, by chunk id and by section (a page URL and place in the
  page, the same in every copy: near-copies of the best chunk count); then a one-page change
  committed by this process (the "worker") is timed until the serving process finds it, with
  the CPU it spent on it.
- ``tutorial``: sentence-transformers ``encode`` (torch, 1 thread) + FAISS flat inner product
  over the same chunk vectors: k=10 plain; filtered takes 200 and drops excluded pages, by
  source takes 200 and drops the other copies.
Peak RSS is the serving child's VmHWM (after loading, searching and applying the change).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from knowledge.retrieval.search import Retriever

HERE = Path(__file__).resolve().parents[1]
DOCS_COPY = "django-{}"
WORD_DROP = 0.05
NOISE_NORM = 0.3
TUTORIAL_FILTER_DEPTH = 200
K = 10
CHANGE_TOKEN = "zqxjchanged"
POLL_SECONDS = 0.01
# A channel's ``sources=`` setting: the real docs only (copy 0; at 10k chunks 61% of them).
SOURCE_FILTER = (DOCS_COPY.format(0),)


def build_corpus(source_db: Path, target: Path, size: int, seed: int = 0) -> None:
    """Write a teambot database of ``size`` chunks made of copies of ``source_db``'s docs."""
    from sqlalchemy import create_engine, insert, select

    from knowledge.storage.db import make_engine
    from knowledge.storage.documents import Chunk, Document, Source
    from knowledge.storage.schema import upgrade

    rng = np.random.default_rng(seed)
    src = create_engine(f"sqlite:///{source_db}")
    with src.connect() as conn:
        root = conn.execute(select(Source.location)).scalar_one()
        documents = conn.execute(
            select(Document.id, Document.url, Document.title, Document.content_hash)
        ).all()
        chunks = (
            conn.execute(select(Chunk).order_by(Chunk.document_id, Chunk.ordinal)).mappings().all()
        )
    by_document: dict[int, list[dict]] = {}
    for row in chunks:
        by_document.setdefault(row["document_id"], []).append(dict(row))
    target.unlink(missing_ok=True)
    engine = make_engine(f"sqlite:///{target}")
    upgrade(engine)
    written, copy = 0, 0
    with engine.begin() as conn:
        while written < size:
            source_id = conn.execute(
                insert(Source).values(
                    name=DOCS_COPY.format(copy), kind="site", location=root, options={}
                )
            ).inserted_primary_key[0]
            for document_id, url, title, content_hash in documents:
                rows = by_document.get(document_id, [])[: size - written]
                if not rows:
                    continue
                new_id = conn.execute(
                    insert(Document).values(
                        source_id=source_id, url=url, title=title, content_hash=content_hash
                    )
                ).inserted_primary_key[0]
                out = []
                for row in rows:
                    text, vector = row["text"], np.frombuffer(row["embedding"], dtype="<f4")
                    if copy:
                        words = text.split(" ")
                        kept = rng.random(len(words)) >= WORD_DROP
                        text = " ".join(w for w, k in zip(words, kept, strict=True) if k)
                        noise = rng.standard_normal(len(vector)).astype(np.float32)
                        vector = vector + noise * (NOISE_NORM / math.sqrt(len(vector)))
                        vector = vector / np.linalg.norm(vector)
                    out.append({**row, "id": None, "document_id": new_id, "text": text,
                                "embedding": np.asarray(vector, "<f4").tobytes()})  # fmt: skip
                conn.execute(insert(Chunk), [{k: v for k, v in r.items() if k != "id"}
                                             for r in out])  # fmt: skip
                written += len(out)
                if written >= size:
                    break
            copy += 1
    engine.dispose()


def questions(limit: int) -> list[tuple[str, str]]:
    """(question, own page path) from bench.hard_questions, seeded sample."""
    import random

    from bench.hard_questions import Stats, build
    from bench.refresh_site import DJANGO_DOCS

    found = build(Path(DJANGO_DOCS), Stats())
    random.Random(0).shuffle(found)
    return [(q.question, q.page or "") for q in found[:limit]]


def percentiles(ms: list[float]) -> tuple[float, float]:
    p50, p99 = np.percentile(ms, [50, 99])
    return float(p50), float(p99)


def vm(field: str) -> float:
    """A /proc/self/status memory field in MB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


def serve(db: Path, limit: int) -> None:
    """The teambot child: latencies, recall, RSS, then a change made by the parent."""
    from sqlalchemy import select

    from bot.runtime import Runtime
    from bot.settings import Settings
    from knowledge.retrieval.index import VectorIndex
    from knowledge.storage.documents import Source

    data = Path(tempfile.mkdtemp())
    runtime = Runtime(Settings(database_url=f"sqlite:///{db}", embedding_backend="onnx-int8",
                               data_dir=data))  # fmt: skip
    serving = runtime.retriever  # what the bot searches through: the active model's indexes
    rss_start = vm("VmRSS")
    started = time.perf_counter()
    serving.search("warm up", k=1)
    load_s = time.perf_counter() - started
    # Its Retriever, for the caches and the vector index (a checkout from before model
    # versions has no VersionedRetriever).
    retriever = serving.current() if hasattr(serving, "current") else serving
    rss_loaded = vm("VmRSS")
    with runtime.sessions() as session:
        roots = dict(session.execute(select(Source.name, Source.location)).all())
    asked = questions(limit)
    hard_mode, only_copy_0 = filters(runtime.sessions, roots)
    plain, filtered, by_source = [], [], []
    for question, page in asked:
        hard = hard_mode(page)
        started = time.perf_counter()
        serving.search(question, K)
        plain.append((time.perf_counter() - started) * 1000)
        started = time.perf_counter()
        serving.search(question, K, **hard)
        filtered.append((time.perf_counter() - started) * 1000)
        started = time.perf_counter()
        serving.search(question, K, **only_copy_0)
        by_source.append((time.perf_counter() - started) * 1000)
    report = {
        "chunks": len(retriever._index), "kind": retriever._index.kind, "load_s": load_s,
        "parts_mb": memory_parts(retriever),
        "plain": percentiles(plain), "filtered": percentiles(filtered),
        "by_source": percentiles(by_source),
        "rss_start_mb": rss_start, "rss_loaded_mb": rss_loaded, "peak_mb": vm("VmHWM"),
    }  # fmt: skip
    print(json.dumps(report), flush=True)
    committed = float(sys.stdin.readline())  # the parent changed a page at this time.time()
    cpu = time.process_time()
    while not any(CHANGE_TOKEN in r.text for r in serving.search(CHANGE_TOKEN, K)):
        time.sleep(POLL_SECONDS)  # hybrid: both indexes must have caught up
    searchable = time.time() - committed
    cpu = time.process_time() - cpu
    dense = serving.search(CHANGE_TOKEN, 1, method="dense")
    print(json.dumps({"searchable_s": searchable, "apply_cpu_s": cpu,
                      "dense_ok": bool(dense), "peak_after_change_mb": vm("VmHWM")}),
          flush=True)  # fmt: skip
    # Last, as it builds a second (exact) index: recall of the serving index against it.
    index = retriever._index
    vectors = [runtime.embedder.embed_query(q) for q, _ in asked]
    hits = [[c for c, _ in index.search(v, K)] for v in vectors]
    exact = VectorIndex(runtime.sessions, index.model, index.dimension, hnsw_min_chunks=1 << 62)
    exact.sync()
    truth = [[c for c, _ in exact.search(v, K)] for v in vectors]
    recall = float(np.mean([len(set(h) & set(t)) / K for h, t in zip(hits, truth, strict=True)]))
    # By section: a copy of the chunk counts (every later copy repeats every section).
    section = sections(runtime.sessions, {c for ids in hits + truth for c in ids})
    by_section = float(np.mean([
        len({section[c] for c in h} & {section[c] for c in t}) / len({section[c] for c in t})
        for h, t in zip(hits, truth, strict=True) if t
    ]))  # fmt: skip
    print(json.dumps({"recall": recall, "recall_sections": by_section}), flush=True)


def sections(sessions: Any, chunk_ids: set[int]) -> dict[int, tuple[str, int]]:
    """Chunk id → its page URL and place in the page: the same in every copy of the docs."""
    from sqlalchemy import select

    from knowledge.storage.documents import Chunk, Document

    ids = sorted(chunk_ids)
    out: dict[int, tuple[str, int]] = {}
    with sessions() as session:
        for start in range(0, len(ids), 5000):
            rows = session.execute(
                select(Chunk.id, Document.url, Chunk.ordinal)
                .join(Document, Chunk.document_id == Document.id)
                .where(Chunk.id.in_(ids[start : start + 5000]))
            ).all()
            out.update({chunk_id: (url, ordinal) for chunk_id, url, ordinal in rows})
    return out


def filters(sessions: Any, roots: dict[str, str]) -> tuple[Callable[[str], dict], dict]:
    """The search options of the hard mode (given the question's page) and of "by source",
    in the API of the checkout being measured."""
    try:
        from knowledge.evaluation.run import page_keys
        from knowledge.retrieval.prefilter import Scope
    except ImportError:  # a checkout from before scopes
        from knowledge.evaluation.scoring import excluding_pages

        return (lambda page: {"keep": excluding_pages(("faq/", page), roots)},
                {"sources": SOURCE_FILTER})  # fmt: skip
    keys = page_keys(sessions, roots)
    faq = keys.under(("faq/",))
    return (lambda page: {"scope": Scope.of(skip_pages=faq, pages_once=keys.under((page,)))},
            {"scope": Scope.of(SOURCE_FILTER)})  # fmt: skip


def memory_parts(retriever: Retriever) -> dict[str, float]:
    """What the serving caches hold, in MB (the rest of the RSS: code, libraries, model);
    {} for a checkout from before these caches (a --baseline)."""
    published = getattr(retriever, "_published", None)
    if published is None:
        return {}
    main = published.vectors.main
    per_vector = main.d * 4  # float32 vectors; HNSW adds its links: ~2M int32 on level 0
    if published.vectors.kind == "hnsw":
        per_vector += 2 * faiss_hnsw_m() * 4 * 1.07
    lexical = published.lexical
    arrays = [*lexical.bm25.scores.values()] if lexical.bm25 is not None else []
    postings = lexical.postings
    arrays += [postings.ids, postings.lengths, postings.starts, postings.terms, postings.counts]
    passages = lexical.passages
    text = sum(sys.getsizeof(row[3]) + sys.getsizeof(row) + sys.getsizeof(row[1])
               for row in passages.chunks.values())  # fmt: skip
    return {
        "vectors": main.ntotal * per_vector / 1e6,
        "bm25": sum(getattr(a, "nbytes", 0) for a in arrays) / 1e6,
        "passages": (text + sys.getsizeof(passages.chunks)) / 1e6,
        "neighbours": sys.getsizeof(published.vectors.following) * 2 / 1e6,
    }


def faiss_hnsw_m() -> int:
    from knowledge.retrieval.index import HNSW_M

    return HNSW_M


def change_one_page(db: Path) -> float:
    """Replace one page of copy 0 (as a refresh that found it changed would); commit time."""
    from sqlalchemy import select

    from knowledge.storage import store
    from knowledge.storage.db import make_engine, make_session_factory
    from knowledge.storage.documents import Chunk, Document
    from knowledge.types import ChunkDraft

    engine = make_engine(f"sqlite:///{db}")
    sessions = make_session_factory(engine)
    with sessions() as session:
        document = session.scalars(select(Document).order_by(Document.id).limit(1)).one()
        chunks = session.scalars(select(Chunk).where(Chunk.document_id == document.id)).all()
        drafts = [ChunkDraft(c.ordinal, tuple(c.heading_path), c.anchor,
                             f"{c.text} {CHANGE_TOKEN}", c.text, c.token_count)
                  for c in chunks]  # fmt: skip
        store.save_document(
            session, source_id=document.source_id, url=document.url, title=document.title,
            content_hash=document.content_hash + "x", etag=None, last_modified=None,
            sitemap_lastmod=None, links=None, drafts=drafts,
            chunk_hashes=[c.content_hash + "x" for c in chunks],
            embeddings=[c.embedding for c in chunks], model=chunks[0].model,
        )  # fmt: skip
        session.commit()
        committed = time.time()
    engine.dispose()
    return committed


def tutorial(db: Path, limit: int) -> None:
    """The tutorial child: sentence-transformers encode + FAISS flat over the same vectors."""
    import faiss
    import torch
    from sentence_transformers import SentenceTransformer
    from sqlalchemy import create_engine, select

    from knowledge.embed.embedder import resolve_model_path
    from knowledge.storage.documents import Chunk, Document, Source

    torch.set_num_threads(1)
    faiss.omp_set_num_threads(1)
    engine = create_engine(f"sqlite:///{db}")
    with engine.connect() as conn:
        rows = conn.execute(
            select(Chunk.embedding, Document.url, Source.name)
            .join(Document, Chunk.document_id == Document.id)
            .join(Source, Document.source_id == Source.id)
            .order_by(Chunk.id)
        ).all()
    vectors = np.frombuffer(b"".join(r[0] for r in rows), dtype="<f4").reshape(len(rows), -1)
    root = "http://127.0.0.1:8766/"
    owners = [r[1].removeprefix(root) or "index.html" for r in rows]
    sources = [r[2] for r in rows]
    del rows
    flat = faiss.IndexFlatIP(vectors.shape[1])
    flat.add(vectors)
    model = SentenceTransformer(resolve_model_path("all-MiniLM-L6-v2"), device="cpu")
    model.encode(["warm up"], normalize_embeddings=True)
    plain, filtered, by_source = [], [], []
    for question, page in questions(limit):
        started = time.perf_counter()
        q = model.encode([question], normalize_embeddings=True).astype(np.float32)
        flat.search(q, K)
        plain.append((time.perf_counter() - started) * 1000)
        started = time.perf_counter()
        q = model.encode([question], normalize_embeddings=True).astype(np.float32)
        _, ids = flat.search(q, TUTORIAL_FILTER_DEPTH)
        excluded = ("faq/", page)
        [i for i in ids[0] if i >= 0 and not owners[i].startswith(excluded)][:K]
        filtered.append((time.perf_counter() - started) * 1000)
        started = time.perf_counter()
        q = model.encode([question], normalize_embeddings=True).astype(np.float32)
        _, ids = flat.search(q, TUTORIAL_FILTER_DEPTH)
        [i for i in ids[0] if i >= 0 and sources[i] in SOURCE_FILTER][:K]
        by_source.append((time.perf_counter() - started) * 1000)
    print(json.dumps({"plain": percentiles(plain), "filtered": percentiles(filtered),
                      "by_source": percentiles(by_source), "peak_mb": vm("VmHWM")}))  # fmt: skip


def child(mode: str, db: Path, limit: int, code: Path = HERE) -> subprocess.Popen[str]:
    """This script in a child process, importing teambot from the checkout ``code``."""
    command = [sys.executable, __file__, mode, "--db", str(db), "--questions", str(limit)]
    env = {**os.environ, "PYTHONPATH": str(code)}
    return subprocess.Popen(command, cwd=code, env=env, stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)  # fmt: skip


def measure_serving(work: Path, limit: int, code: Path) -> dict:
    """A serving process of the checkout ``code``: latencies, recall, RSS, a one-page change."""
    teambot = child("serve", work, limit, code)
    assert teambot.stdout is not None and teambot.stdin is not None
    result = json.loads(teambot.stdout.readline())
    teambot.stdin.write(f"{change_one_page(work)!r}\n")
    teambot.stdin.flush()
    result.update(json.loads(teambot.stdout.readline()))  # the change
    result.update(json.loads(teambot.stdout.readline()))  # recall
    teambot.wait()
    return result


def measure_size(source: Path, size: int, limit: int, folder: Path, baseline: Path | None) -> dict:
    db = folder / f"query-path-{size}.db"
    if not db.exists():
        print(f"building {size} chunks…", file=sys.stderr)
        build_corpus(source, db, size)
    work = folder / f"query-path-{size}.work.db"  # each run changes a page: start from a copy
    result: dict = {}
    for name, code in (("baseline", baseline), ("this", HERE)):
        if code is None:
            continue
        work.write_bytes(db.read_bytes())
        print(f"measuring {size}: teambot {name}…", file=sys.stderr)
        result[name] = measure_serving(work, limit, code)
    print(f"measuring {size}: tutorial…", file=sys.stderr)
    tutor = child("tutorial", work, limit)
    out, _ = tutor.communicate()
    result["tutorial"] = json.loads(out)
    work.unlink()
    return result


def table(results: dict[int, dict]) -> str:
    lines = [
        "| chunks | teambot | index | hybrid plain p50 / p99 ms | hybrid filtered p50 / p99 ms "
        "| by source p50 / p99 ms | recall@10 chunks / sections | serving RSS loaded / peak MB "
        "| change searchable s | apply CPU s | start-up load s "
        "| caches MB: vectors / BM25 / passages |",
        "|---:|---|---|---|---|---|---:|---|---:|---:|---:|---|",
    ]
    for size, by_code in results.items():
        t = by_code["tutorial"]
        rows = [(name, r) for name, r in by_code.items() if name != "tutorial"]
        for name, r in rows:
            cells = [
                f"{size:,}", name, r["kind"],
                "{:.1f} / {:.1f}".format(*r["plain"]), "{:.1f} / {:.1f}".format(*r["filtered"]),
                "{:.1f} / {:.1f}".format(*r["by_source"]),
                f"{r['recall']:.3f} / {r.get('recall_sections', float('nan')):.3f}",
                f"{r['rss_loaded_mb']:.0f} / {r['peak_after_change_mb']:.0f}",
                f"{r['searchable_s']:.2f}", f"{r['apply_cpu_s']:.2f}", f"{r['load_s']:.1f}",
                " / ".join(f"{r['parts_mb'][part]:.0f}" for part in ("vectors", "bm25", "passages"))
                if r.get("parts_mb") else "—",
            ]  # fmt: skip
            lines.append("| " + " | ".join(cells) + " |")
        cells = [f"{size:,}", "tutorial (ST encode + flat)", "flat",
                 "{:.1f} / {:.1f}".format(*t["plain"]), "{:.1f} / {:.1f}".format(*t["filtered"]),
                 "{:.1f} / {:.1f}".format(*t["by_source"]), "1.000 / 1.000",
                 f"— / {t['peak_mb']:.0f}", "—", "—", "—", "—"]  # fmt: skip
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawTextHelpFormatter)  # fmt: skip
    parser.add_argument("mode", nargs="?", default="run", choices=["run", "serve", "tutorial"])
    parser.add_argument("--source", type=Path, help="an ingested Django docs database (read)")
    parser.add_argument("--db", type=Path)
    parser.add_argument("--sizes", default="10000,100000")
    parser.add_argument("--questions", type=int, default=300)
    parser.add_argument("--folder", type=Path, default=Path(tempfile.gettempdir()))
    parser.add_argument("--baseline", type=Path, help="another checkout, measured too")
    args = parser.parse_args()
    if args.mode == "serve":
        return serve(args.db, args.questions)
    if args.mode == "tutorial":
        return tutorial(args.db, args.questions)
    results = {}
    for size in (int(s) for s in args.sizes.split(",")):
        results[size] = measure_size(args.source, size, args.questions, args.folder, args.baseline)
        print(json.dumps({size: results[size]}), file=sys.stderr)
    print(table(results))
    print(f"\n{args.questions} questions; 2 shared CPUs; {time.strftime('%Y-%m-%d %H:%M')}")


if __name__ == "__main__":
    main()
