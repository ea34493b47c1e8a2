"""The Slack adapter: slack-bolt listeners that turn Slack events into Questions, and Answers
into threaded, streamed, cited Slack messages with feedback buttons.

It only translates; the conversation core answers. An event that may need an
answer is claimed in SQL (bot.delivery.inbox) before it is acknowledged, so retries and
other replicas never answer twice, and a replica that dies after the ack leaves
it for another to answer; the answer runs on a worker thread after the ack.
Where teambot answers:

- ``app_mention``: in the thread of the mentioning message;
- a reply in a thread teambot answered (no mention needed; SLACK_FOLLOW_THREADS);
  such a reply by someone other than the asker that is not a question is also recorded
  as a gap: a person answered after teambot (bot.gaps);
- a direct message: in the DM;
- ``/ask QUESTION``: in the channel (or only to the asker: SLACK_ASK_VISIBILITY).

"Teach teambot" (the message shortcut, the offer after a person answered, edits and
deletions of a taught message) is bot.slack.teach.

``@teambot admin …`` and ``/teambot admin …`` run the admin commands (bot.admin); the 👍 / 👎
buttons and the "what was wrong?" modal are bot.slack.feedback.
Before any of that, bot.slack.gates drops what is not for us (other workspaces and apps,
bots, incomplete payloads) and bot.slack.text decodes Slack's formatting of what is.
"""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from slack_bolt import App, BoltResponse
from slack_bolt.request import BoltRequest
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_handlers import RateLimitErrorRetryHandler
from slack_sdk.signature import SignatureVerifier
from sqlalchemy import select
from sqlalchemy.exc import DBAPIError

from bot import gaps
from bot.admin import Actor, ReplyTarget, run_admin
from bot.audience import Audience
from bot.channels import channel_prefs
from bot.chat_deps import ChatDeps
from bot.errors import user_message
from bot.slack import gates, render
from bot.slack.feedback import REASON_CALLBACK, FeedbackListeners
from bot.slack.history import HistoryEvents
from bot.slack.identity import RATE_LIMIT_RETRIES, identify, start_up_client
from bot.slack.teach import TEACH_OFFER, TEACH_SHORTCUT, SlackTeacher
from bot.slack.text import plain_text
from bot.streaming import STILL_WORKING, relay
from bot.types import Question
from knowledge.storage.conversations import Conversation
from knowledge.storage.processes import Notice

log = logging.getLogger(__name__)

PLATFORM = "slack"
THINKING = "_Thinking…_"
REDELIVERED = "teambot_redelivered"  # marks a body redeliver() dispatches; Slack never sends it
WORKING_REACTION = "eyes"
PRIVATE_CHANNEL_TYPES = ("im", "mpim", "group")
# Message subtypes that are people writing; edits, joins, bot posts and the like are not.
HUMAN_SUBTYPES = (None, "file_share", "thread_broadcast")


def _admin_command(text: str) -> str | None:
    """The admin command line in ``admin sources list``-style text, or None if it is not one."""
    words = text.strip().split(maxsplit=1)
    if not words or words[0].lower() != "admin":
        return None
    return words[1] if len(words) > 1 else "help"


class SlackApp(App):
    """bolt's App, except that HTTP requests are verified before bolt sees them: bolt parses a
    body before it checks the signature (an unsigned malformed body is a 500 and a traceback)
    and logs a forged body whole. teambot's HTTP edge (bot.serve) checks ``verifier`` on the
    raw bytes first; Socket Mode needs no signature (``verifier`` is None without a secret)."""

    def __init__(self, *, signing_secret: str, **options: Any) -> None:
        super().__init__(signing_secret=signing_secret, request_verification_enabled=False,
                         name="teambot", **options)  # fmt: skip
        self.verifier = SignatureVerifier(signing_secret) if signing_secret else None


def build_app(runtime: ChatDeps) -> SlackApp:
    """The bolt App with teambot's listeners, for the workspace and app SLACK_BOT_TOKEN belongs
    to; asks Slack now, so a rejected token or an unreachable Slack is a SettingsError."""
    settings = runtime.settings
    app = SlackApp(
        token=settings.slack_bot_token.get_secret_value(),  # no client= too: bolt would warn
        token_verification_enabled=False,  # identify() checks it, at SLACK_API_URL
        signing_secret=settings.slack_signing_secret.get_secret_value(),
        process_before_response=False,
        listener_executor=ThreadPoolExecutor(settings.answer_workers, "slack-answer"),
    )
    app.client.base_url = settings.slack_api_url  # bolt's listeners get clients copied from it
    app.client.retry_handlers.append(RateLimitErrorRetryHandler(max_retry_count=RATE_LIMIT_RETRIES))
    workspace = identify(start_up_client(settings))
    slack = SlackAdapter(runtime)

    app.middleware(gates.ignore_other_workspaces(workspace))
    app.middleware(gates.ignore_bots)
    app.middleware(gates.ignore_incomplete)
    app.middleware(slack.claim_first_delivery)
    app.event("app_mention")(slack.on_mention)
    _listen_for_edits(app, slack.teacher, slack.history)
    app.event("message")(slack.on_message)
    app.command("/ask")(slack.on_ask)
    app.command("/teambot")(slack.on_teambot)
    feedback = FeedbackListeners(runtime.sessions)
    app.action(render.FEEDBACK_UP)(feedback.on_vote)
    app.action(render.FEEDBACK_DOWN)(feedback.on_vote)
    app.view_submission(REASON_CALLBACK)(feedback.on_reason)
    return app


def _listen_for_edits(app: App, teacher: SlackTeacher, history: HistoryEvents) -> None:
    """Teaching (bot.slack.teach) and the edits and deletions that a taught answer and an
    indexed channel (bot.slack.history) follow, registered before the catch-all message
    listener: bolt runs only the first listener that matches."""
    app.shortcut(TEACH_SHORTCUT)(teacher.on_shortcut)
    app.action(TEACH_OFFER)(teacher.on_offer)

    def on_changed(event: dict[str, Any]) -> None:
        history.on_changed(event)
        teacher.on_message_changed(event)

    def on_deleted(event: dict[str, Any]) -> None:
        history.on_deleted(event)
        teacher.on_message_deleted(event)

    app.event({"type": "message", "subtype": "message_changed"})(on_changed)
    app.event({"type": "message", "subtype": "message_deleted"})(on_deleted)


def _may_answer(event: dict[str, Any]) -> bool:
    """Whether teambot could answer this event (claimed before the ack); channel chatter and
    edits are not worth a database write per message (bots' posts never get this far)."""
    if event.get("type") == "app_mention":
        return True
    return (
        event.get("type") == "message"
        and event.get("subtype") in HUMAN_SUBTYPES
        and (event.get("channel_type") == "im" or bool(event.get("thread_ts")))
    )


class RetryLater(Exception):
    """This attempt could not answer (the database is unreachable): leave the event claimed
    so a sweep answers it again, in the same reply message."""


def _settles_event(
    listener: Callable[..., None],
) -> Callable[..., None]:
    """Mark the claimed event answered when ``listener`` returns, or leave it for a retry."""

    @functools.wraps(listener)
    def run(self: SlackAdapter, event: dict[str, Any], body: dict[str, Any], client: WebClient,
            context: Any) -> None:  # fmt: skip
        event_id = body.get("event_id")
        answered = True
        try:
            listener(self, event, body, client, context)
        except RetryLater:
            answered = False
        finally:
            if event_id and _may_answer(event):
                self._settle(event_id, answered)

    return run


@dataclass(frozen=True)
class EventRef:
    """The claimed event an answer settles; ``again`` when an earlier attempt may have
    posted its reply message already."""

    event_id: str
    again: bool


def _event_ref(body: dict[str, Any]) -> EventRef | None:
    event_id = body.get("event_id")
    return EventRef(str(event_id), bool(body.get(REDELIVERED))) if event_id else None


def post_notice(app: App, notice: Notice) -> None:
    """Post a worker's notice (a refresh an admin asked for is done) where the admin asked."""
    text = f"```\n{render.escape(notice.text)}\n```"
    if notice.user_id:
        app.client.chat_postEphemeral(channel=notice.channel, user=notice.user_id, text=text)
    else:
        app.client.chat_postMessage(channel=notice.channel, thread_ts=notice.thread, text=text)


def redeliver(app: App, body: dict[str, Any]) -> None:
    """Answer an event this process took over (its replica died, or an attempt failed): run
    it through bolt again as Socket Mode would deliver it, so no signature is checked."""
    log.info("answering event %s again (taken over)", body.get("event_id"))
    app.dispatch(BoltRequest(body=json.dumps({**body, REDELIVERED: True}), mode="socket_mode"))


class SlackAdapter:
    """The listeners; each runs on a worker thread after bolt has acknowledged the event."""

    def __init__(self, runtime: ChatDeps) -> None:
        self.runtime = runtime
        self.settings = runtime.settings
        self.inbox = runtime.inbox
        self.teacher = SlackTeacher(runtime)
        self.history = HistoryEvents(runtime.sessions)

    def claim_first_delivery(
        self, body: dict[str, Any], next: Callable[[], None]
    ) -> BoltResponse | None:
        """Global middleware, after bolt checked the signature and before the ack: claim an
        event that may need an answer. A delivery of an event already claimed is acknowledged
        and dropped; a claim the database refuses is answered 503, so Slack retries it."""
        event, event_id = body.get("event") or {}, body.get("event_id")
        if body.get("type") != "event_callback" or not event_id or not _may_answer(event):
            return next()
        if body.get(REDELIVERED):  # set only by redeliver(): already claimed, by this process
            return next()
        try:
            kept = {k: v for k, v in body.items() if k != "token"}  # the legacy verification token
            first = self.inbox.claim(PLATFORM, event_id, kept)
        except DBAPIError as exc:
            log.error("cannot claim event %s (Slack will retry it): %s", event_id, exc)
            return BoltResponse(status=503, body="database unavailable; retry later")
        if not first:
            log.info("event %s already handled: not answered again", event_id)
            return BoltResponse(status=200, body="")
        return next()

    def _settle(self, event_id: str, answered: bool) -> None:
        try:
            self.inbox.finish(PLATFORM, event_id, answered=answered)
        except DBAPIError as exc:  # still claimed: a later sweep answers it again
            log.warning("cannot mark event %s answered: %s", event_id, exc)

    @_settles_event
    def on_mention(
        self, event: dict[str, Any], body: dict[str, Any], client: WebClient, context: Any
    ) -> None:
        thread = event.get("thread_ts") or event["ts"]
        text = plain_text(event.get("text", ""), context.bot_user_id, channel_ids=True)
        command = _admin_command(text)
        if command is not None:
            where = ReplyTarget(PLATFORM, event["channel"], thread)
            result = self._admin(event.get("user", ""), command, where)
            client.chat_postMessage(channel=event["channel"], thread_ts=thread, text=result)
            return
        question = self._question(event, thread, client, context.bot_user_id)
        self._answer(client, question, event["channel"], thread, react_to=event["ts"],
                     event=_event_ref(body))  # fmt: skip

    @_settles_event
    def on_message(
        self, event: dict[str, Any], body: dict[str, Any], client: WebClient, context: Any
    ) -> None:
        if event.get("subtype") not in HUMAN_SUBTYPES:
            return  # edits, joins and the like: never answered
        if context.bot_user_id and f"<@{context.bot_user_id}>" in event.get("text", ""):
            return  # a mention: on_mention answers it
        channel, thread = event["channel"], event.get("thread_ts")
        if event.get("channel_type") == "im":
            conversation = thread or "dm"
            question = self._question(event, conversation, client, context.bot_user_id)
            self._answer(client, question, channel, thread, react_to=event["ts"],
                         event=_event_ref(body))  # fmt: skip
        elif thread:
            self.history.on_reply(channel, thread)
            if self._note_person_answer(event, channel, thread, context.bot_user_id):
                self.teacher.offer(client, channel, thread, event.get("user", ""), event["ts"])
            if not (self._follows_threads(channel) and self._answered_in(channel, thread)):
                return
            question = self._question(event, thread, client, context.bot_user_id)
            self._answer(client, question, channel, thread, react_to=event["ts"],
                         event=_event_ref(body))  # fmt: skip

    def _note_person_answer(
        self, event: dict[str, Any], channel: str, thread: str, bot_user: str | None
    ) -> bool:
        """Someone other than the asker replied in a thread teambot answered, and not with a
        question of their own: teambot's last answer there is a gap (bot.gaps). False when
        the reply is a question, not an answer."""
        if plain_text(event.get("text", ""), bot_user).rstrip().endswith("?"):
            return False  # a question of their own, not an answer
        try:
            gaps.record_person_answer(self.runtime.sessions, PLATFORM, channel, thread,
                                      event.get("user", ""))  # fmt: skip
        except DBAPIError as exc:  # a lost gap is not worth failing the event
            log.warning("cannot record a person's answer in %s: %s", thread, exc)
        return True

    def on_ask(self, ack: Any, command: dict[str, Any], client: WebClient, respond: Any) -> None:
        text = plain_text(command.get("text", ""))
        if not text:
            ack("Ask a question after the command, for example `/ask How do I deploy?`")
            return
        user, channel = command["user_id"], command["channel_id"]
        if self.settings.slack_ask_visibility == "ephemeral":
            ack(THINKING)
            question = Question(PLATFORM, channel, f"ask-{command['trigger_id']}", user, text,
                                is_private=True)  # fmt: skip
            try:
                answer = self.runtime.assistant.ask(question)
                text, blocks = render.answer_messages(answer)[0]
                respond(text=text, blocks=blocks, response_type="ephemeral", replace_original=True)
            except Exception as exc:
                respond(text=user_message(exc), response_type="ephemeral", replace_original=True)
            return
        ack()
        echo = f"<@{user}> asked: {render.escape(text)}"
        posted = client.chat_postMessage(channel=channel, text=echo)
        thread = posted["ts"]
        self._answer(client, Question(PLATFORM, channel, thread, user, text), channel, thread)

    def on_teambot(self, ack: Any, command: dict[str, Any], respond: Any) -> None:
        """``/teambot admin …``: the admin commands, answered to the admin only."""
        admin = _admin_command(plain_text(command.get("text", ""), channel_ids=True))
        if admin is None:
            ack("Usage: `/teambot admin COMMAND` (try `/teambot admin help`); "
                "to ask a question, use `/ask`.")  # fmt: skip
            return
        ack()
        user = command["user_id"]
        where = ReplyTarget(PLATFORM, command["channel_id"], user_id=user)  # the admin's eyes only
        respond(text=self._admin(user, admin, where), response_type="ephemeral")

    def _admin(self, user: str, command: str, where: ReplyTarget) -> str:
        """Run an admin command line for a Slack user; the reply text (refusals included)."""
        try:
            result = run_admin(self.runtime, Actor(PLATFORM, user), command, reply_to=where,
                               audience=Audience(PLATFORM, where.channel))  # fmt: skip
        except Exception as exc:
            log.exception("admin command %r failed", command)
            return user_message(exc)
        return f"```\n{render.escape(result.text)}\n```"

    def _answer(
        self,
        client: WebClient,
        question: Question,
        channel: str,
        thread: str | None,
        react_to: str | None = None,
        event: EventRef | None = None,
    ) -> None:
        """Post a placeholder (or reuse the one an earlier attempt at ``event`` posted),
        stream the answer into it, then the final blocks. A failure is said in the thread,
        never swallowed; an unreachable database raises RetryLater after saying so."""
        if react_to:
            self._react(client, "reactions_add", channel, react_to)
        ts = self._reply_message(client, channel, thread, event)
        try:
            answer = relay(
                self.runtime.assistant.stream(question),
                lambda text: self._edit(client, channel, ts, text),
                interval=self.settings.slack_update_seconds,
                max_chars=render.MESSAGE_CHARS,
            )
            messages = render.answer_messages(answer)
            text, blocks = messages[0]
            client.chat_update(channel=channel, ts=ts, text=text, blocks=blocks)
            for text, blocks in messages[1:]:
                client.chat_postMessage(
                    channel=channel, thread_ts=thread or ts, text=text, blocks=blocks
                )
        except DBAPIError as exc:
            log.error("answering %s in %s: database unavailable: %s", question.user, channel, exc)
            if event is None:
                self._edit(client, channel, ts, user_message(exc))
                return
            self._edit(client, channel, ts, STILL_WORKING)
            raise RetryLater from exc
        except Exception as exc:
            log.exception("answering %s in %s failed", question.user, channel)
            self._edit(client, channel, ts, user_message(exc))
        finally:
            if react_to:
                self._react(client, "reactions_remove", channel, react_to)

    def _reply_message(
        self, client: WebClient, channel: str, thread: str | None, event: EventRef | None
    ) -> str:
        """The ts of the message the answer goes into: a new placeholder, recorded so a later
        attempt at the event reuses it; or, when this is such a later attempt, the one the
        earlier attempt posted (recorded, or found in the thread if it died before saying)."""
        if event is not None and event.again:
            earlier = self.inbox.reply_to(PLATFORM, event.event_id) or self._placeholder_in(
                client, channel, thread
            )
            if earlier:
                self._edit(client, channel, earlier, THINKING)
                return earlier
        ts = str(client.chat_postMessage(channel=channel, thread_ts=thread, text=THINKING)["ts"])
        if event is not None:
            try:
                self.inbox.record_reply(PLATFORM, event.event_id, ts)
            except DBAPIError as exc:
                log.warning("cannot record the reply to event %s: %s", event.event_id, exc)
        return ts

    def _placeholder_in(self, client: WebClient, channel: str, thread: str | None) -> str | None:
        """A placeholder of teambot's still waiting in ``thread`` (none for top-level DMs)."""
        if thread is None:
            return None
        try:
            replies = client.conversations_replies(channel=channel, ts=thread, limit=50)
        except SlackApiError as exc:
            log.warning("cannot read thread %s in %s: %s", thread, channel, exc)
            return None
        waiting = [
            m["ts"]
            for m in replies.get("messages", [])
            if m.get("bot_id") and m.get("text") in (THINKING, STILL_WORKING)
        ]
        return waiting[-1] if waiting else None

    def _question(
        self, event: dict[str, Any], thread: str, client: WebClient, bot_user: str | None
    ) -> Question:
        text = plain_text(event.get("text", ""), bot_user)
        channel = event["channel"]
        is_private = event.get("channel_type") in PRIVATE_CHANNEL_TYPES or channel[0] in "DG"
        history = ()
        if event.get("thread_ts") and not self._answered_in(channel, thread):
            history = self._thread_history(client, channel, thread, event["ts"], bot_user)
        return Question(PLATFORM, channel, thread, event.get("user", ""), text, is_private,
                        history=history)  # fmt: skip

    def _thread_history(
        self, client: WebClient, channel: str, thread: str, current: str, bot_user: str | None
    ) -> tuple[tuple[str, str], ...]:
        """The thread's earlier messages (conversations.replies), for a thread teambot joins."""
        try:
            replies = client.conversations_replies(channel=channel, ts=thread, limit=50)
        except SlackApiError as exc:
            log.warning("cannot read thread %s in %s: %s", thread, channel, exc)
            return ()
        return tuple(
            ("assistant" if m.get("bot_id") or m.get("user") == bot_user else "user",
             plain_text(m.get("text", ""), bot_user))
            for m in replies.get("messages", [])
            if m.get("ts") != current and m.get("text")
        )  # fmt: skip

    def _follows_threads(self, channel: str) -> bool:
        """The channel's own choice if an admin made one, else SLACK_FOLLOW_THREADS."""
        chosen = channel_prefs(self.runtime.sessions, PLATFORM, channel).follow_threads
        return self.settings.slack_follow_threads if chosen is None else chosen

    def _answered_in(self, channel: str, thread: str) -> bool:
        with self.runtime.sessions() as session:
            found = session.scalar(
                select(Conversation.id).where(
                    Conversation.platform == PLATFORM,
                    Conversation.channel == channel,
                    Conversation.thread == thread,
                )
            )
        return found is not None

    def _edit(self, client: WebClient, channel: str, ts: str, text: str) -> None:
        try:
            client.chat_update(channel=channel, ts=ts, text=render.escape(text), blocks=[])
        except SlackApiError as exc:  # a lost progress edit is not worth failing the answer
            log.warning("chat.update failed: %s", exc)

    def _react(self, client: WebClient, method: str, channel: str, ts: str) -> None:
        try:
            getattr(client, method)(channel=channel, timestamp=ts, name=WORKING_REACTION)
        except SlackApiError as exc:
            log.info("%s failed: %s", method, exc)
