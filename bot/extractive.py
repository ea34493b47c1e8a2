"""The answer teambot gives without a language model: the best passages, quoted and cited.

It is always available (no model, no network), so it is also the last link of
every fallback chain. It never pretends to be prose: it is labelled as
quotes, and each quote is trimmed to the sentences that share most words with
the question.
"""

from __future__ import annotations

import re

from knowledge.types import ScoredChunk

LABEL = (
    "Extractive answer (no language model configured): the passages that best match your question."
)
# When models exist but the route chose none (LLM_ROUTE or the channel's route is "extractive").
ROUTED_LABEL = "Extractive answer: the passages that best match your question."
NOTHING_FOUND = (
    "I found nothing in the indexed docs that answers this. Try other words, "
    "or check what is indexed with `teambot sources list`."
)
EMPTY_KNOWLEDGE_BASE = (
    "The knowledge base is empty, so there is nothing to answer from yet. "
    "Add documents with `teambot ingest PATH` (or try `teambot demo`)."
)
MAX_QUOTE_CHARS = 500

_SENTENCE = re.compile(r"(?<=[.!?])\s+|\n{2,}")
_WORD = re.compile(r"\w+")
STOPWORDS = frozenset(
    [
        "a",
        "an",
        "and",
        "are",
        "as",
        "at",
        "be",
        "by",
        "can",
        "do",
        "does",
        "for",
        "from",
        "how",
        "i",
        "if",
        "in",
        "is",
        "it",
        "its",
        "me",
        "my",
        "of",
        "on",
        "or",
        "should",
        "the",
        "this",
        "to",
        "what",
        "when",
        "where",
        "which",
        "who",
        "why",
        "will",
        "with",
        "you",
        "your",
    ]
)


def keywords(text: str) -> set[str]:
    return {w for w in _WORD.findall(text.lower()) if w not in STOPWORDS and len(w) > 1}


def quote(passage: str, query: str, limit: int = MAX_QUOTE_CHARS) -> str:
    """The passage cut to the run of sentences around the one most like the query."""
    if len(passage) <= limit:
        return passage.strip()
    sentences = [s.strip() for s in _SENTENCE.split(passage) if s.strip()]
    wanted = keywords(query)
    best = max(range(len(sentences)), key=lambda i: len(keywords(sentences[i]) & wanted))
    start = end = best
    length = len(sentences[best])
    while True:  # grow the window forwards first (definitions tend to follow), then backwards
        if end + 1 < len(sentences) and length + len(sentences[end + 1]) + 1 <= limit:
            end += 1
            length += len(sentences[end]) + 1
        elif start > 0 and length + len(sentences[start - 1]) + 1 <= limit:
            start -= 1
            length += len(sentences[start]) + 1
        else:
            break
    text = " ".join(sentences[start : end + 1])
    if len(text) > limit:
        text = text[: limit - 1].rsplit(" ", 1)[0] + "…"
    prefix = "… " if start > 0 else ""
    suffix = " …" if end < len(sentences) - 1 and not text.endswith("…") else ""
    return f"{prefix}{text}{suffix}"


def compose(
    query: str, passages: list[ScoredChunk], headings: list[str], label: str = LABEL
) -> str:
    """The answer text: a label, then each passage as a numbered quote under its heading."""
    parts = [label]
    for n, (passage, heading) in enumerate(zip(passages, headings, strict=True), start=1):
        lines = quote(passage.text, query).splitlines()
        quoted = "\n".join(f"> {line}" if line.strip() else ">" for line in lines)
        parts.append(f"[{n}] {heading}\n{quoted}")
    return "\n\n".join(parts)
