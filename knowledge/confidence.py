"""How sure teambot is that the docs answer a question, and whether to say they do not.

Search always returns passages, even for a question about another product; quoting them is
worse than saying "the docs don't cover this". ``assess`` turns the retrieval evidence
(knowledge/evidence.py) into a ``Confidence``: a probability that the indexed docs answer the
question, the decision to abstain, and short reasons a person can check (`teambot why`).

The model is a logistic regression over a few scale-free features of the evidence, each
chosen because it means the same on any doc site:

- ``cosine``: the dense cosine of the best candidate page (how close the closest text is);
- ``coverage``: the share of the question's term weight (BM25 IDF) that the top result
  holds: a question whose rare words the best passage contains is about that passage;
- ``unseen``: the share of the question's term weight carried by words the index never
  uses at all ("Celery", "Debian"): the docs cannot be about what they never name.

Other features were measured and not kept (bench/answerability.py's docstring lists every
pre-registered variant and its development result). COEFFICIENTS and THRESHOLD were fitted by
``python -m bench.answerability --fit`` (see there) on the DEVELOPMENT part only; the
held-out products and pages never informed them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from knowledge.evidence import Evidence, TermStat
from knowledge.types import ScoredChunk

FEATURES = ("cosine", "cosine_gap", "coverage", "coverage_all", "unseen", "heading", "agree")

# Fitted by `python -m bench.answerability --fit` (dev part, hard mode, balanced classes);
# the names are the features used, in order, after the intercept.
MODEL_FEATURES: tuple[str, ...] = ("cosine", "coverage", "unseen")
INTERCEPT = 0.0
COEFFICIENTS: tuple[float, ...] = (0.0, 0.0, 0.0)
# Abstain below this confidence: see bench/answerability.py for how it was chosen.
THRESHOLD = 0.5


@dataclass(frozen=True)
class Confidence:
    """How likely the docs answer the question (0–1), whether to abstain, and why.

    ``features`` holds every measured feature (not only the model's), for `teambot why`
    and for re-fitting."""

    confidence: float
    abstained: bool
    reasons: tuple[str, ...]
    features: dict[str, float]


def features(results: Sequence[ScoredChunk], evidence: Evidence) -> dict[str, float]:
    """Every feature of the pre-registered variants, from one search's evidence.

    A question with no indexed term (only stopwords) has coverage and unseen share 0."""
    dense = evidence.by_dense()
    cosine = dense[0].cosine if dense else 0.0
    second = dense[1].cosine if len(dense) > 1 else 0.0
    weights = {t.term: evidence.idf(t) for t in evidence.terms}
    top = evidence.results[0] if evidence.results else None
    every = frozenset().union(*(r.in_passage for r in evidence.results))
    return {
        "cosine": cosine,
        "cosine_gap": cosine - second if dense else 0.0,
        "coverage": weighted_share(weights, top.in_passage if top else frozenset()),
        "coverage_all": weighted_share(weights, every),
        "unseen": unseen_share(evidence.terms, weights),
        "heading": weighted_share(weights, top.in_headings if top else frozenset()),
        "agree": agreement(evidence),
    }


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
    values = features(results, evidence)
    confidence = probability(values)
    abstained = confidence < threshold
    return Confidence(confidence, abstained, reasons(values, confidence, threshold), values)


def reasons(values: dict[str, float], confidence: float, threshold: float) -> tuple[str, ...]:
    """One line per signal, in words, then the verdict."""
    verdict = "abstained" if confidence < threshold else "answered"
    return (
        f"best page's cosine to the question: {values['cosine']:.2f}",
        f"the top passage holds {values['coverage']:.0%} of the question's term weight",
        f"{values['unseen']:.0%} of the question's term weight is in words the docs never use",
        f"dense and BM25 agree on the top page: 1/rank {values['agree']:.2f}",
        f"confidence {confidence:.2f} {'<' if confidence < threshold else '≥'} "
        f"threshold {threshold:.2f}: {verdict}",
    )
