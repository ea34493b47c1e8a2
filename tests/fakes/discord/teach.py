"""What "Teach teambot" uses of the fake Discord: a message context-menu command run on a
stored message, and people editing and deleting their messages.

Each builder changes the fake's stored world as Discord would and returns the payload to
``dispatch()``: INTERACTION_CREATE of a MESSAGE command (application command type 3, its
``target_id`` and the message under ``resolved.messages``), MESSAGE_UPDATE (the whole edited
message, as Discord sends it now) and MESSAGE_DELETE (``id``, ``channel_id``, ``guild_id``).
"""

from __future__ import annotations

import copy
from typing import Any

from tests.fakes.discord.fake import FakeDiscord
from tests.fakes.discord.interactions import APPLICATION_COMMAND
from tests.fakes.discord.payloads import _now

MESSAGE_COMMAND = 3


def message_command(
    fake: FakeDiscord, name: str, channel_id: int, message_id: int, user: int,
    *, member_permissions: int | None = None,
) -> dict[str, Any]:  # fmt: skip
    """The INTERACTION_CREATE payload of ``user`` picking the context-menu command ``name`` on
    the stored message ``message_id`` (the command's id is that of the synced one)."""
    with fake._lock:
        message = fake._find(channel_id, message_id)
        if message is None:
            raise KeyError(f"no message {message_id} in channel {channel_id}")
        channel = fake._channels.get(channel_id, {})
        guild_id = int(channel["guild_id"]) if channel.get("guild_id") else None
        synced = [c for scope in (guild_id, None) for c in fake._commands.get(scope, [])
                  if c["name"] == name and c.get("type") == MESSAGE_COMMAND]  # fmt: skip
        data: dict[str, Any] = {
            "id": synced[0]["id"] if synced else str(fake._next_id()),
            "name": name,
            "type": MESSAGE_COMMAND,
            "target_id": str(message_id),
            "resolved": {"messages": {str(message_id): fake._rest_message(message)}},
        }
        if synced and "guild_id" in synced[0]:
            data["guild_id"] = synced[0]["guild_id"]
        return fake._interaction(APPLICATION_COMMAND, data, user, channel_id, guild_id,
                                 member_permissions)  # fmt: skip


def edit_message(fake: FakeDiscord, channel_id: int, message_id: int, content: str) -> dict:
    """Its author edits the stored message; the MESSAGE_UPDATE payload."""
    with fake._lock:
        message = fake._find(channel_id, message_id)
        if message is None:
            raise KeyError(f"no message {message_id} in channel {channel_id}")
        message["content"] = content
        message["edited_timestamp"] = _now()
        return fake._gateway_message(message)


def delete_message(fake: FakeDiscord, channel_id: int, message_id: int) -> dict[str, Any]:
    """Its author deletes the stored message; the MESSAGE_DELETE payload."""
    with fake._lock:
        message = fake._find(channel_id, message_id)
        if message is None:
            raise KeyError(f"no message {message_id} in channel {channel_id}")
        fake._messages[channel_id].remove(message)
        payload = {"id": message["id"], "channel_id": str(channel_id)}
        guild_id = fake._channels.get(channel_id, {}).get("guild_id")
        if guild_id is not None:
            payload["guild_id"] = guild_id
        return copy.deepcopy(payload)
