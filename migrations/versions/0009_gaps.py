"""Gaps: questions teambot abstained on, that got 👎, or that a person answered after it.

Revision ID: 0009
Revises: 0008
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "gaps",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=30), nullable=False),
        sa.Column("platform", sa.String(length=20), nullable=False),
        sa.Column("channel", sa.String(length=200), nullable=False),
        sa.Column("question", sa.Text(), nullable=False),
        sa.Column("turn_id", sa.Integer(), nullable=True),
        sa.Column("passages", sa.JSON(), nullable=False),
        sa.Column("confidence", sa.Float(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["turn_id"], ["turns.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("turn_id", "kind"),
    )
    op.create_index(op.f("ix_gaps_turn_id"), "gaps", ["turn_id"], unique=False)
    op.create_index(op.f("ix_gaps_created_at"), "gaps", ["created_at"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_gaps_created_at"), table_name="gaps")
    op.drop_index(op.f("ix_gaps_turn_id"), table_name="gaps")
    op.drop_table("gaps")
