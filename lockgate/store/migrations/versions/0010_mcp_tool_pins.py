"""MCP tool-definition pins, stored and re-approved through the admin API.

Revision ID: 0010_mcp_tool_pins
Revises: 0009_mcp_tool_limits
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010_mcp_tool_pins"
down_revision = "0009_mcp_tool_limits"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "mcp_tool_pins",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("server_id", sa.String(40), nullable=False),
        sa.Column("workspace_id", sa.String(40)),
        sa.Column("tool", sa.String(200), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
        sa.Column("definition", sa.JSON, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("current_hash", sa.String(64)),
        sa.Column("current_definition", sa.JSON),
        sa.Column("version", sa.Integer, nullable=False, server_default="1"),
        sa.Column("source", sa.String(8), nullable=False, server_default="api"),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("updated_at", sa.Float, nullable=False),
        sa.UniqueConstraint("server_id", "tool", name="uq_mcp_tool_pins_server_tool"),
    )


def downgrade() -> None:
    op.drop_table("mcp_tool_pins")
