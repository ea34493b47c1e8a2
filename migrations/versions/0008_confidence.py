"""Confidence: every stored answer's confidence and whether it abstained, and a channel's own
abstention threshold.

Revision ID: 0008
Revises: 0007
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("turns", schema=None) as batch_op:
        batch_op.add_column(sa.Column("confidence", sa.Float(), nullable=True))
        batch_op.add_column(sa.Column("abstained", sa.Boolean(), nullable=True))
    with op.batch_alter_table("channel_settings", schema=None) as batch_op:
        batch_op.add_column(sa.Column("min_confidence", sa.Float(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("channel_settings", schema=None) as batch_op:
        batch_op.drop_column("min_confidence")
    with op.batch_alter_table("turns", schema=None) as batch_op:
        batch_op.drop_column("abstained")
        batch_op.drop_column("confidence")
