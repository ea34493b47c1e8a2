"""Private conversations: a DM's or private channel's questions are not shown elsewhere.

Older Slack DMs and group DMs are recognised by their channel ids (D…, G…); private channels
and Discord DMs asked before this revision cannot be told apart and stay unmarked.

Revision ID: 0012
Revises: 0011
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("conversations") as batch:
        batch.add_column(
            sa.Column("is_private", sa.Boolean(), nullable=False, server_default=sa.false())
        )
    op.execute(
        "UPDATE conversations SET is_private = TRUE WHERE platform = 'slack' "
        "AND (channel LIKE 'D%' OR channel LIKE 'G%')"
    )


def downgrade() -> None:
    with op.batch_alter_table("conversations") as batch:
        batch.drop_column("is_private")
