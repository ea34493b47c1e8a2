"""An Answer as Slack messages: mrkdwn text in section blocks, linked sources, feedback buttons.

Slack caps a section block's text at 3,000 characters, a message at 50 blocks
and its text at 40,000 characters; a longer answer becomes several messages in
the same thread, the sources and buttons under the last one.
"""

from __future__ import annotations

import re
from typing import Any

from bot.render import citation_url, confidence_note, listed_pages
from bot.split import split_message
from bot.types import Answer, Citation

SECTION_CHARS = 3000
MESSAGE_CHARS = 39_000  # under the 40,000 limit, with room for the fallback text's extras
BLOCKS_PER_MESSAGE = 45  # under 50, leaving room for the sources and the buttons
FEEDBACK_UP = "teambot_feedback_up"
FEEDBACK_DOWN = "teambot_feedback_down"

_BOLD = re.compile(r"\*\*(.+?)\*\*")
_LINK = re.compile(r"\[([^\]]+)\]\((https?://[^)\s]+)\)")
_HEADING = re.compile(r"^#{1,6}\s+(.+)$", re.MULTILINE)


def mrkdwn(text: str) -> str:
    """Markdown as models write it → Slack mrkdwn (bold, links, headings). ``&``, ``<`` and
    ``>`` are escaped first: a ``<!channel>`` a model repeats is shown, not a ping."""
    text = _LINK.sub(r"<\2|\1>", escape(text))
    text = _BOLD.sub(r"*\1*", text)
    return _HEADING.sub(r"*\1*", text)


def answer_messages(answer: Answer) -> list[tuple[str, list[dict[str, Any]]]]:
    """(fallback text, blocks) for each message the answer needs, in order."""
    pieces = split_message(mrkdwn(answer.text), SECTION_CHARS)
    messages: list[tuple[str, list[dict[str, Any]]]] = []
    text, blocks = "", []
    for piece in pieces:
        if blocks and (len(text) + len(piece) > MESSAGE_CHARS or len(blocks) == BLOCKS_PER_MESSAGE):
            messages.append((text, blocks))
            text, blocks = "", []
        text += piece
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": piece}})
    messages.append((text, blocks))
    last_blocks = messages[-1][1]
    title, pages = listed_pages(answer)
    if pages:
        last_blocks.append(sources_block(pages, None if title == "Sources" else title))
    note = confidence_note(answer)
    if note:
        last_blocks.append(
            {"type": "context", "elements": [{"type": "mrkdwn", "text": f"_{escape(note)}_"}]}
        )
    if answer.turn_id is not None:
        last_blocks.append(feedback_block(answer.turn_id))
    return messages


def sources_block(citations: list[Citation], title: str | None = None) -> dict[str, Any]:
    """The numbered pages as links, under ``title`` when one is given ("Might help")."""
    lines = ([f"*{title}:*"] if title else []) + [f"[{c.n}] {_link(c)}" for c in citations]
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": "\n".join(lines)}]}


def feedback_block(turn_id: int) -> dict[str, Any]:
    """👍 / 👎 buttons; the value is the stored answer's id, checked when a click arrives."""

    def button(action: str, emoji: str, label: str) -> dict[str, Any]:
        return {
            "type": "button",
            "action_id": action,
            "value": str(turn_id),
            "text": {"type": "plain_text", "text": emoji, "emoji": True},
            "accessibility_label": label,
        }

    return {
        "type": "actions",
        "block_id": f"teambot_feedback_{turn_id}",
        "elements": [
            button(FEEDBACK_UP, "👍", "This answer helped"),
            button(FEEDBACK_DOWN, "👎", "This answer did not help"),
        ],
    }


def _link(citation: Citation) -> str:
    label, url = escape(citation.label), citation_url(citation)
    return f"<{url}|{label}>" if url is not None else f"{label} — `{citation.location}`"


def escape(text: str) -> str:
    """``text`` as Slack wants it posted: its three control characters escaped."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
