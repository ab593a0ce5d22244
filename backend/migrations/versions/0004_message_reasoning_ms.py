"""how long a model reasoned before answering, and how many older messages were left out of its request

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-30
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0004'
down_revision: str | None = '0003'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('message') as batch:
        batch.add_column(sa.Column('reasoning_ms', sa.Integer(), nullable=True))
        batch.add_column(sa.Column('context_trimmed', sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('message') as batch:
        batch.drop_column('context_trimmed')
        batch.drop_column('reasoning_ms')
