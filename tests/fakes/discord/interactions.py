"""The fake Discord's interactions: the INTERACTION_CREATE payloads it builds, callbacks
(types 4-7) within their 3-second deadline, and the webhook follow-ups and edits, the first
follow-up after a deferral replacing the loading message, as on Discord.

``Interactions`` is the part of ``FakeDiscord`` that answers these routes (authorised by the
token in their path, not the bot token).
"""

from __future__ import annotations

import copy
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from tests.fakes.discord.payloads import (
    APPLICATION_ID,
    BOT_USER_ID,
    CHAT_INPUT_COMMAND,
    DEFAULT,
    EPHEMERAL,
    LOADING,
    SUPPRESS_EMBEDS,
    _owners,
)
from tests.fakes.discord.rest import (
    TRUE_QUERY,
    _Answer,
    _content_error,
    _error,
    _field_error,
    _Request,
)

INTERACTION_DEADLINE = 3.0  # seconds Discord waits for an interaction's first callback
# Interaction types and interaction callback types
APPLICATION_COMMAND, MESSAGE_COMPONENT = 2, 3
PONG, CHANNEL_MESSAGE, DEFERRED_CHANNEL_MESSAGE, DEFERRED_UPDATE, UPDATE_MESSAGE = 1, 4, 5, 6, 7
CALLBACK_TYPES = frozenset({1, 4, 5, 6, 7, 8, 9})


@dataclass
class _Interaction:
    id: int
    type: int  # APPLICATION_COMMAND or MESSAGE_COMPONENT
    token: str
    user_id: int
    channel_id: int
    guild_id: int | None
    message_id: int | None  # the message of a component interaction
    sent_at: float  # time.monotonic() when built, then when dispatched
    callback_type: int | None = None
    original_id: int | None = None
    message_ids: set[int] = field(default_factory=set)  # the original and follow-ups


class Interactions:
    """Interactions as Discord keeps them: one callback each, then webhook messages."""

    interaction_deadline: float
    _interactions: dict[int, _Interaction]

    def _synced_command(self, name: str, guild_id: int | None) -> dict[str, Any] | None:
        for scope in (guild_id, None) if guild_id is not None else (None,):
            for command in self._commands.get(scope, []):
                if command["name"] == name and command.get("type", 1) == 1:
                    return command
        return None

    def _interaction(
        self,
        kind: int,
        data: dict[str, Any],
        user_id: int,
        channel_id: int,
        guild_id: int | None,
        permissions: int | None,
        message: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        message_id = int(message["id"]) if message else None
        token = f"fake-interaction-token-{uuid.uuid4().hex}"
        interaction = _Interaction(
            self._next_id(),
            kind,
            token,
            user_id,
            channel_id,
            guild_id,
            message_id,
            time.monotonic(),
        )
        self._interactions[interaction.id] = interaction
        channel = self._channels.get(channel_id) or {"id": str(channel_id), "type": 1}
        payload: dict[str, Any] = {
            "id": str(interaction.id),
            "application_id": str(APPLICATION_ID),
            "type": kind,
            "data": data,
            "token": interaction.token,
            "version": 1,
            "channel_id": str(channel_id),
            "channel": copy.deepcopy(channel),
            "locale": "en-US",
            "app_permissions": str(self._permissions(BOT_USER_ID)),
            "entitlements": [],
            "attachment_size_limit": 10 * 1024 * 1024,
        }
        if guild_id is None:
            payload |= {"user": self._user(user_id), "context": 1}
        else:
            if permissions is None:
                permissions = self._permissions(user_id)
            member = self._member(user_id) | {"user": self._user(user_id)}
            payload |= {"member": member | {"permissions": str(permissions)}, "context": 0}
            payload |= {"guild_id": str(guild_id), "guild_locale": "en-US"}
            payload["guild"] = {"id": str(guild_id), "locale": "en-US", "features": []}
        payload["authorizing_integration_owners"] = _owners(guild_id, user_id)
        if message is not None:
            payload["message"] = self._rest_message(message)
        return payload

    def _interaction_callback(self, request: _Request) -> _Answer:
        interaction = self._interactions.get(int(request.params["interaction"]))
        if interaction is None or interaction.token != request.params["token"]:
            return _error(404, 10062, "Unknown interaction")
        if time.monotonic() - interaction.sent_at > self.interaction_deadline:
            return _error(404, 10062, "Unknown interaction")  # answered too late: expired
        if interaction.callback_type is not None:
            return _error(400, 40060, "Interaction has already been acknowledged.")
        body = request.json if isinstance(request.json, dict) else {}
        kind, data = body.get("type"), body.get("data") or {}
        if kind not in CALLBACK_TYPES:
            return _error(400, 50035, "Invalid Form Body", {"type": _field_error("BASE_TYPE")})
        message = None
        if kind == CHANNEL_MESSAGE:
            error = _content_error(data)
            if error is not None:
                return 400, error
            message = self._interaction_message(interaction, data, loading=False)
        elif kind == DEFERRED_CHANNEL_MESSAGE:
            message = self._interaction_message(interaction, data, loading=True)
        elif kind in (DEFERRED_UPDATE, UPDATE_MESSAGE) and interaction.message_id is not None:
            message = self._find(interaction.channel_id, interaction.message_id)
            if message is not None and kind == UPDATE_MESSAGE:
                error = self._edit(message, data)
                if error is not None:
                    return 400, error
        interaction.callback_type = kind
        if message is not None:
            interaction.original_id = int(message["id"])
            interaction.message_ids.add(int(message["id"]))
        if request.query.get("with_response") not in TRUE_QUERY:
            return 204, None
        return 200, self._callback_response(interaction, kind, message)

    def _interaction_message(
        self, interaction: _Interaction, data: dict[str, Any], *, loading: bool
    ) -> dict[str, Any]:
        """The original response (type 4) or the loading message of a deferral (type 5)."""
        flags = int(data.get("flags") or 0) & (EPHEMERAL | SUPPRESS_EMBEDS)
        fields = {k: data[k] for k in ("embeds", "components") if data.get(k) and not loading}
        message = self._store_message(
            interaction.channel_id,
            BOT_USER_ID,
            "" if loading else data.get("content") or "",
            type=CHAT_INPUT_COMMAND if interaction.type == APPLICATION_COMMAND else DEFAULT,
            flags=flags | (LOADING if loading else 0),
            webhook_id=str(APPLICATION_ID),
            application_id=str(APPLICATION_ID),
            interaction_metadata=self._interaction_metadata(interaction),
            **fields,
        )
        self._echo("MESSAGE_CREATE", message)
        return message

    def _interaction_metadata(self, interaction: _Interaction) -> dict[str, Any]:
        metadata: dict[str, Any] = {"id": str(interaction.id), "type": interaction.type}
        metadata["user"] = self._user(interaction.user_id)
        metadata["authorizing_integration_owners"] = _owners(
            interaction.guild_id, interaction.user_id
        )
        if interaction.message_id is not None:
            metadata["interacted_message_id"] = str(interaction.message_id)
        return metadata

    def _callback_response(
        self, interaction: _Interaction, kind: int, message: dict[str, Any] | None
    ) -> dict[str, Any]:
        """The body of a callback ``?with_response=true``: the interaction and its message."""
        described: dict[str, Any] = {"id": str(interaction.id), "type": interaction.type}
        answer: dict[str, Any] = {"interaction": described}
        if message is not None:
            described |= {
                "response_message_id": message["id"],
                "response_message_loading": bool(message["flags"] & LOADING),
                "response_message_ephemeral": bool(message["flags"] & EPHEMERAL),
            }
            answer["resource"] = {"type": kind, "message": self._rest_message(message)}
        return answer

    def _webhook_interaction(self, request: _Request) -> _Interaction | None:
        """The acknowledged interaction whose token is in the webhook path."""
        if int(request.params["app"]) != APPLICATION_ID:
            return None
        token = request.params["token"]
        found = next((i for i in self._interactions.values() if i.token == token), None)
        return found if found is not None and found.callback_type is not None else None

    def _execute_webhook(self, request: _Request) -> _Answer:
        interaction = self._webhook_interaction(request)
        if interaction is None:
            return _error(404, 10015, "Unknown Webhook")
        body = request.json if isinstance(request.json, dict) else {}
        error = _content_error(body)
        if error is not None:
            return 400, error
        original = self._original(interaction)
        if original is not None and original["flags"] & LOADING:
            self._edit(original, body)  # the first follow-up replaces the loading message
            message = original
        else:
            fields = {k: body[k] for k in ("embeds", "components", "tts") if body.get(k)}
            message = self._store_message(
                interaction.channel_id,
                BOT_USER_ID,
                body.get("content") or "",
                flags=int(body.get("flags") or 0) & (EPHEMERAL | SUPPRESS_EMBEDS),
                webhook_id=str(APPLICATION_ID),
                application_id=str(APPLICATION_ID),
                **fields,
            )
            interaction.message_ids.add(int(message["id"]))
            self._echo("MESSAGE_CREATE", message)
        if request.query.get("wait") not in TRUE_QUERY:
            return 204, None
        return 200, self._rest_message(message)

    def _original(self, interaction: _Interaction) -> dict[str, Any] | None:
        if interaction.original_id is None:
            return None
        return self._find(interaction.channel_id, interaction.original_id)

    def _webhook_message(self, request: _Request) -> dict[str, Any] | None:
        interaction = self._webhook_interaction(request)
        if interaction is None:
            return None
        wanted = request.params["message"]
        if wanted == "@original":
            return self._original(interaction)
        if int(wanted) not in interaction.message_ids:
            return None
        return self._find(interaction.channel_id, int(wanted))

    def _get_webhook_message(self, request: _Request) -> _Answer:
        message = self._webhook_message(request)
        if message is None:
            return _error(404, 10008, "Unknown Message")
        return 200, self._rest_message(message)

    def _edit_webhook_message(self, request: _Request) -> _Answer:
        message = self._webhook_message(request)
        if message is None:
            return _error(404, 10008, "Unknown Message")
        error = self._edit(message, request.json if isinstance(request.json, dict) else {})
        return (400, error) if error is not None else (200, self._rest_message(message))
