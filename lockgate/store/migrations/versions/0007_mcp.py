"""MCP gateway: servers, access rules and tool-call records.

Revision ID: 0007_mcp
Revises: 0006_routing
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007_mcp"
down_revision = "0006_routing"
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
        "mcp_servers",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("server_version", sa.String(64), nullable=False),
        sa.Column("latest", sa.Boolean, nullable=False),
        sa.Column("description", sa.Text, nullable=False),
        sa.Column("transport", sa.String(16), nullable=False),
        sa.Column("url", sa.String(2000)),
        sa.Column("command", sa.JSON),
        sa.Column("env", sa.JSON),
        sa.Column("headers", sa.JSON),
        sa.Column("secret_ciphertext", sa.Text),
        sa.Column("auth_header", sa.String(100)),
        sa.Column("auth_scheme", sa.String(32)),
        sa.Column("workspace_id", sa.String(40), sa.ForeignKey("workspaces.id")),
        sa.Column("workspace_ids", sa.JSON),
        sa.Column("key_ids", sa.JSON),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("status_reason", sa.Text),
        sa.Column("tool_status", sa.JSON, nullable=False),
        sa.Column("pin_policy", sa.String(8), nullable=False),
        sa.Column("timeout_ms", sa.Integer, nullable=False),
        sa.Column("tags", sa.JSON, nullable=False),
        sa.Column("retired", sa.Boolean, nullable=False),
        *_tracked(),
        sa.UniqueConstraint("name", "server_version", name="uq_mcp_servers_name_version"),
    )
    op.create_table(
        "mcp_access_rules",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("name", sa.String(100), nullable=False, unique=True),
        sa.Column("scope_type", sa.String(16), nullable=False),
        sa.Column("scope_id", sa.String(40), nullable=False),
        sa.Column("workspace_id", sa.String(40), sa.ForeignKey("workspaces.id")),
        sa.Column("allow_servers", sa.JSON),
        sa.Column("deny_servers", sa.JSON),
        sa.Column("allow_tools", sa.JSON),
        sa.Column("deny_tools", sa.JSON),
        *_tracked(),
    )
    op.create_table(
        "tool_calls",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("method", sa.String(64), nullable=False),
        sa.Column("server", sa.String(64)),
        sa.Column("server_version", sa.String(64)),
        sa.Column("tool", sa.String(200)),
        sa.Column("key_id", sa.String(64)),
        sa.Column("workspace_id", sa.String(40)),
        sa.Column("session", sa.String(16)),
        sa.Column("arguments", sa.JSON),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("error_code", sa.Integer),
        sa.Column("error_message", sa.Text),
        sa.Column("result_bytes", sa.Integer),
        sa.Column("latency_ms", sa.Float),
        sa.Column("verdicts", sa.JSON),
        sa.Column("trace_id", sa.String(32)),
        sa.Column("span_id", sa.String(16)),
    )
    op.create_index("ix_tool_calls_created_at", "tool_calls", ["created_at"])
    op.create_index("ix_tool_calls_server_tool", "tool_calls", ["server", "tool"])


def downgrade() -> None:
    op.drop_table("tool_calls")
    op.drop_table("mcp_access_rules")
    op.drop_table("mcp_servers")
