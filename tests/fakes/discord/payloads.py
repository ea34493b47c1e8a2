"""What the fake Discord's objects look like: the fixed world's ids and flags, and users,
members, channels, roles, messages, READY and GUILD_CREATE as Discord shapes them.

``Payloads`` is the part of ``FakeDiscord`` that keeps the world (users, roles,
channels, messages) and renders it; its methods expect the fake's lock held.
"""

from __future__ import annotations

import copy
import re
import threading
import time
from datetime import UTC, datetime
from typing import Any

DISCORD_EPOCH_MS = 1_420_070_400_000
MAX_CONTENT = 2000

BOT_USER_ID = 1_200_000_000_000_000_001
BOT_NAME = "teambot"
# On Discord a bot's user id often equals its application id; distinct ids here catch mix-ups.
APPLICATION_ID = 1_200_000_000_000_000_002
OWNER_ID = 1_200_000_000_000_000_003
GUILD_ID = 1_200_000_000_000_000_010
CHANNEL_ID = 1_200_000_000_000_000_011  # #general, a text channel of the guild
MANAGER_ROLE_ID = 1_200_000_000_000_000_012  # "Managers": Manage Server
BOT_ROLE_ID = 1_200_000_000_000_000_013  # the bot's managed role
APPLICATION_FLAGS = (1 << 19) | (1 << 23)  # GATEWAY_MESSAGE_CONTENT_LIMITED, COMMAND_BADGE

# Permissions
MANAGE_GUILD = 1 << 5
EVERYONE_PERMISSIONS = (
    (1 << 6)  # ADD_REACTIONS
    | (1 << 10)  # VIEW_CHANNEL
    | (1 << 11)  # SEND_MESSAGES
    | (1 << 14)  # EMBED_LINKS
    | (1 << 15)  # ATTACH_FILES
    | (1 << 16)  # READ_MESSAGE_HISTORY
    | (1 << 31)  # USE_APPLICATION_COMMANDS
    | (1 << 38)  # SEND_MESSAGES_IN_THREADS
)
# Gateway intents
GUILD_MEMBERS, GUILD_MESSAGES, DIRECT_MESSAGES, MESSAGE_CONTENT = 1 << 1, 1 << 9, 1 << 12, 1 << 15
# Message flags and types
SUPPRESS_EMBEDS, EPHEMERAL, LOADING = 1 << 2, 1 << 6, 1 << 7
DEFAULT, REPLY, CHAT_INPUT_COMMAND = 0, 19, 20
OPTION_TYPES = ((bool, 5), (int, 4), (float, 10), (str, 3))  # bool first: it is an int too


class Payloads:
    """The world and how it looks over REST and the gateway (with ``FakeDiscord._lock`` held)."""

    resume_gateway_url: str
    _lock: threading.Lock
    _last_id: int
    _users: dict[int, dict[str, Any]]
    _roles: dict[int, list[int]]  # guild members: user id → role ids
    _channels: dict[int, dict[str, Any]]
    _messages: dict[int, list[dict[str, Any]]]

    def _next_id(self) -> int:
        """A fresh snowflake: from the clock, and always above the last one."""
        now = (int(time.time() * 1000) - DISCORD_EPOCH_MS) << 22
        self._last_id = max(self._last_id + 1, now)
        return self._last_id

    def _add_user(
        self, user_id: int, username: str, *, is_bot: bool = False, roles: list[int]
    ) -> dict[str, Any]:
        user = {
            "id": str(user_id),
            "username": username,
            "discriminator": "0",
            "global_name": None if is_bot else username.title(),
            "avatar": None,
            "bot": is_bot,
            "public_flags": 0,
        }
        self._users[user_id] = user
        self._roles[user_id] = roles
        return user

    def _user(self, user_id: int) -> dict[str, Any]:
        """The user ``user_id`` (a made-up human, not a member, if unknown)."""
        user = self._users.get(user_id)
        if user is None:
            name = f"user{user_id % 10_000}"
            user = {"id": str(user_id), "username": name, "discriminator": "0", "avatar": None}
            user |= {"global_name": name.title(), "bot": False, "public_flags": 0}
        return copy.deepcopy(user)

    def _member(self, user_id: int) -> dict[str, Any]:
        """The guild member fields of ``user_id``, without ``user``."""
        return {
            "roles": [str(role) for role in self._roles.get(user_id, [])],
            "nick": None,
            "avatar": None,
            "joined_at": "2024-01-01T00:00:00.000000+00:00",
            "premium_since": None,
            "deaf": False,
            "mute": False,
            "flags": 0,
            "pending": False,
            "communication_disabled_until": None,
        }

    def _permissions(self, user_id: int) -> int:
        granted = EVERYONE_PERMISSIONS
        for role in _roles():
            if int(role["id"]) in self._roles.get(user_id, []):
                granted |= int(role["permissions"])
        return granted

    def _store_message(
        self, channel_id: int, author: int, content: str, **fields: Any
    ) -> dict[str, Any]:
        message: dict[str, Any] = {
            "id": str(self._next_id()),
            "channel_id": str(channel_id),
            "type": DEFAULT,
            "content": content,
            "author": self._user(author),
            "timestamp": _now(),
            "edited_timestamp": None,
            "tts": False,
            "mention_everyone": False,
            "mentions": [self._user(u) for u in dict.fromkeys(_mentioned_ids(content))],
            "mention_roles": [],
            "attachments": [],
            "embeds": [],
            "components": [],
            "pinned": False,
            "flags": 0,
            **fields,
        }
        self._messages.setdefault(channel_id, []).append(message)
        if channel_id in self._channels:
            self._channels[channel_id]["last_message_id"] = message["id"]
        return message

    def _find(self, channel_id: int, message_id: int) -> dict[str, Any] | None:
        messages = self._messages.get(channel_id, [])
        return next((m for m in messages if m["id"] == str(message_id)), None)

    def _rest_message(self, message: dict[str, Any]) -> dict[str, Any]:
        """A copy of ``message`` as REST returns it: with the message it replies to."""
        shown = copy.deepcopy(message)
        reference = message.get("message_reference")
        if message["type"] == REPLY and reference:
            channel_id = int(reference.get("channel_id") or message["channel_id"])
            replied = self._find(channel_id, int(reference["message_id"]))
            shown["referenced_message"] = copy.deepcopy(replied)
        return shown

    def _gateway_message(self, message: dict[str, Any]) -> dict[str, Any]:
        """A copy of ``message`` as the gateway sends it: with guild id and members."""
        shown = self._rest_message(message)
        guild_id = self._channels.get(int(message["channel_id"]), {}).get("guild_id")
        if guild_id is None:
            return shown
        shown["guild_id"] = guild_id
        shown["member"] = self._member(int(message["author"]["id"]))
        for user in shown["mentions"]:
            user["member"] = self._member(int(user["id"]))
        return shown

    def _bot_user(self) -> dict[str, Any]:
        """The bot user as ``GET /users/@me`` and READY describe it."""
        user = self._user(BOT_USER_ID) | {"verified": True, "mfa_enabled": False, "flags": 0}
        return user | {"email": None, "locale": "en-US", "premium_type": 0}

    def _ready(self, session_id: str) -> dict[str, Any]:
        return {
            "v": 10,
            "user": self._bot_user(),
            "guilds": [{"id": str(GUILD_ID), "unavailable": True}],
            "session_id": session_id,
            "session_type": "normal",
            "resume_gateway_url": self.resume_gateway_url,
            "application": {"id": str(APPLICATION_ID), "flags": APPLICATION_FLAGS},
            "private_channels": [],
            "relationships": [],
            "presences": [],
            "geo_ordered_rtc_regions": ["rotterdam"],
            "auth": {},
            "user_settings": {},
            "_trace": ['["fake-discord-gateway",{"micros":0}]'],
        }

    def _guild_create(self, intents: int) -> dict[str, Any]:
        """GUILD_CREATE: members all with GUILD_MEMBERS, else the bot's own (as on Discord)."""
        everyone = [self._member(u) | {"user": self._user(u)} for u in self._roles]
        members = everyone if intents & GUILD_MEMBERS else [m for m in everyone if m["user"]["bot"]]
        channels = [c for c in self._channels.values() if c.get("guild_id") == str(GUILD_ID)]
        return {
            "id": str(GUILD_ID),
            "name": "Teambot Test",
            "icon": None,
            "splash": None,
            "discovery_splash": None,
            "banner": None,
            "description": None,
            "owner_id": str(OWNER_ID),
            "afk_channel_id": None,
            "afk_timeout": 300,
            "verification_level": 0,
            "default_message_notifications": 0,
            "explicit_content_filter": 0,
            "mfa_level": 0,
            "nsfw_level": 0,
            "premium_tier": 0,
            "premium_subscription_count": 0,
            "premium_progress_bar_enabled": False,
            "preferred_locale": "en-US",
            "features": [],
            "roles": _roles(),
            "emojis": [],
            "stickers": [],
            "system_channel_id": str(CHANNEL_ID),
            "system_channel_flags": 0,
            "rules_channel_id": None,
            "public_updates_channel_id": None,
            "vanity_url_code": None,
            "application_id": None,
            "joined_at": "2024-01-01T00:00:00.000000+00:00",
            "large": False,
            "unavailable": False,
            "member_count": len(everyone),
            "members": members,
            "channels": copy.deepcopy(channels),
            "threads": [],
            "presences": [],
            "voice_states": [],
            "stage_instances": [],
            "guild_scheduled_events": [],
            "soundboard_sounds": [],
        }


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")


def _text_channel(channel_id: int, name: str = "general") -> dict[str, Any]:
    return {
        "id": str(channel_id),
        "type": 0,
        "guild_id": str(GUILD_ID),
        "name": name,
        "position": 0,
        "permission_overwrites": [],
        "parent_id": None,
        "nsfw": False,
        "topic": None,
        "last_message_id": None,
        "rate_limit_per_user": 0,
        "flags": 0,
    }


def _dm_channel(channel_id: int, recipient: dict[str, Any]) -> dict[str, Any]:
    return {"id": str(channel_id), "type": 1, "recipients": [recipient], "last_message_id": None}


def _roles() -> list[dict[str, Any]]:
    """@everyone, Managers (Manage Server) and the bot's managed role."""
    everyone = _role(GUILD_ID, "@everyone", 0, EVERYONE_PERMISSIONS)
    managers = _role(MANAGER_ROLE_ID, "Managers", 1, EVERYONE_PERMISSIONS | MANAGE_GUILD)
    bot = _role(BOT_ROLE_ID, BOT_NAME, 2, EVERYONE_PERMISSIONS)
    bot |= {"managed": True, "tags": {"bot_id": str(BOT_USER_ID)}}
    return [everyone, managers, bot]


def _role(role_id: int, name: str, position: int, permissions: int) -> dict[str, Any]:
    return {
        "id": str(role_id),
        "name": name,
        "color": 0,
        "hoist": False,
        "icon": None,
        "unicode_emoji": None,
        "position": position,
        "permissions": str(permissions),
        "managed": False,
        "mentionable": False,
        "flags": 0,
    }


def _reference(channel_id: int, message_id: int, guild_id: Any) -> dict[str, Any]:
    reference = {"type": 0, "message_id": str(message_id), "channel_id": str(channel_id)}
    if guild_id is not None:
        reference["guild_id"] = str(guild_id)
    return reference


def _mentioned_ids(content: str) -> list[int]:
    """The users ``<@id>`` (or ``<@!id>``) in ``content`` mentions."""
    return [int(user_id) for user_id in re.findall(r"<@!?(\d+)>", content)]


def _owners(guild_id: int | None, user_id: int) -> dict[str, str]:
    """``authorizing_integration_owners``: the guild install, or the user's in a DM."""
    return {"0": str(guild_id)} if guild_id is not None else {"1": str(user_id)}


def _option(name: str, value: str | int | float | bool) -> dict[str, Any]:
    kind = next(kind for cls, kind in OPTION_TYPES if isinstance(value, cls))
    return {"name": name, "type": kind, "value": value}
