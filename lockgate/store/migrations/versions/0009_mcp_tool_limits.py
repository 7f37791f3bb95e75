"""MCP per-tool rate limits: a tool policy with ``action: limit`` counts calls in a window.

Revision ID: 0009_mcp_tool_limits
Revises: 0008_mcp_governance
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009_mcp_tool_limits"
down_revision = "0008_mcp_governance"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("mcp_tool_policies") as table:
        table.add_column(sa.Column("limit_calls", sa.Integer))
        table.add_column(sa.Column("limit_window", sa.String(8)))
        table.add_column(sa.Column("limit_by", sa.String(16)))


def downgrade() -> None:
    with op.batch_alter_table("mcp_tool_policies") as table:
        table.drop_column("limit_by")
        table.drop_column("limit_window")
        table.drop_column("limit_calls")
