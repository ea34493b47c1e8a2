"""BM25 keyword search over the stored chunks: finds exact names, settings and error codes
that a small embedding model blurs. Like the FAISS index, it is a cache rebuilt from SQL
whenever the database's index stamp moves; the same read fills the in-memory ``Passages``
(knowledge/retrieval/passages.py) that searches rank and cite from.
"""

from __future__ import annotations

import logging
import threading
import time

import bm25s
import numpy as np
import Stemmer
from sqlalchemy.orm import Session, sessionmaker

from knowledge.retrieval.evidence import TermStat, name_words
from knowledge.retrieval.passages import EMPTY, Passages, load_passages
from knowledge.retrieval.revision import RevisionWatch

log = logging.getLogger(__name__)
# bm25s's fuller English list: its plain "en" keeps how, do, my, which match everywhere.
STOPWORDS = "en_plus"


def lexical_text(title: str, heading_path: list[str], text: str) -> str:
    """What BM25 indexes for a chunk: its words plus the page title and headings above it."""
    return " ".join([title, *heading_path, text])


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
        self._bm25: bm25s.BM25 | None = None
        self._ids = np.zeros(0, dtype=np.int64)
        self._frequencies: dict[str, int] = {}
        self.passages: Passages = EMPTY
        self._lock = threading.Lock()
        self.stamp: str | None = None

    def __len__(self) -> int:
        return len(self._ids)

    def sync(self, stamp: str | None = None) -> bool:
        """Rebuild if the index stamp (``stamp``, else the watch's) moved; True if it did."""
        stamp = stamp or self._revisions.stamp()
        if stamp == self.stamp:
            return False
        with self._lock:
            if stamp != self.stamp:
                self._rebuild(stamp)
        return True

    def _rebuild(self, stamp: str) -> None:
        started = time.perf_counter()
        passages = load_passages(self._sessions, self._model)
        ids = list(passages.chunks)
        texts = [
            lexical_text(passages.pages[page].title, list(heading_path), text)
            for page, heading_path, _, text in passages.chunks.values()
        ]
        bm25 = None
        frequencies: dict[str, int] = {}
        if texts:
            bm25 = bm25s.BM25()
            bm25.index(self._tokenize(texts), show_progress=False)
            frequencies = _passage_frequencies(bm25)
        # One assignment, so a concurrent search never pairs one build's ids with another's.
        self._bm25, self._ids, self._frequencies, self.passages = (
            bm25,
            np.asarray(ids, np.int64),
            frequencies,
            passages,
        )
        self.stamp = stamp
        log.debug(
            "BM25 index %s built: %d chunks in %.0f ms",
            stamp,
            len(ids),
            (time.perf_counter() - started) * 1000,
        )

    def _tokenize(self, texts: list[str]) -> bm25s.tokenization.Tokenized:
        return bm25s.tokenize(
            texts, stopwords=STOPWORDS, stemmer=self._stemmer, show_progress=False
        )

    def search(self, query: str, k: int) -> list[tuple[int, float]]:
        """The ``k`` best chunk ids by BM25 with their scores, best first; no zero scores."""
        bm25, ids = self._bm25, self._ids
        if bm25 is None or k <= 0:
            return []
        tokens = bm25s.tokenize(
            [query],
            stopwords=STOPWORDS,
            stemmer=self._stemmer,
            return_ids=False,
            show_progress=False,
        )
        if not tokens[0]:
            return []
        found, scores = bm25.retrieve(tokens, k=min(k, len(ids)), show_progress=False)
        return [(int(ids[i]), float(s)) for i, s in zip(found[0], scores[0], strict=True) if s > 0]

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

    def term_stats(self, query: str) -> tuple[tuple[TermStat, ...], int]:
        """Each distinct term of ``query`` with the number of indexed passages that hold it,
        and the number of indexed passages (as of the last ``sync``)."""
        frequencies, indexed = self._frequencies, len(self._ids)
        distinct = dict.fromkeys(self.terms(query))
        names = set(self.terms(" ".join(name_words(query))))
        stats = tuple(TermStat(t, frequencies.get(t, 0), t in names) for t in distinct)
        return stats, indexed


def _passage_frequencies(bm25: bm25s.BM25) -> dict[str, int]:
    """Term → passages holding it, read from bm25s's term-major sparse score matrix (each
    term's column lists the passages it occurs in)."""
    indptr = bm25.scores["indptr"]
    columns = len(indptr) - 1
    return {
        term: int(indptr[column + 1] - indptr[column])
        for term, column in bm25.vocab_dict.items()
        if column < columns
    }
