"""Feedback that says why, on Discord: a 👎 is stored at the click and answered with a "what was
wrong?" modal (callback type 9); its MODAL_SUBMIT stores the reason with the vote and gets an
ephemeral thanks. The real discord.py client against a fake Discord that checks modals."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import select

from bot.discord.feedback import REASON_PREFIX
from bot.feedback import MAX_REASON_CHARS, REASON_GONE, REASON_NOT_NOW, REASON_RECORDED, RECORDED
from bot.slack.feedback import reason_modal as slack_reason_modal
from knowledge.storage.conversations import Feedback
from tests import test_discord
from tests.fakes.discord import CHANNEL_ID, EPHEMERAL, pointed_at
from tests.fakes.discord.modals import MODAL, FakeDiscordModals, modal_problems
from tests.fakes.slack_views import modal_problems as slack_modal_problems
from tests.test_discord import ALICE, ask_by_mention, finished, rename_table
from tests.test_fake_discord import RunningClient

CALLBACKS = r"/interactions/\d+/[^/]+/callback"
discord_bot = test_discord.bot  # the running client fixture, against the fake below
MARKUP = "@everyone <@&1> ```js\n**bold**``` [link](https://evil.example) "


@pytest.fixture
def fake() -> Iterator[FakeDiscordModals]:
    with FakeDiscordModals() as running, pointed_at(running):
        running.add_member(ALICE, "alice")
        yield running


@pytest.fixture
def bot(discord_bot: RunningClient) -> RunningClient:
    """test_discord's running client, against the fake above."""
    return discord_bot


def click(fake: FakeDiscordModals, vote: str) -> tuple[int, int]:
    """Ask, then ALICE clicks 👍 or 👎 on the answer: (the click's interaction id, turn id)."""
    if not finished(fake):
        ask_by_mention(fake)
    [answer] = fake.wait_for(lambda: finished(fake))
    buttons = answer["components"][0]["components"]
    custom_id = buttons[0 if vote == "up" else 1]["custom_id"]
    interaction = fake.interaction_create_component(custom_id, ALICE, CHANNEL_ID,
                                                    int(answer["id"]))  # fmt: skip
    fake.dispatch("INTERACTION_CREATE", interaction)
    return int(interaction["id"]), int(custom_id.rsplit(":", 1)[1])


def callback_of(fake: FakeDiscordModals, interaction: int) -> dict[str, Any]:
    [call] = fake.wait_for(
        lambda: [c for c in fake.calls_to("POST", CALLBACKS) if f"/{interaction}/" in c.path]
    )
    assert call.status is not None and call.status < 300, call.response
    return call.json  # type: ignore[no-any-return]


def submit(fake: FakeDiscordModals, interaction: int, answers: dict[str, Any]) -> dict[str, Any]:
    """Submit the modal ``interaction`` was answered with; the submission's callback."""
    submission = fake.interaction_create_modal_submit(interaction, answers)
    fake.dispatch("INTERACTION_CREATE", submission)
    return callback_of(fake, int(submission["id"]))


def said(callback: dict[str, Any]) -> tuple[str, bool]:
    """What an interaction's reply said, and whether only the clicker saw it."""
    return callback["data"]["content"], bool(callback["data"]["flags"] & EPHEMERAL)


def votes(bot: RunningClient) -> list[tuple[int, str, int, str | None]]:
    with bot.client.runtime.sessions() as session:
        rows = session.execute(select(Feedback.turn_id, Feedback.user_id, Feedback.value,
                                      Feedback.comment)).all()  # fmt: skip
    return [tuple(row) for row in rows]  # type: ignore[misc]


def test_a_downvote_opens_a_modal_whose_markup_laden_reason_is_stored_bounded_never_echoed(
    fake: FakeDiscordModals, bot: RunningClient
) -> None:
    interaction, turn = click(fake, "down")

    answered = callback_of(fake, interaction)
    assert answered["type"] == MODAL
    assert answered["data"]["custom_id"] == f"{REASON_PREFIX}{turn}"
    assert votes(bot) == [(turn, str(ALICE), -1, None)]  # stored at the click
    assert not bot.client._connection._view_store._modals  # not kept: on_interaction reads it

    reason = (MARKUP * 20)[:MAX_REASON_CHARS]  # as long as the text input allows
    thanks = submit(fake, interaction, {"kind": "wrong", "text": reason})

    assert said(thanks) == (REASON_RECORDED, True)  # never the reason
    [(_, _, value, comment)] = votes(bot)
    assert value == -1 and comment is not None and len(comment) == MAX_REASON_CHARS
    assert comment.startswith("Wrong: @everyone <@&1> ```js **bold**``` [link](")  # one line
    posted = [m["content"] for m in fake.messages(CHANNEL_ID)]
    assert not any("@everyone" in text for text in posted)


def test_an_upvote_is_thanked_and_a_blank_or_late_reason_is_answered_plainly(
    fake: FakeDiscordModals, bot: RunningClient
) -> None:
    down, turn = click(fake, "down")
    callback_of(fake, down)
    up, _ = click(fake, "up")  # changes the vote before the reason comes
    assert said(callback_of(fake, up)) == (RECORDED, True)
    assert fake.modal_for(up) is None

    assert said(submit(fake, down, {"kind": "outdated"})) == (REASON_GONE, True)
    assert said(submit(fake, down, {})) == (RECORDED, True)  # blank: nothing to store
    assert votes(bot) == [(turn, str(ALICE), 1, None)]


def test_a_reason_the_database_cannot_store_is_asked_again_later(
    fake: FakeDiscordModals, bot: RunningClient
) -> None:
    interaction, turn = click(fake, "down")
    callback_of(fake, interaction)
    rename_table(bot, "feedback", "away")
    thanks = submit(fake, interaction, {"text": "the port moved"})
    rename_table(bot, "away", "feedback")

    assert said(thanks) == (REASON_NOT_NOW, True)
    assert votes(bot) == [(turn, str(ALICE), -1, None)]


def test_the_fakes_refuse_modals_discord_and_slack_would_refuse() -> None:
    assert modal_problems({"custom_id": "x", "title": "t" * 46, "components": []}) == {
        "title": "1 to 45 characters",
        "components": "1 to 5 components",
    }
    row = {"type": 1, "components": [{"type": 4, "custom_id": "a", "style": 2}]}
    assert modal_problems({"custom_id": "x", "title": "t", "components": [row]}) == {
        "components.0": "a text input in a row needs a label"
    }
    assert slack_modal_problems(slack_reason_modal(7)) == []
    too_long = {**slack_reason_modal(7), "title": {"type": "plain_text", "text": "x" * 25}}
    assert slack_modal_problems(too_long) == [
        "[ERROR] title must be plain_text of at most 24 characters [json-pointer:/view/title]"
    ]
