"""Feedback on Slack: the 👍 / 👎 buttons, and the optional "what was wrong?" modal a 👎 opens.

A click is stored at once (bot.feedback). A 👎 then opens a modal (``views.open`` with the
click's ``trigger_id``, which Slack honours for 3 s) whose ``private_metadata`` is the answer's
turn id. Its submission (``view_submission``, callback id ``REASON_CALLBACK``) stores the reason
with the voter's 👎 and is acknowledged with an empty body, which closes the modal; closing it
instead loses nothing but the reason. When the modal cannot open, the voter gets the ephemeral
thanks a 👍 gets. HTTP and Socket Mode deliver clicks and submissions through the same bolt
dispatch, so both work alike.
"""

from __future__ import annotations

import logging
from typing import Any

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker

from bot.feedback import (
    MAX_REASON_CHARS,
    NOT_NOW,
    REASON_KIND_LABEL,
    REASON_NOT_NOW,
    REASON_TEXT_LABEL,
    REASON_TITLE,
    REASONS,
    feedback_reply,
    reason_text,
    record_feedback,
    record_reason,
)
from bot.slack.render import FEEDBACK_UP

log = logging.getLogger(__name__)

REASON_CALLBACK = "teambot_feedback_reason"
KIND_BLOCK, KIND_ACTION = "teambot_reason_kind", "kind"
TEXT_BLOCK, TEXT_ACTION = "teambot_reason_text", "text"


def reason_modal(turn_id: int) -> dict[str, Any]:
    """The modal a 👎 opens: a choice and a few words, both optional."""
    options = [{"text": _plain(label), "value": value} for value, label in REASONS.items()]
    return {
        "type": "modal",
        "callback_id": REASON_CALLBACK,
        "private_metadata": str(turn_id),
        "title": _plain(REASON_TITLE),
        "submit": _plain("Send"),
        "close": _plain("Skip"),
        "blocks": [
            {"type": "context", "elements": [
                {"type": "mrkdwn", "text": "Your 👎 is recorded. Saying why is optional."}]},
            {"type": "input", "block_id": KIND_BLOCK, "optional": True,
             "label": _plain(REASON_KIND_LABEL),
             "element": {"type": "static_select", "action_id": KIND_ACTION,
                         "placeholder": _plain("Choose one"), "options": options}},
            {"type": "input", "block_id": TEXT_BLOCK, "optional": True,
             "label": _plain(REASON_TEXT_LABEL),
             "element": {"type": "plain_text_input", "action_id": TEXT_ACTION,
                         "multiline": True, "max_length": MAX_REASON_CHARS}},
        ],
    }  # fmt: skip


def submitted_reason(view: dict[str, Any]) -> tuple[int | None, str | None]:
    """(turn id, reason as stored) of a submitted modal; None for a turn id that is not one
    (forged) and for a reason left blank."""
    metadata = view.get("private_metadata")
    turn = int(metadata) if isinstance(metadata, str) and metadata.isdigit() else None
    values = _dict(_dict(view.get("state")).get("values"))
    kind = _dict(_dict(_dict(values.get(KIND_BLOCK)).get(KIND_ACTION)).get("selected_option"))
    text = _dict(_dict(values.get(TEXT_BLOCK)).get(TEXT_ACTION)).get("value")
    choice = kind.get("value")
    return turn, reason_text(choice if isinstance(choice, str) else None,
                             text if isinstance(text, str) else None)  # fmt: skip


class FeedbackListeners:
    """bolt listeners for the buttons (``on_vote``) and the modal (``on_reason``)."""

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self.sessions = sessions

    def on_vote(self, ack: Any, body: dict[str, Any], action: dict[str, Any],
                client: WebClient) -> None:  # fmt: skip
        ack()
        user = body["user"]["id"]
        value = 1 if action["action_id"] == FEEDBACK_UP else -1
        try:
            turn = int(action["value"])
            stored = record_feedback(self.sessions, turn, user, value)
        except ValueError:
            stored = False
        except DBAPIError as exc:
            log.error("cannot record feedback on answer %s: %s", action.get("value"), exc)
            self._tell(client, body, NOT_NOW)
            return
        if stored and value < 0 and self._open_reason(client, body, turn):
            return
        self._tell(client, body, feedback_reply(stored))

    def on_reason(self, ack: Any, body: dict[str, Any], view: dict[str, Any]) -> None:
        """Store the reason with the submitter's 👎, then close the modal (an empty ack); when
        the database is away, the modal stays open saying so."""
        turn, reason = submitted_reason(view)
        if turn is None or reason is None:
            ack()
            return
        try:
            if not record_reason(self.sessions, turn, body["user"]["id"], reason):
                log.info("a reason for answer %s without a standing 👎: not stored", turn)
        except DBAPIError as exc:
            log.error("cannot record the reason for answer %s: %s", turn, exc)
            ack(response_action="errors", errors={TEXT_BLOCK: REASON_NOT_NOW})
            return
        ack()

    def _open_reason(self, client: WebClient, body: dict[str, Any], turn: int) -> bool:
        trigger = body.get("trigger_id")
        if not isinstance(trigger, str):
            return False
        try:
            client.views_open(trigger_id=trigger, view=reason_modal(turn))
        except SlackApiError as exc:  # an expired trigger, most likely: thank them instead
            log.info("cannot open the reason modal: %s", exc.response.get("error"))
            return False
        return True

    def _tell(self, client: WebClient, body: dict[str, Any], text: str) -> None:
        channel = _dict(body.get("channel")).get("id")
        if channel:
            client.chat_postEphemeral(channel=channel, user=body["user"]["id"], text=text)


def _plain(text: str) -> dict[str, Any]:
    return {"type": "plain_text", "text": text, "emoji": True}


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}
