"""MCP agent governance: action policies on tools/call and the approval queue.

Revision ID: 0008_mcp_governance
Revises: 0008_observability (numbered 0008 on its branch, chained after observability on merge)
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008_mcp_governance"
down_revision = "0008_observability"
branch_labels = None
depends_on = None


def _tracked() -> list[sa.Column]:
    return [
        sa.Column("version", sa.Integer, nullable=False, server_default="1"),
        sa.Column("source", sa.String(8), nullable=False, server_default="api"),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("updated_at", sa.Float, nullable=False),
    ]


def upgrade() -> None:
    op.create_table(
        "mcp_tool_policies",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("name", sa.String(100), nullable=False, unique=True),
        sa.Column("scope_type", sa.String(16), nullable=False),
        sa.Column("scope_id", sa.String(40), nullable=False),
        sa.Column("workspace_id", sa.String(40), sa.ForeignKey("workspaces.id")),
        sa.Column("server", sa.String(200), nullable=False),
        sa.Column("tool", sa.String(200), nullable=False),
        sa.Column("when_expr", sa.Text),
        sa.Column("action", sa.String(24), nullable=False),
        sa.Column("approval_timeout_s", sa.Integer, nullable=False),
        *_tracked(),
    )
    op.create_table(
        "mcp_approvals",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("policy", sa.String(100), nullable=False),
        sa.Column("workspace_id", sa.String(40)),
        sa.Column("key_id", sa.String(64), nullable=False),
        sa.Column("server", sa.String(64), nullable=False),
        sa.Column("tool", sa.String(200), nullable=False),
        sa.Column("arguments", sa.JSON),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("expires_at", sa.Float, nullable=False),
        sa.Column("decided_by", sa.String(200)),
        sa.Column("reason", sa.Text),
        *_tracked(),
    )


def downgrade() -> None:
    op.drop_table("mcp_approvals")
    op.drop_table("mcp_tool_policies")
