"""The gate: retrieval before and after, on the held-out pairs and the admin's question files.

Both versions are searched the way the bot searches (the same ``Retriever``, hybrid by
default) over their own vectors of the same chunks. Held-out pairs come from pages that gave
no training pair; each asks for its own page (page level). A question file is scored as
`teambot eval FILE --level page` scores it. The tuned version passes only if nDCG@10 is higher
on every set; anything else keeps the serving version.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from knowledge.evaluation.run import evaluate_retrieval
from knowledge.evaluation.scoring import EvalQuestion, Metrics, score
from knowledge.retrieval.search import Method, Retriever
from knowledge.tune.pairs import Pair, page_key

K = 10
MAX_HELD_OUT = 2000  # questions scored per set: enough to see 0.01, a bound on time


@dataclass(frozen=True)
class SetResult:
    name: str
    before: Metrics
    after: Metrics

    @property
    def gain(self) -> float:
        return self.after.ndcg_at_10 - self.before.ndcg_at_10

    def to_json(self) -> dict[str, Any]:
        return {"set": self.name, "before": self.before.to_json(),
                "after": self.after.to_json(), "ndcg@10_gain": round(self.gain, 4)}  # fmt: skip


@dataclass(frozen=True)
class Verdict:
    sets: list[SetResult]

    @property
    def better(self) -> bool:
        return bool(self.sets) and all(s.before.n > 0 and s.gain > 0 for s in self.sets)

    def to_json(self) -> dict[str, Any]:
        return {"better": self.better, "sets": [s.to_json() for s in self.sets]}

    def table(self) -> str:
        lines = [f"{'set':<24} {'n':>5}  {'nDCG@10':>17}  {'MRR':>17}  {'recall@10':>17}"]
        for s in self.sets:
            cells = [
                f"{getattr(s.before, a):.3f} → {getattr(s.after, a):.3f}"
                for a in ("ndcg_at_10", "mrr")
            ]
            recall = f"{s.before.recall_at[10]:.3f} → {s.after.recall_at[10]:.3f}"
            lines.append(
                f"{s.name:<24} {s.before.n:>5}  {cells[0]:>17}  {cells[1]:>17}  {recall:>17}"
            )
        return "\n".join(lines)


def held_out_metrics(retriever: Retriever, pairs: Sequence[Pair], method: Method) -> Metrics:
    """How well each held-out anchor finds its own page among the top ``K``."""
    rankings, golds = [], []
    for pair in pairs[:MAX_HELD_OUT]:
        results = retriever.search(pair.anchor, K, method=method)
        rankings.append(
            list(dict.fromkeys(page_key(r.source_name, r.document_url) for r in results))
        )
        golds.append({pair.page})
    return score(rankings, golds, k=K)


def judge(
    before: Retriever,
    after: Retriever,
    sessions: sessionmaker[Session],
    held_out: Sequence[Pair],
    question_files: Sequence[tuple[str, list[EvalQuestion]]] = (),
    *,
    method: Method = "hybrid",
) -> Verdict:
    """Before and after on every set; ``question_files`` are (name, questions)."""
    sets = [SetResult("held-out pairs", held_out_metrics(before, held_out, method),
                      held_out_metrics(after, held_out, method))]  # fmt: skip
    for name, questions in question_files:
        scored = [
            evaluate_retrieval(r, sessions, questions[:MAX_HELD_OUT], sources=None, k=K,
                               level="page", exclude_prefixes=(), method=method).metrics
            for r in (before, after)
        ]  # fmt: skip
        sets.append(SetResult(name, *scored))
    return Verdict(sets)
