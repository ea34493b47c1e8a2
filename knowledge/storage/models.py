"""The model registry: embedding model versions made by `teambot tune`, and which one is active.

A version's vectors are chunk rows whose ``model`` is the version's ``name`` (the base model's
rows keep its plain name), so two versions live side by side in ``chunks`` and an index reads
one of them. Switching is one committed row change that also bumps the index revision, so every
process notices it the way it notices new chunks (knowledge/retrieval/revision.py).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    select,
    update,
)
from sqlalchemy.orm import Mapped, Session, mapped_column

from knowledge.storage.db import Base, utcnow

# Where a version is in its life; only "ready" versions can be switched to.
TRAINING, EMBEDDING, READY, REFUSED = "training", "embedding", "ready", "refused"


class ModelVersion(Base):
    """One embedding model: the base (``path`` None) or a tuned copy under TEAMBOT_DATA_DIR."""

    __tablename__ = "model_versions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)  # Chunk.model of its vectors
    base: Mapped[str] = mapped_column(String(200))  # the EMBEDDING_MODEL it was tuned from
    path: Mapped[str | None] = mapped_column(Text)  # relative to TEAMBOT_DATA_DIR
    status: Mapped[str] = mapped_column(String(20), default=TRAINING)
    is_active: Mapped[bool] = mapped_column(Boolean, default=False)
    # The version that was active before this one became active: what rollback returns to.
    previous: Mapped[str | None] = mapped_column(String(200))
    report: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    activated_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class ModelFile(Base):
    """A file of a tuned version's folder that differs from the base model's (its weights, its
    ONNX export), so that every replica, whatever its TEAMBOT_DATA_DIR, can rebuild the folder."""

    __tablename__ = "model_files"
    __table_args__ = (UniqueConstraint("version", "name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    version: Mapped[str] = mapped_column(String(200), index=True)
    name: Mapped[str] = mapped_column(String(200))  # relative to the version's folder
    data: Mapped[bytes] = mapped_column(LargeBinary)


def active_version(session: Session) -> ModelVersion | None:
    return session.scalar(select(ModelVersion).where(ModelVersion.is_active))


def version_named(session: Session, name: str) -> ModelVersion | None:
    return session.scalar(select(ModelVersion).where(ModelVersion.name == name))


def kept_models(session: Session) -> list[str]:
    """Names whose chunk rows are kept when a page is re-stored under another model: the
    active version and the one rollback returns to."""
    active = active_version(session)
    if active is None:
        return []
    return [active.name, *([active.previous] if active.previous else [])]


def activate(session: Session, name: str, previous: str | None) -> None:
    """Make ``name`` the only active version (the caller bumps the index revision)."""
    session.execute(update(ModelVersion).values(is_active=False))
    session.execute(
        update(ModelVersion)
        .where(ModelVersion.name == name)
        .values(is_active=True, previous=previous, activated_at=utcnow())
    )
