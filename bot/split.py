"""Cut a long answer into chat-message-sized pieces that each read well on their own.

Chat platforms cap a message (Discord 2,000 characters, a Slack section 3,000):
pieces are cut at a paragraph, else a line, else a word boundary, never inside
a word; a cut inside a fenced code block closes the fence at the end of the
piece and reopens it (with its language) at the start of the next, so code
still renders as code on both sides.
"""

from __future__ import annotations

import re

FENCE = "```"
_FENCE_LINE = re.compile(r"^```(\S*)", re.MULTILINE)


def split_message(text: str, limit: int) -> list[str]:
    """``text`` in pieces of at most ``limit`` characters (``limit`` must leave room for a
    closing and an opening fence, i.e. be well above 2 × len("```lang\\n"))."""
    pieces: list[str] = []
    opening = ""  # the fence line that the current piece must start with, if inside code
    while True:
        text = opening + text if opening else text
        if len(text) <= limit:
            pieces.append(text)
            return [p for p in pieces if p.strip()]
        cut = _cut_point(text, limit - len(FENCE) - 1)  # room to close a fence
        piece, text = text[:cut].rstrip(), text[cut:].lstrip("\n ")
        language = _open_fence(piece)
        if language is not None:
            piece += "\n" + FENCE
            opening = f"{FENCE}{language}\n"
        else:
            opening = ""
        pieces.append(piece)


def _cut_point(text: str, limit: int) -> int:
    """The best place to cut ``text`` at or before ``limit``."""
    for separator in ("\n\n", "\n", " "):
        cut = text.rfind(separator, 0, limit)
        if cut >= limit // 2:
            return cut
    return limit  # one enormous word: cut it, there is no better place


def _open_fence(piece: str) -> str | None:
    """The language of a code block left open at the end of ``piece`` ("" for none), or
    None when every fence is closed."""
    fences = _FENCE_LINE.findall(piece)
    return fences[-1] if len(fences) % 2 else None
