"""'Teach teambot' on Slack end to end: the real bolt app over HTTP, the fake Slack (with what
teaching uses of it) and a fake model. A question teambot abstains on, a teammate's answer in
the thread, the offer and the message shortcut, the answer cited later, and edits and
deletions of the original message."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from sqlalchemy import select

from bot.admin import Actor, run_admin
from bot.slack.teach import OFFER_TEXT, TEACH_OFFER, TEACH_SHORTCUT
from knowledge.embed.embedder import Embedder
from knowledge.ingest.local import ingest_folder
from knowledge.storage.answers import TeamAnswer
from knowledge.storage.conversations import AuditEntry
from tests.fakes.openai_server import FakeOpenAI
from tests.fakes.slack import BOT_USER_ID, block_action_payload, message_event
from tests.fakes.slack_teach import TeachingSlack, message_shortcut, message_shortcut_form
from tests.test_slack import Bot, make_runtime, mention, wait_for_answers

ASKED = "Does Zephyr support Microsoft Teams?"
PARAPHRASE = "Can Zephyr post its answers into Microsoft Teams channels?"
TEAMS = ("No. Zephyr has no Microsoft Teams integration; forward its webhook to a Teams "
         "incoming webhook instead.")  # fmt: skip
TERMINAL = Actor("cli", "ops")


@pytest.fixture
def slack() -> Iterator[TeachingSlack]:
    with TeachingSlack() as fake:
        yield fake


@pytest.fixture
def bot(tmp_path: Path, docs: Path, embedder: Embedder, slack: TeachingSlack,
        model: FakeOpenAI) -> Iterator[Bot]:  # fmt: skip
    url = f"sqlite:///{tmp_path / 'teambot.db'}"
    runtime = make_runtime(url, tmp_path / "data", embedder, slack, model,
                           slack_follow_threads=False, teambot_admins="slack:UADMIN")  # fmt: skip
    ingest_folder(runtime.sessions, embedder, docs, name="zephyr")
    running = Bot(runtime)
    yield running
    running.stop()


def ask_in_thread(bot: Bot, slack: TeachingSlack, text: str, channel: str,
                  user: str = "U1") -> str:  # fmt: skip
    """A mention posted in ``channel`` and answered; the thread's ts."""
    ts = slack.seed_message(channel, f"<@{BOT_USER_ID}> {text}", user=user)
    bot.event(mention(text, channel=channel, user=user, ts=ts))
    wait_for_answers(slack, channel)
    return ts


def reply(bot: Bot, slack: TeachingSlack, channel: str, thread: str, text: str, user: str) -> str:
    ts = slack.seed_message(channel, text, user=user, thread_ts=thread)
    bot.event(message_event(text, channel, user, ts, thread_ts=thread))
    return ts


def responses(slack: TeachingSlack, containing: str) -> list[dict[str, Any]]:
    return [c.params for c in slack.calls_to("response_url") if containing in c.params["text"]]


def saved(bot: Bot) -> list[TeamAnswer]:
    with bot.runtime.sessions() as session:
        return list(session.scalars(select(TeamAnswer).order_by(TeamAnswer.id)))


def cited_sources(slack: TeachingSlack, channel: str) -> str:
    [answer] = wait_for_answers(slack, channel)
    return " ".join(e["text"] for b in answer["blocks"] if b["type"] == "context"
                    for e in b["elements"])  # fmt: skip


def test_abstained_then_a_teammate_answers_is_offered_taught_cited_edited_and_deleted(
    bot: Bot, slack: TeachingSlack
) -> None:
    assert run_admin(bot.runtime, TERMINAL, ["channel", "set", "slack:C1", "teach=on"]).ok
    thread = ask_in_thread(bot, slack, ASKED, "C1")
    [abstained] = wait_for_answers(slack, "C1")
    assert "Might help" in json.dumps(abstained["blocks"])

    answer_ts = reply(bot, slack, "C1", thread, TEAMS, user="U2")

    [offer] = slack.wait_for(lambda: slack.calls_to("chat.postEphemeral"))
    assert (offer.params["user"], offer.params["text"]) == ("U2", OFFER_TEXT)
    button = offer.params["blocks"][0]["accessory"]
    assert button["action_id"] == TEACH_OFFER
    bot.form(block_action_payload(TEACH_OFFER, button["value"], "U2", "C1", "1.0",
                                  response_url=slack.response_url()))  # fmt: skip
    [confirmed] = slack.wait_for(lambda: responses(slack, "Saved as team answer"))
    assert confirmed["response_type"] == "ephemeral" and confirmed["replace_original"]
    [row] = saved(bot)
    assert (row.question, row.answer, row.author, row.author_name, row.is_private) == (
        ASKED, TEAMS, "U2", "u2", False)  # fmt: skip
    assert row.permalink == (f"https://teambot-test.slack.com/archives/C1/p"
                             f"{answer_ts.replace('.', '')}?thread_ts={thread}&cid=C1")  # fmt: skip

    ask_in_thread(bot, slack, PARAPHRASE, "C3")
    sources = cited_sources(slack, "C3")
    assert f"<{row.permalink}|" in sources.replace("&amp;", "&")
    assert "answered by @u2 in #c1, " in sources

    bot.event(slack.edit("C1", answer_ts, "Yes: the Teams bridge plugin posts answers to Teams."))
    slack.wait_for(lambda: "bridge" in saved(bot)[0].answer)
    bot.event(slack.delete("C1", answer_ts))
    slack.wait_for(lambda: not saved(bot))
    ask_in_thread(bot, slack, PARAPHRASE, "C4")
    assert "answered by" not in cited_sources(slack, "C4")


def test_the_shortcut_teaches_where_allowed_and_a_private_answer_stays_there(
    bot: Bot, slack: TeachingSlack
) -> None:
    slack.set_private("C9")
    thread = slack.seed_message("C9", ASKED, user="U1")  # teambot was never asked here
    answer_ts = slack.seed_message("C9", TEAMS, user="U2", thread_ts=thread)
    message = slack.message("C9", answer_ts)

    def shortcut(user: str, on: dict[str, Any] = message) -> None:
        bot.form(message_shortcut_form(TEACH_SHORTCUT, on, "C9", user, slack.response_url()))

    shortcut("U3")  # not an admin, and teaching is off here
    [refused] = slack.wait_for(lambda: responses(slack, "Only teambot admins can teach"))
    assert "`admin channel set slack:C9 teach=on`" in refused["text"] and not saved(bot)
    shortcut("UADMIN", slack.message("C9", thread))  # the question itself is no answer
    slack.wait_for(lambda: responses(slack, "on a reply in a thread"))
    shortcut("UADMIN")
    slack.wait_for(lambda: responses(slack, "Saved as team answer"))
    [row] = saved(bot)
    assert (row.question, row.is_private, row.channel) == (ASKED, True, "C9")

    ask_in_thread(bot, slack, PARAPHRASE, "C5")
    assert "answered by" not in cited_sources(slack, "C5")
    ask_in_thread(bot, slack, PARAPHRASE, "C9")
    assert "answered by @u2 in #c9, " in cited_sources(slack, "C9")

    with bot.runtime.sessions() as session:
        audited = session.execute(select(AuditEntry.user_id, AuditEntry.outcome)
                                  .where(AuditEntry.command == "teach")).all()  # fmt: skip
    assert sorted(audited) == [("U3", "refused: teaching is off here"),
                               ("UADMIN", f"ok: answer {row.id}")]  # fmt: skip


def test_no_offer_where_the_person_may_not_teach_or_teambot_answered_well(
    bot: Bot, slack: TeachingSlack
) -> None:
    thread = ask_in_thread(bot, slack, ASKED, "C6")  # abstains, but teaching is off in C6
    reply(bot, slack, "C6", thread, TEAMS, user="U2")
    covered = ask_in_thread(bot, slack, "Which port does Zephyr listen on?", "C7",
                            user="UADMIN")  # fmt: skip
    reply(bot, slack, "C7", covered, "Yes, 8731.", user="UADMIN2")
    time.sleep(1.0)
    assert slack.calls_to("chat.postEphemeral") == []


def test_an_oversized_message_is_refused_and_a_shortcut_lacking_a_field_ignored(
    bot: Bot, slack: TeachingSlack, caplog: pytest.LogCaptureFixture
) -> None:
    """Hostile payloads: a reply far over the answer cap, and a signed shortcut payload whose
    message has no ts. Neither stores anything nor leaves a traceback."""
    run_admin(bot.runtime, TERMINAL, ["channel", "set", "slack:C4", "teach=on"])
    thread = slack.seed_message("C4", ASKED, user="U1")
    huge = slack.seed_message("C4", "word " * 5_000, user="U2", thread_ts=thread)
    bot.form(message_shortcut_form(TEACH_SHORTCUT, slack.message("C4", huge), "C4", "U3",
                                   slack.response_url()))  # fmt: skip
    [refused] = slack.wait_for(lambda: responses(slack, "at most 20,000"))
    assert "team answer" in refused["text"].lower() and not saved(bot)

    caplog.clear()
    caplog.set_level("INFO")
    broken = message_shortcut(TEACH_SHORTCUT, slack.message("C4", huge), "C4", "U3",
                              slack.response_url())  # fmt: skip
    del broken["message"]["ts"]
    response = bot.form(urlencode({"payload": json.dumps(broken)}).encode())
    assert response.status_code == 200
    time.sleep(0.5)
    assert "ignored a Slack message_action without message.ts" in caplog.text
    assert "Traceback" not in caplog.text and not saved(bot)
