"""Slack's message formatting decoded into the plain text a person meant to type.

Slack rewrites what people type before an app sees it: links become ``<https://…>`` or
``<https://…|label>``, mentions ``<@U123>`` / ``<#C123|general>`` / ``<!here>`` /
``<!subteam^S123|@team>``, and ``&``, ``<``, ``>`` become ``&amp;``, ``&lt;``, ``&gt;``.
Questions and admin commands must see ``https://docs.example.com/`` and ``@here``, not the
wire format, so the adapter decodes every text before the core gets it.
"""

from __future__ import annotations

from knowledge.ingest.slack_text import decoded


def plain_text(text: str, bot_user: str | None = None, *, channel_ids: bool = False) -> str:
    """``text`` as it was typed: links as their URL (not the label), the mention of
    ``bot_user`` (teambot itself) removed, other mentions as readable ``@name`` / ``#name``
    (or, with ``channel_ids``, channels as Slack sends them: ``<#C123|general>``, so an admin
    command knows which channel was meant), entities unescaped; whitespace stripped."""
    return decoded(
        text,
        user=lambda user_id, label: "" if user_id == bot_user else f"@{label or user_id}",
        link=lambda address, label: address,
        channel_ids=channel_ids,
    ).strip()
