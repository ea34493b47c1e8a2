"""Slack's message formatting decoded into the plain text a person meant to type.

Slack rewrites what people type before an app sees it: links become ``<https://…>`` or
``<https://…|label>``, mentions ``<@U123>`` / ``<#C123|general>`` / ``<!here>`` /
``<!subteam^S123|@team>``, and ``&``, ``<``, ``>`` become ``&amp;``, ``&lt;``, ``&gt;``.
Questions and admin commands must see ``https://docs.example.com/`` and ``@here``, not the
wire format, so the adapter decodes every text before the core gets it.
"""

from __future__ import annotations

import re

_ENTITY = re.compile(r"&(amp|lt|gt);")  # the only three Slack escapes
# One pass over both, so an unescaped "&lt;" is never read again as a "<".
_TOKEN_OR_ENTITY = re.compile(r"<([^<>]*)>|&(amp|lt|gt);")
_ENTITIES = {"amp": "&", "lt": "<", "gt": ">"}
_BROADCASTS = ("here", "channel", "everyone")  # <!here>: to everyone present, etc.


def plain_text(text: str, bot_user: str | None = None) -> str:
    """``text`` as it was typed: links as their URL (not the label), the mention of
    ``bot_user`` (teambot itself) removed, other mentions as readable ``@name`` / ``#name``,
    entities unescaped; surrounding whitespace stripped."""

    def decode(match: re.Match[str]) -> str:
        if match.group(2) is not None:
            return _ENTITIES[match.group(2)]
        return _token(_unescape(match.group(1)), bot_user)

    return _TOKEN_OR_ENTITY.sub(decode, text).strip()


def _token(inner: str, bot_user: str | None) -> str:
    target, _, label = inner.partition("|")
    if target.startswith("@"):
        user = target[1:]
        return "" if user == bot_user else f"@{label or user}"
    if target.startswith("#"):
        return f"#{label or target[1:]}"
    if target.startswith("!"):
        name = target[1:]
        if name in _BROADCASTS:
            return f"@{name}"
        return label or "@" + name.split("^", 1)[-1]  # <!subteam^S123|@team> → @team
    # A link: the URL itself, whatever label it was shown with (an e-mail: the address).
    return target.removeprefix("mailto:")


def _unescape(text: str) -> str:
    return _ENTITY.sub(lambda m: _ENTITIES[m.group(1)], text)
