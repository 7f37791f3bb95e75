"""Guardrails: named definitions, their attachments to org/workspaces/keys, and verdicts per request.

Revision ID: 0003_guardrails
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003_guardrails"
down_revision = "0002"
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
    with op.batch_alter_table("request_logs") as batch:
        batch.add_column(sa.Column("guardrails", sa.JSON))
    op.create_table(
        "guardrails",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("name", sa.String(100), nullable=False, unique=True),
        sa.Column("workspace_id", sa.String(40), sa.ForeignKey("workspaces.id")),
        sa.Column("description", sa.Text, nullable=False, server_default=""),
        sa.Column("action", sa.String(8), nullable=False),
        sa.Column("mode", sa.String(16), nullable=False),
        sa.Column("on_error", sa.String(8), nullable=False),
        sa.Column("timeout_ms", sa.Integer, nullable=False),
        sa.Column("roles", sa.JSON),
        sa.Column("checks", sa.JSON, nullable=False),
        *_tracked(),
    )
    op.create_table(
        "guardrail_attachments",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("scope", sa.String(16), nullable=False),
        sa.Column("target_id", sa.String(40), nullable=False),
        sa.Column("workspace_id", sa.String(40), sa.ForeignKey("workspaces.id")),
        sa.Column("input_guardrails", sa.JSON, nullable=False),
        sa.Column("output_guardrails", sa.JSON, nullable=False),
        *_tracked(),
        sa.UniqueConstraint("scope", "target_id", name="uq_guardrail_attachments_target"),
    )


def downgrade() -> None:
    op.drop_table("guardrail_attachments")
    op.drop_table("guardrails")
    with op.batch_alter_table("request_logs") as batch:
        batch.drop_column("guardrails")
