"""What the votes say, for ``admin stats``: satisfaction per channel (the 👍 share of votes),
the pages most often cited in answers that got a 👎, and the latest reasons voters gave.

Votes are counted as they stand (one per person and answer, the latest wins) when cast within
the window; a page counts once per answer, however many 👎 that answer got.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.admin.text import columns
from bot.audience import Audience
from bot.feedback import one_line
from knowledge.storage.conversations import Conversation, Feedback, Turn

CHANNELS_LISTED = 10
PAGES_LISTED = 5
REASONS_LISTED = 5
REASON_CHARS = 100  # a reason as listed (stored ones keep up to bot.feedback.MAX_REASON_CHARS)


@dataclass(frozen=True)
class Vote:
    """A vote as stats read it: where the answer was, and what it cited."""

    turn_id: int
    where: str  # platform:channel, or platform:private when its audience may not read it
    value: int
    comment: str | None  # None too when its audience may not read it
    citations: list[dict[str, Any]]


def read_votes(session: Session, since: datetime, audience: Audience) -> list[Vote]:
    """The votes cast since ``since``, oldest first, as ``audience`` may read them."""
    rows = session.execute(
        select(Feedback.turn_id, Conversation.platform, Conversation.channel,
               Conversation.is_private, Feedback.value, Feedback.comment, Turn.citations)
        .join(Turn, Turn.id == Feedback.turn_id)
        .join(Conversation, Conversation.id == Turn.conversation_id)
        .where(Feedback.created_at >= since)
        .order_by(Feedback.created_at, Feedback.id)
    ).all()  # fmt: skip
    return [_vote(r, audience) for r in rows]


def _vote(row: Any, audience: Audience) -> Vote:
    readable = audience.may_read(row.platform, row.channel, row.is_private)
    comment = row.comment if readable else None
    where = audience.place(row.platform, row.channel, row.is_private)
    return Vote(row.turn_id, where, row.value, comment, row.citations or [])


def feedback_lines(votes: list[Vote]) -> list[str]:
    """The three listings, each left out when it has nothing to show."""
    return _satisfaction(votes) + _downvoted_pages(votes) + _reasons(votes)


def _satisfaction(votes: list[Vote]) -> list[str]:
    up, total = Counter[str](), Counter[str]()
    for vote in votes:
        total[vote.where] += 1
        up[vote.where] += vote.value > 0
    if not total:
        return []
    ranked = sorted(total, key=lambda where: (-total[where], where))
    rows = [(where, f"{up[where] / total[where]:.0%}", f"👍 {up[where]}",
             f"👎 {total[where] - up[where]}") for where in ranked[:CHANNELS_LISTED]]  # fmt: skip
    lines = ["Satisfaction by channel (👍 share of votes):", columns(rows)]
    if len(ranked) > CHANNELS_LISTED:
        lines.append(f"  … and {len(ranked) - CHANNELS_LISTED} more channels")
    return lines


def _downvoted_pages(votes: list[Vote]) -> list[str]:
    """Each page (its url, else its title) once per 👎 answer that cited it."""
    cited: dict[int, dict[str, str]] = {}
    for vote in votes:
        if vote.value < 0:
            cited[vote.turn_id] = {_page_key(c): _shown(str(c.get("title") or ""))
                                   for c in vote.citations if _page_key(c)}  # fmt: skip
    counts = Counter(key for pages in cited.values() for key in pages)
    if not counts:
        return []
    titles = {key: title for pages in cited.values() for key, title in pages.items()}
    ranked = sorted(counts, key=lambda key: (-counts[key], key))[:PAGES_LISTED]
    rows = [(str(counts[key]), titles[key] or "(untitled)", key) for key in ranked]
    return ["Pages most often cited in 👎 answers:", columns(rows)]


def _reasons(votes: list[Vote]) -> list[str]:
    given = [v for v in votes if v.value < 0 and v.comment]
    if not given:
        return []
    rows = [(v.where, _shown(v.comment or "")) for v in reversed(given[-REASONS_LISTED:])]
    return ["Latest 👎 reasons:", columns(rows)]


def _page_key(citation: dict[str, Any]) -> str:
    return _shown(str(citation.get("url") or citation.get("title") or ""))


def _shown(text: str) -> str:
    """Someone else's words in an admin's listing: one line, short, and no backtick that could
    end the code block chat shows it in."""
    flat = one_line(text).replace("`", "'")
    return flat if len(flat) <= REASON_CHARS else flat[: REASON_CHARS - 1] + "…"
