"""Feedback that says why, on Slack: a 👎 is stored at the click and opens a "what was wrong?"
modal (views.open with the click's trigger_id); its view_submission stores the reason with the
vote. The real bolt app over HTTP and Socket Mode, against a fake Slack that opens modals."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from sqlalchemy import select, text
from sqlalchemy.orm import Session, sessionmaker

from bot.feedback import MAX_REASON_CHARS, NOT_NOW, REASON_NOT_NOW, RECORDED
from bot.slack import render
from bot.slack.app import build_app
from bot.slack.feedback import REASON_CALLBACK, TEXT_BLOCK
from knowledge.embed.embedder import Embedder
from knowledge.storage.conversations import Feedback
from tests import test_slack
from tests.fakes.openai_server import FakeOpenAI
from tests.fakes.slack import block_action, block_action_payload
from tests.fakes.slack_views import FakeSlackViews, view_submission, view_submission_form
from tests.test_slack import Bot, make_runtime, mention, wait_for_answers

sqlite_db, start_bot = test_slack.sqlite_db, test_slack.start_bot  # fixtures, used by name

MARKUP = "<!channel> <@U2> *bold* ```code``` &amp; <https://evil.example|click> "


@pytest.fixture
def slack() -> Iterator[FakeSlackViews]:
    with FakeSlackViews() as fake:
        yield fake


@pytest.fixture
def bot(start_bot: Any) -> Bot:
    return start_bot()


def answered(bot: Bot, slack: FakeSlackViews) -> tuple[str, str]:
    """Ask in C1; (the answer's ts, its turn id) once answered."""
    bot.event(mention())
    [answer] = wait_for_answers(slack, "C1")
    buttons = next(b for b in answer["blocks"] if b["type"] == "actions")["elements"]
    return answer["ts"], buttons[1]["value"]


def votes(sessions: sessionmaker[Session]) -> list[tuple[int, str, int, str | None]]:
    with sessions() as session:
        rows = session.execute(select(Feedback.turn_id, Feedback.user_id, Feedback.value,
                                      Feedback.comment)).all()  # fmt: skip
    return [tuple(row) for row in rows]  # type: ignore[misc]


def test_a_downvote_opens_a_modal_whose_markup_laden_reason_is_stored_bounded_never_echoed(
    bot: Bot, slack: FakeSlackViews
) -> None:
    ts, turn = answered(bot, slack)
    click = bot.form(block_action_payload(render.FEEDBACK_DOWN, turn, "U1", "C1", ts))

    assert click.status_code == 200
    [view] = slack.wait_for(lambda: slack.opened_views)
    assert (view["callback_id"], view["private_metadata"]) == (REASON_CALLBACK, turn)
    assert votes(bot.runtime.sessions) == [(int(turn), "U1", -1, None)]  # stored at the click
    assert slack.calls_to("chat.postEphemeral") == []  # the modal is the thanks
    posted_before = len(slack.calls)

    reason = (MARKUP * 20)[:MAX_REASON_CHARS]  # as long as the text input allows
    submitted = bot.form(view_submission_form(view, "U1", {"kind": "wrong", "text": reason}))

    assert (submitted.status_code, submitted.text) == (200, "")  # closes the modal
    [(_, _, value, comment)] = votes(bot.runtime.sessions)
    assert value == -1 and comment is not None and len(comment) == MAX_REASON_CHARS
    assert comment.startswith("Wrong: <!channel> <@U2> *bold* ```code``` &amp;")  # as data
    assert len(slack.calls) == posted_before  # nothing said anywhere, so nothing pinged


def test_a_blank_submission_keeps_the_vote_and_a_forged_turn_stores_nothing(
    bot: Bot, slack: FakeSlackViews
) -> None:
    ts, turn = answered(bot, slack)
    bot.form(block_action_payload(render.FEEDBACK_DOWN, turn, "U1", "C1", ts))
    [view] = slack.wait_for(lambda: slack.opened_views)

    assert bot.form(view_submission_form(view, "U1", {})).text == ""
    forged = {**view, "private_metadata": "../1 OR 1=1"}
    assert bot.form(view_submission_form(forged, "U1", {"kind": "other"})).text == ""
    someone_else = bot.form(view_submission_form(view, "U2", {"text": "not my vote"}))
    assert someone_else.text == ""
    nobody = view_submission(view, "U1", {"text": "who am I?"})
    del nobody["user"]  # dropped by the gates, as a click without a user is
    assert bot.form(urlencode({"payload": json.dumps(nobody)}).encode()).status_code == 200
    assert votes(bot.runtime.sessions) == [(int(turn), "U1", -1, None)]


def test_an_expired_trigger_gets_the_ephemeral_thanks_and_an_upvote_no_modal(
    bot: Bot, slack: FakeSlackViews
) -> None:
    ts, turn = answered(bot, slack)
    late = block_action(render.FEEDBACK_DOWN, turn, "U1", "C1", ts)
    late["trigger_id"] = "1700000000.12.deadbeef"  # long expired
    bot.form(urlencode({"payload": json.dumps(late)}).encode())
    [thanks] = slack.wait_for(lambda: slack.calls_to("chat.postEphemeral"))
    assert thanks.params["text"] == RECORDED
    [opening] = slack.calls_to("views.open")
    assert opening.response == {"ok": False, "error": "expired_trigger_id"}

    bot.form(block_action_payload(render.FEEDBACK_UP, turn, "U2", "C1", ts))
    slack.wait_for(lambda: len(slack.calls_to("chat.postEphemeral")) == 2)
    assert len(slack.calls_to("views.open")) == 1 and slack.opened_views == []


def test_socket_mode_opens_the_modal_and_stores_the_reason(
    sqlite_db: str,
    tmp_path: Path,
    embedder: Embedder,
    slack: FakeSlackViews,
    model: FakeOpenAI,
) -> None:
    from slack_bolt.adapter.socket_mode import SocketModeHandler

    runtime = make_runtime(sqlite_db, tmp_path / "data", embedder, slack, model)
    handler = SocketModeHandler(build_app(runtime), "xapp-test")
    handler.connect()
    try:
        assert slack.socket_connected()
        slack.wait_for_ack(slack.socket_send("events_api", mention(event_id=f"Ev{uuid.uuid4()}")))
        [answer] = wait_for_answers(slack, "C1")
        turn = next(b for b in answer["blocks"] if b["type"] == "actions")["elements"][1]["value"]
        click = block_action(render.FEEDBACK_DOWN, turn, "U1", "C1", answer["ts"])
        slack.wait_for_ack(slack.socket_send("interactive", click))
        [view] = slack.wait_for(lambda: slack.opened_views)

        submission = view_submission(view, "U1", {"kind": "outdated", "text": "port moved"})
        ack = slack.wait_for_ack(slack.socket_send("interactive", submission))

        assert not ack.payload  # an empty ack: the modal closes
        assert votes(runtime.sessions) == [(int(turn), "U1", -1, "Out of date: port moved")]
    finally:
        slack.stop()
        handler.close()
        runtime.close()


def test_while_the_database_is_away_the_click_is_told_and_the_modal_stays_open_saying_so(
    bot: Bot, slack: FakeSlackViews
) -> None:
    ts, turn = answered(bot, slack)
    bot.form(block_action_payload(render.FEEDBACK_DOWN, turn, "U1", "C1", ts))
    [view] = slack.wait_for(lambda: slack.opened_views)
    rename_table(bot, "feedback", "away")
    try:
        submitted = bot.form(view_submission_form(view, "U1", {"text": "the port moved"}))
        bot.form(block_action_payload(render.FEEDBACK_DOWN, turn, "U2", "C1", ts))
        [told] = slack.wait_for(lambda: slack.calls_to("chat.postEphemeral"))
    finally:
        rename_table(bot, "away", "feedback")

    assert submitted.json() == {"response_action": "errors",
                                "errors": {TEXT_BLOCK: REASON_NOT_NOW}}  # fmt: skip
    assert told.params["text"] == NOT_NOW
    assert votes(bot.runtime.sessions) == [(int(turn), "U1", -1, None)]


def rename_table(bot: Bot, table: str, to: str) -> None:
    with bot.runtime.engine.begin() as connection:
        connection.execute(text(f"ALTER TABLE {table} RENAME TO {to}"))
