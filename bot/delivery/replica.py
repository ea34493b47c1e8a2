"""A `teambot serve` replica's background duty: beat, post notices, answer what others left.

Every HEARTBEAT_SECONDS the replica records its heartbeat (role ``serve``), posts
the notices workers left (a refresh an admin asked for is done), and takes over
claimed events nobody is answering any more (bot.delivery.inbox): those of a replica that
stopped beating, and its own that failed mid-answer (the database was away).
Each is handed to the platform adapter to answer again.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any, Protocol

from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker

from bot.delivery.inbox import Inbox
from knowledge.storage import coordination
from knowledge.storage.processes import Notice

log = logging.getLogger(__name__)


class ReplicaDeps(Protocol):
    """What the duties use of the process; ``bot.runtime.Runtime`` is one."""

    @property
    def sessions(self) -> sessionmaker[Session]: ...
    @property
    def process_id(self) -> str: ...
    @property
    def inbox(self) -> Inbox: ...


class ReplicaDuties:
    """The heartbeat and orphan sweep on a daemon thread; ``stop`` says goodbye.

    ``redeliver`` maps each platform whose events can be answered again to the function
    that does it; ``notices``, each platform to the function that posts a worker's notice."""

    def __init__(
        self,
        runtime: ReplicaDeps,
        redeliver: dict[str, Callable[[dict[str, Any]], None]],
        notices: dict[str, Callable[[Notice], None]] | None = None,
        every: float = coordination.HEARTBEAT_SECONDS,
    ) -> None:
        self._runtime = runtime
        self._redeliver = redeliver
        self._notices = notices if notices is not None else {}  # may gain platforms later
        self._every = every
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name="replica-duties", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopped.set()
        self._thread.join(timeout=5)
        try:
            with self._runtime.sessions.begin() as session:
                coordination.leave(session, self._runtime.process_id)
        except DBAPIError as exc:
            log.warning("could not remove this replica's heartbeat: %s", exc)

    def tick(self) -> int:
        """One beat, notices posted, and a sweep; how many events were taken over."""
        runtime = self._runtime
        with runtime.sessions.begin() as session:
            coordination.beat(session, runtime.process_id, coordination.SERVE, set())
            live = {beat.id for beat in coordination.live(session, coordination.SERVE)}
            notices = coordination.claim_notices(session, set(self._notices))
        for notice in notices:
            try:
                self._notices[notice.platform](notice)
            except Exception:  # claimed: it is not posted twice, so say it in the log
                log.exception("could not post notice %d to %s", notice.id, notice.channel)
        adopted = runtime.inbox.adopt_orphans(set(self._redeliver), live)
        for orphan in adopted:
            log.warning(
                "taking over %s event %s from %s (attempt %d)",
                orphan.platform, orphan.event_id, orphan.previous_owner, orphan.attempt,
            )  # fmt: skip
            self._redeliver[orphan.platform](orphan.payload)
        return len(adopted)

    def _run(self) -> None:
        while True:
            try:
                self.tick()
            except DBAPIError as exc:  # the database is away: try again next beat
                log.warning("replica heartbeat failed: %s", exc)
            except Exception:
                log.exception("replica duties failed; retrying next beat")
            if self._stopped.wait(self._every):
                return
