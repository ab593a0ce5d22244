"""limits, quotas, settings and system samples

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-30
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = '0009'
down_revision: str | None = '0008'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('app_setting',
    sa.Column('key', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('value', sa.JSON(), nullable=True),
    sa.Column('updated_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('key')
    )
    op.create_table('system_sample',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('time', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.Column('cpu_percent', sa.Float(), nullable=False),
    sa.Column('memory_percent', sa.Float(), nullable=False),
    sa.Column('memory_used', sa.BigInteger(), nullable=False),
    sa.Column('memory_total', sa.BigInteger(), nullable=False),
    sa.Column('disk_percent', sa.Float(), nullable=False),
    sa.Column('disk_used', sa.BigInteger(), nullable=False),
    sa.Column('disk_total', sa.BigInteger(), nullable=False),
    sa.Column('portal_rss', sa.BigInteger(), nullable=False),
    sa.Column('gpus', sa.JSON(), nullable=False),
    sa.Column('workers', sa.JSON(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('system_sample', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_system_sample_time'), ['time'], unique=False)

    with op.batch_alter_table('user', schema=None) as batch_op:
        batch_op.add_column(sa.Column('rate_limit_per_minute', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('daily_token_quota', sa.Integer(), nullable=True))

    # The daily quota sums one user's usage since midnight: one range scan on (user_id, time).
    with op.batch_alter_table('usage_record', schema=None) as batch_op:
        batch_op.create_index('ix_usage_record_user_time', ['user_id', 'time'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('usage_record', schema=None) as batch_op:
        batch_op.drop_index('ix_usage_record_user_time')
    with op.batch_alter_table('user', schema=None) as batch_op:
        batch_op.drop_column('daily_token_quota')
        batch_op.drop_column('rate_limit_per_minute')
    with op.batch_alter_table('system_sample', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_system_sample_time'))
    op.drop_table('system_sample')
    op.drop_table('app_setting')
