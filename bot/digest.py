"""The gaps digest: the week's top topics teambot could not answer, posted to a chat channel.

The worker runs it on TEAMBOT_DIGEST_SCHEDULE (weekly by default) and `admin digest now` at
once; either way it is left as a notice (knowledge.storage.coordination.leave_notice) for a
`teambot serve` replica to post to TEAMBOT_DIGEST_CHANNEL (``slack:C123`` or ``discord:456``),
as the end of a refresh an admin asked for is.
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy.orm import Session, sessionmaker

from bot.audience import Audience
from bot.errors import SettingsError
from bot.gap_topics import Topic, shown, topics
from bot.gaps import read_gaps
from knowledge.embed.embedder import TextEmbedder
from knowledge.storage import coordination
from knowledge.storage.db import utcnow

DIGEST_DAYS = 7  # the period a digest covers, whatever its schedule
TOP_TOPICS = 10
PLATFORMS = ("slack", "discord")


def digest_target(target: str) -> dict[str, str]:
    """``slack:C123`` → where a notice goes; SettingsError for anything else."""
    platform, _, channel = target.strip().partition(":")
    if platform.lower() not in PLATFORMS or not channel.strip():
        raise SettingsError(
            f"TEAMBOT_DIGEST_CHANNEL={target!r} is not PLATFORM:CHANNEL with PLATFORM slack or "
            "discord, e.g. slack:C0123456789 or discord:123456789012345678."
        )
    return {"platform": platform.lower(), "channel": channel.strip()}


def digest_text(grouped: list[Topic], days: int = DIGEST_DAYS, top: int = TOP_TOPICS) -> str:
    """A heading, then one line per topic: count, label, channels, last seen."""
    if not grouped:
        return f"teambot gaps, last {days} days: none. Every question was answered. 🎉"
    total = sum(t.count for t in grouped)
    lines = [
        f"teambot gaps, last {days} days: {total} questions the docs did not answer well, "
        f"in {len(grouped)} topics. Top {min(top, len(grouped))}:"
    ]
    for t in grouped[:top]:
        where = ", ".join(t.channels[:3])
        lines.append(f"• {t.count}× “{shown(t.label)}” ({where}; last {t.last_seen:%Y-%m-%d})")
    lines.append(f"Details: `admin gaps --since {days}d`.")
    return "\n".join(lines)


def post_digest(
    sessions: sessionmaker[Session], embedder: TextEmbedder, target: str, days: int = DIGEST_DAYS
) -> str:
    """Leave the digest of the last ``days`` for a replica to post to ``target``; the text."""
    notify = digest_target(target)
    audience = Audience(notify["platform"], notify["channel"])
    found = read_gaps(sessions, utcnow() - timedelta(days=days))
    grouped = topics(found, embedder.embed_texts, audience=audience)
    text = digest_text(grouped, days)
    with sessions.begin() as session:
        coordination.leave_notice(session, notify, text)
    return text
