"""Trusted OAuth issuers for /mcp: bearer JWTs from an IdP, and the rules that map claims to workspaces.

Revision ID: 0012_mcp_oauth
Revises: 0011_mcp_tool_costs
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012_mcp_oauth"
down_revision = "0011_mcp_tool_costs"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "oauth_issuers",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("name", sa.String(64), nullable=False, unique=True),
        sa.Column("issuer", sa.String(500), nullable=False, unique=True),
        sa.Column("jwks_uri", sa.String(1000)),
        sa.Column("audiences", sa.JSON, nullable=False),
        sa.Column("required_scopes", sa.JSON, nullable=False),
        sa.Column("algorithms", sa.JSON, nullable=False),
        sa.Column("leeway_s", sa.Integer, nullable=False),
        sa.Column("subject_claim", sa.String(100), nullable=False),
        sa.Column("default_workspace_id", sa.String(40), sa.ForeignKey("workspaces.id")),
        sa.Column("rules", sa.JSON, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("version", sa.Integer, nullable=False, server_default="1"),
        sa.Column("source", sa.String(8), nullable=False, server_default="api"),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("updated_at", sa.Float, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("oauth_issuers")
