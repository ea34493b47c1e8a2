"""BM25 keyword search over the stored chunks: finds exact names, settings and error codes
that a small embedding model blurs. Like the FAISS index, it is a cache of SQL; the same read
fills the in-memory ``Passages`` (knowledge/retrieval/passages.py) that searches rank and cite
from. A full build reads every chunk; a change (knowledge/retrieval/changes.py) tokenizes only
the new chunks and re-scores the matrix from the kept term counts
(knowledge/retrieval/postings.py): the same index a full build makes.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import bm25s
import numpy as np
import Stemmer
from sqlalchemy.orm import Session, sessionmaker

from knowledge.retrieval.changes import Change
from knowledge.retrieval.evidence import TermStat, name_words, without_links
from knowledge.retrieval.passages import EMPTY, PageInfo, Passages, load_passages
from knowledge.retrieval.postings import Postings, Vocabulary, bm25_index
from knowledge.retrieval.revision import RevisionWatch

if TYPE_CHECKING:
    from knowledge.retrieval.prefilter import Filter

log = logging.getLogger(__name__)

# bm25s's fuller English list: its plain "en" keeps how, do, my, which match everywhere.
STOPWORDS = "en_plus"


def lexical_text(title: str, heading_path: list[str], text: str) -> str:
    """What BM25 indexes for a chunk: its words plus the page title and headings above it."""
    return " ".join([title, *heading_path, text])


@dataclass(frozen=True)
class LexicalState:
    """One build: searches read all of it or none (it is replaced whole, never changed)."""

    stamp: str | None
    bm25: bm25s.BM25 | None
    postings: Postings
    passages: Passages


EMPTY_STATE = LexicalState(None, None, Postings.of([], []), EMPTY)


class LexicalIndex:
    """BM25 (bm25s, English stopwords, Snowball stemming) over chunks of one embedding model."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        model: str,
        revisions: RevisionWatch | None = None,
    ) -> None:
        self._sessions = sessions
        self._model = model
        self._revisions = revisions or RevisionWatch(sessions)
        self._stemmer = Stemmer.Stemmer("english")
        self._vocabulary = Vocabulary()  # grows under self._lock only
        self.state = EMPTY_STATE
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self.state.postings)

    @property
    def stamp(self) -> str | None:
        return self.state.stamp

    @property
    def passages(self) -> Passages:
        return self.state.passages

    def sync(self, stamp: str | None = None) -> bool:
        """Rebuild if the index stamp (``stamp``, else the watch's) moved; True if it did."""
        stamp = stamp or self._revisions.stamp()
        if stamp == self.stamp:
            return False
        with self._lock:
            if stamp != self.stamp:
                self.state = self.build(stamp)
        return True

    def build(self, stamp: str) -> LexicalState:
        """A full build from the database (not yet searched: assign it to ``state``)."""
        started = time.perf_counter()
        passages = load_passages(self._sessions, self._model)
        ids = list(passages.chunks)
        postings = Postings.of(ids, self._encode(passages, ids))
        state = LexicalState(stamp, bm25_index(postings, self._vocabulary), postings, passages)
        log.debug("BM25 index %s built: %d chunks in %.0f ms", stamp, len(ids),
                  (time.perf_counter() - started) * 1000)  # fmt: skip
        return state

    def changed(self, stamp: str, pages: dict[int, PageInfo], change: Change) -> LexicalState:
        """``state`` with ``change`` applied: only the added chunks are tokenized."""
        with self._lock:
            state = self.state
            passages = state.passages.changed(pages, change)
            added = [c.id for c in change.added if c.id in passages.chunks]
            replaced = np.union1d(change.removed, np.asarray(added, dtype=np.int64))
            postings = state.postings.without(replaced).adding(
                Postings.of(added, self._encode(passages, added))
            )
            return LexicalState(stamp, bm25_index(postings, self._vocabulary), postings, passages)

    def _encode(self, passages: Passages, ids: list[int]) -> list[np.ndarray]:
        texts = []
        for chunk_id in ids:
            document_id, heading_path, _, text = passages.chunks[chunk_id]
            texts.append(lexical_text(passages.pages[document_id].title, list(heading_path), text))
        if not texts:
            return []
        tokens = bm25s.tokenize(texts, stopwords=STOPWORDS, stemmer=self._stemmer,
                                return_ids=False, show_progress=False)  # fmt: skip
        return [self._vocabulary.encode(t) for t in tokens]

    def search(
        self, query: str, k: int, state: LexicalState | None = None, only: Filter | None = None
    ) -> list[tuple[int, float]]:
        """The ``k`` best chunk ids by BM25 with their scores, best first; no zero scores.
        With ``only``, the other passages score zero before the top ``k`` are taken."""
        state = state or self.state
        bm25, ids = state.bm25, state.postings.ids
        if bm25 is None or k <= 0:
            return []
        tokens = self.terms(query)
        if not tokens:
            return []
        scores = bm25.get_scores(tokens)
        if only is not None:
            only.zero(scores)
        found = _top(scores, k)
        return [(int(ids[i]), float(scores[i])) for i in found]

    def terms(self, text: str) -> list[str]:
        """``text`` as BM25 sees it: lowercased words, English stopwords dropped, stemmed."""
        tokens = bm25s.tokenize(
            [text],
            stopwords=STOPWORDS,
            stemmer=self._stemmer,
            return_ids=False,
            show_progress=False,
        )
        return list(tokens[0])

    def term_stats(
        self, query: str, state: LexicalState | None = None
    ) -> tuple[tuple[TermStat, ...], int]:
        """Each distinct term of ``query`` (links left out) with the number of indexed passages
        that hold it, and the number of indexed passages (as of the last ``sync``)."""
        state = state or self.state
        query = without_links(query)
        distinct = dict.fromkeys(self.terms(query))
        names = set(self.terms(" ".join(name_words(query))))
        stats = tuple(TermStat(t, _passages_holding(state.bm25, t), t in names) for t in distinct)
        return stats, len(state.postings)


def _top(scores: np.ndarray, k: int) -> np.ndarray:
    """Positions of the ``k`` best positive scores, best first; equal scores in passage
    order (chunk id order), also where they straddle the k-th place.

    bm25s's top-k runs ``argpartition`` over every passage, mostly zeros, which numpy does
    slowly (100k passages: 8-15 ms a query); the positive ones are usually a fraction, so they
    are partitioned alone. Ties at the cut were once handed to bm25s's own top-k over every
    score; with near-duplicate passages (versions of the same docs) nearly every question has
    them, and at 1M passages that path took ~47 ms a question (bench/README.md, issue #23)."""
    positive = np.flatnonzero(scores > 0)
    if len(positive) > k:
        values = scores[positive]
        kth = -np.partition(-values, k - 1)[k - 1]  # the k-th best score
        above = positive[values > kth]
        tied = positive[values == kth][: k - len(above)]  # the first ones, in passage order
        positive = np.concatenate([above, tied])
    return positive[np.lexsort((positive, -scores[positive]))]


def _passages_holding(bm25: bm25s.BM25 | None, term: str) -> int:
    """How many passages hold ``term``: its column's length in bm25s's term-major matrix."""
    if bm25 is None or term not in bm25.vocab_dict:
        return 0
    column, indptr = bm25.vocab_dict[term], bm25.scores["indptr"]
    return int(indptr[column + 1] - indptr[column]) if column < len(indptr) - 1 else 0
