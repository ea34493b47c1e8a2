"""A tuned model version's files in the database, and its folder rebuilt from them on any host.

`teambot tune` saves a version under its own TEAMBOT_DATA_DIR; replicas and workers may run
elsewhere, each with a data folder of its own. So the files that differ from the base model
(the weights and the ONNX export) are stored in ``model_files`` too, and a process that lacks
the folder rebuilds it: the base model's files, these on top, renamed into place whole.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from pathlib import Path

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session, sessionmaker

from knowledge.embed.embedder import resolve_model_path
from knowledge.errors import EmbeddingModelError
from knowledge.storage.models import ModelFile

WEIGHTS = "model.safetensors"
# Only these names are written from the database: no other path, however a row reads.
STORABLE = re.compile(r"^(model\.safetensors|onnx/[a-z0-9.+-]+\.onnx)$")
MAX_FILE_BYTES = 1 << 30  # a MiniLM's weights are ~90 MB; a bound on what a row can make us write


def save_files(sessions: sessionmaker[Session], version: str, folder: Path) -> int:
    """Store the version's weights and ONNX exports; returns bytes stored."""
    names = [WEIGHTS, *(f"onnx/{p.name}" for p in sorted((folder / "onnx").glob("*.onnx")))]
    stored = 0
    with sessions.begin() as session:
        session.execute(delete(ModelFile).where(ModelFile.version == version))
        for name in names:
            data = (folder / name).read_bytes()
            session.add(ModelFile(version=version, name=name, data=data))
            stored += len(data)
    return stored


def ensure_folder(sessions: sessionmaker[Session], version: str, base: str, folder: Path) -> None:
    """Make ``folder`` hold the version (from the database) unless it already does."""
    if (folder / WEIGHTS).is_file():
        return
    folder.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=folder.parent, prefix=".rebuild-") as tmp:
        built = Path(tmp) / "model"
        shutil.copytree(resolve_model_path(base), built)
        with sessions() as session:
            names = session.scalars(select(ModelFile.name).where(ModelFile.version == version))
            wanted = [n for n in names if STORABLE.match(n)]
            if WEIGHTS not in wanted:
                raise EmbeddingModelError(
                    f"Model version {version!r} has no stored weights; run `teambot tune "
                    "rollback` or tune again."
                )
            for name in wanted:
                _write(session, version, name, built / name)
        if not (folder / WEIGHTS).is_file():  # another thread or process may have won
            shutil.rmtree(folder, ignore_errors=True)
            os.replace(built, folder)


def _write(session: Session, version: str, name: str, target: Path) -> None:
    """Write one stored file, its size checked in SQL before its bytes are fetched."""
    row = (ModelFile.version == version, ModelFile.name == name)
    size = session.scalar(select(func.length(ModelFile.data)).where(*row))
    fits = size is not None and size <= MAX_FILE_BYTES
    data = session.scalar(select(ModelFile.data).where(*row)) if fits else None
    if data is None:
        raise EmbeddingModelError(f"Model version {version!r}: stored file {name} is unusable.")
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(data)
