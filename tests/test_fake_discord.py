"""Tests for tests/fakes/discord/, driven by the real discord.py client.

The client is pointed at the fake as an app would be (``pointed_at()``: ``Route.BASE`` and
``DiscordWebSocket.DEFAULT_GATEWAY``) and runs in a thread of its own with its own event loop.
They also pin down what the bot relies on: discord.py sleeps out a 429's ``retry_after`` and
retries; a dropped gateway is RESUMEd (no second IDENTIFY, no second ``on_ready``) and the events
missed meanwhile arrive; after a deferral the first follow-up replaces the "thinking" message.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine, Iterator
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import discord
import pytest
from discord import app_commands

from tests.fakes.discord import (
    APPLICATION_ID,
    BOT_TOKEN,
    BOT_USER_ID,
    CHANNEL_ID,
    GUILD_ID,
    LOADING,
    MANAGE_GUILD,
    MANAGER_ROLE_ID,
    RESUME_GATEWAY_PATH,
    FakeDiscord,
    pointed_at,
)

ALICE = 1_300_000_000_000_000_001  # a member without Manage Server
MIA = 1_300_000_000_000_000_002  # a member with it
MENTION = f"<@{BOT_USER_ID}>"
MESSAGES = r"/channels/\d+/messages"
CALLBACK = r"/interactions/\d+/[^/]+/callback"


class ExampleBot(discord.Client):
    """Replies to mentions (typing first, then edits the reply), answers /ask by deferring
    and following up, and answers a button click by updating its message."""

    def __init__(self, *, message_content: bool = True) -> None:
        intents = discord.Intents.default()
        intents.message_content = message_content
        super().__init__(intents=intents, guild_ready_timeout=0.1)
        self.tree = app_commands.CommandTree(self)
        self.ready_count = 0
        self.resumed_count = 0
        self.seen: list[discord.Message] = []
        self.asked: list[tuple[str, bool]] = []  # (question, whether the asker may manage)

        @self.tree.command(name="ask", description="Ask the team's docs a question")
        async def ask(interaction: discord.Interaction, question: str) -> None:
            self.asked.append((question, interaction.permissions.manage_guild))
            await interaction.response.defer(thinking=True)
            await interaction.followup.send(f"Answer to {question}")

    async def before_identify_hook(self, shard_id: int | None, *, initial: bool = False) -> None:
        pass  # discord.py sleeps 5 s before each IDENTIFY but the first: not against the fake

    async def on_ready(self) -> None:
        self.ready_count += 1

    async def on_resumed(self) -> None:
        self.resumed_count += 1

    async def on_message(self, message: discord.Message) -> None:
        self.seen.append(message)
        if message.author == self.user or self.user not in message.mentions:
            return
        async with message.channel.typing():
            reply = await message.reply(f"Looking up: {message.content}")
        await reply.edit(content=f"Found it: {message.content}")

    async def on_interaction(self, interaction: discord.Interaction) -> None:
        if interaction.type is discord.InteractionType.component:
            await interaction.response.edit_message(content=f"Thanks, {interaction.user.name}")


class RunningClient:
    """A discord.py client started in a thread of its own, with its own event loop."""

    def __init__(self, client: ExampleBot) -> None:
        self.client = client
        self._loop: asyncio.AbstractEventLoop | None = None
        self._has_loop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="discord-client", daemon=True)
        self._error: BaseException | None = None

    def start(self) -> None:
        self._thread.start()
        assert self._has_loop.wait(5.0)

    def run(self, coroutine: Coroutine[Any, Any, Any], timeout: float = 10.0) -> Any:
        """Run ``coroutine`` on the client's loop and return its result."""
        assert self._loop is not None
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout)

    def stop(self) -> None:
        if self._thread.is_alive():
            self.run(self.client.close())
        self._thread.join(10.0)
        assert not self._thread.is_alive(), "the client did not stop"
        if self._error is not None:
            raise self._error

    def _run(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as error:  # raised again by stop(), in the test's thread
            self._error = error

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._has_loop.set()
        async with self.client:
            await self.client.start(BOT_TOKEN)


@pytest.fixture
def fake() -> Iterator[FakeDiscord]:
    with FakeDiscord() as running, pointed_at(running):
        running.add_member(ALICE, "alice")
        running.add_member(MIA, "mia", manage_guild=True)
        yield running


def start_bot(fake: FakeDiscord, **options: Any) -> RunningClient:
    running = RunningClient(ExampleBot(**options))
    running.start()
    try:
        fake.wait_for(lambda: running.client.ready_count, 10.0)
    except BaseException:
        running.stop()
        raise
    return running


@pytest.fixture
def bot(fake: FakeDiscord) -> Iterator[RunningClient]:
    running = start_bot(fake)
    yield running
    running.stop()


def bot_messages(fake: FakeDiscord) -> list[dict[str, Any]]:
    return [m for m in fake.messages(CHANNEL_ID) if m["author"]["id"] == str(BOT_USER_ID)]


def test_client_logs_in_identifies_and_caches_the_guild(fake: FakeDiscord, bot: RunningClient):
    client = bot.client
    assert client.user is not None and client.user.id == BOT_USER_ID
    assert client.user.name == "teambot"
    assert client.application_id == APPLICATION_ID
    assert [(c.method, c.path) for c in fake.calls[:2]] == [
        ("GET", "/users/@me"),
        ("GET", "/oauth2/applications/@me"),
    ]
    assert fake.calls[0].headers["authorization"] == f"Bot {BOT_TOKEN}"
    assert fake.identifies == 1 and fake.resumes == 0 and fake.connected()
    target = urlsplit(fake.gateway_connects[0])
    assert target.path == "/gateway"
    assert dict(parse_qsl(target.query))["v"] == "10"
    guild = client.get_guild(GUILD_ID)
    assert guild is not None and guild.me is not None
    assert [channel.id for channel in guild.text_channels] == [CHANNEL_ID]
    assert guild.get_role(MANAGER_ROLE_ID).permissions.manage_guild
    assert guild.member_count == 4  # the bot, the owner, Alice and Mia
    assert guild.get_member(ALICE) is None  # members come with GUILD_MEMBERS only
    assert fake.permissions(MIA) & MANAGE_GUILD and not fake.permissions(ALICE) & MANAGE_GUILD


def test_mention_gets_a_reply_that_is_then_edited(fake: FakeDiscord, bot: RunningClient):
    question = fake.message_create(CHANNEL_ID, f"{MENTION} how do I deploy?", ALICE)
    assert fake.dispatch("MESSAGE_CREATE", question) == 1

    edit = fake.wait_for(lambda: fake.calls_to("PATCH", MESSAGES + r"/\d+"))[0]
    [typing] = fake.calls_to("POST", r"/channels/\d+/typing")
    [post] = fake.calls_to("POST", MESSAGES)
    assert typing.at <= post.at
    assert str(post.json["message_reference"]["message_id"]) == question["id"]
    assert post.json["content"] == f"Looking up: {MENTION} how do I deploy?"
    reply_id = post.response["id"]
    assert edit.path == f"/channels/{CHANNEL_ID}/messages/{reply_id}"
    [reply] = bot_messages(fake)
    assert reply["id"] == reply_id
    assert reply["content"] == f"Found it: {MENTION} how do I deploy?"
    assert reply["edited_timestamp"] is not None
    assert reply["message_reference"]["message_id"] == question["id"]
    # Discord sends the bot its own reply too: the bot must (and does) ignore it.
    fake.wait_for(lambda: len(bot.client.seen) == 2)
    assert bot.client.seen[1].author == bot.client.user
    assert len(bot_messages(fake)) == 1


def test_reply_chains_are_read_back_and_errors_look_like_discord(
    fake: FakeDiscord, bot: RunningClient
):
    first = fake.message_create(CHANNEL_ID, "the deploy docs?", ALICE)
    second = fake.message_create(CHANNEL_ID, "and rollback?", MIA, message_reference=first["id"])
    channel = bot.client.get_channel(CHANNEL_ID)

    fetched = bot.run(channel.fetch_message(int(second["id"])))
    assert fetched.reference is not None
    parent = bot.run(channel.fetch_message(fetched.reference.message_id))
    assert parent.content == "the deploy docs?"
    assert len(fake.calls_to("GET", MESSAGES + r"/\d+")) == 2
    with pytest.raises(discord.NotFound) as unknown:
        bot.run(channel.fetch_message(1))
    assert unknown.value.code == 10008
    with pytest.raises(discord.HTTPException) as too_long:
        bot.run(channel.send("x" * 2001))
    assert (too_long.value.status, too_long.value.code) == (400, 50035)


def test_slash_command_syncs_defers_and_follows_up(fake: FakeDiscord, bot: RunningClient):
    [synced] = bot.run(bot.client.tree.sync())

    [put] = fake.calls_to("PUT", r"/applications/\d+/commands")
    assert put.path == f"/applications/{APPLICATION_ID}/commands"
    assert put.json[0]["name"] == "ask"
    assert [o["name"] for o in put.json[0]["options"]] == ["question"]
    assert synced.id == int(fake.commands()[0]["id"])

    interaction = fake.interaction_create_command("ask", {"question": "how do I deploy?"}, ALICE)
    assert interaction["data"]["id"] == str(synced.id)
    fake.dispatch("INTERACTION_CREATE", interaction)
    [follow_up] = fake.wait_for(lambda: fake.calls_to("POST", r"/webhooks/\d+/[^/]+"))
    [callback] = fake.calls_to("POST", CALLBACK)

    assert callback.path == f"/interactions/{interaction['id']}/{interaction['token']}/callback"
    assert callback.json["type"] == 5
    assert follow_up.path == f"/webhooks/{APPLICATION_ID}/{interaction['token']}"
    assert follow_up.json["content"] == "Answer to how do I deploy?"
    assert callback.at < follow_up.at
    [answer] = bot_messages(fake)  # the follow-up replaced the "thinking" message
    assert answer["content"] == "Answer to how do I deploy?"
    assert not answer["flags"] & LOADING
    assert answer["interaction_metadata"]["id"] == interaction["id"]
    assert bot.client.asked == [("how do I deploy?", False)]

    fake.dispatch(
        "INTERACTION_CREATE", fake.interaction_create_command("ask", {"question": "q"}, MIA)
    )
    fake.wait_for(lambda: len(fake.calls_to("POST", r"/webhooks/\d+/[^/]+")) == 2)
    assert bot.client.asked[1] == ("q", True)


def test_callback_after_the_deadline_finds_the_interaction_expired(
    fake: FakeDiscord, bot: RunningClient
):
    fake.interaction_deadline = 0.0  # as if the bot had worked for 3 s before deferring

    fake.dispatch(
        "INTERACTION_CREATE", fake.interaction_create_command("ask", {"question": "q"}, ALICE)
    )

    [callback] = fake.wait_for(lambda: fake.calls_to("POST", CALLBACK))
    assert callback.status == 404
    assert callback.response == {"message": "Unknown interaction", "code": 10062}
    assert fake.calls_to("POST", r"/webhooks/\d+/[^/]+") == []


def test_guild_commands_sync_to_the_guild(fake: FakeDiscord, bot: RunningClient):
    tree = bot.client.tree
    guild = discord.Object(GUILD_ID)
    tree.copy_global_to(guild=guild)
    [synced] = bot.run(tree.sync(guild=guild))

    [put] = fake.calls_to("PUT", r"/applications/\d+/guilds/\d+/commands")
    assert put.path == f"/applications/{APPLICATION_ID}/guilds/{GUILD_ID}/commands"
    assert fake.commands(GUILD_ID)[0]["guild_id"] == str(GUILD_ID)
    assert fake.commands() == []
    interaction = fake.interaction_create_command("ask", {"question": "where?"}, ALICE)
    assert interaction["data"]["id"] == str(synced.id)
    assert interaction["data"]["guild_id"] == str(GUILD_ID)
    fake.dispatch("INTERACTION_CREATE", interaction)
    fake.wait_for(lambda: fake.calls_to("POST", r"/webhooks/\d+/[^/]+"))


def test_button_click_updates_its_message(fake: FakeDiscord, bot: RunningClient):
    channel = bot.client.get_channel(CHANNEL_ID)
    message = bot.run(channel.send("Was this helpful?"))

    click = fake.interaction_create_component("helpful:yes", ALICE, CHANNEL_ID, message.id)
    fake.dispatch("INTERACTION_CREATE", click)

    [callback] = fake.wait_for(lambda: fake.calls_to("POST", CALLBACK))
    assert callback.json["type"] == 7
    fake.wait_for(lambda: bot_messages(fake)[0]["content"] == "Thanks, alice")


def test_rate_limited_message_is_retried_after_retry_after(fake: FakeDiscord, bot: RunningClient):
    fake.fail_next("POST", MESSAGES, status=429, retry_after=0.5)
    channel = bot.client.get_channel(CHANNEL_ID)

    sent = bot.run(channel.send("hello"))

    limited, accepted = fake.calls_to("POST", MESSAGES)
    assert limited.status == 429
    assert limited.response == {
        "message": "You are being rate limited.",
        "retry_after": 0.5,
        "global": False,
    }
    assert accepted.status == 200 and accepted.response["id"] == str(sent.id)
    assert accepted.at - limited.at >= 0.5
    assert [m["content"] for m in bot_messages(fake)] == ["hello"]


def test_forced_disconnect_resumes_and_replays_missed_events(fake: FakeDiscord, bot: RunningClient):
    fake.disconnect(4000)
    missed = fake.message_create(CHANNEL_ID, f"{MENTION} are you there?", ALICE)
    assert fake.dispatch("MESSAGE_CREATE", missed) == 1  # held for the RESUME

    fake.wait_for(lambda: fake.calls_to("PATCH", MESSAGES + r"/\d+"))
    assert fake.resumes == 1 and fake.identifies == 1
    assert urlsplit(fake.gateway_connects[-1]).path == RESUME_GATEWAY_PATH
    assert bot.client.resumed_count == 1 and bot.client.ready_count == 1

    again = fake.message_create(CHANNEL_ID, f"{MENTION} and now?", ALICE)
    fake.dispatch("MESSAGE_CREATE", again)
    fake.wait_for(lambda: len(fake.calls_to("PATCH", MESSAGES + r"/\d+")) == 2)


def test_ended_session_makes_the_client_identify_again(fake: FakeDiscord, bot: RunningClient):
    fake.disconnect(4009, "Session timed out.", resumable=False)

    fake.wait_for(lambda: bot.client.ready_count == 2)
    assert fake.identifies == 2 and fake.resumes == 0
    # RESUME got INVALID_SESSION; discord.py then IDENTIFYs on the URL it last used.
    paths = [urlsplit(target).path for target in fake.gateway_connects]
    assert paths == ["/gateway", RESUME_GATEWAY_PATH, RESUME_GATEWAY_PATH]


def test_without_message_content_intent_only_mentions_keep_their_content(fake: FakeDiscord):
    running = start_bot(fake, message_content=False)
    try:
        fake.dispatch("MESSAGE_CREATE", fake.message_create(CHANNEL_ID, "just chatting", ALICE))
        mention = fake.message_create(CHANNEL_ID, f"{MENTION} help", ALICE)
        fake.dispatch("MESSAGE_CREATE", mention)
        fake.wait_for(lambda: len(running.client.seen) >= 2)
        assert [m.content for m in running.client.seen[:2]] == ["", f"{MENTION} help"]
    finally:
        running.stop()
