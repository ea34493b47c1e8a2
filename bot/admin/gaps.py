"""`admin gaps` and `admin digest now`: what teambot could not answer, by topic (bot.gaps)."""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta

from sqlalchemy.orm import Session, sessionmaker

from bot.admin import channel
from bot.admin.access import parse_actor
from bot.audience import PUBLIC, Audience
from bot.digest import DIGEST_DAYS, post_digest
from bot.errors import AdminError
from bot.gap_topics import Topic, shown, topics
from bot.gaps import read_gaps
from knowledge.embed.embedder import TextEmbedder
from knowledge.storage import coordination
from knowledge.storage.db import utcnow

MAX_SINCE = timedelta(days=365)
_SINCE = re.compile(r"(\d+)([dh])")
KIND_WORDS = {
    "abstained": "abstained",
    "downvoted": "👎",
    "answered_by_person": "a person answered",
}


def parse_since(text: str) -> timedelta:
    """``7d`` or ``12h`` → how far back to look; AdminError that says the accepted shape."""
    found = _SINCE.fullmatch(text.strip().lower())
    span = timedelta(**{"days" if found[2] == "d" else "hours": int(found[1])}) if found else None
    if span is None or not timedelta(hours=1) <= span <= MAX_SINCE:
        raise AdminError(
            f"--since {text}: use a number of days or hours, e.g. 7d or 12h "
            f"(from 1h to {MAX_SINCE.days}d)."
        )
    return span


def gaps_listing(
    sessions: sessionmaker[Session],
    embedder: TextEmbedder,
    since: str = "7d",
    where: str | None = None,
    as_json: bool = False,
    audience: Audience = PUBLIC,
) -> str:
    """The gaps since ``since`` (in the ``where`` channel), grouped by topic, as text or JSON;
    private questions named only to an ``audience`` that may read them (bot.audience)."""
    span = parse_since(since)
    chosen = parse_actor(where, channel.SHAPE) if where else None
    start = utcnow() - span
    found = read_gaps(sessions, start, (chosen.platform, chosen.user_id) if chosen else None)
    grouped = topics(found, embedder.embed_texts, audience=audience)
    if as_json:
        return json.dumps(
            {"since": start.isoformat(), "channel": where, "count": len(found),
             "groups": [t.to_json() for t in grouped]},
            ensure_ascii=False, indent=2,
        )  # fmt: skip
    return gaps_text(grouped, start, where)


def gaps_text(grouped: list[Topic], start: datetime, where: str | None = None) -> str:
    """Each topic: its label, count, kinds, examples, channels and when it was last seen."""
    scope = f" in {where}" if where else ""
    if not grouped:
        return f"No gaps{scope} since {start:%Y-%m-%d %H:%M} UTC."
    total = sum(t.count for t in grouped)
    lines = [f"Gaps{scope} since {start:%Y-%m-%d %H:%M} UTC: {total} questions in "
             f"{len(grouped)} topics."]  # fmt: skip
    for rank, t in enumerate(grouped, start=1):
        kinds = ", ".join(f"{n} {KIND_WORDS.get(kind, kind)}" for kind, n in t.kinds.items())
        lines += [
            f"{rank}. {shown(t.label)}",
            f"   {t.count} questions ({kinds}); last seen {t.last_seen:%Y-%m-%d %H:%M} UTC",
            f"   channels: {', '.join(t.channels)}",
            *(f"   - {shown(q)}" for q in t.questions[1:]),
        ]
    return "\n".join(lines)


def digest_now(sessions: sessionmaker[Session], embedder: TextEmbedder, target: str) -> str:
    """Leave the digest for a replica to post now; what the admin is told."""
    if not target:
        raise AdminError(
            "No digest channel is set: set TEAMBOT_DIGEST_CHANNEL (e.g. slack:C0123456789) "
            "and restart teambot."
        )
    text = post_digest(sessions, embedder, target, DIGEST_DAYS)
    with sessions() as session:
        replicas = coordination.live(session, coordination.SERVE)
    when = (
        "a teambot serve replica posts it within seconds"
        if replicas
        else "no `teambot serve` is running, so it is posted when one starts"
    )
    return f"Digest left for {target}; {when}:\n{text}"
