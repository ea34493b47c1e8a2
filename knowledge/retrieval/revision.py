"""The index revision as a query sees it: read from the database at most once a second.

Every process keeps its FAISS and BM25 caches at one index revision (``IndexState``). Asking
the database for it on every question cost a round trip per search (3.7 ms of a 41 ms search
on 14k chunks, issue #23). A ``RevisionWatch`` asks at most once per ``interval``; a commit of
this very process that moves the revision is seen at once (``store.local_revision_bumps``), so
only other processes' changes can wait, for up to ``interval``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from sqlalchemy.orm import Session, sessionmaker

from knowledge.storage import store

# How stale another process's change may be when a question is searched.
CHECK_INTERVAL_SECONDS = 1.0


class RevisionWatch:
    """The database's index stamp, re-read at most once per ``interval`` seconds."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        *,
        interval: float = CHECK_INTERVAL_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._sessions = sessions
        self._interval = interval
        self._clock = clock
        self._lock = threading.Lock()
        self._stamp: str | None = None
        self._checked = 0.0
        self._bumps = -1
        self.reads = 0  # database reads so far (tests count them)

    def stamp(self) -> str:
        """The index stamp, as of at most ``interval`` seconds ago or this process's last
        change, whichever is later."""
        bumps, now = store.local_revision_bumps(), self._clock()
        stamp = self._stamp
        if stamp is not None and bumps == self._bumps and now - self._checked < self._interval:
            return stamp
        with self._lock:  # one reader at a time; the others take what it read
            if self._stamp is not None and bumps == self._bumps and self._checked >= now:
                return self._stamp
            with self._sessions() as session:
                stamp = store.index_stamp(session)
            self.reads += 1
            self._stamp, self._checked, self._bumps = stamp, now, bumps
        return stamp

    def expire(self) -> None:
        """Read the database again on the next ``stamp()``."""
        self._stamp = None
