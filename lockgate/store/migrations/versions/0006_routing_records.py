"""Routing on the request record: the plan that served it, retries, fallbacks, cache verdict, failover.

Revision ID: 0006_routing
Revises: 7c1e5a9d3b20
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006_routing"
down_revision = "7c1e5a9d3b20"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("request_logs") as batch:
        batch.add_column(sa.Column("route", sa.String(200)))
        batch.add_column(sa.Column("retries", sa.Integer, nullable=False, server_default="0"))
        batch.add_column(sa.Column("fallbacks", sa.Integer, nullable=False, server_default="0"))
        batch.add_column(sa.Column("cache_status", sa.String(16)))
        batch.add_column(sa.Column("stream_failover", sa.Boolean, nullable=False, server_default=sa.false()))


def downgrade() -> None:
    with op.batch_alter_table("request_logs") as batch:
        for name in ("stream_failover", "cache_status", "fallbacks", "retries", "route"):
            batch.drop_column(name)
