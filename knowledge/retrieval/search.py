"""Find the passages that best answer a question: dense, lexical, or both fused.

Dense retrieval (FAISS over MiniLM embeddings) finds paraphrases; BM25 finds
exact names, settings and error codes. The default fuses both and keeps one
result per page, so that a single long page does not fill every slot.

Fusion is a convex combination of min-max normalised scores (Bruch et al.,
"An Analysis of Fusion Functions for Hybrid Retrieval", 2023), made at page
level: each method scores a page by its best passage (MaxP, Dai & Callan
2019), the two page scores are combined to choose and order the pages, and
the passage-level combination picks the passage each page is cited by. A page
whose topic one method finds in one passage and the other in another then
counts both. Against reciprocal-rank fusion of passages, on the Django docs
(bench/README.md), it found more of the pages an answer links to (448
generated hard questions: recall@10 0.688 → 0.708, nDCG@10 0.505 → 0.529,
both paired 95% intervals above zero) and kept known-item quality. Its
quality is measured by `teambot eval` and bench/retrieval.py.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Literal, TypeVar

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from knowledge.embed.embedder import TextEmbedder
from knowledge.retrieval.changes import EMPTY_ROWS, ChunkRows, read_change, read_chunk_rows
from knowledge.retrieval.evidence import Evidence, ResultTerms, page_evidence
from knowledge.retrieval.index import VectorIndex, VectorState
from knowledge.retrieval.lexical import LexicalIndex, LexicalState, lexical_text
from knowledge.retrieval.passages import Passages, load_pages
from knowledge.retrieval.prefilter import EligibleCache, Scope
from knowledge.storage.documents import Chunk
from knowledge.types import ScoredChunk

log = logging.getLogger(__name__)

Method = Literal["hybrid", "dense", "bm25"]
Key = TypeVar("Key", int, tuple[str, str])  # a chunk id, or a page: (source name, url)
METHODS: tuple[Method, ...] = ("hybrid", "dense", "bm25")
# Candidates taken from each ranking (of what the scope allows) before fusion and one-per-page.
CANDIDATES = 50
# Candidates per wanted result.
OVERFETCH = 5
# Weight of the dense score in the fused one (BM25 gets the rest). Equal weights: the
# paper's advice without tuning data, and what was measured.
DENSE_WEIGHT = 0.5
# Earlier chunks of a section read to quote it from its start: a quote holds about 1,000
# characters, a chunk up to about as many, so a start further back could not be quoted anyway.
SECTION_CONTEXT_CHUNKS = 3
# A chunk that was cut repeats the last piece of the one before; a repeat is at least this long.
MIN_OVERLAP_CHARS = 20


@dataclass(frozen=True)
class Published:
    """What searches read: the vector and BM25 indexes (with the passages) of one revision,
    and the chunk rows they were made from. Replaced whole, so a search never sees half of a
    change: each search takes one ``Published`` and reads only it."""

    stamp: str | None
    vectors: VectorState
    lexical: LexicalState
    rows: ChunkRows


class Retriever:
    """Question text → the best chunks, each from a different page."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        embedder: TextEmbedder,
        index: VectorIndex,
        lexical: LexicalIndex | None = None,
    ) -> None:
        self._sessions = sessions
        self._embedder = embedder
        self._index = index
        self._lexical = lexical or LexicalIndex(sessions, index.model, index.revisions)
        self._revisions = index.revisions
        self._published = Published(None, index.state, self._lexical.state, EMPTY_ROWS)
        self._lock = threading.Lock()
        self._eligible = EligibleCache()

    def _sync(self) -> Published:
        """The indexes at the current revision (read at most once a second). While one
        thread applies a change, the others keep searching the previous revision."""
        stamp = self._revisions.stamp()
        published = self._published
        if stamp == published.stamp:
            return published
        if not self._lock.acquire(blocking=published.stamp is None):
            return published
        try:
            if stamp != self._published.stamp:
                self._publish(self._catch_up(stamp))
        finally:
            self._lock.release()
        return self._published

    def _publish(self, published: Published) -> None:
        self._index.state, self._lexical.state = published.vectors, published.lexical
        self._published = published

    def _catch_up(self, stamp: str) -> Published:
        """The indexes at ``stamp``: the change since the published ones applied to them
        (knowledge/retrieval/changes.py), or full builds the first time and when the vector
        delta is full."""
        started, cpu = time.perf_counter(), time.process_time()
        rows = read_chunk_rows(self._sessions, self._index.model)
        current = self._published
        if current.stamp is None:
            self._index.sync(stamp)
            self._lexical.sync(stamp)
            return Published(stamp, self._index.state, self._lexical.state, rows)
        change = read_change(self._sessions, self._index.model, current.rows, rows)
        vectors = self._index.changed(stamp, change)
        how = "applied"
        if vectors is None:  # the delta is full: merge it into a new main index
            self._index.sync(stamp)
            vectors, how = self._index.state, "rebuilt"
        lexical = self._lexical.changed(stamp, load_pages(self._sessions), change)
        log.info(
            "index %s %s: -%d +%d chunks in %.0f ms (%.0f ms CPU)",
            stamp, how, len(change.removed), len(change.added),
            (time.perf_counter() - started) * 1000, (time.process_time() - cpu) * 1000,
        )  # fmt: skip
        return Published(stamp, vectors, lexical, change.after)

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        """Texts → unit vectors from the index's embedder, one row each (the follow-up
        rewrite compares words of questions with them)."""
        return self._embedder.embed_texts(texts)

    def section_before(self, chunk_id: int) -> str:
        """The text of the chunk's section before it: its earlier chunks, joined without what
        each repeats of the one before. "" for a section's first chunk, and when the section
        starts more than SECTION_CONTEXT_CHUNKS chunks earlier (its start is not quotable)."""
        with self._sessions() as session:
            this = session.execute(
                select(
                    Chunk.document_id, Chunk.ordinal, Chunk.anchor, Chunk.heading_path, Chunk.text
                ).where(Chunk.id == chunk_id)
            ).one_or_none()
            if this is None or this.ordinal == 0:
                return ""
            earlier = session.execute(
                select(Chunk.ordinal, Chunk.anchor, Chunk.heading_path, Chunk.text)
                .where(
                    Chunk.document_id == this.document_id,
                    Chunk.ordinal < this.ordinal,
                    Chunk.ordinal >= this.ordinal - SECTION_CONTEXT_CHUNKS - 1,
                )
                .order_by(Chunk.ordinal.desc())
            ).all()
        texts: list[str] = []
        for row in earlier:  # nearest first
            if (row.anchor, row.heading_path) != (this.anchor, this.heading_path):
                break
            if len(texts) == SECTION_CONTEXT_CHUNKS:
                return ""
            texts.insert(0, row.text)
        return _without_repeats(texts, this.text) if texts else ""

    def indexed_chunks(self) -> int:
        """How many chunks can be searched (after catching up with the database)."""
        return self._sync().vectors.chunks

    def search(
        self,
        query: str,
        k: int,
        *,
        method: Method = "hybrid",
        scope: Scope | None = None,
        per_page: bool = True,
    ) -> list[ScoredChunk]:
        """The ``k`` best chunks (from distinct pages unless ``per_page`` is False) of those
        ``scope`` allows (None: every chunk)."""
        return self._search(query, k, method, scope, per_page, with_evidence=False)[0]

    def search_with_evidence(
        self,
        query: str,
        k: int,
        *,
        method: Method = "hybrid",
        scope: Scope | None = None,
        per_page: bool = True,
    ) -> tuple[list[ScoredChunk], Evidence]:
        """``search``'s results, plus what each method saw of the candidates that passed the
        filters (knowledge/evidence.py), for a confidence score. Both methods run whichever
        orders the results; with the default hybrid method that costs nothing extra."""
        results, evidence = self._search(query, k, method, scope, per_page, with_evidence=True)
        assert evidence is not None
        return results, evidence

    def _search(
        self,
        query: str,
        k: int,
        method: Method,
        scope: Scope | None,
        per_page: bool,
        *,
        with_evidence: bool,
    ) -> tuple[list[ScoredChunk], Evidence | None]:
        # ``scope`` restricts what each method ranks (knowledge/retrieval/prefilter.py), so
        # every candidate is eligible and none needs to be fetched for a filter to drop.
        wanted = max(CANDIDATES, k * OVERFETCH)
        vector = self._embedder.embed_query(query)
        published = self._sync()
        only = None
        if scope is not None:
            only = self._eligible.filter(
                published.stamp, scope, published.lexical, published.vectors
            )
        dense: list[tuple[int, float]] = []
        lexical: list[tuple[int, float]] = []
        if method in ("hybrid", "dense") or with_evidence:
            dense = self._index.search(vector, wanted, published.vectors, only)
        if method in ("hybrid", "bm25") or with_evidence:
            lexical = self._lexical.search(query, wanted, published.lexical, only)
        rankings = [r for m, r in (("dense", dense), ("bm25", lexical)) if method in ("hybrid", m)]
        # With both methods, a chunk's score is their fused passage score and, one page per
        # result, its page's fused score orders it (the passage score breaks ties).
        page: dict[int, float] = {}
        scores = dict(rankings[0]) if len(rankings) == 1 else _convex(rankings)
        # Evidence needs the other method's candidates too (loaded, never returned).
        others = {i: 0.0 for i, _ in dense + lexical if i not in scores} if with_evidence else {}
        candidates = {**others, **scores}
        passages = published.lexical.passages
        held = [i for i in candidates if i in passages.chunks]
        similarities = self._index.similarities(held, vector, published.vectors)
        page_of = {i: _page_key(passages, i) for i in held if i in similarities and i in scores}
        if len(rankings) > 1 and per_page:
            page = _page_scores_of(page_of, rankings)
        order = sorted(page_of, key=lambda i: (-page.get(i, 0.0), -scores[i], i))

        def chunk(chunk_id: int) -> ScoredChunk:
            return passages.scored(chunk_id, candidates[chunk_id], similarities[chunk_id])

        # Results in rank order, each passage built only when its turn comes (a page already
        # cited is skipped before that).
        results: list[ScoredChunk] = []
        cited: set[tuple[str, str]] = set()
        for chunk_id in order:
            if len(results) == k:
                break
            if per_page and page_of[chunk_id] in cited:
                continue
            cited.add(page_of[chunk_id])
            result = chunk(chunk_id)
            results.append(replace(result, score=page[chunk_id]) if page else result)
        if not with_evidence:
            return results, None
        loaded = [chunk(i) for i in held if i in similarities]
        return results, self._evidence(query, loaded, dict(lexical), results, published)

    def _evidence(
        self,
        query: str,
        candidates: list[ScoredChunk],
        bm25: dict[int, float],
        results: list[ScoredChunk],
        published: Published,
    ) -> Evidence:
        """Each candidate page's best cosine and BM25 score, ranked; the term statistics; the
        question terms in each result (a few passages tokenized: well under a millisecond)."""
        pages: dict[tuple[str, str], tuple[str, float, float]] = {}
        for c in candidates:
            key = (c.source_name, c.document_url)
            _, cosine, lexical = pages.get(key, ("", -1.0, 0.0))
            pages[key] = (
                c.document_title,
                max(cosine, c.similarity),
                max(lexical, bm25.get(c.chunk_id, 0.0)),
            )
        terms, indexed = self._lexical.term_stats(query, published.lexical)
        wanted = {t.term for t in terms}
        held = tuple(
            ResultTerms(
                c.chunk_id,
                frozenset(
                    self._lexical.terms(
                        lexical_text(c.document_title, list(c.heading_path), c.text)
                    )
                )
                & wanted,
                frozenset(self._lexical.terms(" ".join([c.document_title, *c.heading_path])))
                & wanted,
            )
            for c in results
        )
        return Evidence(page_evidence(pages), terms, indexed, held)


def _without_repeats(texts: list[str], following: str) -> str:
    """Consecutive chunk texts joined, each without the tail the next one starts with."""
    nexts = [*texts[1:], following]
    kept = [_drop_repeated_tail(text, after) for text, after in zip(texts, nexts, strict=True)]
    return "\n\n".join(t for t in kept if t)


def _drop_repeated_tail(text: str, following: str) -> str:
    """``text`` without its end when ``following`` starts with that end as a whole piece."""
    for size in range(min(len(text), len(following)), MIN_OVERLAP_CHARS - 1, -1):
        is_whole = size == len(following) or following[size] in " \n"
        if is_whole and text.endswith(following[:size]):
            return text[:-size].rstrip()
    return text


def _convex(rankings: list[list[tuple[Key, float]]]) -> dict[Key, float]:
    """Dense and BM25 scores (of chunks or pages), each min-max normalised over its
    candidates, combined with DENSE_WEIGHT; a key one method did not return gets 0 from it."""
    dense, lexical = rankings
    fused: dict[Key, float] = {}
    for ranking, weight in ((dense, DENSE_WEIGHT), (lexical, 1 - DENSE_WEIGHT)):
        for item, normalised in _min_max(ranking).items():
            fused[item] = fused.get(item, 0.0) + weight * normalised
    return fused


def _min_max(ranking: list[tuple[Key, float]]) -> dict[Key, float]:
    if not ranking:
        return {}
    scores = [score for _, score in ranking]
    low, spread = min(scores), max(scores) - min(scores)
    return {item: (score - low) / spread if spread else 1.0 for item, score in ranking}


def _page_key(passages: Passages, chunk_id: int) -> tuple[str, str]:
    page = passages.page_of(chunk_id)
    return (page.source_name, page.url)


def _page_scores(
    chunks: list[ScoredChunk], rankings: list[list[tuple[int, float]]]
) -> dict[int, float]:
    """Chunk id → its page's fused score: each method's best chunk of the page, normalised
    and combined like chunks."""
    return _page_scores_of({c.chunk_id: (c.source_name, c.document_url) for c in chunks}, rankings)


def _page_scores_of(
    page_of: dict[int, tuple[str, str]], rankings: list[list[tuple[int, float]]]
) -> dict[int, float]:
    """``_page_scores`` of the chunks whose pages ``page_of`` gives."""
    fused = _convex([list(_best_of_each_page(r, page_of).items()) for r in rankings])
    return {chunk_id: fused[page] for chunk_id, page in page_of.items()}


def _best_of_each_page(
    ranking: list[tuple[int, float]], page_of: dict[int, tuple[str, str]]
) -> dict[tuple[str, str], float]:
    best: dict[tuple[str, str], float] = {}
    for chunk_id, score in ranking:  # best first
        page = page_of.get(chunk_id)
        if page is not None:
            best.setdefault(page, score)
    return best
