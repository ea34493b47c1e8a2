"""Gaps grouped by topic: the questions clustered by their embeddings (`admin gaps`, digest).

The questions are embedded when they are listed, with the runtime's embedder: a few hundred
take well under a second, and nothing stored goes stale when the model changes. They are
clustered by average linkage on cosine similarity, merging the closest pair of groups until
none is closer than SAME_TOPIC: deterministic (ties go to the earlier group), with no number
of groups to guess, and quick for the gaps of a week or a month (bot.gaps.MAX_LISTED bounds
them). SAME_TOPIC was measured on tests/test_gap_topics.py's generated set (paraphrases of
four topics under varied openings): 0.25–0.40 recovers every group exactly, 0.45 starts to
split one; 0.35 is the middle. A near miss (a fifth topic in the words of another, 0.46 from
it on average) joins that topic whole at any threshold that keeps the four whole: MiniLM
cannot tell them apart, so the label and examples show what the group mixes.

A group's label is its most typical question, the one closest to the group's centroid; its
examples are the next most typical distinct questions. Groups are sorted by how many gaps
they hold, then by how recently one was seen.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np

from bot.audience import PRIVATE_TEXT, PUBLIC, Audience
from bot.gaps import GapRecord

SAME_TOPIC = 0.35
EXAMPLES = 3
SHOWN_CHARS = 150  # a question shown in a listing or digest line is cut here

Embed = Callable[[Sequence[str]], np.ndarray]


@dataclass(frozen=True)
class Topic:
    """A group of gaps about one thing."""

    label: str
    count: int
    questions: list[str]  # up to EXAMPLES distinct questions, most typical first
    channels: list[str]  # PLATFORM:CHANNEL, where most were asked first
    last_seen: datetime
    kinds: dict[str, int]

    def to_json(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "count": self.count,
            "questions": self.questions,
            "channels": self.channels,
            "last_seen": self.last_seen.isoformat(),
            "kinds": self.kinds,
        }


def shown(question: str, limit: int = SHOWN_CHARS) -> str:
    """A question as a listing shows it: on one line, cut at ``limit`` characters."""
    text = " ".join(question.split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def cluster(vectors: np.ndarray, threshold: float = SAME_TOPIC) -> list[list[int]]:
    """Row indices grouped by average-linkage clustering of ``vectors`` (normalised rows) on
    cosine similarity, stopped when no two groups are ``threshold`` alike; each group in
    row order, groups in order of their first row."""
    n = len(vectors)
    if n == 0:
        return []
    similarity = (vectors @ vectors.T).astype(np.float64)
    np.fill_diagonal(similarity, -np.inf)
    members: list[list[int] | None] = [[i] for i in range(n)]
    while True:
        flat = int(np.argmax(similarity))
        i, j = divmod(flat, n)
        if similarity[i, j] < threshold:
            break
        keep, gone = min(i, j), max(i, j)
        a, b = len(members[keep] or []), len(members[gone] or [])
        merged = (a * similarity[keep] + b * similarity[gone]) / (a + b)
        similarity[keep], similarity[:, keep] = merged, merged
        similarity[gone], similarity[:, gone] = -np.inf, -np.inf
        similarity[keep, keep] = -np.inf
        members[keep] = sorted([*(members[keep] or []), *(members[gone] or [])])
        members[gone] = None
    return [group for group in members if group]


def topics(
    gaps: Sequence[GapRecord],
    embed: Embed,
    threshold: float = SAME_TOPIC,
    audience: Audience = PUBLIC,
) -> list[Topic]:
    """The gaps grouped by topic, the biggest and most recent first. Private questions are
    grouped like the rest but named only to an ``audience`` that may read them: a topic of
    nothing else is labelled PRIVATE_TEXT, and their channels are shown as ``private``."""
    if not gaps:
        return []
    vectors = np.asarray(embed([g.question for g in gaps]), dtype=np.float32)
    vectors /= np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    groups = [_topic([gaps[i] for i in group], vectors[group], audience) for group in
              cluster(vectors, threshold)]  # fmt: skip
    return sorted(groups, key=lambda t: (-t.count, -t.last_seen.timestamp(), t.label))


def _topic(gaps: list[GapRecord], vectors: np.ndarray, audience: Audience) -> Topic:
    centroid = vectors.mean(axis=0)
    typical = np.argsort(-(vectors @ centroid), kind="stable")
    questions: list[str] = []
    for i in typical:
        if not audience.may_read(gaps[i].platform, gaps[i].channel, gaps[i].is_private):
            continue
        text = " ".join(gaps[i].question.split())
        if text.casefold() not in {q.casefold() for q in questions}:
            questions.append(text)
        if len(questions) == EXAMPLES:
            break
    channels = Counter(audience.place(g.platform, g.channel, g.is_private) for g in gaps)
    kinds = Counter(kind for g in gaps for kind in g.kinds)
    return Topic(
        label=questions[0] if questions else PRIVATE_TEXT,
        count=len(gaps),
        questions=questions,
        channels=[where for where, _ in sorted(channels.items(), key=lambda c: (-c[1], c[0]))],
        last_seen=max(g.last_seen for g in gaps),
        kinds=dict(sorted(kinds.items())),
    )
