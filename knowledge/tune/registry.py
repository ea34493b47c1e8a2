"""Model versions: where a tuned model is kept, and the switch every process follows at once.

A tuned version is a folder under TEAMBOT_DATA_DIR (``models/<name>``, with its ONNX export
inside) and a row of ``model_versions``. Switching to a version (or back, `teambot tune
rollback`) holds every source's refresh lease, so no refresh stores pages meanwhile, brings the
version's vectors up to date with the serving ones (only what changed since its re-embed), then
flips ``is_active`` in the commit that bumps the index revision. Replicas and workers see that
revision within a second and move their searches and their ingest to the version whole
(knowledge/retrieval/versioned.py).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session, sessionmaker

from knowledge.embed.embedder import TextEmbedder
from knowledge.ingest.progress import Progress
from knowledge.retrieval.versioned import active_choice
from knowledge.storage import store
from knowledge.storage.documents import Chunk, Source
from knowledge.storage.lease import Lease, SourceBusyError
from knowledge.storage.models import (
    EMBEDDING,
    READY,
    REFUSED,
    TRAINING,
    ModelFile,
    ModelVersion,
    activate,
    active_version,
    version_named,
)
from knowledge.tune.reembed import reembed, stale_documents
from knowledge.tune.train import TuningError

MODELS_FOLDER = "models"
LEASE_WAIT_SECONDS = 600.0  # how long a switch waits for running refreshes to finish
LEASE_POLL_SECONDS = 2.0
_UNSAFE = re.compile(r"[^a-z0-9.+-]+")


def serving_model(sessions: sessionmaker[Session], base: str, data_dir: Path) -> str:
    """The name of the version that serves now (the base model when none was ever tuned)."""
    with sessions() as session:
        return active_choice(session, base, data_dir).name


def new_version(sessions: sessionmaker[Session], base: str) -> ModelVersion:
    """The version a `teambot tune` run trains: one left unfinished by a stopped run (it
    resumes from its checkpoint), else a new row."""
    with sessions.begin() as session:
        _register_base(session, base)
        unfinished = session.scalar(
            select(ModelVersion)
            .where(ModelVersion.base == base, ModelVersion.status == TRAINING)
            .order_by(ModelVersion.id.desc())
        )
        if unfinished is not None:
            session.expunge(unfinished)
            return unfinished
        for stopped in session.scalars(  # stopped while re-embedding: its rows would linger
            select(ModelVersion).where(ModelVersion.base == base, ModelVersion.status == EMBEDDING)
        ):
            stopped.status, stopped.report = REFUSED, {"error": "stopped before the gate"}
            _forget(session, stopped.name)
        tuned = session.scalar(select(func.count(ModelVersion.id)).where(ModelVersion.base == base))
        name = f"{base}+tune{tuned or 1}"
        safe = _UNSAFE.sub("-", name.lower()).strip("-")
        version = ModelVersion(name=name, base=base, path=f"{MODELS_FOLDER}/{safe}",
                               status=TRAINING, is_active=False, report={})  # fmt: skip
        session.add(version)
        session.flush()
        session.expunge(version)
        return version


def set_status(sessions: sessionmaker[Session], name: str, status: str, report: dict) -> None:
    with sessions.begin() as session:
        version = version_named(session, name)
        if version is not None:
            version.status, version.report = status, report


def switch(
    sessions: sessionmaker[Session],
    base: str,
    data_dir: Path,
    target: TextEmbedder,
    *,
    progress: Progress | None = None,
    wait_seconds: float = LEASE_WAIT_SECONDS,
) -> str:
    """Make ``target``'s version the serving one; returns the version it replaced."""
    with _all_leases(sessions, wait_seconds):
        current = serving_model(sessions, base, data_dir)
        if current == target.model_name:
            return current
        reembed(sessions, current, target, progress=progress)
        with sessions.begin() as session:
            if stale_documents(session, current, target.model_name):  # a teaching meanwhile
                raise TuningError("Pages changed during the switch; run the command again.")
            _register_base(session, base)
            activate(session, target.model_name, previous=current)
            version_named(session, target.model_name).status = READY  # type: ignore[union-attr]
            store.bump_revision(session)
    return current


def rollback_target(sessions: sessionmaker[Session], base: str) -> ModelVersion:
    """The version `teambot tune rollback` returns to, or a TuningError saying why none."""
    with sessions() as session:
        active = active_version(session)
        if active is None or active.base != base or not active.previous:
            raise TuningError("Nothing to roll back: no tuned model version was switched to.")
        previous = version_named(session, active.previous)
        if previous is None:
            raise TuningError(f"The previous version {active.previous!r} is no longer stored.")
        session.expunge(previous)
        return previous


def forget_version(sessions: sessionmaker[Session], name: str) -> None:
    """Delete a refused version's vectors and stored files (its row stays, with its report)."""
    with sessions.begin() as session:
        _forget(session, name)


def _forget(session: Session, name: str) -> None:
    session.execute(delete(Chunk).where(Chunk.model == name))
    session.execute(delete(ModelFile).where(ModelFile.version == name))


def _register_base(session: Session, base: str) -> None:
    if version_named(session, base) is None:
        session.add(ModelVersion(name=base, base=base, path=None, status=READY,
                                 is_active=False, report={}))  # fmt: skip
        session.flush()


@contextmanager
def _all_leases(
    sessions: sessionmaker[Session],
    wait_seconds: float,
    clock: Callable[[], float] = time.monotonic,
) -> Iterator[None]:
    """Every source's refresh lease, waiting up to ``wait_seconds`` for running refreshes."""
    with sessions() as session:
        ids = session.scalars(select(Source.id)).all()
    held: list[Lease] = []
    deadline = clock() + wait_seconds
    try:
        for source_id in ids:
            lease = Lease(sessions, source_id)
            while True:
                try:
                    lease.acquire()
                    break
                except SourceBusyError as exc:
                    if clock() >= deadline:
                        raise TuningError(f"{exc} The switch waits for it; try again.") from exc
                    time.sleep(LEASE_POLL_SECONDS)
            held.append(lease)
        yield
    finally:
        for lease in held:
            lease.release()
