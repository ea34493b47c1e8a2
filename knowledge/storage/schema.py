"""The schema: every table registered, and Alembic migrations (the only way it changes).

Checking that a database is current happens in every command that opens one, so it reads the
version table with one query and the bundled head from the migration files' own
``revision``/``down_revision`` lines; Alembic (about 0.1 s to import) is loaded only to
migrate or to report.
"""

from __future__ import annotations

import ast
from importlib import resources
from typing import TYPE_CHECKING

from sqlalchemy import Engine, MetaData, inspect, text

from knowledge.errors import SchemaError
from knowledge.storage.db import Base

if TYPE_CHECKING:
    from alembic.config import Config

VERSION_TABLE = "alembic_version"


def metadata() -> MetaData:
    """Base.metadata with every table of teambot on it (each module registers its own)."""
    import knowledge.storage.answers
    import knowledge.storage.console
    import knowledge.storage.conversations
    import knowledge.storage.documents
    import knowledge.storage.models
    import knowledge.storage.processes
    import knowledge.storage.slack_history  # noqa: F401

    return Base.metadata


def alembic_config(engine: Engine) -> Config:
    """Alembic configuration pointing at the bundled migrations and this engine."""
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(resources.files("migrations")))
    config.attributes["engine"] = engine
    return config


def head_revision(engine: Engine) -> str | None:
    """The newest bundled migration, as Alembic reads it."""
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config(engine)).get_current_head()


def current_revision(engine: Engine) -> str | None:
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Apply migrations up to ``revision``."""
    from alembic import command

    command.upgrade(alembic_config(engine), revision)


def downgrade(engine: Engine, revision: str) -> None:
    from alembic import command

    command.downgrade(alembic_config(engine), revision)


def bundled_head() -> str | None:
    """The head of the bundled migrations without importing Alembic: the one revision no
    other names as its ``down_revision`` (the history is linear; a test compares it with
    ``head_revision``)."""
    revisions: set[str] = set()
    parents: set[str] = set()
    for path in resources.files("migrations").joinpath("versions").iterdir():
        if not path.name.endswith(".py"):
            continue
        for node in ast.parse(path.read_text(encoding="utf-8")).body:
            if isinstance(node, ast.AnnAssign | ast.Assign):
                targets = [node.target] if isinstance(node, ast.AnnAssign) else node.targets
                names = {t.id for t in targets if isinstance(t, ast.Name)}
                value = node.value.value if isinstance(node.value, ast.Constant) else None
                if "revision" in names and isinstance(value, str):
                    revisions.add(value)
                elif "down_revision" in names and isinstance(value, str):
                    parents.add(value)
    heads = revisions - parents
    return heads.pop() if len(heads) == 1 else None


def stored_revision(engine: Engine) -> str | None:
    """The revision the database is at, read with one query (None: no teambot schema)."""
    with engine.connect() as connection:
        if not inspect(connection).has_table(VERSION_TABLE):
            return None
        return connection.execute(text(f"SELECT version_num FROM {VERSION_TABLE}")).scalar()


def ensure_schema(engine: Engine) -> None:
    """Make sure the schema is current before use.

    An SQLite database is upgraded in place (it is a local file the user owns).
    PostgreSQL is shared by many processes, so it is only upgraded by an
    explicit ``teambot db upgrade`` (the Procfile's release phase).
    """
    current = stored_revision(engine)
    if current is not None and current == bundled_head():
        return
    head = head_revision(engine)
    if current == head:
        return
    if engine.dialect.name == "sqlite":
        upgrade(engine)
        return
    state = "has no teambot schema" if current is None else f"is at revision {current}"
    raise SchemaError(
        f"The database {state}; this teambot needs revision {head}. "
        "Run `teambot db upgrade` to apply the migrations."
    )
