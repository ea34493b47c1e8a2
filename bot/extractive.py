"""The answer teambot gives without a language model: the best passages, quoted and cited.

It is always available (no model, no network), so it is also the last link of
every fallback chain. It never pretends to be prose: it is labelled as
quotes, each quote under its citation number.

A quote is made of whole units of the passage, never a window cut anywhere:
a unit is a sentence of a paragraph, a list item's sentence, or a whole
multi-line block (code keeps its lines; it is never cut in the middle). The
unit that shares most words with the question is the hit; the quote starts at
the earliest of these boundaries from which the hit still fits: the passage's
first unit (a section states its point, and a procedure its step 1, first),
the first item of a marked list (``1.``, ``-``) the hit belongs to, the hit's
paragraph or list item, the hit's sentence. It then grows forwards, and
backwards only when the passage ends, by whole units. Extraction keeps each
HTML/Markdown list item as its own paragraph (without its number), so a
procedure quoted from the passage's start begins at step 1 either way. The
passage is the cited section, not only the retrieved chunk: bot.core passes
the section's text before the chunk (Retriever.section_before), so a
procedure cut into several chunks is still quoted from its first step.

The whole answer stays within ``ANSWER_CHARS`` (one Discord message, 2,000
characters; a Slack section holds 3,000), so no platform ever splits it and a
quote is never separated from its ``[n]``. The best passage may use up to
``FIRST_SHARE`` of the room, the others share the rest evenly; room a quote
leaves unused passes to the next. Measured against Django's FAQ answers in
bench/extractive.py.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

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
# The whole extractive answer: Discord's message limit (bot.discord.render.MESSAGE_CHARS),
# under Slack's section limit (bot.slack.render.SECTION_CHARS), so it is never split.
ANSWER_CHARS = 2000
# Share of the room the best passage may take; the others divide what it leaves.
FIRST_SHARE = 0.5
# A quote is never given less room than this (a sentence and its citation line).
MIN_QUOTE_CHARS = 120
ELLIPSIS = "…"

# A sentence ends at . ! ? followed by space and something that starts a sentence, so
# "settings.py file" and "e.g. Redis" stay whole.
_SENTENCE = re.compile(
    r"(?<=[.!?])(?<!\be\.g\.)(?<!\bi\.e\.)(?<!\bcf\.)(?<!\bvs\.)\s+(?=[\"“'(\[*`]?[A-Z0-9])"
)
_LIST_MARKER = re.compile(r"^\s*(?:\d{1,3}[.)]|[-*•+])\s+")
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


@dataclass(frozen=True)
class _Unit:
    """A piece a quote is made of: a sentence, or a whole multi-line block."""

    text: str
    block: int  # index of its paragraph, list item or code block
    list_run: int  # index of the first block of the marked list it is in, else its block
    is_block_start: bool


def units(passage: str) -> list[_Unit]:
    """The passage as quotable units, in order."""
    blocks = [b.strip("\n") for b in re.split(r"\n\s*\n", passage) if b.strip()]
    found: list[_Unit] = []
    run = -1
    for i, block in enumerate(blocks):
        is_item = bool(_LIST_MARKER.match(block))
        run = run if is_item and run >= 0 and _LIST_MARKER.match(blocks[i - 1]) else i
        if "\n" in block:  # code, a table or a poem: its lines belong together
            found.append(_Unit(block, i, run, True))
            continue
        sentences = [s.strip() for s in _SENTENCE.split(block.strip()) if s.strip()]
        found += [_Unit(s, i, run, n == 0) for n, s in enumerate(sentences)]
    return found


def _joined(chosen: list[_Unit]) -> str:
    """Sentences of one block joined by a space, blocks by a line break."""
    text = ""
    for before, unit in zip([None, *chosen], chosen, strict=False):
        if before is not None:
            text += " " if before.block == unit.block else "\n"
        text += unit.text
    return text


def _cut(text: str, limit: int) -> str:
    """``text`` shortened to ``limit`` characters at a line (code) or word boundary."""
    if len(text) <= limit:
        return text
    room = limit - len(ELLIPSIS)
    for separator in ("\n", " "):
        cut = text.rfind(separator, 0, room + 1)
        if cut >= room // 2:
            return text[:cut].rstrip() + (f"\n{ELLIPSIS}" if separator == "\n" else ELLIPSIS)
    return text[:room] + ELLIPSIS


def quote(passage: str, query: str, limit: int = MAX_QUOTE_CHARS, *, before: str = "") -> str:
    """The passage cut to whole sentences (and whole blocks) around the one most like the
    query, within ``limit`` characters; "… " and " …" mark what was left out.

    ``before`` is the text of the passage's section that precedes it (the section's earlier
    chunks): the quote is taken from the section the citation names, so a procedure cut
    into two chunks is quoted from its first step."""
    before, passage = before.strip(), passage.strip()
    text = f"{before}\n\n{passage}" if before else passage
    if len(text) <= limit:
        return text
    parts = units(text)
    wanted = keywords(query)
    best = max(range(len(parts)), key=lambda i: (len(keywords(parts[i].text) & wanted), -i))
    hit = parts[best]
    first_of = {u.block: i for i, u in reversed(list(enumerate(parts)))}
    room = limit - 2 * len(f"{ELLIPSIS} ")  # what the marks of left-out text may take
    starts = (0, first_of[hit.list_run], first_of[hit.block])
    start = next((s for s in starts if len(_joined(parts[s : best + 1])) <= room), best)
    end = best
    while end + 1 < len(parts) and len(_joined(parts[start : end + 2])) <= room:
        end += 1
    if end + 1 == len(parts):  # the passage ended: give the rest of the room to what precedes
        while start > 0 and len(_joined(parts[start - 1 : end + 1])) <= room:
            start -= 1
    text = _joined(parts[start : end + 1])
    if len(text) > room:  # the hit alone is longer than the limit
        return _marked(_cut(text, room), start > 0, False)
    return _marked(text, start > 0, end + 1 < len(parts))


def _marked(text: str, cut_before: bool, cut_after: bool) -> str:
    prefix = f"{ELLIPSIS} " if cut_before else ""
    suffix = f" {ELLIPSIS}" if cut_after and not text.endswith(ELLIPSIS) else ""
    return f"{prefix}{text}{suffix}"


def quoted_block(n: int, heading: str, text: str) -> str:
    """``[n] heading`` and the quote under it, each line marked as quoted."""
    lines = text.splitlines()
    quoted = "\n".join(f"> {line}" if line.strip() else ">" for line in lines)
    return f"[{n}] {heading}\n{quoted}"


def _fitted_block(n: int, heading: str, passage: str, query: str, room: int, before: str) -> str:
    """The passage's quoted block in at most ``room`` characters (quote marks included)."""
    limit = max(MIN_QUOTE_CHARS, room - len(f"[{n}] {heading}\n"))
    while True:
        block = quoted_block(n, heading, quote(passage, query, limit, before=before))
        if len(block) <= room or limit <= MIN_QUOTE_CHARS:
            return block
        limit = max(MIN_QUOTE_CHARS, limit - (len(block) - room))


def compose(
    query: str,
    passages: list[ScoredChunk],
    headings: list[str],
    label: str = LABEL,
    *,
    max_chars: int = ANSWER_CHARS,
    first_share: float = FIRST_SHARE,
    before: list[str] | None = None,
) -> str:
    """The answer text: a label, then each passage as a numbered quote under its heading,
    all within ``max_chars`` (when that leaves each quote ``MIN_QUOTE_CHARS``). ``before``
    holds, for each passage, the text of its section that precedes it (see ``quote``)."""
    parts = [label]
    room = max_chars - len(label)
    pairs = list(zip(passages, headings, before or [""] * len(passages), strict=True))
    for n, (passage, heading, earlier) in enumerate(pairs, start=1):
        room -= 2  # the blank line before this block
        left = len(pairs) - n + 1
        share = max(room * first_share, room / left) if n == 1 else room / left
        block = _fitted_block(n, heading, passage.text, query, int(share), earlier)
        parts.append(block)
        room -= len(block)
    return "\n\n".join(parts)
