"""Feedback on Discord: the 👍 / 👎 buttons, and the optional "what was wrong?" modal a 👎 opens.

A click is stored at once (bot.feedback). A 👍 is thanked with an ephemeral message; a 👎 is
answered with a modal (interaction callback type 9) whose custom id carries the answer's turn
id, as the buttons' ids do, so its submission (a MODAL_SUBMIT interaction) is understood after a
restart or by another replica: discord.py is not asked to keep the modal. The submission stores
the reason with the voter's 👎 and is thanked ephemerally, in words that never repeat it.
Dismissing the modal loses nothing but the reason. Discord wants any reply within 3 s, so
when the database is away the voter is told to try again.
"""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import Executor
from typing import Any

import discord
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker

from bot.discord.render import feedback_vote
from bot.feedback import (
    MAX_REASON_CHARS,
    NOT_NOW,
    REASON_GONE,
    REASON_KIND_LABEL,
    REASON_NOT_NOW,
    REASON_RECORDED,
    REASON_TEXT_LABEL,
    REASON_TITLE,
    REASONS,
    RECORDED,
    feedback_reply,
    reason_text,
    record_feedback,
    record_reason,
)

log = logging.getLogger(__name__)

REASON_PREFIX = "teambot:reason:"
KIND_INPUT, TEXT_INPUT = "kind", "text"
RECORDED_NOTE = "Your 👎 is recorded. Saying why is optional."


def reason_modal(turn_id: int) -> discord.ui.Modal:
    """The modal a 👎 opens: a choice and a few words, both optional. Call it on the event loop:
    it is stopped at once, so discord.py does not keep it (the client's on_interaction reads
    its submission)."""
    modal = discord.ui.Modal(title=REASON_TITLE, custom_id=f"{REASON_PREFIX}{turn_id}")
    options = [discord.SelectOption(label=label, value=value) for value, label in REASONS.items()]
    kind = discord.ui.Select(custom_id=KIND_INPUT, placeholder="Choose one", options=options,
                             required=False)  # fmt: skip
    text = discord.ui.TextInput(custom_id=TEXT_INPUT, style=discord.TextStyle.paragraph,
                                required=False, max_length=MAX_REASON_CHARS)  # fmt: skip
    modal.add_item(discord.ui.Label(text=REASON_KIND_LABEL, description=RECORDED_NOTE,
                                    component=kind))  # fmt: skip
    modal.add_item(discord.ui.Label(text=REASON_TEXT_LABEL, component=text))
    modal.stop()
    return modal


def submitted_reason(data: dict[str, Any]) -> tuple[int | None, str | None]:
    """(turn id, reason as stored) of a MODAL_SUBMIT's data; the turn id None when the custom id
    is not one of ours, the reason None when left blank."""
    turn = str(data.get("custom_id", "")).removeprefix(REASON_PREFIX)
    answers = _answers(data.get("components"))
    return (int(turn) if turn.isdigit() else None), reason_text(
        answers.get(KIND_INPUT), answers.get(TEXT_INPUT)
    )


def is_reason(interaction: discord.Interaction) -> bool:
    """A submission of the reason modal."""
    custom_id = (interaction.data or {}).get("custom_id", "")
    return interaction.type is discord.InteractionType.modal_submit and str(custom_id).startswith(
        REASON_PREFIX
    )


class FeedbackInteractions:
    """Answers feedback clicks and reason submissions; the database work runs on ``workers``."""

    def __init__(self, sessions: sessionmaker[Session], workers: Executor) -> None:
        self.sessions = sessions
        self.workers = workers

    async def on_interaction(self, interaction: discord.Interaction) -> bool:
        """Answer ``interaction`` if it is feedback; False when it is not."""
        if is_reason(interaction):
            await self._reason(interaction)
            return True
        if interaction.type is not discord.InteractionType.component:
            return False
        vote = feedback_vote((interaction.data or {}).get("custom_id", ""))
        if vote is None:
            return False
        await self._vote(interaction, *vote)
        return True

    async def _vote(self, interaction: discord.Interaction, turn: int | None, value: int) -> None:
        try:
            stored = turn is not None and await self._run(
                record_feedback, self.sessions, turn, str(interaction.user.id), value
            )
            reply = feedback_reply(stored)
        except DBAPIError as exc:
            log.error("cannot record feedback on answer %s: %s", turn, exc)
            stored, reply = False, NOT_NOW
        if stored and turn is not None and value < 0:
            await interaction.response.send_modal(reason_modal(turn))
            return
        await interaction.response.send_message(reply, ephemeral=True)

    async def _reason(self, interaction: discord.Interaction) -> None:
        turn, reason = submitted_reason(interaction.data or {})  # type: ignore[arg-type]
        reply = RECORDED
        if turn is not None and reason is not None:
            try:
                kept = await self._run(record_reason, self.sessions, turn,
                                       str(interaction.user.id), reason)  # fmt: skip
                reply = REASON_RECORDED if kept else REASON_GONE
            except DBAPIError as exc:
                log.error("cannot record the reason for answer %s: %s", turn, exc)
                reply = REASON_NOT_NOW
        await interaction.response.send_message(reply, ephemeral=True)

    async def _run(self, function: Any, *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self.workers, function, *args)


def _answers(components: Any) -> dict[str, str]:
    """custom id → value of a submitted modal's inputs (a select's first value), whether they
    come in action rows (type 1) or labels (type 18)."""
    found: dict[str, str] = {}
    stack = list(components) if isinstance(components, list) else []
    while stack:
        item = stack.pop()
        if not isinstance(item, dict):
            continue
        children, child = item.get("components"), item.get("component")
        stack += children if isinstance(children, list) else []
        stack += [child] if isinstance(child, dict) else []
        custom_id, value, values = item.get("custom_id"), item.get("value"), item.get("values")
        if isinstance(values, list) and values and isinstance(values[0], str):
            value = values[0]
        if isinstance(custom_id, str) and isinstance(value, str):
            found[custom_id] = value
    return found
