"""The stages of a document, named after what they are.

A file or web page becomes a ``Page`` (extracted text in sections), a page
becomes ``ChunkDraft`` pieces sized for the embedder, stored chunks come back
from search as ``ScoredChunk``.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Section:
    """A run of text under one heading.

    ``heading_path`` lists the real heading stack from the outermost heading
    (often an h1 equal to the page title) to this one; ``anchor`` is the
    element id a link can point at (``page#anchor``), or ``""`` for text
    before the first heading.
    """

    heading_path: tuple[str, ...]
    anchor: str
    blocks: tuple[str, ...]

    @property
    def text(self) -> str:
        return "\n\n".join(self.blocks)


@dataclass(frozen=True)
class Page:
    """The readable content of one document: its title and its sections."""

    title: str
    sections: tuple[Section, ...] = field(default_factory=tuple)

    @property
    def text(self) -> str:
        return "\n\n".join(s.text for s in self.sections if s.blocks)


@dataclass(frozen=True)
class ChunkDraft:
    """A piece of a page, ready to embed; ``embed_text`` carries the context."""

    ordinal: int
    heading_path: tuple[str, ...]
    anchor: str
    text: str
    embed_text: str
    token_count: int


@dataclass(frozen=True)
class ScoredChunk:
    """A stored chunk returned by search, with what a citation needs.

    ``score`` orders results (fused rank score, cosine or BM25 by method);
    ``similarity`` is always the cosine between question and chunk, so that
    "is this relevant at all" has one meaning whatever the method.
    """

    chunk_id: int
    score: float
    similarity: float
    text: str
    heading_path: tuple[str, ...]
    anchor: str
    document_title: str
    document_url: str
    source_name: str
    source_kind: str
    source_location: str
    document_web_url: str | None = None  # a git file's hosted view, when its source has one
