"""What a search may rank, applied before ranking, not after fusion (issue #23).

Filtering after fusion ranked hundreds of candidates of every page, fused them and then threw
many away (and had to over-fetch to have k left). Instead each method ranks only the eligible
chunks: FAISS searches with an ``IDSelector`` over their labels (chunks and their windows),
BM25 zeroes the other passages' scores before its top-k. Fusion then sees what a search of
those chunks alone would rank, at the candidate count of a plain search.

A ``Scope`` says what is eligible: a channel's sources, less the sources and pages it must not
see (private history, private team answers, the FAQ pages a hard-mode evaluation leaves out).
What a scope selects is built once per published revision (``Eligible``) and reused by every
search of that scope until the revision moves. A small scope of a big index (a channel that
searches one doc site of many) also gets an exact index of its own vectors: an HNSW walk that
may only stop at 0.6% of the graph's nodes visits most of the graph (1M chunks: p99 81 ms
against 14 ms unfiltered, bench/README.md), while exact search over 12k vectors takes ~0.5 ms.

A few pages that differ with every search (an evaluated question's own page, in every copy
of the docs) are left out per search instead (``Scope.pages_once``): FAISS also skips their
labels (a selector built per search), and their passages' BM25 scores are zeroed.
"""

from __future__ import annotations

import threading
from collections.abc import Collection
from dataclasses import dataclass, field

import faiss
import numpy as np

from knowledge.retrieval.index import HNSW_MIN_CHUNKS, WINDOW_BIT, VectorState
from knowledge.retrieval.lexical import LexicalState

# Distinct scopes held per revision: a handful of channel settings in practice; past this,
# the cache starts again rather than grow with whatever scopes callers pass.
MAX_CACHED_SCOPES = 64
# A scope of an HNSW index searches an exact index of its own when it holds at most this many
# vectors: the size below which a whole index is searched exactly (HNSW_MIN_CHUNKS chunks and
# their windows, ~3 ms flat). Such copies share this budget; past it, the cache starts again.
EXACT_MAX_VECTORS = 2 * HNSW_MIN_CHUNKS
EXACT_CACHE_BYTES = 256 * 2**20

Page = tuple[str, str]  # (source name, document url)


@dataclass(frozen=True)
class Scope:
    """What a search ranks: the chunks of ``sources`` (None: every source), less those of
    ``skip_sources`` and of the pages in ``skip_pages`` and ``pages_once``."""

    sources: frozenset[str] | None = None
    skip_sources: frozenset[str] = frozenset()
    skip_pages: frozenset[Page] = frozenset()
    # Left out of this search only, not kept per revision: for a few pages that change with
    # each search (a question's own page in hard mode).
    pages_once: frozenset[Page] = field(default=frozenset(), compare=False)

    @staticmethod
    def of(
        sources: Collection[str] | None = None,
        *,
        skip_sources: Collection[str] = (),
        skip_pages: Collection[Page] = (),
        pages_once: Collection[Page] = (),
    ) -> Scope | None:
        """A scope from plain collections (a single source name is a name, not letters);
        None when it leaves nothing out."""
        scope = Scope(
            None if sources is None else _names(sources), _names(skip_sources),
            frozenset(skip_pages), frozenset(pages_once),
        )  # fmt: skip
        return None if scope == Scope() and not scope.pages_once else scope

    @property
    def kept(self) -> Scope:
        """The part of this scope that is kept per revision."""
        return Scope(self.sources, self.skip_sources, self.skip_pages)


def _names(names: Collection[str]) -> frozenset[str]:
    return frozenset((names,) if isinstance(names, str) else names)


@dataclass(frozen=True)
class PageTable:
    """Where each page's chunks sit among the BM25 passages of one revision."""

    documents: np.ndarray  # int64: each passage's document id (the postings' order)
    by_document: np.ndarray  # passage positions sorted by document id
    sorted_documents: np.ndarray  # documents[by_document]
    document_of: dict[Page, int]

    @staticmethod
    def of(lexical: LexicalState) -> PageTable:
        chunks = lexical.passages.chunks
        ids = lexical.postings.ids
        documents = np.fromiter((chunks[i][0] for i in ids.tolist()), np.int64, len(ids))
        by_document = np.argsort(documents, kind="stable")
        pages = lexical.passages.pages
        return PageTable(documents, by_document, documents[by_document],
                         {(p.source_name, p.url): d for d, p in pages.items()})  # fmt: skip

    def positions(self, pages: Collection[Page]) -> np.ndarray:
        """The passage positions of these pages' chunks (pages not indexed hold none)."""
        found = [self.document_of[p] for p in pages if p in self.document_of]
        docs = self.sorted_documents
        spans = [
            self.by_document[np.searchsorted(docs, d) : np.searchsorted(docs, d, "right")]
            for d in found
        ]
        return np.concatenate(spans) if spans else np.zeros(0, np.int64)


@dataclass(frozen=True)
class Eligible:
    """The chunks a scope selects at one revision, in the forms each ranking filters by."""

    passages: np.ndarray  # bool, one per BM25 passage (the postings' order)
    # FAISS labels (chunk ids and their windows'), sorted: the eligible ones, or, when fewer,
    # the others (``excludes``).
    labels: np.ndarray
    excludes: bool
    selector: faiss.IDSelector
    parts: tuple[faiss.IDSelector, ...]  # what ``selector`` points to (kept alive with it)
    exact: faiss.IndexIDMap2 | None = None  # the eligible vectors of the main index, if few

    @property
    def bytes(self) -> int:
        return 0 if self.exact is None else self.exact.ntotal * self.exact.d * 4

    def __len__(self) -> int:
        return int(self.passages.sum())

    def allows(self, labels: np.ndarray) -> np.ndarray:
        """Which of these FAISS labels are eligible (bool, one each)."""
        held = np.isin(labels, self.labels)
        return ~held if self.excludes else held

    def most(self, ntotal: int) -> int:
        """At most how many of an index's ``ntotal`` labels are eligible."""
        return ntotal if self.excludes else min(ntotal, len(self.labels))


@dataclass(frozen=True)
class Filter:
    """What one search leaves out: its scope's ``Eligible`` (None: every chunk is), and the
    labels and passage positions of its ``pages_once``."""

    eligible: Eligible | None
    dropped: np.ndarray  # int64, sorted: the FAISS labels of ``pages_once``
    zeroed: np.ndarray  # passage positions whose BM25 scores are set to zero
    # FAISS filters, for the main index and for the scope's exact index: ``eligible``'s
    # selector and one leaving ``dropped`` out, combined; with what they point to.
    main_selector: faiss.IDSelector | None
    exact_selector: faiss.IDSelector | None
    parts: tuple[faiss.IDSelector, ...]

    @staticmethod
    def of(eligible: Eligible | None, dropped: np.ndarray, zeroed: np.ndarray) -> Filter:
        base = None if eligible is None else eligible.selector
        if not len(dropped):
            return Filter(eligible, dropped, zeroed, base, None, ())
        batch = faiss.IDSelectorBatch(len(dropped), faiss.swig_ptr(dropped))
        kept = faiss.IDSelectorNot(batch)
        both = kept if base is None else faiss.IDSelectorAnd(base, kept)
        return Filter(eligible, dropped, zeroed, both, kept, (batch, kept))

    def allows(self, labels: np.ndarray) -> np.ndarray:
        """Which of these FAISS labels may be returned (bool, one each)."""
        allowed = np.ones(len(labels), bool) if self.eligible is None else (
            self.eligible.allows(labels))  # fmt: skip
        return allowed & ~np.isin(labels, self.dropped) if len(self.dropped) else allowed

    def most(self, ntotal: int) -> int:
        return ntotal if self.eligible is None else self.eligible.most(ntotal)

    @property
    def exact(self) -> faiss.IndexIDMap2 | None:
        """An exact index of the eligible vectors of the main index, searched instead of it."""
        return None if self.eligible is None else self.eligible.exact

    def zero(self, scores: np.ndarray) -> None:
        """Leave only eligible passages' BM25 scores (in place)."""
        if self.eligible is not None:
            scores *= self.eligible.passages
        scores[self.zeroed] = 0.0


def eligible(
    scope: Scope, lexical: LexicalState, table: PageTable, vectors: VectorState
) -> Eligible:
    """What ``scope`` selects at the revision of ``lexical`` and ``vectors`` (the labels serve
    the vector index's main part and its delta)."""
    pages = lexical.passages.pages
    documents = [
        d for d, p in pages.items()
        if (scope.sources is None or p.source_name in scope.sources)
        and p.source_name not in scope.skip_sources
    ]  # fmt: skip
    passages = np.isin(table.documents, np.asarray(documents, np.int64))
    passages[table.positions(scope.skip_pages)] = False
    excludes = int(passages.sum()) > len(passages) // 2
    labels = _labels(lexical.postings.ids[~passages if excludes else passages])
    batch = faiss.IDSelectorBatch(len(labels), faiss.swig_ptr(labels))
    selector = faiss.IDSelectorNot(batch) if excludes else batch
    exact = None
    # At least half the labels are held (every chunk is; a page's last has no window).
    if not excludes and vectors.kind == "hnsw" and len(labels) <= 2 * EXACT_MAX_VECTORS:
        exact = _exact_index(vectors.main, labels)
    return Eligible(passages, labels, excludes, selector, (batch,), exact)


def _labels(chunks: np.ndarray) -> np.ndarray:
    """The FAISS labels these chunks may be found under, sorted: their own and their windows'."""
    return np.sort(np.concatenate([chunks, chunks | WINDOW_BIT]))


def _exact_index(main: faiss.IndexIDMap2, labels: np.ndarray) -> faiss.IndexIDMap2 | None:
    """A flat index of the vectors ``main`` holds under ``labels`` (None if too many)."""
    held = labels[np.isin(labels, faiss.vector_to_array(main.id_map))]
    if len(held) > EXACT_MAX_VECTORS:
        return None
    exact = faiss.IndexIDMap2(faiss.IndexFlatIP(main.d))
    if len(held):
        exact.add_with_ids(main.reconstruct_batch(held), held)
    return exact


class EligibleCache:
    """``Filter`` per scope, with ``Eligible`` kept per scope for the revision last asked about
    (thread-safe: a race builds the same value twice)."""

    def __init__(self) -> None:
        self._stamp: str | None = None
        self._table: PageTable | None = None
        self._scopes: dict[Scope, Eligible] = {}
        self._lock = threading.Lock()

    def filter(
        self, stamp: str | None, scope: Scope, lexical: LexicalState, vectors: VectorState
    ) -> Filter:
        table = self._page_table(stamp, lexical)
        kept = scope.kept
        found = None if kept == Scope() else self._eligible(stamp, kept, lexical, table, vectors)
        zeroed = table.positions(scope.pages_once)
        return Filter.of(found, _labels(lexical.postings.ids[zeroed]), zeroed)

    def _page_table(self, stamp: str | None, lexical: LexicalState) -> PageTable:
        with self._lock:
            if stamp != self._stamp:
                self._stamp, self._table, self._scopes = stamp, None, {}
            table = self._table
        if table is None:
            table = PageTable.of(lexical)
            with self._lock:
                if stamp == self._stamp:
                    self._table = table
        return table

    def _eligible(
        self,
        stamp: str | None,
        scope: Scope,
        lexical: LexicalState,
        table: PageTable,
        vectors: VectorState,
    ) -> Eligible:
        with self._lock:  # another thread may have moved the cache to another revision
            found = self._scopes.get(scope) if stamp == self._stamp else None
        if found is not None:
            return found
        built = eligible(scope, lexical, table, vectors)
        with self._lock:
            if stamp == self._stamp:
                held = sum(e.bytes for e in self._scopes.values()) + built.bytes
                if len(self._scopes) >= MAX_CACHED_SCOPES or held > EXACT_CACHE_BYTES:
                    self._scopes = {}
                self._scopes[scope] = built
        return built
