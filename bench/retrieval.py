"""Retrieval quality, ingest time and query latency on the Django docs, against baselines.

    python -m bench.retrieval                  # ingest into a temp database, then measure
    python -m bench.retrieval --db PATH        # reuse (or keep) a database file
    python -m bench.retrieval --backend onnx-int8

Rows (see ../shared/eval/README.md for the data and the two modes):
- BM25 only, pages: bm25s over whole pages (teambot's extracted main text).
- tutorial: LangChain-style recursive 1,000-char chunks with 200 overlap, plain
  sentence-transformers all-MiniLM-L6-v2, FAISS flat inner product.
- teambot dense / bm25 / hybrid: `teambot refresh` into SQL, then the Retriever.
Known-item is scored at page level for every row (whole-page rows have no
sections) and at section level for teambot; hard mode drops faq/ from the
candidates and scores the linked pages. "hard, generated" asks the several
hundred section headings of the rest of the docs that bench/hard_questions.py
finds, each with its own page left out and the pages its text links to as
gold: the same task as hard mode, with 16 times the questions. Each mode
ends with teambot hybrid minus the tutorial, per question, with a paired
bootstrap 95% interval: 28 questions cannot tell small differences apart.
Query latency covers embedding the question and searching, single queries,
one after another.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import bm25s
import faiss
import numpy as np
import Stemmer
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from bench.hard_questions import Stats, build
from bench.measure import measure
from bench.paired import paired
from bench.refresh_site import DJANGO_DOCS, DJANGO_EXCLUDES, TEAMBOT, serve
from bot.runtime import Runtime
from bot.settings import Settings
from knowledge.embed.embedder import resolve_model_path
from knowledge.evaluation.run import evaluate_retrieval, page_keys
from knowledge.evaluation.scoring import (
    EvalQuestion,
    Metrics,
    gold_for,
    load_questions,
    per_question,
    ranked_keys,
    score,
)
from knowledge.ingest.extract import extract
from knowledge.retrieval.prefilter import Scope
from knowledge.retrieval.search import Method, Retriever
from knowledge.retrieval.versioned import VersionedRetriever
from knowledge.storage.documents import Document, Source

EVAL = Path(__file__).resolve().parents[2] / "shared" / "eval" / "django-faq.links.jsonl"
FAQ = "faq/"
# A pipeline: question and the page-path prefixes to leave out → pages, best first.
Ranker = Callable[[str, tuple[str, ...]], list[str]]


@dataclass(frozen=True)
class Mode:
    """Questions, each with its page-level gold and the pages left out of its candidates."""

    name: str
    questions: list[tuple[EvalQuestion, set[str], tuple[str, ...]]]


def modes(faq: list[EvalQuestion], generated: list[EvalQuestion]) -> list[Mode]:
    hard = (FAQ,)
    return [
        Mode("known-item", [(q, gold_for(q, "page"), ()) for q in faq]),
        Mode("hard", [(q, gold_for(q, "page", exclude_prefixes=hard), hard) for q in faq]),
        Mode(
            f"hard, generated ({len(generated)} section headings)",
            [(q, set(q.linked_pages), (FAQ, q.page or "")) for q in generated],
        ),
    ]


def generated_questions() -> list[EvalQuestion]:
    """bench.hard_questions's questions: a section heading, gold = the pages it links to."""
    return build(Path(DJANGO_DOCS), Stats())


def recursive_split(text: str, size: int = 1000, overlap: int = 200) -> list[str]:
    """RecursiveCharacterTextSplitter(size, overlap) semantics, compactly."""

    def split(piece: str, separators: list[str]) -> list[str]:
        if len(piece) <= size:
            return [piece]
        sep, *rest = separators
        parts = [p for p in (piece.split(sep) if sep else list(piece)) if p.strip()]
        out: list[str] = []
        for part in parts:
            out += split(part, rest) if len(part) > size and rest else [part]
        return merge(out, sep)

    def merge(parts: list[str], sep: str) -> list[str]:
        chunks, window = [], []
        for part in parts:
            if window and len(sep.join([*window, part])) > size:
                chunks.append(sep.join(window))
                while window and len(sep.join(window)) > overlap:
                    window.pop(0)
            window.append(part)
        if window:
            chunks.append(sep.join(window))
        return chunks

    return split(text, ["\n\n", "\n", " ", ""])


def ranked_pages(order: list[int], owners: list[str], excluded: tuple[str, ...]) -> list[str]:
    """Chunk ranks → page ranks, each page at its best chunk's rank."""
    return list(dict.fromkeys(owners[i] for i in order if not owners[i].startswith(excluded)))


@dataclass(frozen=True)
class Result:
    metrics: Metrics
    latencies_ms: list[float]
    per_question: list[dict[str, float]]


def evaluate(mode: Mode, rank: Ranker) -> Result:
    rankings, golds, latencies = [], [], []
    for question, gold, excluded in mode.questions:
        if not gold:
            continue
        started = time.perf_counter()
        rankings.append(rank(question.question, excluded)[:10])
        latencies.append((time.perf_counter() - started) * 1000)
        golds.append(gold)
    return Result(score(rankings, golds), latencies, per_question(rankings, golds))


def paired_difference(a: Result, b: Result, key: str) -> tuple[float, float, float]:
    """Mean of a − b per question of ``key``, with a paired bootstrap 95% interval."""
    return paired([x[key] for x in a.per_question], [y[key] for y in b.per_question])


def teambot_ranker(
    search: Retriever | VersionedRetriever,
    sessions: sessionmaker[Session],
    roots: dict[str, str],
    method: Method = "hybrid",
) -> Ranker:
    """Pages in teambot's order, through the same search the bot and `teambot eval` use (the
    excluded pages are left out before ranking)."""
    keys = page_keys(sessions, roots)

    def rank(query: str, excluded: tuple[str, ...]) -> list[str]:
        scope = Scope.of(pages_once=keys.under(excluded))
        found = search.search(query, 10, method=method, scope=scope)
        return ranked_keys(found, "page", roots)

    return rank


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--db", type=Path, help="SQLite file to reuse or keep")
    parser.add_argument("--backend", default="torch", help="EMBEDDING_BACKEND for teambot")
    parser.add_argument("--port", type=int, default=8766)
    args = parser.parse_args()
    questions = load_questions(EVAL)
    all_modes = modes(questions, generated_questions())
    tmp = tempfile.mkdtemp()
    db = args.db or Path(tmp, "teambot.db")
    env = {**os.environ, "DATABASE_URL": f"sqlite:///{db}", "EMBEDDING_BACKEND": args.backend}
    ingest_seconds = float("nan")
    seconds_file = db.with_name(db.name + ".ingest-seconds")
    if not db.exists():
        server = serve(DJANGO_DOCS, args.port)
        try:
            add = [TEAMBOT, "sources", "add", f"http://127.0.0.1:{args.port}/", "--name",
                   "django", "--allow-private", "--max-pages", "5000"]  # fmt: skip
            for pattern in DJANGO_EXCLUDES:
                add += ["--exclude", pattern]
            subprocess.run(add, env=env, check=True, stdout=subprocess.DEVNULL)
            print("ingesting the Django docs with teambot…", file=sys.stderr)
            ingest_seconds = measure([TEAMBOT, "refresh", "django"], Path(tmp), env)["seconds"]
            seconds_file.write_text(f"{ingest_seconds:.1f}\n")
        finally:
            server.terminate()
    elif seconds_file.exists():  # measured when this database was ingested
        ingest_seconds = float(seconds_file.read_text())
    runtime = Runtime(Settings(database_url=f"sqlite:///{db}", embedding_backend=args.backend))
    rows: list[tuple[str, dict[str, Result], float]] = []

    def run(rank: Ranker) -> dict[str, Result]:
        return {mode.name: evaluate(mode, rank) for mode in all_modes}

    # teambot first: the tutorial row loads torch, whose idle threads would then share the
    # cores with teambot's queries and inflate their latencies.
    teambot_rows: list[tuple[str, dict[str, Result], float]] = []
    with runtime.sessions() as session:
        roots = dict(session.execute(select(Source.name, Source.location)).all())
    section: list[tuple[str, Metrics]] = []
    for method in ("dense", "bm25", "hybrid"):
        print(f"teambot {method}…", file=sys.stderr)
        results = run(teambot_ranker(runtime.retriever, runtime.sessions, roots, method))  # type: ignore[arg-type]
        known = evaluate_retrieval(runtime.retriever, runtime.sessions, questions, sources=None,
                                   k=10, level="section", exclude_prefixes=(),
                                   method=method)  # fmt: skip
        section.append((f"teambot {method}", known.metrics))
        teambot_rows.append((f"teambot {method}", results, ingest_seconds))

    # The page texts every baseline works from: teambot's extraction of each indexed page.
    with runtime.sessions() as session:
        urls = list(session.scalars(select(Document.url).order_by(Document.url)))
    root = f"http://127.0.0.1:{args.port}/"
    pages = {}
    for url in urls:
        path = url.removeprefix(root) or "index.html"
        html = Path(DJANGO_DOCS, path).read_text(encoding="utf-8", errors="replace")
        page = extract(html, suffix=".html", fallback_title=path)
        pages[path] = f"{page.title}\n\n{page.text}"
    names = list(pages)

    print("BM25 over whole pages…", file=sys.stderr)
    stemmer = Stemmer.Stemmer("english")
    started = time.perf_counter()
    bm25 = bm25s.BM25()
    bm25.index(bm25s.tokenize(list(pages.values()), stopwords="en_plus", stemmer=stemmer,
                              show_progress=False), show_progress=False)  # fmt: skip
    bm25_seconds = time.perf_counter() - started

    def rank_bm25(query: str, excluded: tuple[str, ...]) -> list[str]:
        tokens = bm25s.tokenize([query], stopwords="en_plus", stemmer=stemmer, return_ids=False,
                                show_progress=False)  # fmt: skip
        found, _ = bm25.retrieve(tokens, k=len(names), show_progress=False)
        return ranked_pages(list(found[0]), names, excluded)

    rows.append(("BM25 only, pages", run(rank_bm25), bm25_seconds))

    print("tutorial pipeline: splitting and embedding…", file=sys.stderr)
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(resolve_model_path("all-MiniLM-L6-v2"), device="cpu")
    owners, chunks = [], []
    for name, text in pages.items():
        for piece in recursive_split(text):
            owners.append(name)
            chunks.append(piece)
    started = time.perf_counter()
    vectors = model.encode(chunks, batch_size=32, normalize_embeddings=True)
    flat = faiss.IndexFlatIP(vectors.shape[1])
    flat.add(np.asarray(vectors, dtype=np.float32))
    tutorial_seconds = time.perf_counter() - started

    def rank_tutorial(query: str, excluded: tuple[str, ...]) -> list[str]:
        q = model.encode([query], normalize_embeddings=True).astype(np.float32)
        _, ids = flat.search(q, 200)
        return ranked_pages([int(i) for i in ids[0] if i >= 0], owners, excluded)

    rows.append((f"tutorial ({len(chunks)} chunks)", run(rank_tutorial), tutorial_seconds))

    rows += teambot_rows
    tutorial, hybrid = rows[1][1], rows[-1][1]
    for mode in all_modes:
        print(f"\n### {mode.name} (page level, k = 10)\n")
        print("| pipeline | recall@10 | nDCG@10 | MRR | ingest s | query p50 ms | p99 ms | n |")
        print("|---|---|---|---|---|---|---|---|")
        for name, results, seconds in rows:
            result = results[mode.name]
            metrics = result.metrics
            p50, p99 = np.percentile(result.latencies_ms, [50, 99])
            cells = [metrics.recall_at[10], metrics.ndcg_at_10, metrics.mrr]
            print(f"| {name} | " + " | ".join(f"{c:.3f}" for c in cells)
                  + f" | {seconds:.0f} | {p50:.1f} | {p99:.1f} | {metrics.n} |")  # fmt: skip
        print("\nteambot hybrid − tutorial, per question (paired bootstrap 95% interval): "
              + "; ".join(
                  "{} {:+.3f} [{:+.3f}, {:+.3f}]".format(
                      label, *paired_difference(hybrid[mode.name], tutorial[mode.name], key))
                  for label, key in (("recall@10", "recall@10"), ("nDCG@10", "ndcg@10"))
              ))  # fmt: skip
    print("\n### known-item, section level (the chunk that holds the answer's anchor)\n")
    print("| pipeline | recall@1 | recall@5 | recall@10 | MRR | nDCG@10 | n |")
    print("|---|---|---|---|---|---|---|")
    for name, m in section:
        print(f"| {name} | {m.recall_at[1]:.3f} | {m.recall_at[5]:.3f} | {m.recall_at[10]:.3f} | "
              f"{m.mrr:.3f} | {m.ndcg_at_10:.3f} | {m.n} |")  # fmt: skip
    print(f"\nteambot embedding backend: {args.backend}; {len(pages)} pages; "
          f"{os.cpu_count()} CPUs, {time.strftime('%Y-%m-%d %H:%M')}")  # fmt: skip


if __name__ == "__main__":
    main()
