"""Cut a page into passages that fit the embedder's window, along its headings.

Each chunk stays inside one section, so it can cite ``page#anchor``; the page
title and heading path are prepended to the text that is embedded (not to the
text that is quoted) because a passage like "Set it to 0 to disable" means
nothing without "Configuration > Timeouts" above it.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator

from knowledge.types import ChunkDraft, Page, Section

TokenCounter = Callable[[str], int]

# Room for the [CLS]/[SEP] tokens the model adds and for tokenizer differences
# between a joined chunk and the sum of its parts.
SPECIAL_TOKENS_MARGIN = 4
MIN_BODY_TOKENS = 32
# A piece (sentence or paragraph) this short is repeated at the start of the next chunk.
OVERLAP_MAX_TOKENS = 48

_SENTENCE_END = re.compile(r"(?<=[.!?:;])\s+(?=\S)")


def context_line(title: str, heading_path: tuple[str, ...]) -> str:
    """Title and heading path as one line (a first heading equal to the title is dropped)."""
    path = heading_path[1:] if heading_path and heading_path[0] == title else heading_path
    return " > ".join((title, *path)) if title else " > ".join(path)


def chunk_page(page: Page, count_tokens: TokenCounter, max_tokens: int) -> list[ChunkDraft]:
    """The page's sections packed into chunks of at most ``max_tokens`` embedded word pieces."""
    drafts: list[ChunkDraft] = []
    for section in page.sections:
        context = context_line(page.title, section.heading_path)
        budget = max(MIN_BODY_TOKENS, max_tokens - count_tokens(context) - SPECIAL_TOKENS_MARGIN)
        for body, tokens in _pack(_pieces(section, count_tokens, budget), budget):
            drafts.append(
                ChunkDraft(
                    ordinal=len(drafts),
                    heading_path=section.heading_path,
                    anchor=section.anchor,
                    text=body,
                    embed_text=f"{context}\n\n{body}" if context else body,
                    token_count=tokens,
                )
            )
    return drafts


def _pieces(section: Section, count_tokens: TokenCounter, budget: int) -> Iterator[tuple[str, int]]:
    """Blocks of the section, each cut by sentences, then by words, until it fits the budget."""
    for block in section.blocks:
        yield from _fit(block, count_tokens, budget)


def _fit(text: str, count_tokens: TokenCounter, budget: int) -> Iterator[tuple[str, int]]:
    tokens = count_tokens(text)
    if tokens <= budget:
        yield text, tokens
        return
    sentences = _SENTENCE_END.split(text)
    if len(sentences) > 1:
        parts = sentences
        joiner = " "
    else:
        words = text.split(" ")
        if len(words) == 1:  # one enormous token run: cut by characters
            step = max(1, len(text) * budget // tokens)
            parts, joiner = [text[i : i + step] for i in range(0, len(text), step)], ""
        else:
            parts, joiner = _halves(words), " "
    pieces = [(part, count_tokens(part)) for part in parts]
    packed = _pack(
        pieces, budget, joiner=joiner, recurse=(count_tokens, budget), overlap=len(sentences) > 1
    )
    for body, _ in packed:
        yield body, count_tokens(body)


def _halves(words: list[str]) -> list[str]:
    middle = len(words) // 2
    return [" ".join(words[:middle]), " ".join(words[middle:])]


def _pack(
    pieces: Iterator[tuple[str, int]] | list[tuple[str, int]],
    budget: int,
    *,
    joiner: str = "\n\n",
    recurse: tuple[TokenCounter, int] | None = None,
    overlap: bool = True,
) -> Iterator[tuple[str, int]]:
    """Greedily join consecutive pieces while their token sum stays within the budget.

    With ``overlap``, a chunk that had to be cut starts with the last piece of the
    one before when that piece is short, so a definition and its context are not
    torn apart at a boundary.
    """
    current: list[tuple[str, int]] = []
    for text, tokens in pieces:
        if tokens > budget and recurse is not None:
            if current:
                yield _joined(current, joiner)
                current = []
            yield from _fit(text, *recurse)
            continue
        used = sum(t for _, t in current)
        if current and used + tokens > budget:
            yield _joined(current, joiner)
            tail = current[-1]
            keep = overlap and tail[1] <= OVERLAP_MAX_TOKENS and tail[1] + tokens <= budget
            current = [tail] if keep else []
        current.append((text, tokens))
    if current:
        yield _joined(current, joiner)


def _joined(pieces: list[tuple[str, int]], joiner: str) -> tuple[str, int]:
    return joiner.join(text for text, _ in pieces), sum(tokens for _, tokens in pieces)
