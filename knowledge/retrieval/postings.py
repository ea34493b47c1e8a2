"""BM25's per-chunk term counts, kept so that a changed page costs a re-score, not a rebuild.

bm25s builds its score matrix from scratch with a Python loop per passage (100k chunks: 3.8 s
to tokenize, 2.5 s to index, issue #23). BM25 scores depend on the whole corpus (IDF, mean
length), so a change does move every score; but the term counts of unchanged chunks do not.
``Postings`` holds them in flat arrays, in chunk id order; ``without``/``adding`` make a new
``Postings`` for a change, and ``bm25_index`` turns one into the bm25s index that a full build
would make (same matrix, bit for bit: tests/test_incremental.py compares them), with numpy
instead of a loop.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import bm25s
import numpy as np

# bm25s's defaults (Lucene BM25), which teambot has always used.
K1 = 1.5
B = 0.75


class Vocabulary:
    """Term → id, only ever growing (an old ``Postings`` never sees the ids added later)."""

    def __init__(self) -> None:
        self.ids: dict[str, int] = {}

    def __len__(self) -> int:
        return len(self.ids)

    def encode(self, tokens: Sequence[str]) -> np.ndarray:
        ids = self.ids
        return np.fromiter((ids.setdefault(t, len(ids)) for t in tokens), np.int32, len(tokens))


@dataclass(frozen=True)
class Postings:
    """For each chunk, in ascending id order: its length in tokens, its distinct terms and
    how often each occurs. Chunk ``i``'s terms are ``terms[starts[i]:starts[i + 1]]``."""

    ids: np.ndarray  # int64
    lengths: np.ndarray  # int64
    starts: np.ndarray  # int64, len(ids) + 1
    terms: np.ndarray  # int32
    counts: np.ndarray  # float32

    @staticmethod
    def of(ids: Sequence[int], tokens: Sequence[np.ndarray]) -> Postings:
        """Postings of these chunks (``tokens[i]`` are chunk ``ids[i]``'s term ids)."""
        order = np.argsort(np.asarray(ids, dtype=np.int64), kind="stable")
        terms, counts, sizes = [], [], []
        for i in order:
            unique, count = np.unique(tokens[i], return_counts=True)
            terms.append(unique.astype(np.int32))
            counts.append(count.astype(np.float32))
            sizes.append(len(unique))
        return Postings(
            ids=np.asarray(ids, dtype=np.int64)[order],
            lengths=np.fromiter((len(tokens[i]) for i in order), np.int64, len(order)),
            starts=np.concatenate([[0], np.cumsum(sizes, dtype=np.int64)]),
            terms=np.concatenate(terms) if terms else np.zeros(0, np.int32),
            counts=np.concatenate(counts) if counts else np.zeros(0, np.float32),
        )

    def __len__(self) -> int:
        return len(self.ids)

    def without(self, removed: np.ndarray) -> Postings:
        """These postings minus the chunks whose ids are in ``removed``."""
        keep = ~np.isin(self.ids, removed)
        if keep.all():
            return self
        sizes = np.diff(self.starts)
        entry_keep = np.repeat(keep, sizes)
        return Postings(
            ids=self.ids[keep],
            lengths=self.lengths[keep],
            starts=np.concatenate([[0], np.cumsum(sizes[keep])]),
            terms=self.terms[entry_keep],
            counts=self.counts[entry_keep],
        )

    def adding(self, other: Postings) -> Postings:
        """Both sets of chunks (their ids must differ), in ascending id order."""
        if not len(other):
            return self
        ids = np.concatenate([self.ids, other.ids])
        sizes = np.concatenate([np.diff(self.starts), np.diff(other.starts)])
        terms = np.concatenate([self.terms, other.terms])
        counts = np.concatenate([self.counts, other.counts])
        lengths = np.concatenate([self.lengths, other.lengths])
        order = np.argsort(ids, kind="stable")
        if not (order[:-1] < order[1:]).all():  # an id below the last one: reorder the blocks
            starts = np.concatenate([[0], np.cumsum(sizes)])
            entries = np.concatenate([np.arange(starts[i], starts[i + 1]) for i in order])
            terms, counts = terms[entries], counts[entries]
            ids, sizes, lengths = ids[order], sizes[order], lengths[order]
        return Postings(ids, lengths, np.concatenate([[0], np.cumsum(sizes)]), terms, counts)


def bm25_index(postings: Postings, vocabulary: Vocabulary) -> bm25s.BM25 | None:
    """The bm25s index that ``bm25s.BM25().index`` makes of these chunks' tokens.

    Vectorised from bm25s 0.3's ``build_index_from_ids`` (Lucene IDF and term-frequency
    component, float32 scores, a term-major CSC matrix with documents ascending in each
    column). A term no chunk holds any more keeps an empty column, which scores like an
    unknown term does: nothing.
    """
    n = len(postings)
    if n == 0:
        return None
    n_vocab = len(vocabulary)
    sizes = np.diff(postings.starts)
    # Each float operation as bm25s does it, in the same order and precision.
    average = np.array(postings.lengths).mean()
    frequencies = np.bincount(postings.terms, minlength=n_vocab)
    values, inverse = np.unique(frequencies, return_inverse=True)
    table = [math.log(1 + (n - df + 0.5) / (df + 0.5)) if df else 0.0 for df in values.tolist()]
    idf = np.asarray(table, dtype=np.float32)[inverse]
    lengths = np.repeat(postings.lengths, sizes).astype(np.float64)
    tf = postings.counts
    tfc = tf / (K1 * ((1 - B) + B * lengths / average) + tf)
    scores = (idf[postings.terms] * tfc).astype(np.float32)
    documents = np.repeat(np.arange(n, dtype=np.int32), sizes)
    order = np.argsort(postings.terms, kind="stable")  # by term, documents ascending within
    indptr = np.zeros(n_vocab + 1, dtype=np.int64)
    np.cumsum(frequencies, out=indptr[1:])
    bm25 = bm25s.BM25()
    bm25.scores = {
        "data": scores[order],
        "indices": documents[order],
        "indptr": indptr,
        "num_docs": n,
    }
    vocab = dict(vocabulary.ids)
    vocab.setdefault("", n_vocab)  # as bm25s's index() adds it
    bm25.vocab_dict = vocab
    bm25.unique_token_ids_set = set(vocab.values())
    bm25.nonoccurrence_array = None
    return bm25
