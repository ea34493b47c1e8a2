"""One refresh of a source at a time, across threads, processes and machines.

A lease is two columns on the source row, taken with one conditional UPDATE
(atomic on SQLite and PostgreSQL alike): it is free, expired, or held by a
process on this machine that no longer exists (killed mid-run). The holder
renews it while it works; a holder that dies releases it by expiry.
"""

from __future__ import annotations

import os
import socket
import uuid
from datetime import datetime, timedelta

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from knowledge.errors import SourceError
from knowledge.storage.db import utcnow
from knowledge.storage.documents import Source

LEASE_SECONDS = 120
HOST = socket.gethostname()


class SourceBusyError(SourceError):
    """Another process is refreshing this source right now."""


def new_owner() -> str:
    """``host:pid:nonce`` so a lease left by a dead process on this host can be recognised."""
    return f"{HOST}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def is_dead_local_owner(owner: str | None) -> bool:
    """True when ``owner`` names a process on this machine that no longer exists."""
    if not owner:
        return False
    host, _, rest = owner.partition(":")
    pid = rest.partition(":")[0]
    if host != HOST or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


class Lease:
    """The right to refresh one source until ``expires``; renew it while working."""

    def __init__(
        self, sessions: sessionmaker[Session], source_id: int, seconds: int = LEASE_SECONDS
    ) -> None:
        self._sessions = sessions
        self._source_id = source_id
        self._seconds = seconds
        self.owner = new_owner()
        self.expires: datetime | None = None

    def acquire(self) -> None:
        """Take the lease or raise SourceBusyError naming who holds it."""
        now = utcnow()
        with self._sessions.begin() as session:
            holder = session.execute(
                select(Source.name, Source.lease_owner, Source.lease_expires_at).where(
                    Source.id == self._source_id
                )
            ).one()
            takeable = or_(Source.lease_owner.is_(None), Source.lease_expires_at < now)
            if is_dead_local_owner(holder.lease_owner):
                takeable = or_(takeable, Source.lease_owner == holder.lease_owner)
            expires = now + timedelta(seconds=self._seconds)
            taken = session.execute(
                update(Source)
                .where(Source.id == self._source_id, takeable)
                .values(lease_owner=self.owner, lease_expires_at=expires)
            ).rowcount
        if taken != 1:
            raise SourceBusyError(
                f"Source {holder.name!r} is being refreshed by {holder.lease_owner} "
                f"(lease until {holder.lease_expires_at:%H:%M:%S} UTC). Try again later."
            )
        self.expires = expires

    @property
    def check_seconds(self) -> float:
        """How often a holder that is waiting should call ``renew_if_due``."""
        return self._seconds / 4

    def renew_if_due(self) -> None:
        """Extend the lease once half of it has run out."""
        if self.expires is None:
            return
        now = utcnow()
        if self.expires - now > timedelta(seconds=self._seconds / 2):
            return
        expires = now + timedelta(seconds=self._seconds)
        with self._sessions.begin() as session:
            renewed = session.execute(
                update(Source)
                .where(Source.id == self._source_id, Source.lease_owner == self.owner)
                .values(lease_expires_at=expires)
            ).rowcount
        if renewed != 1:
            raise SourceBusyError("This refresh lost its lease to another process; it stops here.")
        self.expires = expires

    def release(self) -> None:
        with self._sessions.begin() as session:
            session.execute(
                update(Source)
                .where(Source.id == self._source_id, Source.lease_owner == self.owner)
                .values(lease_owner=None, lease_expires_at=None)
            )
        self.expires = None
