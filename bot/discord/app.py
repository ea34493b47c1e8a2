"""The Discord adapter: a discord.py client that turns /ask, mentions and replies into
Questions, and Answers into streamed, cited Discord messages with feedback buttons.

It only translates; the conversation core answers, on a worker thread (it
blocks), while the client's event loop keeps the gateway alive. A conversation
is a reply chain: a mention starts one, and a reply to one of teambot's
answers continues it (its root message names it), so SQL memory follows the
chain; when teambot has no memory of a chain, the chain's messages are read
back as context. Replicas sharing one bot token all receive every message; the
first to record a message's id answers it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import discord
import yarl
from discord import app_commands
from sqlalchemy.exc import DBAPIError

from bot.admin import Actor, run_admin
from bot.errors import SettingsError, user_message
from bot.feedback import record_feedback
from bot.runtime import Runtime
from bot.split import split_message
from bot.streaming import relay
from bot.types import Answer, Citation, Question

log = logging.getLogger(__name__)

PLATFORM = "discord"
MESSAGE_CHARS = 2000
EMBED_CHARS = 4000  # under the 4,096 of an embed's description
MAX_CHAIN = 20  # messages read back along a reply chain
FEEDBACK_PREFIX = "teambot:feedback:"
THINKING = "*Thinking…*"


def point_at(api_url: str, gateway_url: str) -> None:
    """Send discord.py's REST calls and gateway connection to these URLs (process-wide:
    discord.py reads both from class attributes; one bot runs per process)."""
    discord.http.Route.BASE = api_url.rstrip("/")
    discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(gateway_url)


class TeambotClient(discord.Client):
    """/ask, mentions and reply chains answered from the docs; 👍/👎 stored as feedback."""

    def __init__(self, runtime: Runtime, **options: Any) -> None:
        intents = discord.Intents.default()
        intents.message_content = True  # the Message Content intent: reading questions
        super().__init__(intents=intents, **options)
        self.runtime = runtime
        self.settings = runtime.settings
        self.tree = app_commands.CommandTree(self)
        self._workers = ThreadPoolExecutor(self.settings.answer_workers, "discord-answer")

        @self.tree.command(name="ask", description="Ask a question about the team's docs")
        @app_commands.describe(question="What you want to know")
        async def ask(interaction: discord.Interaction, question: str) -> None:
            await self.on_ask(interaction, question)

        @self.tree.command(name="admin", description="teambot admin commands (try: help)")
        @app_commands.describe(command="e.g. status, sources list, channel show discord:123")
        @app_commands.default_permissions(manage_guild=True)  # shown to Manage Server by default
        async def admin(interaction: discord.Interaction, command: str) -> None:
            await self.on_admin(interaction, command)

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
            return
        if not await asyncio.to_thread(self._first_delivery, message.id):
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
                                  platform_admin=self._is_server_admin(interaction)),
            )  # fmt: skip
            text = f"```\n{result.text}\n```"
        except Exception as exc:
            log.exception("admin command %r failed", command)
            text = user_message(exc)
        for piece in split_message(text, MESSAGE_CHARS):
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
        custom_id = (interaction.data or {}).get("custom_id", "")
        if interaction.type is not discord.InteractionType.component:
            return
        if not custom_id.startswith(FEEDBACK_PREFIX):
            return
        vote, _, turn = custom_id.removeprefix(FEEDBACK_PREFIX).partition(":")
        try:
            stored = await asyncio.get_running_loop().run_in_executor(
                self._workers, record_feedback, self.runtime.sessions, int(turn),
                str(interaction.user.id), 1 if vote == "up" else -1,
            )  # fmt: skip
        except ValueError:
            stored = False
        await interaction.response.send_message(
            "Thanks, your feedback is recorded." if stored
            else "That answer no longer exists, so the feedback was not recorded.",
            ephemeral=True,
        )  # fmt: skip

    def _first_delivery(self, message_id: int) -> bool:
        """Every replica connected with this token sees each message: the one that records
        its id first answers it (bot.inbox, without a payload: dedupe only)."""
        try:
            return self.runtime.inbox.claim(PLATFORM, str(message_id), None)
        except DBAPIError as exc:
            log.error("cannot record message %s, answering anyway: %s", message_id, exc)
            return True

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

    async def _answer(self, question: Question, edit: Any, send: Any) -> None:
        """Stream the answer into the first message (edits throttled by DISCORD_UPDATE_SECONDS),
        then the final pieces, sources and buttons; failures are said, never swallowed."""
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

        try:
            answer = await loop.run_in_executor(self._workers, work)
            pieces = split_message(answer.text, MESSAGE_CHARS)
            extras = [{} for _ in pieces]
            extras[-1] = {"embed": sources_embed(answer.citations), "view": feedback_view(answer)}
            await edit(pieces[0], **extras[0])
            for piece, extra in zip(pieces[1:], extras[1:], strict=True):
                await send(piece, **extra)
        except Exception as exc:
            log.exception("answering %s failed", question.user)
            await edit(user_message(exc), embed=None, view=None)


def sources_embed(citations: list[Citation]) -> discord.Embed | None:
    """The numbered sources as links, in one embed (None when the answer cites nothing)."""
    if not citations:
        return None
    lines = []
    for c in citations:
        if c.path is not None:  # a file on the bot's machine: nothing a reader could open
            lines.append(f"[{c.n}] {c.label} — `{c.location}`")
        else:
            url = f"{c.url}#{c.anchor}" if c.anchor else c.url
            lines.append(f"[{c.n}] [{c.label}]({url})")
    return discord.Embed(title="Sources", description="\n".join(lines)[:EMBED_CHARS])


def feedback_view(answer: Answer) -> discord.ui.View | None:
    """👍 / 👎 buttons whose ids carry the stored answer's id (handled in on_interaction, so
    they keep working after a restart)."""
    if answer.turn_id is None:
        return None
    view = discord.ui.View(timeout=None)
    for vote, emoji in (("up", "👍"), ("down", "👎")):
        view.add_item(
            discord.ui.Button(
                emoji=emoji,
                style=discord.ButtonStyle.secondary,
                custom_id=f"{FEEDBACK_PREFIX}{vote}:{answer.turn_id}",
            )
        )
    return view


class DiscordRunner:
    """The Discord client on an event loop of its own, so it can run on any thread: ``run()``
    blocks until the client stops, and ``stop()`` (from another thread) closes it."""

    def __init__(self, runtime: Runtime) -> None:
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


def run_discord(runtime: Runtime) -> None:
    """Connect to Discord (DISCORD_API_URL, DISCORD_GATEWAY_URL) and answer until stopped."""
    DiscordRunner(runtime).run()
