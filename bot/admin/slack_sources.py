"""Slack channels as sources, for admins: add one (teambot must be in it), forget one.

``admin sources add #channel --kind slack-channel`` (or ``teambot sources add '#channel'``)
asks Slack whether teambot is a member and whether the channel is private, then registers it
(knowledge.ingest.slack_channels); its threads come in at the next refresh.
``admin sources forget #channel`` deletes the channel's documents, chunks and refresh state
in one transaction; ``run_admin`` audits it like every command.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from bot.errors import AdminError
from bot.settings import Settings
from knowledge.ingest.slack_channels import add_channel, forget_channel
from knowledge.ingest.slack_client import SlackAccess, open_reader, slack_access
from knowledge.ingest.sources import SourceSpec
from knowledge.storage.slack_history import SlackChannel

if TYPE_CHECKING:
    from bot.admin.commands import SourcesDeps, Spelling

NO_TOKEN = (
    "Reading a Slack channel needs SLACK_BOT_TOKEN (the Slack app's Bot User OAuth Token, "
    "with the channels:history, groups:history, channels:read and groups:read scopes); set "
    "it and restart teambot."
)


def slack_access_of(settings: Settings) -> SlackAccess | None:
    """How this process reaches Slack's Web API (None: no bot token configured)."""
    return slack_access(settings.slack_bot_token.get_secret_value(), settings.slack_api_url)


def add_channel_as(deps: SourcesDeps, spec: SourceSpec, spelling: Spelling) -> str:
    """Register the channel ``spec.location`` names; says where its content will be used."""
    access = slack_access_of(deps.settings)
    if access is None:
        raise AdminError(NO_TOKEN)
    reader = open_reader(access)
    try:
        with deps.sessions.begin() as session:
            source = add_channel(session, reader, spec)
            channel = session.get_one(SlackChannel, source.id)
            name, where, private = source.name, channel.channel_name, channel.is_private
    finally:
        reader.close()
    used = (
        f"it is private, so its threads are used only when answering in #{where}"
        if private
        else "its threads are used wherever teambot answers"
    )
    hint = spelling.index_hint.format(name=name)
    return f"Added Slack channel #{where} as source {name!r}; {used}. {hint}"


def forget_channel_named(deps: SourcesDeps, text: str) -> str:
    """Delete a channel's history (documents, chunks, refresh state) and say what went."""
    with deps.sessions.begin() as session:
        gone = forget_channel(session, text)
    return (
        f"Forgot {gone.channel}: removed source {gone.source!r} with {gone.threads} threads "
        f"({gone.chunks} passages) and its refresh state."
    )
