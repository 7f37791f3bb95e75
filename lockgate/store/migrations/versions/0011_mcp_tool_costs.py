"""MCP tool prices (USD per call, charged to budgets) and the cost on each tool-call record.

Revision ID: 0011_mcp_tool_costs
Revises: 0010_mcp_tool_pins
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011_mcp_tool_costs"
down_revision = "0010_mcp_tool_pins"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("mcp_servers") as batch:
        batch.add_column(sa.Column("tool_costs", sa.JSON))
    with op.batch_alter_table("tool_calls") as batch:
        batch.add_column(sa.Column("cost_usd", sa.Float))


def downgrade() -> None:
    with op.batch_alter_table("tool_calls") as batch:
        batch.drop_column("cost_usd")
    with op.batch_alter_table("mcp_servers") as batch:
        batch.drop_column("tool_costs")
