"""The Discord adapter: a discord.py client that turns /ask, mentions and replies into
Questions, and Answers into streamed, cited Discord messages (bot.discord.render) with
feedback buttons.

It only translates; the conversation core answers, on a worker thread (it
blocks), while the client's event loop keeps the gateway alive. A conversation
is a reply chain: a mention starts one, and a reply to one of teambot's
answers continues it (its root message names it), so SQL memory follows the
chain; when teambot has no memory of a chain, the chain's messages are read
back as context. Someone else's reply to a question put to teambot, after teambot
answered it, is a gap: a person answered after teambot (bot.gaps). Feedback clicks, and the
"what was wrong?" modal a 👎 opens, are bot.discord.feedback. Replicas
sharing one bot token all receive every message; the first to record a message's
id answers it.

When the database is unreachable nothing is answered without it, as on Slack
(which answers 503 and retries). Discord never delivers a message twice, so
teambot retries itself, after each of ``database_retry_seconds``: the claim of a
message (typing meanwhile), and an answer the core could not read or store (the
reply says "Still working on it…" meanwhile and then gets the answer). If the
database is still away, the reply says so and to ask again; the question and
answer are stored in one transaction, so no half-stored turn is left. Every
replica that saw the message says so then: the database that decides which one
answers is the one that is down. A feedback click cannot wait (Discord wants its
reply within 3 s): it is told to click again. "Teach teambot", the message context menu, is
bot.discord.teach.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import discord
import yarl
from discord import app_commands
from sqlalchemy.exc import DBAPIError

from bot import gaps
from bot.admin import Actor, run_admin
from bot.audience import Audience
from bot.chat_deps import ChatDeps
from bot.discord import teach
from bot.discord.feedback import FeedbackInteractions
from bot.discord.render import (
    MESSAGE_CHARS,
    THINKING,
    admin_messages,
    answer_messages,
    failure_text,
)
from bot.errors import SettingsError
from bot.streaming import DATABASE_DOWN, STILL_WORKING, relay
from bot.types import Answer, Question
from knowledge.storage.processes import Notice

log = logging.getLogger(__name__)

PLATFORM = "discord"
MAX_CHAIN = 20  # messages read back along a reply chain
NOTICE_SECONDS = 30.0  # longest a replica waits for a worker's notice to be posted
# Waits before each retry while the database is unreachable (about 17 s in all: "briefly").
DATABASE_RETRY_SECONDS = (2.0, 5.0, 10.0)

Edit = Callable[..., Awaitable[None]]  # edit the reply message: (content, **fields)
Send = Callable[..., Awaitable[None]]  # send a further message: (content, **fields)


def point_at(api_url: str, gateway_url: str) -> None:
    """Send discord.py's REST calls and gateway connection to these URLs (process-wide:
    discord.py reads both from class attributes; one bot runs per process)."""
    discord.http.Route.BASE = api_url.rstrip("/")
    discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(gateway_url)


class TeambotClient(discord.Client):
    """/ask, mentions and reply chains answered from the docs; 👍/👎 stored as feedback."""

    def __init__(
        self,
        runtime: ChatDeps,
        *,
        database_retry_seconds: Sequence[float] = DATABASE_RETRY_SECONDS,
        **options: Any,
    ) -> None:
        intents = discord.Intents.default()
        intents.message_content = True  # the Message Content intent: reading questions
        # Whatever a model writes or a message quotes (@everyone, <@&role>, <@user>), teambot
        # pings nobody: every send and edit says so to Discord.
        options.setdefault("allowed_mentions", discord.AllowedMentions.none())
        super().__init__(intents=intents, **options)
        self.runtime = runtime
        self.settings = runtime.settings
        self.tree = app_commands.CommandTree(self)
        self._workers = ThreadPoolExecutor(self.settings.answer_workers, "discord-answer")
        self._retry_seconds = tuple(database_retry_seconds)
        self.feedback = FeedbackInteractions(runtime.sessions, self._workers)

        @self.tree.command(name="ask", description="Ask a question about the team's docs")
        @app_commands.describe(question="What you want to know")
        async def ask(interaction: discord.Interaction, question: str) -> None:
            await self.on_ask(interaction, question)

        @self.tree.command(name="admin", description="teambot admin commands (try: help)")
        @app_commands.describe(command="e.g. status, sources list, channel show discord:123")
        @app_commands.default_permissions(manage_guild=True)  # shown to Manage Server by default
        async def admin(interaction: discord.Interaction, command: str) -> None:
            await self.on_admin(interaction, command)

        self.tree.add_command(teach.teach_menu(self))  # "Teach teambot" (bot.discord.teach)

    async def setup_hook(self) -> None:
        """Sync /ask: to the configured guilds at once, else globally (Discord may take an hour
        to show global commands)."""
        guilds = self.settings.discord_guild_id_list
        for guild_id in guilds:
            guild = discord.Object(id=guild_id)
            self.tree.copy_global_to(guild=guild)
            await self.tree.sync(guild=guild)
        if not guilds:
            await self.tree.sync()

    async def on_message(self, message: discord.Message) -> None:
        if message.author.bot or self.user is None:
            return  # ourselves and other bots
        mentioned = self.user in message.mentions
        parent = await self._parent(message)
        replying_to_us = parent is not None and parent.author == self.user
        if not (mentioned or replying_to_us):
            if parent is not None and self.user in parent.mentions:
                await self._note_person_answer(message, parent)
            return
        first = await self._claim(message)
        if first is None:
            await message.reply(DATABASE_DOWN, mention_author=False)
            return
        if not first:
            return
        chain = await self._chain(message) if replying_to_us else [message]
        root = chain[0]
        text = message.content.replace(self.user.mention, "").replace(
            f"<@!{self.user.id}>", ""
        ).strip()  # fmt: skip
        history = tuple(
            ("assistant" if m.author == self.user else "user", m.content) for m in chain[:-1]
        )
        question = Question(PLATFORM, str(message.channel.id), str(root.id), str(message.author.id),
                            text, is_private=message.guild is None, history=history)  # fmt: skip
        placeholder = await message.reply(THINKING, mention_author=False)

        async def edit(content: str, **extra: Any) -> None:
            await placeholder.edit(content=content, **extra)

        async def send(content: str, **extra: Any) -> None:
            await message.channel.send(content, **extra)

        await self._answer(question, edit, send)

    async def on_raw_message_edit(self, payload: discord.RawMessageUpdateEvent) -> None:
        await teach.on_edit(self, payload)  # a taught message follows its edits

    async def on_raw_message_delete(self, payload: discord.RawMessageDeleteEvent) -> None:
        await teach.on_delete(self, payload)

    async def _note_person_answer(self, message: discord.Message, asked: discord.Message) -> None:
        """Someone replied to a question put to teambot, other than its asker and not with a
        question of their own: if teambot answered it, a person answered after teambot, a gap
        for teambot's last answer in that chain (bot.gaps)."""
        if message.author == asked.author or message.content.rstrip().endswith("?"):
            return
        root = (await self._chain(asked))[0]
        try:
            await asyncio.to_thread(gaps.record_person_answer, self.runtime.sessions, PLATFORM,
                                    str(message.channel.id), str(root.id),
                                    str(message.author.id))  # fmt: skip
        except DBAPIError as exc:  # a lost gap is not worth an error in the chat
            log.warning("cannot record a person's answer to %s: %s", asked.id, exc)

    async def on_ask(self, interaction: discord.Interaction, text: str) -> None:
        await interaction.response.defer(thinking=True)  # at once: Discord waits 3 s at most
        question = Question(PLATFORM, str(interaction.channel_id), f"ask-{interaction.id}",
                            str(interaction.user.id), text,
                            is_private=interaction.guild_id is None)  # fmt: skip

        async def edit(content: str, **extra: Any) -> None:
            await interaction.edit_original_response(content=content, **extra)

        async def send(content: str, **extra: Any) -> None:
            await interaction.followup.send(content, **extra)

        await self._answer(question, edit, send)

    async def on_admin(self, interaction: discord.Interaction, command: str) -> None:
        """Run an admin command for Manage Server members, the DISCORD_ADMIN_ROLE and teambot's
        own admins (others are refused by run_admin, and audited); the reply is ephemeral."""
        await interaction.response.defer(ephemeral=True, thinking=True)
        actor = Actor(PLATFORM, str(interaction.user.id))
        try:
            result = await asyncio.get_running_loop().run_in_executor(
                self._workers,
                lambda: run_admin(self.runtime, actor, command,
                                  platform_admin=self._is_server_admin(interaction),
                                  audience=Audience(PLATFORM, str(interaction.channel_id))),
            )  # fmt: skip
            pieces = admin_messages(result.text)
        except Exception as exc:
            log.exception("admin command %r failed", command)
            pieces = [failure_text(exc)]
        for piece in pieces:
            await interaction.followup.send(piece, ephemeral=True)

    def _is_server_admin(self, interaction: discord.Interaction) -> bool:
        if interaction.guild_id is None:
            return False  # a DM vouches for nothing
        if interaction.permissions.manage_guild:
            return True
        role = self.settings.discord_admin_role
        roles = getattr(interaction.user, "roles", [])
        return bool(role) and any(role in (r.name, str(r.id)) for r in roles)

    async def on_interaction(self, interaction: discord.Interaction) -> None:
        await self.feedback.on_interaction(interaction)  # 👍 / 👎 and why (bot.discord.feedback)

    def post_notice(self, notice: Notice) -> None:
        """Post a worker's notice (the gaps digest) in its channel, from another thread (the
        replica's duties): blocks until it is sent, or raises."""
        sent = asyncio.run_coroutine_threadsafe(self.send_notice(notice), self.loop)
        sent.result(timeout=NOTICE_SECONDS)

    async def send_notice(self, notice: Notice) -> None:
        await self.wait_until_ready()
        where = int(notice.channel)
        channel = self.get_channel(where) or await self.fetch_channel(where)
        if not isinstance(channel, discord.abc.Messageable):
            raise SettingsError(f"Discord channel {where} cannot take messages.")
        for piece in admin_messages(notice.text):
            await channel.send(piece)

    async def _claim(self, message: discord.Message) -> bool | None:
        """Whether this replica is the first to record ``message`` (so it answers it); None when
        the database refused every attempt (typing is shown while it is retried)."""
        for delay in (*self._retry_seconds, None):
            try:
                return await asyncio.to_thread(
                    self.runtime.inbox.claim, PLATFORM, str(message.id), None
                )  # bot.delivery.inbox without a payload: dedupe only
            except DBAPIError as exc:
                log.error("cannot record message %s (retrying: %s): %s", message.id,
                          delay is not None, exc)  # fmt: skip
                if delay is None:
                    return None
                async with message.channel.typing():
                    await asyncio.sleep(delay)
        raise AssertionError("the last attempt returns")

    async def _parent(self, message: discord.Message) -> discord.Message | None:
        """The message ``message`` replies to, if any (and if it still exists)."""
        reference = message.reference
        if reference is None or reference.message_id is None:
            return None
        if isinstance(reference.resolved, discord.Message):
            return reference.resolved
        try:
            return await message.channel.fetch_message(reference.message_id)
        except discord.HTTPException:
            return None

    async def _chain(self, message: discord.Message) -> list[discord.Message]:
        """The reply chain that ends at ``message``, oldest first (at most MAX_CHAIN)."""
        chain = [message]
        while len(chain) < MAX_CHAIN:
            parent = await self._parent(chain[-1])
            if parent is None:
                break
            chain.append(parent)
        return chain[::-1]

    async def _answer(self, question: Question, edit: Edit, send: Send) -> None:
        """Stream the answer into the first message (edits throttled by DISCORD_UPDATE_SECONDS),
        then the final pieces, sources and buttons; failures are said, never swallowed. While
        the database is unreachable the answer is tried again, "Still working on it…" shown."""
        loop = asyncio.get_running_loop()

        def show(text: str) -> None:  # on the worker thread
            future = asyncio.run_coroutine_threadsafe(edit(text), loop)
            try:
                future.result(timeout=30)
            except Exception as exc:  # a lost progress edit is not worth failing the answer
                log.warning("progress edit failed: %s", exc)

        def work() -> Answer:
            return relay(self.runtime.assistant.stream(question), show,
                         interval=self.settings.discord_update_seconds,
                         max_chars=MESSAGE_CHARS)  # fmt: skip

        for delay in (*self._retry_seconds, None):
            try:
                answer = await loop.run_in_executor(self._workers, work)
                messages = answer_messages(answer)
                await edit(messages[0][0], **messages[0][1])
                for content, fields in messages[1:]:
                    await send(content, **fields)
                return
            except DBAPIError as exc:
                log.error("answering %s: database unavailable (retrying: %s): %s",
                          question.user, delay is not None, exc)  # fmt: skip
                if delay is None:
                    await edit(failure_text(exc), embed=None, view=None)
                    return
                await edit(STILL_WORKING, embed=None, view=None)
                await asyncio.sleep(delay)
            except Exception as exc:
                log.exception("answering %s failed", question.user)
                await edit(failure_text(exc), embed=None, view=None)
                return


class DiscordRunner:
    """The Discord client on an event loop of its own, so it can run on any thread: ``run()``
    blocks until the client stops, and ``stop()`` (from another thread) closes it."""

    def __init__(self, runtime: ChatDeps) -> None:
        settings = runtime.settings
        self._token = settings.discord_token.get_secret_value()
        if not self._token:
            raise SettingsError(
                "DISCORD_TOKEN is empty: copy the bot token from your application's Bot page "
                "(https://discord.com/developers/applications). See docs/chat-platforms.md."
            )
        point_at(settings.discord_api_url, settings.discord_gateway_url)
        self._client = TeambotClient(runtime)
        self._loop = asyncio.new_event_loop()  # made now, so stop() always has a loop to call

    def post_notice(self, notice: Notice) -> None:
        """Post a worker's notice through the running client (bot.delivery.replica)."""
        self._client.post_notice(notice)

    def run(self) -> None:
        """Connect to Discord and answer until stopped (or until the connection fails)."""
        with asyncio.Runner(loop_factory=lambda: self._loop) as runner:
            runner.run(self._main())

    def stop(self) -> None:
        """Close the gateway connection (code 1000: the session ends at once); ``run()`` returns."""
        with contextlib.suppress(RuntimeError):  # the loop is closed: run() has returned
            asyncio.run_coroutine_threadsafe(self._client.close(), self._loop)

    async def _main(self) -> None:
        async with self._client:
            await self._client.start(self._token)


def run_discord(runtime: ChatDeps) -> None:
    """Connect to Discord (DISCORD_API_URL, DISCORD_GATEWAY_URL) and answer until stopped."""
    DiscordRunner(runtime).run()
