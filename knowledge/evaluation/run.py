"""Run the retriever over a question file and score it (`teambot eval`)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from knowledge.errors import SourceError
from knowledge.evaluation.scoring import (
    EvalQuestion,
    Level,
    Metrics,
    PageKeys,
    format_table,
    gold_for,
    per_question,
    ranked_keys,
    score,
)
from knowledge.retrieval.prefilter import Scope
from knowledge.retrieval.search import Method, Retriever
from knowledge.storage.documents import Document, Source


@dataclass(frozen=True)
class EvalResult:
    method: Method
    level: Level
    metrics: Metrics
    latencies_ms: list[float]
    questions: list[dict[str, Any]]

    def latency(self, q: float) -> float:
        return float(np.percentile(self.latencies_ms, q)) if self.latencies_ms else 0.0

    def to_json(self) -> dict[str, Any]:
        """Metric keys first (stable for scripts), then how and how fast."""
        return {
            **self.metrics.to_json(),
            "method": self.method,
            "level": self.level,
            "latency_ms_p50": round(self.latency(50), 1),
            "latency_ms_p99": round(self.latency(99), 1),
            "questions": self.questions,
        }

    def table(self) -> str:
        return (
            format_table([(f"{self.method}, {self.level} level", self.metrics)])
            + f"\n\nretrieval latency: p50 {self.latency(50):.1f} ms, p99 {self.latency(99):.1f} ms"
        )


def source_roots(sessions: sessionmaker[Session], sources: list[str] | None) -> dict[str, str]:
    """Each source's location by name (to make page paths), after checking that every source
    asked for exists."""
    with sessions() as session:
        roots = dict(session.execute(select(Source.name, Source.location)).all())
    unknown = set(sources or ()) - set(roots)
    if unknown:
        names = ", ".join(sorted(unknown))
        raise SourceError(f"No source named {names}; see `teambot sources list`.")
    return roots


def page_keys(sessions: sessionmaker[Session], roots: dict[str, str]) -> PageKeys:
    """Every stored page by its key, to leave pages out by path prefix."""
    with sessions() as session:
        pages = session.execute(
            select(Source.name, Source.kind, Document.url).join(
                Source, Document.source_id == Source.id
            )
        ).all()
    return PageKeys([tuple(row) for row in pages], roots)


def evaluate_retrieval(
    retriever: Retriever,
    sessions: sessionmaker[Session],
    questions: list[EvalQuestion],
    *,
    sources: list[str] | None,
    k: int,
    level: Level,
    exclude_prefixes: tuple[str, ...],
    method: Method,
    exclude_own_page: bool = False,
) -> EvalResult:
    """Search every scorable question and score the rankings against its gold.

    ``exclude_own_page`` leaves each question's own page out of its candidates, so that
    its ``linked_pages`` are the gold: hard mode for questions written from the indexed
    pages themselves, such as bench/hard_questions.py's section headings."""
    roots = source_roots(sessions, sources)
    keys = page_keys(sessions, roots)
    shared = keys.under(exclude_prefixes)
    rankings, golds, latencies = [], [], []
    for question in questions:
        own = (question.page,) if exclude_own_page and question.page else ()
        gold = gold_for(question, level, exclude_prefixes=exclude_prefixes + own)
        if not gold:
            continue
        scope = Scope.of(sources, skip_pages=shared, pages_once=keys.under(own))
        started = time.perf_counter()
        results = retriever.search(
            question.question, k, method=method, scope=scope, per_page=level == "page"
        )
        latencies.append((time.perf_counter() - started) * 1000)
        rankings.append(ranked_keys(results, level, roots))
        golds.append(gold)
    return EvalResult(
        method=method,
        level=level,
        metrics=score(rankings, golds, k=k),
        latencies_ms=latencies,
        questions=per_question(rankings, golds, k=k),
    )
