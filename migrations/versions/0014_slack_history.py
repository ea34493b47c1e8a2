"""Slack channel history: each channel source's refresh state, and its threads.

Revision ID: 0014
Revises: 0013
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "slack_channels",
        sa.Column("source_id", sa.Integer(), nullable=False),
        sa.Column("channel_id", sa.String(length=40), nullable=False),
        sa.Column("channel_name", sa.String(length=200), nullable=False),
        sa.Column("is_private", sa.Boolean(), nullable=False),
        sa.Column("workspace_url", sa.Text(), nullable=False),
        sa.Column("newest_ts", sa.String(length=40), nullable=False),
        sa.Column("cursor", sa.Text(), nullable=True),
        sa.Column("cursor_oldest", sa.String(length=40), nullable=True),
        sa.Column("cursor_newest", sa.String(length=40), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["source_id"], ["sources.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("source_id"),
    )
    op.create_index(
        op.f("ix_slack_channels_channel_id"), "slack_channels", ["channel_id"], unique=False
    )
    op.create_table(
        "slack_threads",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("source_id", sa.Integer(), nullable=False),
        sa.Column("thread_ts", sa.String(length=40), nullable=False),
        sa.Column("signature", sa.String(length=200), nullable=False),
        sa.Column("stale", sa.Boolean(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["source_id"], ["sources.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("source_id", "thread_ts"),
    )
    op.create_index(
        op.f("ix_slack_threads_source_id"), "slack_threads", ["source_id"], unique=False
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_slack_threads_source_id"), table_name="slack_threads")
    op.drop_table("slack_threads")
    op.drop_index(op.f("ix_slack_channels_channel_id"), table_name="slack_channels")
    op.drop_table("slack_channels")
