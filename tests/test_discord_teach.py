"""'Teach teambot' on Discord end to end: the real discord.py client against the fake Discord
and a fake model. A question teambot abstains on, a teammate's reply, the message context
menu (refused, then allowed), the answer cited later, and edits and deletions following it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from bot.admin import Actor, run_admin
from bot.discord.teach import TEACH_COMMAND
from bot.runtime import Runtime
from bot.settings import Settings
from knowledge.embed.embedder import Embedder
from knowledge.ingest.local import ingest_folder
from knowledge.storage.answers import TeamAnswer
from knowledge.storage.conversations import AuditEntry
from tests.corpus import write_corpus
from tests.fakes.discord import BOT_USER_ID, CHANNEL_ID, FakeDiscord, pointed_at
from tests.fakes.discord.teach import delete_message, edit_message, message_command
from tests.fakes.openai_server import FakeOpenAI
from tests.test_discord import ALICE, MIA, RETRY_SECONDS, Client, ask_by_mention, finished
from tests.test_fake_discord import RunningClient

ASKED = "Does Zephyr support Microsoft Teams?"
PARAPHRASE = "Can Zephyr post its answers into Microsoft Teams channels?"
TEAMS = ("No. Zephyr has no Microsoft Teams integration; forward its webhook to a Teams "
         "incoming webhook instead.")  # fmt: skip
FOLLOW_UPS = r"/webhooks/\d+/[^/]+"


@pytest.fixture
def fake() -> Iterator[FakeDiscord]:
    with FakeDiscord() as running, pointed_at(running):
        running.add_member(ALICE, "alice")
        yield running


@pytest.fixture
def bot(fake: FakeDiscord, model: FakeOpenAI, tmp_path: Path,
        embedder: Embedder) -> Iterator[RunningClient]:  # fmt: skip
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        database_url=f"sqlite:///{tmp_path / 'teambot.db'}", data_dir=tmp_path / "data",
        local_llm_base_url=model.base_url, local_llm_model="local-model",
        llm_route="local-only", llm_total_timeout_seconds=10, llm_max_retries=0,
        discord_update_seconds=0.05, teambot_admins=f"discord:{ALICE}",
    )  # fmt: skip
    runtime = Runtime(settings)
    runtime.__dict__["embedder"] = embedder
    ingest_folder(runtime.sessions, embedder, write_corpus(tmp_path / "docs"), name="zephyr")
    running = RunningClient(Client(runtime, database_retry_seconds=RETRY_SECONDS,
                                   guild_ready_timeout=0.1))  # type: ignore[arg-type]  # fmt: skip
    running.start()
    fake.wait_for(lambda: running.client.ready_count)
    yield running
    running.stop()
    runtime.close()


def followups(fake: FakeDiscord, containing: str) -> list[dict[str, Any]]:
    return [c.json for c in fake.calls_to("POST", FOLLOW_UPS) if containing in c.json["content"]]


def saved(bot: RunningClient) -> list[TeamAnswer]:
    with bot.client.runtime.sessions() as session:
        return list(session.scalars(select(TeamAnswer).order_by(TeamAnswer.id)))


def test_a_teammates_reply_is_taught_by_context_menu_cited_edited_and_deleted(
    fake: FakeDiscord, bot: RunningClient
) -> None:
    fake.add_member(MIA, "mia")  # no Manage Server
    bot.run(bot.client.tree.sync())
    [menu] = [c for c in fake.commands() if c["name"] == TEACH_COMMAND]
    assert menu["type"] == 3
    question = ask_by_mention(fake, ASKED)
    [abstained] = fake.wait_for(lambda: finished(fake))
    assert abstained["embeds"][0]["title"] == "Might help"
    answer = fake.message_create(CHANNEL_ID, TEAMS, MIA, message_reference=question["id"])
    fake.dispatch("MESSAGE_CREATE", answer)

    def use_menu(on: dict[str, Any] = answer) -> None:
        menu = message_command(fake, TEACH_COMMAND, CHANNEL_ID, int(on["id"]), MIA)
        fake.dispatch("INTERACTION_CREATE", menu)

    use_menu()
    [refused] = fake.wait_for(lambda: followups(fake, "Only teambot admins can teach"))
    assert refused["flags"] & 64 and f"discord:{CHANNEL_ID} teach=on" in refused["content"]
    assert run_admin(bot.client.runtime, Actor("cli", "ops"),
                     ["channel", "set", f"discord:{CHANNEL_ID}", "teach=on"]).ok  # fmt: skip
    use_menu(question)  # the question replies to nothing: it is no answer
    fake.wait_for(lambda: followups(fake, "Use Teach teambot on a reply"))
    use_menu()
    fake.wait_for(lambda: followups(fake, "Saved as team answer"))
    [row] = saved(bot)
    assert (row.question, row.answer, row.author_name, row.is_private) == (
        ASKED, TEAMS, "Mia", False)  # fmt: skip
    assert row.permalink and row.permalink.endswith(f"/{CHANNEL_ID}/{answer['id']}")

    ask_by_mention(fake, PARAPHRASE)
    cited = fake.wait_for(lambda: len(f := finished(fake)) == 2 and f)[1]
    sources = cited["embeds"][0]["description"]
    assert "answered by @Mia in #general, " in sources and f"]({row.permalink})" in sources

    edit = "Yes: the Teams bridge plugin posts answers."
    fake.dispatch("MESSAGE_UPDATE", edit_message(fake, CHANNEL_ID, int(answer["id"]), edit))
    fake.wait_for(lambda: "bridge" in saved(bot)[0].answer)
    fake.dispatch("MESSAGE_DELETE", delete_message(fake, CHANNEL_ID, int(answer["id"])))
    fake.wait_for(lambda: not saved(bot))
    with bot.client.runtime.sessions() as session:
        teach_runs = select(AuditEntry.outcome).where(AuditEntry.command == "teach")
        audited = session.scalars(teach_runs.order_by(AuditEntry.id)).all()
    assert audited == ["refused: teaching is off here", f"ok: answer {row.id}"]


DM = 1_400_000_000_000_000_001


def test_an_answer_taught_in_a_dm_is_used_only_there(fake: FakeDiscord, bot: RunningClient) -> None:
    bot.run(bot.client.tree.sync())
    asked = fake.message_create(DM, ASKED, ALICE, guild_id=None)
    answer = fake.message_create(DM, TEAMS, ALICE, message_reference=asked["id"], guild_id=None)
    fake.dispatch("INTERACTION_CREATE",
                  message_command(fake, TEACH_COMMAND, DM, int(answer["id"]), ALICE))  # fmt: skip
    fake.wait_for(lambda: followups(fake, "Saved as team answer"))  # ALICE is an admin
    [row] = saved(bot)
    assert (row.is_private, row.channel, row.question) == (True, str(DM), ASKED)

    ask_by_mention(fake, PARAPHRASE)
    [elsewhere] = fake.wait_for(lambda: finished(fake))
    assert "answered by" not in str(elsewhere["embeds"])
    there = fake.message_create(DM, f"<@{BOT_USER_ID}> {PARAPHRASE}", ALICE, guild_id=None)
    fake.dispatch("MESSAGE_CREATE", there)

    def answered_in_dm() -> list[dict[str, Any]]:
        return [m for m in fake.messages(DM) if m.get("components")]

    [in_dm] = fake.wait_for(answered_in_dm)
    assert "answered by @Alice in a direct message, " in in_dm["embeds"][0]["description"]
