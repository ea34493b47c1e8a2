"""The functions the shared job store runs.

Jobs in the SQL job store are pickled by reference (``workers.jobs:refresh_source``)
with only picklable arguments, a source name, so whichever worker process claims
a tick runs it with its own Runtime, bound here when the worker starts.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from workers.scheduler import Worker

_worker: Worker | None = None


def bind(worker: Worker) -> None:
    global _worker
    _worker = worker


def refresh_source(name: str) -> None:
    """A scheduled refresh of one source."""
    _bound().refresh(name, "scheduled")


def forget_expired() -> None:
    """The daily retention job."""
    _bound().forget_expired()


def post_digest() -> None:
    """The gaps digest, on TEAMBOT_DIGEST_SCHEDULE."""
    _bound().post_digest()


def _bound() -> Worker:
    if _worker is None:
        raise RuntimeError("workers.jobs: no worker bound in this process; call bind() first")
    return _worker
