"""'Teach teambot' on Slack: the message shortcut, the offer to a person who answered in a
thread where teambot abstained or got 👎, and the edits and deletions that follow a saved
answer.

- The shortcut (``message_action``, callback ``teach_teambot``) on a reply in a thread saves
  that reply as the answer to the thread's question: the question teambot recorded for the
  thread, else the thread's first message. The confirmation goes to the person who used it
  only (the payload's ``response_url``).
- The offer: one ephemeral line with a button, to a person who answered after teambot
  abstained or got 👎 there (bot.teaching), if they may teach in that channel.
- ``message_changed`` and ``message_deleted`` of a taught message change or remove its answer.

Who may teach, and the audit, are bot.admin.answers; storing and indexing is
knowledge.ingest.answers.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from sqlalchemy.exc import DBAPIError

from bot import teaching
from bot.admin import Actor
from bot.admin.answers import may_teach, teach
from bot.chat_deps import ChatDeps
from bot.errors import user_message
from bot.slack.text import plain_text
from knowledge.ingest.answers import AnswerSpec, change_answer_text, remove_message_answer

log = logging.getLogger(__name__)

PLATFORM = "slack"
TEACH_SHORTCUT = "teach_teambot"
TEACH_OFFER = "teambot_teach_offer"
OFFER_TEXT = "Teach teambot this answer? It will cite you when someone asks this again."
NOT_A_REPLY = (
    "Use Teach teambot on a reply in a thread: the thread's first message is the question, "
    "the reply you pick is its answer."
)
OWN_ANSWER = "That is teambot's own answer; teach it a teammate's reply instead."
NO_TEXT = "That message has no text to save."
GONE = "That message is gone, so there is nothing to save."


@dataclass(frozen=True)
class Place:
    name: str | None
    is_private: bool


class SlackTeacher:
    """The listeners of teaching; each runs after bolt acknowledged the payload."""

    def __init__(self, runtime: ChatDeps) -> None:
        self.runtime = runtime

    def on_shortcut(self, ack: Any, body: dict[str, Any], client: WebClient, respond: Any,
                    context: Any) -> None:  # fmt: skip
        ack()
        channel = body["channel"]
        reply = self._teach(client, body["user"]["id"], channel["id"], channel.get("name"),
                            body["message"], context.bot_user_id)  # fmt: skip
        respond(text=reply, response_type="ephemeral")

    def on_offer(self, ack: Any, body: dict[str, Any], action: dict[str, Any], client: WebClient,
                 respond: Any, context: Any) -> None:  # fmt: skip
        """The offer's button: save the message it names (read back from the thread)."""
        ack()
        channel = body.get("channel") or {}
        try:
            ref = json.loads(action["value"])
            message = self._message(client, channel["id"], ref["thread"], ref["ts"])
        except (ValueError, KeyError, TypeError):
            message = None
        reply = GONE if message is None else self._teach(
            client, body["user"]["id"], channel["id"], channel.get("name"), message,
            context.bot_user_id,
        )  # fmt: skip
        respond(text=reply, response_type="ephemeral", replace_original=True)

    def offer(self, client: WebClient, channel: str, thread: str, user: str, ts: str) -> None:
        """Offer ``user``, who just answered in ``thread``, to teach teambot that answer."""
        try:
            if not teaching.should_offer(self.runtime.sessions, PLATFORM, channel, thread, user):
                return
            if not may_teach(self.runtime, Actor(PLATFORM, user), PLATFORM, channel):
                return
        except DBAPIError as exc:  # an offer is not worth failing the event
            log.warning("cannot decide on a teach offer in %s: %s", thread, exc)
            return
        button = {"type": "button", "action_id": TEACH_OFFER,
                  "text": {"type": "plain_text", "text": "Teach teambot"},
                  "value": json.dumps({"ts": ts, "thread": thread})}  # fmt: skip
        block = {"type": "section", "text": {"type": "mrkdwn", "text": OFFER_TEXT},
                 "accessory": button}  # fmt: skip
        try:
            client.chat_postEphemeral(channel=channel, user=user, thread_ts=thread,
                                      text=OFFER_TEXT, blocks=[block])  # fmt: skip
        except SlackApiError as exc:
            log.info("cannot offer teaching to %s in %s: %s", user, channel, exc)

    def on_message_changed(self, event: dict[str, Any]) -> None:
        message = event.get("message") or {}
        ts, channel = message.get("ts"), event.get("channel")
        if not ts or not channel or message.get("bot_id"):
            return  # teambot's own streamed edits, among others
        if message.get("subtype") == "tombstone":  # deleted, its thread kept
            remove_message_answer(self.runtime.sessions, PLATFORM, channel, ts)
            return
        change_answer_text(self.runtime.sessions, self.runtime.embedder, PLATFORM, channel, ts,
                           plain_text(message.get("text", "")))  # fmt: skip

    def on_message_deleted(self, event: dict[str, Any]) -> None:
        ts, channel = event.get("deleted_ts"), event.get("channel")
        if ts and channel:
            remove_message_answer(self.runtime.sessions, PLATFORM, channel, ts)

    def _teach(self, client: WebClient, user: str, channel: str, channel_name: str | None,
               message: dict[str, Any], bot_user: str | None) -> str:  # fmt: skip
        """Save ``message`` as the answer to its thread's question for ``user``; the reply."""
        ts, thread = message.get("ts", ""), message.get("thread_ts")
        if not thread or thread == ts:
            return NOT_A_REPLY
        if message.get("bot_id") or (bot_user and message.get("user") == bot_user):
            return OWN_ANSWER
        text = plain_text(message.get("text", ""), bot_user)
        if not text:
            return NO_TEXT
        try:
            question = teaching.recorded_question(self.runtime.sessions, PLATFORM, channel, thread)
            question = question or self._parent_text(client, channel, thread, bot_user)
            if not question:
                return GONE
            author, place = message.get("user", ""), self._place(client, channel, channel_name)
            spec = AnswerSpec(question=question, answer=text, author=author, platform=PLATFORM,
                              channel=channel, saved_by=f"{PLATFORM}:{user}",
                              author_name=self._name(client, author), channel_name=place.name,
                              is_private=place.is_private,
                              permalink=self._permalink(client, channel, ts), message_ref=ts,
                              thread=thread)  # fmt: skip
            return teach(self.runtime, Actor(PLATFORM, user), spec).text
        except Exception as exc:
            log.exception("teaching from %s in %s failed", ts, channel)
            return user_message(exc)

    def _message(self, client: WebClient, channel: str, thread: str, ts: str) -> dict | None:
        replies = client.conversations_replies(channel=channel, ts=thread, limit=200)
        return next((m for m in replies.get("messages", []) if m.get("ts") == ts), None)

    def _parent_text(self, client: WebClient, channel: str, thread: str,
                     bot_user: str | None) -> str:  # fmt: skip
        try:
            replies = client.conversations_replies(channel=channel, ts=thread, limit=1)
        except SlackApiError as exc:
            log.warning("cannot read thread %s in %s: %s", thread, channel, exc)
            return ""
        messages = replies.get("messages", [])
        return plain_text(messages[0].get("text", ""), bot_user) if messages else ""

    def _place(self, client: WebClient, channel: str, name: str | None) -> Place:
        """How a credit names the channel, and whether it is private: private channels, DMs
        and group DMs are, and so is a channel Slack will not describe."""
        try:
            info = client.conversations_info(channel=channel)["channel"]
        except (SlackApiError, KeyError) as exc:
            log.warning("cannot tell whether %s is private (taken as private): %s", channel, exc)
            return Place(f"#{name}" if name else None, True)
        if info.get("is_im") or info.get("is_mpim"):
            return Place("a direct message", True)
        return Place(f"#{info.get('name') or name or channel}", bool(info.get("is_private")))

    def _permalink(self, client: WebClient, channel: str, ts: str) -> str | None:
        try:
            return client.chat_getPermalink(channel=channel, message_ts=ts).get("permalink")
        except SlackApiError as exc:
            log.info("no permalink for %s in %s: %s", ts, channel, exc)
            return None

    def _name(self, client: WebClient, user: str) -> str | None:
        try:
            found = client.users_info(user=user)["user"]
        except (SlackApiError, KeyError) as exc:
            log.info("cannot read the name of %s: %s", user, exc)
            return None
        profile = found.get("profile") or {}
        return profile.get("display_name") or found.get("name") or None
