"""Cut a page into passages that fit the embedder's window, along its headings.

Each chunk stays inside one section, so it can cite ``page#anchor``; the page
title and heading path are prepended to the text that is embedded (not to the
text that is quoted) because a passage like "Set it to 0 to disable" means
nothing without "Configuration > Timeouts" above it.

A chunk is bounded in characters as well as in tokens: MiniLM's tokenizer reads
any word over 100 characters as one unknown token, so a 1 MB "word" would count
as one token and be kept whole. Text longer than the character bound is cut
before it is ever tokenised, so a huge block costs one tokenizer pass, not many.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import NamedTuple

from knowledge.types import ChunkDraft, Page, Section

TokenCounter = Callable[[str], int]

# Room for the [CLS]/[SEP] tokens the model adds and for tokenizer differences
# between a joined chunk and the sum of its parts.
SPECIAL_TOKENS_MARGIN = 4
MIN_BODY_TOKENS = 32
# A piece (sentence or paragraph) this short is repeated at the start of the next chunk.
OVERLAP_MAX_TOKENS = 48
# Characters an embedded text may hold per token of the window: prose runs ~4, indented code ~8.
MAX_CHARS_PER_TOKEN = 10
# Share of the window the title and heading path may take from the passage they introduce.
CONTEXT_SHARE = 0.5

_SENTENCE_END = re.compile(r"(?<=[.!?:;])\s+(?=\S)")


def context_line(title: str, heading_path: tuple[str, ...]) -> str:
    """Title and heading path as one line (a first heading equal to the title is dropped)."""
    path = heading_path[1:] if heading_path and heading_path[0] == title else heading_path
    return " > ".join((title, *path)) if title else " > ".join(path)


@dataclass(frozen=True)
class _Budget:
    """How much one chunk's body may hold, in tokens and in characters."""

    count_tokens: TokenCounter
    tokens: int
    chars: int

    def measure(self, text: str) -> int:
        """Tokens in ``text``; a text over the character bound is not tokenised: it cannot fit."""
        return self.count_tokens(text) if len(text) <= self.chars else self.tokens + 1


class _Piece(NamedTuple):
    """Text and its token count; not ``whole`` when cut out of a word by characters.

    Such a fragment is never repeated at the start of the next chunk as overlap.
    """

    text: str
    tokens: int
    whole: bool = True


def chunk_page(page: Page, count_tokens: TokenCounter, max_tokens: int) -> list[ChunkDraft]:
    """The page's sections packed into chunks of at most ``max_tokens`` embedded word pieces."""
    drafts: list[ChunkDraft] = []
    max_chars = max_tokens * MAX_CHARS_PER_TOKEN
    context_budget = _Budget(
        count_tokens, int(max_tokens * CONTEXT_SHARE), int(max_chars * CONTEXT_SHARE)
    )
    for section in page.sections:
        context = _clipped(context_line(page.title, section.heading_path), context_budget)
        room = max_tokens - count_tokens(context) - SPECIAL_TOKENS_MARGIN
        chars = max_chars - len(context) - 2  # the blank line between context and body
        budget = _Budget(
            count_tokens,
            max(MIN_BODY_TOKENS, room),
            max(MIN_BODY_TOKENS * MAX_CHARS_PER_TOKEN, chars),
        )
        for body, tokens, _ in _pack(_pieces(section, budget), budget):
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


def _clipped(text: str, budget: _Budget) -> str:
    """``text`` cut at its end to fit ``budget`` (a hostile page's title can be megabytes)."""
    text = text[: budget.chars]
    while (tokens := budget.count_tokens(text)) > budget.tokens:
        text = text[: len(text) * budget.tokens // tokens]
    return text


def _pieces(section: Section, budget: _Budget) -> Iterator[_Piece]:
    """Blocks of the section, each cut by sentences, then by words, until it fits the budget."""
    for block in section.blocks:
        yield from _fit(block, budget)


def _fit(text: str, budget: _Budget, tokens: int | None = None) -> Iterator[_Piece]:
    """``text`` as pieces that fit ``budget`` (``tokens``: its measure, when already known)."""
    tokens = budget.measure(text) if tokens is None else tokens
    if tokens <= budget.tokens:
        yield _Piece(text, tokens)
        return
    sentences = _SENTENCE_END.split(text)
    if len(sentences) > 1:
        parts = sentences
        joiner = " "
    else:
        words = text.split(" ")
        if len(words) == 1:  # one enormous token run: cut by characters
            step = max(1, min(budget.chars, len(text) * budget.tokens // tokens))
            parts, joiner = [text[i : i + step] for i in range(0, len(text), step)], ""
        else:
            parts, joiner = _halves(words), " "
    pieces = [_Piece(part, budget.measure(part), whole=bool(joiner)) for part in parts]
    yield from _pack(pieces, budget, joiner=joiner, recurse=True, overlap=len(sentences) > 1)


def _halves(words: list[str]) -> list[str]:
    middle = len(words) // 2
    return [" ".join(words[:middle]), " ".join(words[middle:])]


def _pack(
    pieces: Iterable[_Piece],
    budget: _Budget,
    *,
    joiner: str = "\n\n",
    recurse: bool = False,
    overlap: bool = True,
) -> Iterator[_Piece]:
    """Greedily join consecutive pieces while their token sum and length stay within the budget.

    With ``recurse``, a piece over the budget is cut further, and a join is counted
    again (it can tokenise differently from its parts). With ``overlap``, a chunk
    that had to be cut starts with the last piece of the one before when that piece
    is short and whole, so a definition and its context are not torn apart at a
    boundary.
    """
    recount = budget.count_tokens if recurse else None
    current: list[_Piece] = []
    for piece in pieces:
        if piece.tokens > budget.tokens and recurse:
            if current:
                yield _joined(current, joiner, recount)
                current = []
            yield from _fit(piece.text, budget, piece.tokens)
            continue
        if current and not _fits([*current, piece], joiner, budget):
            yield _joined(current, joiner, recount)
            tail = current[-1]
            keep = overlap and tail.whole and tail.tokens <= OVERLAP_MAX_TOKENS
            current = [tail] if keep and _fits([tail, piece], joiner, budget) else []
        current.append(piece)
    if current:
        yield _joined(current, joiner, recount)


def _fits(pieces: list[_Piece], joiner: str, budget: _Budget) -> bool:
    chars = sum(len(p.text) for p in pieces) + len(joiner) * (len(pieces) - 1)
    return sum(p.tokens for p in pieces) <= budget.tokens and chars <= budget.chars


def _joined(pieces: list[_Piece], joiner: str, recount: TokenCounter | None) -> _Piece:
    text = joiner.join(p.text for p in pieces)
    whole = all(p.whole for p in pieces)
    if recount is None or len(pieces) == 1:
        return _Piece(text, sum(p.tokens for p in pieces), whole)
    return _Piece(text, recount(text), whole)
