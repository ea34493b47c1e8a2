"""Does teambot know when its docs do not answer? `teambot eval FILE --answerability`.

Each question is searched and judged as the bot would (knowledge.retrieval.confidence at the
configured threshold, and no passage at MIN_RELEVANCE means no answer); the file says which
questions the docs answer. Printed: ``auroc`` (how well confidence separates answerable
from not, threshold-free), ``answer_rate`` (answerable questions answered), ``abstain_rate``
(unanswerable questions refused), ``n_answerable``, ``n_unanswerable``: exactly those keys
with ``--json``, which other tools rely on.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from knowledge.errors import KnowledgeError
from knowledge.evaluation.run import page_keys, source_roots
from knowledge.evaluation.scoring import EvalQuestion
from knowledge.retrieval.confidence import assess
from knowledge.retrieval.prefilter import Scope
from knowledge.retrieval.search import Method, Retriever


@dataclass(frozen=True)
class Judged:
    """One question: whether the docs answer it (the file says), the confidence teambot gave
    it, and whether teambot answered."""

    answerable: bool
    confidence: float
    answered: bool


@dataclass(frozen=True)
class AnswerabilityResult:
    auroc: float | None  # None when the file holds only one kind of question
    answer_rate: float | None
    abstain_rate: float | None
    n_answerable: int
    n_unanswerable: int

    def to_json(self) -> dict[str, Any]:
        """The five keys scripts rely on, in this order."""
        return {
            "auroc": _rounded(self.auroc),
            "answer_rate": _rounded(self.answer_rate),
            "abstain_rate": _rounded(self.abstain_rate),
            "n_answerable": self.n_answerable,
            "n_unanswerable": self.n_unanswerable,
        }

    def table(self, threshold: float) -> str:
        def shown(value: float | None) -> str:
            return "n/a" if value is None else f"{value:.3f}"

        return "\n".join([
            f"answerability at threshold {threshold:.2f} "
            f"({self.n_answerable} answerable, {self.n_unanswerable} unanswerable questions)",
            f"  auroc         {shown(self.auroc)}   confidence separating answerable from not",
            f"  answer_rate   {shown(self.answer_rate)}   answerable questions answered",
            f"  abstain_rate  {shown(self.abstain_rate)}   unanswerable questions refused",
        ])  # fmt: skip


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


def summarise(judged: Sequence[Judged]) -> AnswerabilityResult:
    """The metrics of a list of judged questions."""
    answerable = [j for j in judged if j.answerable]
    unanswerable = [j for j in judged if not j.answerable]
    return AnswerabilityResult(
        auroc=auroc([j.confidence for j in judged], [j.answerable for j in judged]),
        answer_rate=_share(answerable, lambda j: j.answered),
        abstain_rate=_share(unanswerable, lambda j: not j.answered),
        n_answerable=len(answerable),
        n_unanswerable=len(unanswerable),
    )


def _share(items: Sequence[Judged], test: Any) -> float | None:
    return sum(1 for item in items if test(item)) / len(items) if items else None


def auroc(scores: Sequence[float], labels: Sequence[bool]) -> float | None:
    """The probability that a random positive scores above a random negative, ties counting
    half (the Mann–Whitney U statistic over both class sizes); None with one class only."""
    positives = [s for s, y in zip(scores, labels, strict=True) if y]
    negatives = [s for s, y in zip(scores, labels, strict=True) if not y]
    if not positives or not negatives:
        return None
    ordered = sorted(negatives)
    wins = 0.0
    for score in positives:
        below = _count_below(ordered, score)
        ties = _count_below(ordered, score, inclusive=True) - below
        wins += below + ties / 2
    return wins / (len(positives) * len(negatives))


def _count_below(ordered: list[float], value: float, *, inclusive: bool = False) -> int:
    """How many of the sorted ``ordered`` are below ``value`` (or at most, ``inclusive``)."""
    return (bisect_right if inclusive else bisect_left)(ordered, value)


def evaluate_answerability(
    retriever: Retriever,
    sessions: sessionmaker[Session],
    questions: list[EvalQuestion],
    *,
    sources: list[str] | None,
    k: int,
    exclude_prefixes: tuple[str, ...],
    method: Method,
    threshold: float,
    min_relevance: float,
    exclude_own_page: bool = False,
) -> AnswerabilityResult:
    """Judge every question as the bot would. ``exclude_prefixes`` (and each question's own
    page, with ``exclude_own_page``) leave pages out of the answerable questions' candidates:
    the hard mode, where the answer must come from reference pages."""
    unlabelled = [q.question for q in questions if q.answerable is None]
    if unlabelled:
        raise KnowledgeError(
            f"{len(unlabelled)} question(s) lack `answerable` (true or false), e.g. "
            f"{unlabelled[0]!r}: --answerability needs it on every line."
        )
    keys = page_keys(sessions, source_roots(sessions, sources))
    shared = keys.under(exclude_prefixes)
    judged = []
    for question in questions:
        scope = Scope.of(sources)
        if question.answerable:
            own = (question.page,) if exclude_own_page and question.page else ()
            scope = Scope.of(sources, skip_pages=shared, pages_once=keys.under(own))
        results, evidence = retriever.search_with_evidence(
            question.question, k, method=method, scope=scope
        )
        verdict = assess(question.question, results, evidence, threshold=threshold)
        close = any(r.similarity >= min_relevance for r in results)
        judged.append(Judged(bool(question.answerable), verdict.confidence,
                             close and not verdict.abstained))  # fmt: skip
    return summarise(judged)
