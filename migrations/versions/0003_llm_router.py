"""LLM router: provider, route, time to first token and rewrite on turns; daily token usage.

Revision ID: 0003
Revises: 0002
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("turns", schema=None) as batch_op:
        batch_op.add_column(sa.Column("provider", sa.String(length=20), nullable=True))
        batch_op.add_column(sa.Column("route", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("first_token_ms", sa.Float(), nullable=True))
        batch_op.add_column(sa.Column("rewrite", sa.String(length=20), nullable=True))
        batch_op.create_index(batch_op.f("ix_turns_created_at"), ["created_at"], unique=False)

    op.create_table(
        "llm_usage",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("provider", sa.String(length=20), nullable=False),
        sa.Column("requests", sa.Integer(), server_default="0", nullable=False),
        sa.Column("tokens_in", sa.Integer(), server_default="0", nullable=False),
        sa.Column("tokens_out", sa.Integer(), server_default="0", nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("day", "provider"),
    )


def downgrade() -> None:
    op.drop_table("llm_usage")
    with op.batch_alter_table("turns", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_turns_created_at"))
        batch_op.drop_column("rewrite")
        batch_op.drop_column("first_token_ms")
        batch_op.drop_column("route")
        batch_op.drop_column("provider")
