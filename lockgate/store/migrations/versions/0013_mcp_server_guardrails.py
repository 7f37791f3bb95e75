"""Guardrails on MCP servers: ``{"input": [...], "output": [...]}`` run on tool arguments and results.

Revision ID: 0013_mcp_server_guardrails
Revises: 0012_mcp_oauth
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013_mcp_server_guardrails"
down_revision = "0012_mcp_oauth"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("mcp_servers", sa.Column("guardrails", sa.JSON))


def downgrade() -> None:
    with op.batch_alter_table("mcp_servers") as batch:
        batch.drop_column("guardrails")
