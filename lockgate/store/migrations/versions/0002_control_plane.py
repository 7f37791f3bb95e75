"""The control plane: organization, workspaces, keys, integrations, aliases, configs, admins, audit.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import time

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
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
        batch.add_column(sa.Column("workspace_id", sa.String(40)))
    state = op.create_table(
        "config_state",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("version", sa.BigInteger, nullable=False),
        sa.Column("audit_head", sa.String(64), nullable=False),
        sa.Column("updated_at", sa.Float, nullable=False),
    )
    orgs = op.create_table(
        "organizations",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
    )
    workspaces = op.create_table(
        "workspaces",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("org_id", sa.String(40), sa.ForeignKey("organizations.id"), nullable=False),
        sa.Column("name", sa.String(100), nullable=False, unique=True),
        sa.Column("description", sa.Text, nullable=False, server_default=""),
        sa.Column("metadata", sa.JSON, nullable=False),
        *_tracked(),
    )
    op.create_table(
        "api_keys",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("workspace_id", sa.String(40), sa.ForeignKey("workspaces.id"), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("key_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("key_hint", sa.String(32), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("expires_at", sa.Float),
        sa.Column("allowed_models", sa.JSON),
        sa.Column("metadata", sa.JSON, nullable=False),
        sa.Column("rotated_at", sa.Float),
        sa.Column("revoked_at", sa.Float),
        *_tracked(),
        sa.UniqueConstraint("workspace_id", "name", name="uq_api_keys_workspace_name"),
    )
    op.create_table(
        "integrations",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("name", sa.String(100), nullable=False, unique=True),
        sa.Column("provider", sa.String(64), nullable=False),
        sa.Column("base_url", sa.String(500)),
        sa.Column("secret_ciphertext", sa.Text),
        sa.Column("secret_hint", sa.String(32)),
        sa.Column("headers", sa.JSON, nullable=False),
        sa.Column("options", sa.JSON, nullable=False),
        sa.Column("workspace_ids", sa.JSON),
        sa.Column("allowed_models", sa.JSON),
        *_tracked(),
    )
    op.create_table(
        "model_aliases",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("alias", sa.String(200), nullable=False),
        sa.Column("workspace_id", sa.String(40), sa.ForeignKey("workspaces.id")),
        sa.Column("targets", sa.JSON),
        sa.Column("config_id", sa.String(100)),
        *_tracked(),
        sa.UniqueConstraint("alias", "workspace_id", name="uq_model_aliases_alias_workspace"),
    )
    op.create_table(
        "route_configs",
        sa.Column("id", sa.String(100), primary_key=True),
        sa.Column("workspace_id", sa.String(40), sa.ForeignKey("workspaces.id")),
        sa.Column("description", sa.Text, nullable=False, server_default=""),
        sa.Column("config", sa.JSON, nullable=False),
        *_tracked(),
    )
    op.create_table(
        "admin_users",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False, unique=True),
        sa.Column("email", sa.String(320)),
        sa.Column("roles", sa.JSON, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        *_tracked(),
    )
    op.create_table(
        "admin_keys",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("user_id", sa.String(40), sa.ForeignKey("admin_users.id"), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("key_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("key_hint", sa.String(32), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("expires_at", sa.Float),
        sa.Column("revoked_at", sa.Float),
        *_tracked(),
    )
    op.create_table(
        "audit_log",
        sa.Column("seq", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("at", sa.Float, nullable=False),
        sa.Column("config_version", sa.BigInteger, nullable=False),
        sa.Column("actor_id", sa.String(40), nullable=False),
        sa.Column("actor_name", sa.String(200), nullable=False),
        sa.Column("action", sa.String(40), nullable=False),
        sa.Column("object_type", sa.String(40), nullable=False),
        sa.Column("object_id", sa.String(100), nullable=False),
        sa.Column("workspace_id", sa.String(40)),
        sa.Column("before", sa.JSON),
        sa.Column("after", sa.JSON),
        sa.Column("prev_hash", sa.String(64), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
    )
    op.create_index("ix_audit_log_at", "audit_log", ["at"])
    op.create_index("ix_audit_log_object", "audit_log", ["object_type", "object_id"])

    # The seed: one organization with a default workspace, and config version 1.
    now = time.time()
    op.bulk_insert(state, [{"id": 1, "version": 1, "audit_head": "0" * 64, "updated_at": now}])
    op.bulk_insert(orgs, [{"id": "org_default", "name": "default", "created_at": now}])
    op.bulk_insert(
        workspaces,
        [
            {
                "id": "ws_default",
                "org_id": "org_default",
                "name": "default",
                "description": "Created by the first migration; the master key and demo mode use it.",
                "metadata": {},
                "version": 1,
                "source": "api",
                "created_at": now,
                "updated_at": now,
            }
        ],
    )


def downgrade() -> None:
    for table in (
        "audit_log",
        "admin_keys",
        "admin_users",
        "route_configs",
        "model_aliases",
        "integrations",
        "api_keys",
        "workspaces",
        "organizations",
        "config_state",
    ):
        op.drop_table(table)
    with op.batch_alter_table("request_logs") as batch:
        batch.drop_column("workspace_id")
