"""Per-channel settings admins choose: sources, model route, persona, thread following, the
confidence below which teambot says the docs do not cover a question, and whether people who
are not admins may "Teach teambot" there.

Values are checked all together before any is stored, so a typo changes nothing.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.admin.access import Actor
from bot.admin.text import columns
from bot.errors import AdminError
from bot.llm.router import ROUTES
from knowledge.storage.conversations import ChannelSetting
from knowledge.storage.documents import Source

SHAPE = "PLATFORM:CHANNEL, e.g. slack:C123 or discord:789"
MAX_PERSONA_CHARS = 2000
SWITCHES = {"on": True, "off": False}


def show(session: Session, where: Actor) -> str:
    return _channel_text(where, _channel_row(session, where))


def update(session: Session, where: Actor, words: list[str], by: Actor) -> str:
    """Apply ``KEY=VALUE`` words to the channel's row (created on first use); its new text."""
    changes = dict(_channel_value(session, key, value) for key, value in _pairs(words))
    row = _channel_row(session, where) or ChannelSetting(
        platform=where.platform, channel=where.user_id
    )
    for attribute, value in changes.items():
        setattr(row, attribute, value)
    row.updated_by = str(by)
    session.add(row)
    session.flush()
    return _channel_text(where, row)


CHANNEL_KEYS = {"sources": "sources", "route": "llm_route", "persona": "persona",
                "follow_threads": "follow_threads",
                "min_confidence": "min_confidence", "teach": "teach"}  # fmt: skip


def _pairs(words: list[str]) -> list[tuple[str, str]]:
    pairs = [word.partition("=")[::2] for word in words]
    for word, (key, _) in zip(words, pairs, strict=True):
        if "=" not in word or key not in CHANNEL_KEYS:
            raise AdminError(
                f"{word!r} is not KEY=VALUE with KEY one of {', '.join(CHANNEL_KEYS)}."
            )
    return pairs


def _channel_value(session: Session, key: str, value: str) -> tuple[str, Any]:
    """The column and stored value for ``key=value``; ``default`` restores the global setting."""
    column = CHANNEL_KEYS[key]
    if value == "default" or (key == "sources" and value == "all"):
        return column, None
    if key == "sources":
        return column, _known_sources(session, value)
    if key == "route" and value not in ROUTES:
        raise AdminError(f"route={value}: use one of {', '.join(ROUTES)} or default.")
    if key in ("follow_threads", "teach"):
        if value not in SWITCHES:
            raise AdminError(f"{key}={value}: use on, off or default.")
        return column, SWITCHES[value]
    if key == "min_confidence":
        return column, _confidence(value)
    if key == "persona" and len(value) > MAX_PERSONA_CHARS:
        raise AdminError(f"persona is {len(value)} characters; the most is {MAX_PERSONA_CHARS}.")
    return column, value


def _confidence(value: str) -> float:
    try:
        threshold = float(value)
    except ValueError:
        threshold = -1.0
    if not 0 <= threshold <= 1:
        raise AdminError(
            f"min_confidence={value}: use a number from 0 to 1 (0 never abstains), or default."
        )
    return threshold


def _known_sources(session: Session, value: str) -> list[str]:
    names = [n.strip() for n in value.split(",") if n.strip()]
    known = set(session.scalars(select(Source.name).where(Source.name.in_(names))))
    unknown = [n for n in names if n not in known]
    if not names or unknown:
        raise AdminError(
            f"sources={value}: no source named {', '.join(unknown) or '(none)'}; "
            "see `admin sources list`, or use sources=all."
        )
    return names


def _channel_row(session: Session, where: Actor) -> ChannelSetting | None:
    return session.scalar(
        select(ChannelSetting).where(
            ChannelSetting.platform == where.platform, ChannelSetting.channel == where.user_id
        )
    )


def _channel_text(where: Actor, row: ChannelSetting | None) -> str:
    def shown(value: Any, default: str) -> str:
        if value is None:
            return default
        if isinstance(value, bool):
            return "on" if value else "off"
        return ",".join(value) if isinstance(value, list) else str(value)

    rows = [
        ("sources", shown(row and row.sources, "all (default)")),
        ("route", shown(row and row.llm_route, "default (LLM_ROUTE)")),
        ("persona", shown(row and row.persona, "default")),
        ("follow_threads", shown(row.follow_threads if row else None, "default")),
        ("min_confidence", shown(row.min_confidence if row else None, "default (MIN_CONFIDENCE)")),
        ("teach", shown(row.teach if row else None, "off: admins only (default)")),
    ]
    if row is not None and row.updated_by:
        rows.append(("updated_by", row.updated_by))
    return f"Channel {where}:\n" + columns(rows)
