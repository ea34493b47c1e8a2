"""On-disk copies of the FAISS index, so a process with a big knowledge base starts fast.

Optional and disposable: SQL holds every embedding, and a snapshot is used
only when it was written for the same database, model, index revision and
revision time, and holds as many vectors as the database has chunks for the
model. Anything else is rebuilt from SQL and written anew.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
from pathlib import Path

import faiss

log = logging.getLogger(__name__)


class SnapshotStore:
    """Reads and writes index snapshots in one folder, one file per (database, model)."""

    def __init__(self, folder: Path, database: str, model: str) -> None:
        self._folder = folder
        self._prefix = hashlib.sha256(f"{database}\n{model}".encode()).hexdigest()[:16]

    def _path(self, stamp: str) -> Path:
        return self._folder / f"index-{self._prefix}-{stamp}.faiss"

    def load(self, stamp: str, expected_vectors: int) -> faiss.Index | None:
        """The snapshot for ``stamp`` if one exists and holds ``expected_vectors`` vectors."""
        path = self._path(stamp)
        if not path.is_file():
            return None
        try:
            index = faiss.read_index(str(path))
        except RuntimeError as exc:  # truncated or foreign file: rebuild instead
            log.warning("ignoring unreadable index snapshot %s: %s", path, exc)
            return None
        return index if index.ntotal == expected_vectors else None

    def save(self, stamp: str, index: faiss.Index) -> None:
        """Write atomically (temp file + rename) and drop older snapshots of this database."""
        try:
            self._folder.mkdir(parents=True, exist_ok=True)
            fd, temp = tempfile.mkstemp(dir=self._folder, suffix=".tmp")
            os.close(fd)
            faiss.write_index(index, temp)
            os.replace(temp, self._path(stamp))
        except (OSError, RuntimeError) as exc:  # a read-only disk must not stop the bot
            log.warning("could not write an index snapshot to %s: %s", self._folder, exc)
            return
        for old in self._folder.glob(f"index-{self._prefix}-*.faiss"):
            if old != self._path(stamp):
                old.unlink(missing_ok=True)
