"""The Discord adapter end to end: the real discord.py client against a fake Discord (REST and
gateway) and a fake model, answering from a small ingested corpus."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, text

from bot.abstention import NOT_COVERED
from bot.delivery.replica import ReplicaDuties
from bot.discord.app import TeambotClient
from bot.discord.render import FEEDBACK_PREFIX
from bot.feedback import NOT_NOW
from bot.runtime import Runtime
from bot.settings import Settings
from bot.streaming import DATABASE_DOWN, STILL_WORKING
from knowledge.embed.embedder import Embedder
from knowledge.ingest.local import ingest_folder
from knowledge.storage import coordination
from knowledge.storage.conversations import AuditEntry, Feedback, Gap, Turn
from tests.corpus import ANSWER, write_corpus
from tests.fakes.discord import (
    BOT_USER_ID,
    CHANNEL_ID,
    MANAGE_GUILD,
    FakeDiscord,
    pointed_at,
)
from tests.fakes.openai_server import FakeOpenAI, Reply, Status
from tests.test_fake_discord import RunningClient

ALICE = 1_300_000_000_000_000_001
MIA = 1_300_000_000_000_000_002  # has Manage Server
MENTION = f"<@{BOT_USER_ID}>"
MESSAGES = r"/channels/\d+/messages"
EDITS = r"/channels/\d+/messages/\d+"
TYPING = r"/channels/\d+/typing"
RETRY_SECONDS = (0.5, 1.0, 2.0)  # the database's retries, shortened


class Client(TeambotClient):
    async def before_identify_hook(self, shard_id: int | None, *, initial: bool = False) -> None:
        pass  # discord.py waits 5 s before a second IDENTIFY; not against the fake

    ready_count = 0

    async def on_ready(self) -> None:
        self.ready_count += 1


@pytest.fixture
def fake() -> Iterator[FakeDiscord]:
    with FakeDiscord() as running, pointed_at(running):
        running.add_member(ALICE, "alice")
        yield running


@pytest.fixture
def bot(
    fake: FakeDiscord, model: FakeOpenAI, tmp_path: Path, embedder: Embedder
) -> Iterator[RunningClient]:
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        database_url=f"sqlite:///{tmp_path / 'teambot.db'}",
        data_dir=tmp_path / "data",
        local_llm_base_url=model.base_url,
        local_llm_model="local-model",
        llm_route="local-only",
        llm_total_timeout_seconds=10,
        llm_max_retries=0,
        discord_update_seconds=0.05,
    )
    runtime = Runtime(settings)
    runtime.__dict__["embedder"] = embedder
    ingest_folder(runtime.sessions, embedder, write_corpus(tmp_path / "docs"), name="zephyr")
    client = Client(runtime, database_retry_seconds=RETRY_SECONDS, guild_ready_timeout=0.1)
    running = RunningClient(client)  # type: ignore[arg-type]
    running.start()
    fake.wait_for(lambda: running.client.ready_count)
    yield running
    running.stop()
    runtime.close()


def bot_messages(fake: FakeDiscord) -> list[dict[str, Any]]:
    return [m for m in fake.messages(CHANNEL_ID) if m["author"]["id"] == str(BOT_USER_ID)]


def finished(fake: FakeDiscord) -> list[dict[str, Any]]:
    """Bot messages that carry the feedback buttons: finished answers."""
    return [m for m in bot_messages(fake) if m.get("components")]


def ask_by_mention(fake: FakeDiscord, text: str = "Which port does Zephyr listen on?",
                   **options: Any) -> dict[str, Any]:  # fmt: skip
    question = fake.message_create(CHANNEL_ID, f"{MENTION} {text}", ALICE, **options)
    fake.dispatch("MESSAGE_CREATE", question)
    return question


def test_a_mention_gets_a_streamed_reply_with_sources_and_buttons(
    fake: FakeDiscord, bot: RunningClient
) -> None:
    question = ask_by_mention(fake)

    [answer] = fake.wait_for(lambda: finished(fake))
    assert answer["content"] == ANSWER
    assert answer["message_reference"]["message_id"] == question["id"]
    assert answer["embeds"][0]["title"] == "Sources"
    assert "[1] Network settings › Listening port" in answer["embeds"][0]["description"]
    assert answer["embeds"][0]["footer"]["text"].startswith("Confidence: high (")
    buttons = answer["components"][0]["components"]
    assert [b["custom_id"].split(":")[2] for b in buttons] == ["up", "down"]
    [post] = fake.calls_to("POST", MESSAGES)
    assert post.json["content"] == "*Thinking…*"  # then edited into the answer


def test_a_question_the_docs_do_not_cover_says_so_with_what_might_help(
    fake: FakeDiscord, bot: RunningClient, model: FakeOpenAI
) -> None:
    ask_by_mention(fake, "Does Zephyr support Microsoft Teams?")

    [answer] = fake.wait_for(lambda: finished(fake))
    assert answer["content"] == NOT_COVERED
    [embed] = answer["embeds"]
    assert embed["title"] == "Might help" and embed["description"].startswith("[1] ")
    assert embed["footer"]["text"].startswith("Not covered by the indexed docs (confidence 0.")
    assert model.chat_requests() == []  # no model is asked to dress the passages up


def test_ask_command_defers_then_answers(fake: FakeDiscord, bot: RunningClient) -> None:
    bot.run(bot.client.tree.sync())
    interaction = fake.interaction_create_command(
        "ask", {"question": "Which port does Zephyr listen on?"}, ALICE
    )
    fake.dispatch("INTERACTION_CREATE", interaction)

    [answer] = fake.wait_for(lambda: finished(fake))
    [callback] = fake.calls_to("POST", r"/interactions/\d+/[^/]+/callback")
    assert callback.json["type"] == 5  # deferred at once
    assert answer["content"] == ANSWER and answer["embeds"][0]["title"] == "Sources"


def test_a_reply_to_an_answer_continues_the_conversation(
    fake: FakeDiscord, bot: RunningClient, model: FakeOpenAI
) -> None:
    ask_by_mention(fake)
    [first] = fake.wait_for(lambda: finished(fake))
    model.always(Reply("Set ZEPHYR_PORT to change it [1]."))

    follow = fake.message_create(CHANNEL_ID, "and how do I change it?", ALICE,
                                 message_reference=first["id"])  # fmt: skip
    fake.dispatch("MESSAGE_CREATE", follow)

    answers = fake.wait_for(lambda: (a := finished(fake)) and len(a) == 2 and a)
    assert answers[1]["content"] == "Set ZEPHYR_PORT to change it [1]."
    messages = model.chat_requests()[-1]["messages"]
    assert [m["role"] for m in messages[1:3]] == ["user", "assistant"]  # the chain's memory
    assert messages[2]["content"] == ANSWER


def test_unrelated_messages_and_bots_are_ignored(fake: FakeDiscord, bot: RunningClient) -> None:
    fake.dispatch("MESSAGE_CREATE", fake.message_create(CHANNEL_ID, "lunch anyone?", ALICE))

    time.sleep(0.5)
    assert fake.calls_to("POST", MESSAGES) == []


def test_a_long_answer_is_split_within_2000_characters(
    fake: FakeDiscord, bot: RunningClient, model: FakeOpenAI
) -> None:
    long_answer = " ".join(["Zephyr retries failed jobs from its database."] * 120) + " [1]"
    model.always(Reply(long_answer))
    ask_by_mention(fake)

    fake.wait_for(lambda: finished(fake))
    parts = bot_messages(fake)
    assert len(parts) >= 3 and all(len(p["content"]) <= 2000 for p in parts)
    assert " ".join(p["content"] for p in parts).split() == long_answer.split()
    assert parts[-1]["components"] and not parts[0].get("components")


def test_a_button_click_stores_feedback(fake: FakeDiscord, bot: RunningClient) -> None:
    ask_by_mention(fake)
    [answer] = fake.wait_for(lambda: finished(fake))
    up = answer["components"][0]["components"][0]["custom_id"]
    assert up.startswith(FEEDBACK_PREFIX + "up:")

    click = fake.interaction_create_component(up, ALICE, CHANNEL_ID, int(answer["id"]))
    fake.dispatch("INTERACTION_CREATE", click)

    fake.wait_for(lambda: fake.calls_to("POST", r"/interactions/\d+/[^/]+/callback"))
    with bot.client.runtime.sessions() as session:
        vote = session.scalars(select(Feedback)).one()
        assert (vote.turn_id, vote.user_id, vote.value) == (int(up.split(":")[-1]), str(ALICE), 1)


def test_a_gateway_drop_resumes_and_answers_nothing_twice(
    fake: FakeDiscord, bot: RunningClient
) -> None:
    ask_by_mention(fake)
    fake.wait_for(lambda: finished(fake))

    fake.disconnect()
    ask_by_mention(fake, "How do I restore a backup?")  # delivered after the RESUME

    fake.wait_for(lambda: len(finished(fake)) == 2, timeout=20)
    time.sleep(0.5)
    assert len(finished(fake)) == 2
    assert fake.resumes == 1 and fake.identifies == 1


def test_a_failing_model_is_said_plainly(
    fake: FakeDiscord, bot: RunningClient, model: FakeOpenAI
) -> None:
    model.always(Status(500))
    ask_by_mention(fake)

    [answer] = fake.wait_for(lambda: finished(fake))
    assert answer["content"].startswith("The language models are unavailable right now")


def test_admin_is_refused_to_members_and_run_and_audited_for_managers(
    fake: FakeDiscord, bot: RunningClient
) -> None:
    fake.add_member(MIA, "mia", manage_guild=True)
    bot.run(bot.client.tree.sync())
    [admin] = [c for c in fake.commands() if c["name"] == "admin"]
    assert int(admin["default_member_permissions"]) == MANAGE_GUILD  # hidden from members

    for user in (ALICE, MIA):
        status = fake.interaction_create_command("admin", {"command": "status"}, user)
        fake.dispatch("INTERACTION_CREATE", status)
    replies = fake.wait_for(
        lambda: (r := fake.calls_to("POST", r"/webhooks/\d+/[^/]+")) and len(r) == 2 and r
    )

    texts = sorted(r.json["content"] for r in replies)
    assert any(t.startswith("```\nOnly teambot admins can run admin commands") for t in texts)
    assert any(t.startswith("```\nIndex: 1 sources, 4 documents") for t in texts)
    assert all(r.json["flags"] & 64 for r in replies)  # ephemeral
    with bot.client.runtime.sessions() as session:
        audit = session.scalars(select(AuditEntry).order_by(AuditEntry.id)).all()
        assert {(a.user_id, a.command, a.outcome.split(":")[0]) for a in audit} == {
            (str(ALICE), "status", "refused"),
            (str(MIA), "status", "ok"),
        }


def test_a_rate_limited_reply_is_sent_after_retry_after(
    fake: FakeDiscord, bot: RunningClient
) -> None:
    fake.fail_next("POST", MESSAGES, retry_after=0.5)
    ask_by_mention(fake)

    [answer] = fake.wait_for(lambda: finished(fake))
    posts = fake.calls_to("POST", MESSAGES)
    assert [p.status for p in posts] == [429, 200]
    assert posts[1].at - posts[0].at >= 0.5 and answer["content"] == ANSWER


# --- an unreachable database (as on Slack: nothing is answered without it) ---------------


def rename_table(bot: RunningClient, table: str, to: str) -> None:
    """Take a table away (or bring it back): the database fails every use of it meanwhile."""
    with bot.client.runtime.engine.begin() as connection:
        connection.execute(text(f"ALTER TABLE {table} RENAME TO {to}"))


def stored_turns(bot: RunningClient) -> list[str]:
    with bot.client.runtime.sessions() as session:
        return list(session.scalars(select(Turn.role).order_by(Turn.id)))


def test_a_message_the_database_cannot_record_is_answered_once_it_is_back(
    fake: FakeDiscord, bot: RunningClient
) -> None:
    rename_table(bot, "processed_events", "away")  # the claim table is gone for a moment
    ask_by_mention(fake)
    fake.wait_for(lambda: fake.calls_to("POST", TYPING))  # the claim failed: waiting to retry
    rename_table(bot, "away", "processed_events")

    [answer] = fake.wait_for(lambda: finished(fake))
    assert answer["content"] == ANSWER
    assert len(bot_messages(fake)) == 1
    assert stored_turns(bot) == ["user", "assistant"]


def test_a_message_the_database_never_records_is_declined_plainly_and_not_answered(
    fake: FakeDiscord, bot: RunningClient, model: FakeOpenAI
) -> None:
    rename_table(bot, "processed_events", "away")
    question = ask_by_mention(fake)

    [reply] = fake.wait_for(lambda: bot_messages(fake), timeout=sum(RETRY_SECONDS) + 10)
    time.sleep(0.5)
    rename_table(bot, "away", "processed_events")
    assert reply["content"] == DATABASE_DOWN
    assert reply["message_reference"]["message_id"] == question["id"]
    assert len(fake.calls_to("POST", TYPING)) >= len(RETRY_SECONDS)
    assert len(bot_messages(fake)) == 1 and model.chat_requests() == []
    assert stored_turns(bot) == []


def test_an_answer_the_database_cannot_serve_waits_for_it_in_the_same_message(
    fake: FakeDiscord, bot: RunningClient
) -> None:
    rename_table(bot, "turns", "away")  # memory can neither read nor store the conversation
    ask_by_mention(fake)
    fake.wait_for(
        lambda: [c for c in fake.calls_to("PATCH", EDITS) if c.json["content"] == STILL_WORKING]
    )
    rename_table(bot, "away", "turns")

    [answer] = fake.wait_for(lambda: finished(fake))
    assert answer["content"] == ANSWER
    assert len(bot_messages(fake)) == 1  # the placeholder, edited into the answer
    assert stored_turns(bot) == ["user", "assistant"]


def test_an_answer_whose_database_stays_away_says_so_and_stores_no_turn(
    fake: FakeDiscord, bot: RunningClient
) -> None:
    rename_table(bot, "turns", "away")
    ask_by_mention(fake)

    fake.wait_for(
        lambda: [m for m in bot_messages(fake) if m["content"] == DATABASE_DOWN],
        timeout=sum(RETRY_SECONDS) + 10,
    )
    rename_table(bot, "away", "turns")
    [reply] = bot_messages(fake)
    assert not reply.get("components") and not reply.get("embeds")
    assert stored_turns(bot) == []


def test_a_click_the_database_cannot_record_is_asked_to_click_again(
    fake: FakeDiscord, bot: RunningClient
) -> None:
    ask_by_mention(fake)
    [answer] = fake.wait_for(lambda: finished(fake))
    up = answer["components"][0]["components"][0]["custom_id"]
    rename_table(bot, "feedback", "away")

    click = fake.interaction_create_component(up, ALICE, CHANNEL_ID, int(answer["id"]))
    fake.dispatch("INTERACTION_CREATE", click)

    [callback] = fake.wait_for(lambda: fake.calls_to("POST", r"/interactions/\d+/[^/]+/callback"))
    rename_table(bot, "away", "feedback")
    assert callback.json["data"]["content"] == NOT_NOW
    assert callback.json["data"]["flags"] & 64  # ephemeral
    with bot.client.runtime.sessions() as session:
        assert session.scalars(select(Feedback)).all() == []


def test_someone_elses_reply_to_an_answered_question_is_a_gap(
    fake: FakeDiscord, bot: RunningClient
) -> None:
    fake.add_member(MIA, "mia", manage_guild=True)
    question = ask_by_mention(fake)
    fake.wait_for(lambda: finished(fake))

    for said, author in [("ok, and TLS?", MIA), ("thanks!", ALICE),
                         ("It is 7070; ZEPHYR_PORT changes it.", MIA)]:  # fmt: skip
        reply = fake.message_create(CHANNEL_ID, said, author, message_reference=question["id"])
        fake.dispatch("MESSAGE_CREATE", reply)

    def stored() -> list[Gap]:
        with bot.client.runtime.sessions() as session:
            return list(session.scalars(select(Gap)))

    [gap] = fake.wait_for(stored)
    time.sleep(0.3)
    assert len(stored()) == 1 and len(finished(fake)) == 1  # teambot did not answer them
    assert (gap.kind, gap.platform, gap.channel, gap.question) == (
        "answered_by_person",
        "discord",
        str(CHANNEL_ID),
        "Which port does Zephyr listen on?",
    )


def test_a_workers_notice_is_posted_in_its_discord_channel(
    fake: FakeDiscord, bot: RunningClient
) -> None:
    runtime = bot.client.runtime
    with runtime.sessions.begin() as session:
        notify = {"platform": "discord", "channel": str(CHANNEL_ID)}
        coordination.leave_notice(session, notify, "teambot gaps, last 7 days: none.")
    duties = ReplicaDuties(runtime, {}, {"discord": bot.client.post_notice})

    duties.tick()

    [posted] = bot_messages(fake)
    assert posted["content"] == "```\nteambot gaps, last 7 days: none.\n```"


def test_nothing_teambot_posts_can_ping_everyone_or_a_role(
    fake: FakeDiscord, bot: RunningClient, model: FakeOpenAI
) -> None:
    """A model (or a quoted question, gap or reason) may write @everyone or <@&role>: Discord
    must be told to ping nobody but, in a reply, the asker."""
    model.always(Reply("Zephyr listens on port 8731 [1]. @everyone <@&42> <@99>"))
    ask_by_mention(fake, "Which port does Zephyr listen on? @everyone")

    fake.wait_for(lambda: finished(fake))
    sent = [c for c in fake.calls if c.method in ("POST", "PATCH") and "/messages" in c.path]
    assert sent and all(
        c.json.get("allowed_mentions", {}).get("parse") == [] for c in sent if c.json
    ), [c.json.get("allowed_mentions") for c in sent if c.json]
