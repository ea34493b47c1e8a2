"""`teambot why QUESTION` and `admin why QUESTION`: how an admin debugs a bad answer.

The same retrieval and confidence as a real answer (bot.core.Assistant.explain), shown
instead of answered: the passages considered, each method's score and rank for the
candidate pages, the confidence, and the reason teambot would answer or abstain.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from knowledge.retrieval.confidence import Confidence
from knowledge.retrieval.evidence import Evidence, PageEvidence
from knowledge.types import ScoredChunk

MAX_PAGES = 8  # candidate pages listed, by dense rank


@dataclass(frozen=True)
class Explanation:
    """What teambot would do with a question, and why."""

    question: str
    method: str
    sources: tuple[str, ...] | None  # the channel's sources; None: all
    min_relevance: float
    threshold: float
    results: list[ScoredChunk]
    evidence: Evidence
    verdict: Confidence

    @property
    def would_answer(self) -> bool:
        return not self.verdict.abstained and any(self.is_used(r) for r in self.results)

    def is_used(self, result: ScoredChunk) -> bool:
        return result.similarity >= self.min_relevance

    def to_json(self) -> dict[str, Any]:
        """``teambot why --json``: the same facts as the text, for scripts."""
        return {
            "question": self.question,
            "method": self.method,
            "sources": list(self.sources) if self.sources is not None else None,
            "confidence": round(self.verdict.confidence, 3),
            "threshold": self.threshold,
            "abstained": not self.would_answer,
            "reasons": list(self.verdict.reasons),
            "features": {k: round(v, 4) for k, v in self.verdict.features.items()},
            "passages": [self._passage(n, r) for n, r in enumerate(self.results, start=1)],
            "pages": [_page(p) for p in self.evidence.by_dense()[:MAX_PAGES]],
        }

    def _passage(self, rank: int, result: ScoredChunk) -> dict[str, Any]:
        return {
            "rank": rank,
            "title": result.document_title,
            "heading": " › ".join(result.heading_path),
            "url": result.document_url,
            "anchor": result.anchor,
            "cosine": round(result.similarity, 4),
            "used": self.is_used(result),
        }


def _page(page: PageEvidence) -> dict[str, Any]:
    return {
        "title": page.document_title,
        "url": page.document_url,
        "cosine": round(page.cosine, 4),
        "dense_rank": page.dense_rank,
        "bm25": round(page.bm25, 3),
        "bm25_rank": page.bm25_rank,
    }


def explanation_text(explained: Explanation) -> str:
    """The explanation as plain text, for a terminal or a code block in chat."""
    scope = ", ".join(explained.sources) if explained.sources is not None else "all sources"
    lines = [f"Question: {explained.question}", f"Search: {explained.method}, {scope}", ""]
    lines.append("Passages considered, in the order an answer would cite them:")
    if not explained.results:
        lines.append("  (none: nothing indexed matched)")
    for n, result in enumerate(explained.results, start=1):
        heading = " › ".join(result.heading_path) or result.document_title
        unused = (
            ""
            if explained.is_used(result)
            else f"  (below MIN_RELEVANCE {explained.min_relevance:.2f}: not used)"
        )
        lines.append(f"  [{n}] {heading} — {result.document_url}"
                     f"{'#' + result.anchor if result.anchor else ''}")  # fmt: skip
        lines.append(f"      cosine {result.similarity:.2f}{unused}")
    lines += ["", "Candidate pages by each method (dense rank order):",
              "  dense  cosine  BM25 rank  BM25 score  page"]  # fmt: skip
    for page in explained.evidence.by_dense()[:MAX_PAGES]:
        bm25_rank = str(page.bm25_rank) if page.bm25_rank else "–"
        lines.append(f"  {page.dense_rank:>5}  {page.cosine:6.2f}  {bm25_rank:>9}  "
                     f"{page.bm25:10.1f}  {page.document_title}")  # fmt: skip
    verdict = "would answer" if explained.would_answer else "would say the docs do not cover it"
    lines += ["", f"Confidence {explained.verdict.confidence:.2f} (threshold "
              f"{explained.threshold:.2f}): {verdict}.", "Why:"]  # fmt: skip
    lines += [f"  - {reason}" for reason in explained.verdict.reasons]
    return "\n".join(lines)
