"""What admins chose for a channel (model route, sources, persona, abstention threshold), read
once per question."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from knowledge.storage.conversations import ChannelSetting


@dataclass(frozen=True)
class ChannelPrefs:
    """A channel's settings; None everywhere means "use the global settings"."""

    route: str | None = None
    sources: tuple[str, ...] | None = None
    persona: str | None = None
    follow_threads: bool | None = None
    min_confidence: float | None = None


def channel_prefs(sessions: sessionmaker[Session], platform: str, channel: str) -> ChannelPrefs:
    with sessions() as session:
        row = session.scalar(
            select(ChannelSetting).where(
                ChannelSetting.platform == platform, ChannelSetting.channel == channel
            )
        )
        if row is None:
            return ChannelPrefs()
        return ChannelPrefs(
            route=row.llm_route,
            sources=tuple(row.sources) if row.sources is not None else None,
            persona=row.persona,
            follow_threads=row.follow_threads,
            min_confidence=row.min_confidence,
        )
