"""What each retrieval method saw for one question: the evidence a confidence score is made of.

The ranked passages alone cannot tell "the docs answer this" from "these are the least bad
passages": a question about another product still gets four results. How strongly and how
consistently the two methods found them can. ``Retriever.search_with_evidence`` returns one
``Evidence`` beside its results, built from numbers the search computes anyway (the cosine of
every loaded candidate, the BM25 score of every lexical candidate, the corpus statistics of the
question's terms), so it costs no extra embedding or index query.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass


@dataclass(frozen=True)
class PageEvidence:
    """One candidate page after the search's filters, scored by each method's best passage.

    ``cosine`` is the best plain cosine between the question and one of the page's loaded
    passages; ``bm25`` the best BM25 score of its passages among the lexical candidates (0.0
    when BM25 did not return it). Ranks are 1-based among the candidate pages, None when the
    method did not find the page.
    """

    source_name: str
    document_url: str
    document_title: str
    cosine: float
    dense_rank: int | None
    bm25: float
    bm25_rank: int | None


@dataclass(frozen=True)
class TermStat:
    """A question term as BM25 indexes it (stemmed, no stopwords), in how many passages of
    the whole index it occurs (0: the corpus never uses the word), and whether it is a name."""

    term: str
    passages: int
    # Whether the term comes from a name-like word of the question (``Kafka``, ``RabbitMQ``,
    # ``os.fork``): an unseen name means another product, an unseen word may be a paraphrase.
    is_name: bool = False


@dataclass(frozen=True)
class ResultTerms:
    """Which question terms one returned passage holds: anywhere in what BM25 indexes for it
    (title, headings, text), and in its page title and heading path alone."""

    chunk_id: int
    in_passage: frozenset[str]
    in_headings: frozenset[str]


@dataclass(frozen=True)
class Evidence:
    """Per-method scores and ranks of the candidate pages, the question's term statistics, and
    the question terms each returned passage holds (in the order of the results).

    ``pages`` is ordered by dense rank; ``indexed_passages`` is the number of passages the
    term counts are out of.
    """

    pages: tuple[PageEvidence, ...]
    terms: tuple[TermStat, ...]
    indexed_passages: int
    results: tuple[ResultTerms, ...] = ()

    def idf(self, term: TermStat) -> float:
        """BM25's (Lucene) inverse document frequency; an unseen term gets the largest."""
        return self.idf_of(term.passages)

    def idf_of(self, passages: int) -> float:
        """The IDF of a term held by ``passages`` of the indexed passages."""
        n = max(self.indexed_passages, 1)
        return math.log(1 + (n - passages + 0.5) / (passages + 0.5))

    def by_dense(self) -> list[PageEvidence]:
        return sorted(
            (p for p in self.pages if p.dense_rank is not None), key=lambda p: p.dense_rank or 0
        )

    def by_bm25(self) -> list[PageEvidence]:
        return sorted(
            (p for p in self.pages if p.bm25_rank is not None), key=lambda p: p.bm25_rank or 0
        )


_WORD = re.compile(r"[A-Za-z][\w.+-]*[\w+]|[A-Za-z]")
# A link quoted in a question (Slack and Discord show them whole): a reference to where the
# asker looked, not words of the topic, so its pieces are neither terms nor names.
_URL = re.compile(r"\b[A-Za-z][A-Za-z0-9+.-]*://\S+")
_SENTENCE_END = (".", "?", "!", ":")


def without_links(text: str) -> str:
    """``text`` with every ``scheme://…`` link removed."""
    return _URL.sub(" ", text)


def name_words(text: str) -> list[str]:
    """The words of ``text`` that look like names: an inner capital, a digit, "_" or "." inside
    (RabbitMQ, SQLAlchemy, py2exe, os.fork), or a capital that does not start a sentence."""
    names = []
    starts_sentence = True
    for match in _WORD.finditer(text):
        word = match.group()
        inner = word[1:]
        if any(c.isupper() or c.isdigit() or c in "_." for c in inner) or (
            word[0].isupper() and not starts_sentence
        ):
            names.append(word)
        following = text[match.end() : match.end() + 1]
        starts_sentence = following in _SENTENCE_END
    return names


def page_evidence(
    pages: dict[tuple[str, str], tuple[str, float, float]],
) -> tuple[PageEvidence, ...]:
    """(source, url) → (title, best cosine, best BM25 or 0) as ranked ``PageEvidence``.

    Dense ranks order every page by cosine (all loaded candidates have one); BM25 ranks only
    the pages with a positive BM25 score. Ties break by URL, so the order is stable."""
    dense = sorted(pages, key=lambda key: (-pages[key][1], key))
    lexical = sorted((key for key in pages if pages[key][2] > 0), key=lambda k: (-pages[k][2], k))
    bm25_rank = {key: rank for rank, key in enumerate(lexical, start=1)}
    return tuple(
        PageEvidence(
            source_name=key[0],
            document_url=key[1],
            document_title=pages[key][0],
            cosine=pages[key][1],
            dense_rank=rank,
            bm25=pages[key][2],
            bm25_rank=bm25_rank.get(key),
        )
        for rank, key in enumerate(dense, start=1)
    )
