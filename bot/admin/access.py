"""Who may run admin commands, and the audit log every run is written to.

An admin is listed in TEAMBOT_ADMINS (so a fresh install has one) or in the
``admins`` table (added from chat). The terminal is always trusted: whoever
runs ``teambot admin`` already holds the database, so refusing them protects
nothing; their runs are audited all the same.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.errors import AdminError
from bot.settings import split_platform_id
from knowledge.storage.conversations import Admin, AuditEntry

TRUSTED_PLATFORMS = frozenset({"cli"})
MAX_OUTCOME_CHARS = 2000


@dataclass(frozen=True)
class Actor:
    """Who runs a command: a platform and that platform's user id (or the OS user on cli)."""

    platform: str
    user_id: str

    def __str__(self) -> str:
        return f"{self.platform}:{self.user_id}"


def parse_actor(text: str, shape: str = "PLATFORM:USER, e.g. slack:U123 or discord:456") -> Actor:
    """``slack:U123`` → Actor; an AdminError names the expected shape."""
    try:
        platform, user_id = split_platform_id(text)
    except ValueError:
        raise AdminError(f"{text!r} is not {shape}.") from None
    return Actor(platform, user_id)


def configured_admins(entries: Iterable[tuple[str, str]]) -> frozenset[Actor]:
    """The admins named in TEAMBOT_ADMINS (``Settings.admin_entries``)."""
    return frozenset(Actor(platform, user_id) for platform, user_id in entries)


def is_admin(session: Session, actor: Actor, configured: frozenset[Actor]) -> bool:
    """True for the terminal, a TEAMBOT_ADMINS entry or a row of the admins table."""
    if actor.platform in TRUSTED_PLATFORMS or actor in configured:
        return True
    return _admin_row(session, actor) is not None


def table_admins(session: Session) -> list[Admin]:
    return list(session.scalars(select(Admin).order_by(Admin.platform, Admin.user_id)))


def _admin_row(session: Session, who: Actor) -> Admin | None:
    return session.scalar(
        select(Admin).where(Admin.platform == who.platform, Admin.user_id == who.user_id)
    )


def add_admin(session: Session, who: Actor, added_by: Actor) -> bool:
    """Store ``who`` as an admin; False if the table already has them."""
    if _admin_row(session, who) is not None:
        return False
    session.add(Admin(platform=who.platform, user_id=who.user_id, added_by=str(added_by)))
    session.flush()
    return True


def remove_admin(session: Session, who: Actor) -> bool:
    """Delete ``who`` from the table; False if they were not in it."""
    row = _admin_row(session, who)
    if row is None:
        return False
    session.delete(row)
    return True


def audit(session: Session, actor: Actor, command: str, args: dict[str, Any], outcome: str) -> None:
    """Record one run, allowed or refused, so admins can see who changed what."""
    session.add(
        AuditEntry(
            platform=actor.platform,
            user_id=actor.user_id,
            command=command[:100],
            args=args,
            outcome=outcome[:MAX_OUTCOME_CHARS],
        )
    )
