"""Slack messages as text worth indexing: mrkdwn decoded, hostile characters dropped, capped.

Slack sends ``<@U123>`` for a mention, ``<#C123|general>`` for a channel, ``<!here>``,
``<https://…|label>`` for a link, and escapes ``&``, ``<`` and ``>``. Indexed text says
``@alice``, ``#general``, ``@here`` and ``label (https://…)``: a link's address is always
shown, so a label cannot pass off one address as another in a quoted answer. Control and
bidirectional-override characters are removed, and each message is cut at
``MAX_MESSAGE_CHARS``.
"""

from __future__ import annotations

import re
from collections.abc import Callable

MAX_MESSAGE_CHARS = 8_000  # Slack allows 40,000; a thread's answer is rarely a tenth of that
# One pass over tokens and entities, so an unescaped "&lt;" is never read again as a "<".
_TOKEN_OR_ENTITY = re.compile(r"<([^<>]{0,2000})>|&(amp|lt|gt);")
_ENTITIES = {"amp": "&", "lt": "<", "gt": ">"}
# C0/C1 controls except tab and newline, and the bidi overrides and isolates.
_HOSTILE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069\ufeff]")
_BROADCASTS = ("here", "channel", "everyone")


# How a token is shown: a user mention (user id, label) and a link (address, label).
Render = Callable[[str, str], str]


def decoded(text: str, user: Render, link: Render, channel_ids: bool = False) -> str:
    """``text`` with every token shown by ``user`` and ``link`` (channels as ``#name``, or as
    Slack sends them with ``channel_ids``) and the three entities unescaped, in one pass."""

    def decode(match: re.Match[str]) -> str:
        if match.group(2) is not None:
            return _ENTITIES[match.group(2)]
        inner = _unescape(match.group(1))
        if channel_ids and inner.startswith("#"):
            return f"<{inner}>"
        return _token(inner, user, link)

    return _TOKEN_OR_ENTITY.sub(decode, text)


def readable(text: str, name_of: Callable[[str], str]) -> str:
    """``text`` (mrkdwn) as a person reads it, cleaned and capped; ``name_of`` turns a user
    id into a name."""
    shown = decoded(
        text,
        user=lambda user_id, label: f"@{label or name_of(user_id)}",
        link=lambda address, label: f"{label} ({address})" if label != address else address,
    )
    cleaned = _HOSTILE.sub("", shown).strip()
    if len(cleaned) > MAX_MESSAGE_CHARS:
        return cleaned[:MAX_MESSAGE_CHARS].rstrip() + " …"
    return cleaned


def mentioned_users(text: str) -> list[str]:
    """The user ids ``<@U…>`` mentions in ``text``, in order, once each."""
    found = re.findall(r"<@([A-Z0-9]{1,40})(?:\|[^<>]*)?>", text)
    return list(dict.fromkeys(found))


def _token(inner: str, user: Render, link: Render) -> str:
    target, _, label = inner.partition("|")
    if target.startswith("@"):
        return user(target[1:], label)
    if target.startswith("#"):
        return f"#{label or target[1:]}"
    if target.startswith("!"):
        name = target[1:]
        if name in _BROADCASTS:
            return f"@{name}"
        return label or "@" + name.split("^", 1)[-1]  # <!subteam^S123|@team> → @team
    address = target.removeprefix("mailto:")  # an e-mail: the address
    return link(address, label or address)


def _unescape(text: str) -> str:
    return re.sub(r"&(amp|lt|gt);", lambda m: _ENTITIES[m.group(1)], text)
