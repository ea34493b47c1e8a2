"""An Answer as Discord messages: Markdown content within 2,000 characters, the sources as links
in an embed and 👍 / 👎 buttons, under the last piece of a long answer.

Discord caps a message's content at 2,000 characters and an embed's description
at 4,096; a longer answer is split (bot.split) into further messages. The
buttons' custom ids carry the stored answer's id, so a click still counts after
a restart. The wording shared with Slack (progress notices, feedback replies)
lives in bot.streaming and bot.feedback.
"""

from __future__ import annotations

from typing import Any

import discord
from sqlalchemy.exc import DBAPIError

from bot.errors import user_message
from bot.render import citation_url, confidence_note, listed_pages
from bot.split import split_message
from bot.streaming import DATABASE_DOWN
from bot.types import Answer, Citation

MESSAGE_CHARS = 2000
EMBED_CHARS = 4000  # under the 4,096 of an embed's description
FEEDBACK_PREFIX = "teambot:feedback:"
THINKING = "*Thinking…*"


def answer_messages(answer: Answer) -> list[tuple[str, dict[str, Any]]]:
    """(content, further message fields) for each message the answer needs, in order: the
    sources embed and the feedback buttons go with the last."""
    title, pages = listed_pages(answer)
    embed = sources_embed(pages, title)
    note = confidence_note(answer)
    # With no embed to carry it, the note is Discord's small text under the answer, so the
    # last piece keeps room for it.
    subtext = f"\n-# {note}" if note and embed is None else ""
    pieces = split_message(answer.text, MESSAGE_CHARS - len(subtext))
    if embed is not None and note:
        embed.set_footer(text=note)
    messages: list[tuple[str, dict[str, Any]]] = [(piece, {}) for piece in pieces[:-1]]
    messages.append((pieces[-1] + subtext, {"embed": embed, "view": feedback_view(answer)}))
    return messages


def sources_embed(citations: list[Citation], title: str = "Sources") -> discord.Embed | None:
    """The numbered pages as links, in one embed under ``title`` (None when there are none)."""
    if not citations:
        return None
    lines = []
    for c in citations:
        url = citation_url(c)
        lines.append(f"[{c.n}] [{c.label}]({url})" if url is not None
                     else f"[{c.n}] {c.label} — `{c.location}`")  # fmt: skip
    return discord.Embed(title=title, description="\n".join(lines)[:EMBED_CHARS])


def feedback_view(answer: Answer) -> discord.ui.View | None:
    """👍 / 👎 buttons whose ids carry the stored answer's id (None if it was not stored)."""
    if answer.turn_id is None:
        return None
    view = discord.ui.View(timeout=None)
    for vote, emoji in (("up", "👍"), ("down", "👎")):
        view.add_item(
            discord.ui.Button(
                emoji=emoji,
                style=discord.ButtonStyle.secondary,
                custom_id=f"{FEEDBACK_PREFIX}{vote}:{answer.turn_id}",
            )
        )
    return view


def feedback_vote(custom_id: str) -> tuple[int | None, int] | None:
    """(turn id, +1 or -1) of one of our feedback buttons, the turn id None when the id is
    malformed (forged: there is no answer to vote on); None for any other component."""
    if not custom_id.startswith(FEEDBACK_PREFIX):
        return None
    vote, _, turn = custom_id.removeprefix(FEEDBACK_PREFIX).partition(":")
    return (int(turn) if turn.isdigit() else None), (1 if vote == "up" else -1)


def admin_messages(text: str) -> list[str]:
    """An admin command's output as code blocks of at most one message each."""
    return split_message(f"```\n{text}\n```", MESSAGE_CHARS)


def failure_text(exc: Exception) -> str:
    """What the asker is told when ``exc`` ended the work: an unreachable database says to try
    again (nothing was stored), anything else as bot.errors words it."""
    return DATABASE_DOWN if isinstance(exc, DBAPIError) else user_message(exc)
