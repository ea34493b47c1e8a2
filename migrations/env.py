"""Alembic environment: teambot passes its engine in; nothing is read from alembic.ini."""

from alembic import context

import knowledge.storage.conversations
import knowledge.storage.documents  # noqa: F401  (registers the knowledge tables)
from knowledge.storage.db import Base

engine = context.config.attributes["engine"]

with engine.begin() as connection:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    context.run_migrations()
