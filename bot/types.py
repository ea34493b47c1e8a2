"""The platform-neutral types that cross between adapters and the conversation core."""

from __future__ import annotations

from dataclasses import asdict, dataclass
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
    """An answer with its citations, the model that wrote it and how long each stage took (ms)."""

    text: str
    citations: list[Citation]
    model: str
    timings: dict[str, float]
    conversation_id: int
    search_query: str = ""

    def to_json(self) -> dict[str, Any]:
        """The stable shape scripts rely on (``teambot ask --json``)."""
        return {
            "answer": self.text,
            "citations": [asdict(c) for c in self.citations],
            "model": self.model,
            "timings": self.timings,
            "conversation": self.conversation_id,
            "search_query": self.search_query,
        }
