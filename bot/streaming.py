"""Show an answer growing in a chat message without breaking the platform's edit limits.

Adapters edit one message as the text arrives. Chat APIs limit edits (Slack's
chat.update, Discord's message edits), so ``relay`` edits at most once per
``interval`` seconds, keeps the text shown within one message (the newest
``max_chars``), withdraws the partial text when the core restarts the answer
with another model, and returns the final ``Answer`` for the adapter to render
properly. The notices such a message may show instead of the answer are here too, so every
platform says them alike (``_italics_`` read the same in Slack and Discord).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable

from bot.types import Answer, AnswerEvent, Delta, Restart

TYPING_MARK = " …"
RESTART_NOTICE = "_(The model stopped mid-answer; asking another one…)_"
# The answer waits for teambot's database to come back; the same message gets the answer.
STILL_WORKING = "_Still working on it: teambot's database is briefly unavailable…_"
# The database did not come back in time: nothing was answered or stored.
DATABASE_DOWN = (
    "teambot's database is unavailable right now, so I could not do this. "
    "Please try again in a minute; if it keeps failing, tell whoever runs teambot."
)


def relay(
    events: Iterable[AnswerEvent],
    edit: Callable[[str], None],
    *,
    interval: float,
    max_chars: int,
    clock: Callable[[], float] = time.monotonic,
) -> Answer:
    """Feed ``edit`` the text so far (throttled, at most ``max_chars``) and return the
    final Answer."""
    text = ""
    last_edit = float("-inf")
    for event in events:
        if isinstance(event, Delta):
            text += event.text
            if clock() - last_edit >= interval:
                shown = text + TYPING_MARK
                edit(shown if len(shown) <= max_chars else "…" + shown[-(max_chars - 1) :])
                last_edit = clock()
        elif isinstance(event, Restart):
            text = ""
            edit(RESTART_NOTICE)
            last_edit = clock()
        else:
            return event
    raise RuntimeError("the answer stream ended without an Answer")
