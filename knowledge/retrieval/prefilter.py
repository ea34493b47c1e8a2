"""A channel's ``sources=`` restriction applied before ranking, not after fusion (issue #23).

Filtering after fusion ranked hundreds of candidates of every source, fused them and then
threw most away (and had to over-fetch to have k left). Instead each method ranks only the
eligible chunks: FAISS searches with an ``IDSelector`` over their labels (chunks and their
windows), BM25 zeroes the other passages' scores before its top-k. Fusion then sees what a
search of those sources alone would rank, at the candidate count of a plain search.

What a source set selects is built once per published revision (``Eligible``) and reused by
every search of that set until the revision moves.
"""

from __future__ import annotations

import threading
from collections.abc import Collection
from dataclasses import dataclass

import faiss
import numpy as np

from knowledge.retrieval.index import WINDOW_BIT
from knowledge.retrieval.lexical import LexicalState

# Distinct source sets held per revision: a handful of channel settings in practice; past
# this, the cache starts again rather than grow with whatever sets callers pass.
MAX_CACHED_SETS = 64


@dataclass(frozen=True)
class Eligible:
    """The chunks of some sources at one revision, in the forms each ranking filters by."""

    labels: np.ndarray  # int64, sorted: the chunks' ids and their windows' labels
    selector: faiss.IDSelectorBatch  # the same labels, for FAISS (holds its own copy)
    passages: np.ndarray  # bool, one per BM25 passage (the postings' order)

    def __len__(self) -> int:
        return int(self.passages.sum())


def eligible(sources: Collection[str], lexical: LexicalState) -> Eligible:
    """What ``sources`` select at the revision of ``lexical`` (whose passages the vector
    index of the same revision holds: the labels serve its main index and its delta)."""
    passages = lexical.passages
    documents = {p.document_id for p in passages.pages.values() if p.source_name in sources}
    chunks = np.fromiter(
        (c for c, row in passages.chunks.items() if row[0] in documents), np.int64
    ) if documents else np.zeros(0, np.int64)  # fmt: skip
    labels = np.sort(np.concatenate([chunks, chunks | WINDOW_BIT]))
    selector = faiss.IDSelectorBatch(len(labels), faiss.swig_ptr(labels))
    return Eligible(labels, selector, np.isin(lexical.postings.ids, chunks))


class EligibleCache:
    """``eligible`` per source set, for the revision last asked about (thread-safe: a race
    builds the same value twice)."""

    def __init__(self) -> None:
        self._stamp: str | None = None
        self._sets: dict[frozenset[str], Eligible] = {}
        self._lock = threading.Lock()

    def get(self, stamp: str | None, sources: Collection[str], lexical: LexicalState) -> Eligible:
        key = frozenset((sources,) if isinstance(sources, str) else sources)  # a name, not letters
        with self._lock:
            if stamp != self._stamp:
                self._stamp, self._sets = stamp, {}
            found = self._sets.get(key)
        if found is not None:
            return found
        built = eligible(key, lexical)
        with self._lock:
            if stamp == self._stamp:
                if len(self._sets) >= MAX_CACHED_SETS:
                    self._sets = {}
                self._sets[key] = built
        return built
