"""'Teach teambot' on Discord: the message context-menu command (application command type 3)
and the edits and deletions that follow a taught message.

The command on a reply saves it as the answer to its reply chain's question: the question
teambot recorded for the chain, else the message it replies to. The confirmation is ephemeral.
An answer taught in a DM, a private thread or a channel @everyone cannot read is used only
there. MESSAGE_UPDATE and MESSAGE_DELETE of a taught message change or remove its answer.
Who may teach, and the audit, are bot.admin.answers; storing is knowledge.ingest.answers.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

import discord
from discord import app_commands

from bot import teaching
from bot.admin import Actor
from bot.admin.answers import teach
from bot.discord.render import failure_text
from knowledge.ingest.answers import AnswerSpec, change_answer_text, remove_message_answer

if TYPE_CHECKING:
    from bot.discord.app import TeambotClient

log = logging.getLogger(__name__)

PLATFORM = "discord"
TEACH_COMMAND = "Teach teambot"
NOT_A_REPLY = (
    "Use Teach teambot on a reply: the message it replies to is the question, the reply you "
    "pick is its answer."
)
BOT_MESSAGE = "That is a bot's message; teach teambot a person's reply instead."
NO_TEXT = "That message has no text to save."


def teach_menu(client: TeambotClient) -> app_commands.ContextMenu:
    """The "Teach teambot" entry of a message's Apps menu."""

    async def callback(interaction: discord.Interaction, message: discord.Message) -> None:
        await on_teach(client, interaction, message)

    return app_commands.ContextMenu(name=TEACH_COMMAND, callback=callback)


async def on_teach(
    client: TeambotClient, interaction: discord.Interaction, message: discord.Message
) -> None:
    await interaction.response.defer(ephemeral=True, thinking=True)
    try:
        reply = await _teach(client, interaction, message)
    except Exception as exc:
        log.exception("teaching from message %s failed", message.id)
        reply = failure_text(exc)
    await interaction.followup.send(reply, ephemeral=True)


async def _teach(
    client: TeambotClient, interaction: discord.Interaction, message: discord.Message
) -> str:
    if message.author.bot:
        return BOT_MESSAGE
    text = message.content.strip()
    if not text:
        return NO_TEXT
    parent = await client._parent(message)
    if parent is None:
        return NOT_A_REPLY
    root = (await client._chain(parent))[0]
    channel = str(message.channel.id)
    sessions = client.runtime.sessions
    recorded = await asyncio.to_thread(teaching.recorded_question, sessions, PLATFORM, channel,
                                       str(root.id))  # fmt: skip
    question = recorded or _without_mentions(parent, client.user)
    spec = AnswerSpec(question=question, answer=text, author=str(message.author.id),
                      platform=PLATFORM, channel=channel,
                      saved_by=f"{PLATFORM}:{interaction.user.id}",
                      author_name=message.author.display_name,
                      channel_name=_place_name(message),
                      is_private=is_private(message), permalink=message.jump_url,
                      message_ref=str(message.id), thread=str(root.id))  # fmt: skip
    actor, admin = Actor(PLATFORM, str(interaction.user.id)), client._is_server_admin(interaction)
    taught = await asyncio.get_running_loop().run_in_executor(
        client._workers, lambda: teach(client.runtime, actor, spec, platform_admin=admin)
    )
    return taught.text


def is_private(message: discord.Message) -> bool:
    """A DM, a private thread, or a channel @everyone cannot read."""
    channel, guild = message.channel, message.guild
    if guild is None:
        return True
    if getattr(channel, "type", None) == discord.ChannelType.private_thread:
        return True
    permissions_for = getattr(channel, "permissions_for", None)
    if permissions_for is None:
        return True  # not a channel teambot knows: taken as private
    return not permissions_for(guild.default_role).read_messages


def _place_name(message: discord.Message) -> str:
    name = getattr(message.channel, "name", None) if message.guild is not None else None
    return f"#{name}" if name else "a direct message"


def _without_mentions(message: discord.Message, bot: discord.ClientUser | None) -> str:
    text = message.content
    if bot is not None:
        text = text.replace(bot.mention, "").replace(f"<@!{bot.id}>", "")
    return text.strip()


async def on_edit(client: TeambotClient, payload: discord.RawMessageUpdateEvent) -> None:
    """A message was edited: a team answer taught from it says what it says now."""
    if payload.message.author.bot or "content" not in payload.data:
        return
    await asyncio.to_thread(change_answer_text, client.runtime.sessions, client.runtime.embedder,
                            PLATFORM, str(payload.channel_id), str(payload.message_id),
                            payload.data["content"])  # fmt: skip


async def on_delete(client: TeambotClient, payload: discord.RawMessageDeleteEvent) -> None:
    """A message was deleted: so is a team answer taught from it."""
    await asyncio.to_thread(remove_message_answer, client.runtime.sessions, PLATFORM,
                            str(payload.channel_id), str(payload.message_id))  # fmt: skip
