"""Alembic environment: teambot passes its engine in; nothing is read from alembic.ini."""

from alembic import context

import bot.models  # noqa: F401  (registers the conversation tables on Base.metadata)
import knowledge.models  # noqa: F401  (registers the knowledge tables)
from knowledge.db import Base

engine = context.config.attributes["engine"]

with engine.begin() as connection:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    context.run_migrations()
