"""Git sources: the address a reader opens for a document that is not its url.

A git source stores each file under its path in the repository (``documents.url``), its blob
id as the entity tag and the commit it was read at as ``last_modified``; ``web_url`` is the
file's hosted view at that commit (from the source's ``--web-url`` template), for citations.

Revision ID: 0013
Revises: 0012
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("documents") as batch:
        batch.add_column(sa.Column("web_url", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("documents") as batch:
        batch.drop_column("web_url")
