"""The platform-neutral types that cross between adapters and the conversation core."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class Question:
    """A question from any platform; (platform, channel, thread) names its conversation."""

    platform: str
    channel: str
    thread: str
    user: str
    text: str
    is_private: bool = False
    # Earlier messages the platform shows (role, text), used when teambot has no memory of the
    # conversation yet, e.g. a thread it is mentioned in for the first time.
    history: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Citation:
    """Where a passage of an answer comes from; ``n`` is its number in the answer text."""

    n: int
    title: str
    url: str
    path: str | None
    anchor: str
    heading: str
    source: str

    @property
    def label(self) -> str:
        """``Title › Heading``, or the title alone when the heading adds nothing."""
        return (
            f"{self.title} › {self.heading}" if self.heading not in ("", self.title) else self.title
        )

    @property
    def location(self) -> str:
        """``path#anchor`` or ``url#anchor``, the short form shown to people."""
        base = self.path or self.url
        return f"{base}#{self.anchor}" if self.anchor else base


@dataclass(frozen=True)
class Answer:
    """An answer with its citations, the model that wrote it and how long each stage took (ms).

    ``provider`` is the kind of model (cloud, local or extractive) and ``route``
    says why the router chose it; ``rewrite`` says how a follow-up became
    ``search_query`` ("model", "heuristic", or "" when it was searched as asked).
    ``confidence`` is how likely the docs support the answer (0–1, None when nothing was
    searched); ``abstained`` says teambot answered that the docs do not cover the question,
    offering ``suggestions``, the closest pages, instead of citations.
    """

    text: str
    citations: list[Citation]
    model: str
    timings: dict[str, float]
    conversation_id: int
    search_query: str = ""
    provider: str = "extractive"
    route: str = ""
    tokens_in: int | None = None
    tokens_out: int | None = None
    rewrite: str = ""
    turn_id: int | None = None  # the stored answer turn, for feedback on it
    confidence: float | None = None
    abstained: bool = False
    suggestions: list[Citation] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        """The stable shape scripts rely on (``teambot ask --json``)."""
        return {
            "answer": self.text,
            "citations": [asdict(c) for c in self.citations],
            "model": self.model,
            "provider": self.provider,
            "route": self.route,
            "timings": self.timings,
            "tokens": {"in": self.tokens_in, "out": self.tokens_out},
            "conversation": self.conversation_id,
            "search_query": self.search_query,
            "rewrite": self.rewrite,
            "turn": self.turn_id,
            "confidence": self.confidence,
            "abstained": self.abstained,
            "might_help": [asdict(c) for c in self.suggestions],
        }


@dataclass(frozen=True)
class Delta:
    """A piece of answer text as the model produces it (adapters append it to what they show)."""

    text: str


@dataclass(frozen=True)
class Restart:
    """The text streamed so far is void (its model failed); ``reason`` says why. Another
    answer follows."""

    reason: str


AnswerEvent = Delta | Restart | Answer
