"""Budgets, rate limits, usage policies, the spend ledger and budget alerts.

Revision ID: 0004_budgets
Revises: 0003_guardrails
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004_budgets"
down_revision = "0003_guardrails"
branch_labels = None
depends_on = None


def _tracked() -> list[sa.Column]:
    return [
        sa.Column("version", sa.Integer, nullable=False, server_default="1"),
        sa.Column("source", sa.String(8), nullable=False, server_default="api"),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("updated_at", sa.Float, nullable=False),
    ]


def _scoped() -> list[sa.Column]:
    return [
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("name", sa.String(100), nullable=False, unique=True),
        sa.Column("scope_type", sa.String(16), nullable=False),
        sa.Column("scope_id", sa.String(200)),
        sa.Column("scope_value", sa.String(200)),
        sa.Column("workspace_id", sa.String(40), sa.ForeignKey("workspaces.id")),
    ]


def upgrade() -> None:
    with op.batch_alter_table("request_logs") as batch:
        batch.add_column(sa.Column("limits", sa.String(16)))
    op.create_table(
        "budgets",
        *_scoped(),
        sa.Column("amount_usd", sa.Float, nullable=False),
        sa.Column("period", sa.String(8), nullable=False),
        sa.Column("mode", sa.String(8), nullable=False),
        sa.Column("auto_revoke", sa.Boolean, nullable=False),
        sa.Column("alert_thresholds", sa.JSON, nullable=False),
        sa.Column("alert_webhook", sa.String(500)),
        *_tracked(),
    )
    op.create_table(
        "rate_limits",
        *_scoped(),
        sa.Column("requests_per_minute", sa.Integer),
        sa.Column("requests_per_hour", sa.Integer),
        sa.Column("requests_per_day", sa.Integer),
        sa.Column("tokens_per_minute", sa.Integer),
        sa.Column("tokens_per_day", sa.Integer),
        sa.Column("concurrent", sa.Integer),
        *_tracked(),
    )
    op.create_table(
        "usage_policies",
        *_scoped(),
        sa.Column("allowed_models", sa.JSON),
        sa.Column("denied_models", sa.JSON),
        sa.Column("max_tokens", sa.Integer),
        sa.Column("max_n", sa.Integer),
        sa.Column("temperature_min", sa.Float),
        sa.Column("temperature_max", sa.Float),
        sa.Column("required_metadata", sa.JSON),
        *_tracked(),
    )
    op.create_table(
        "spend_ledger",
        sa.Column("seq", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("scope", sa.String(300), nullable=False),
        sa.Column("day", sa.Integer, nullable=False),
        sa.Column("cost_usd", sa.Float, nullable=False),
        sa.Column("tokens", sa.BigInteger, nullable=False),
        sa.Column("requests", sa.Integer, nullable=False),
        sa.Column("writer", sa.String(40)),
        sa.Column("flush", sa.Integer, nullable=False),
        sa.Column("at", sa.Float, nullable=False),
    )
    op.create_index("ix_spend_ledger_scope_day", "spend_ledger", ["scope", "day"])
    op.create_index("ix_spend_ledger_at", "spend_ledger", ["at"])
    op.create_table(
        "ledger_writers",
        sa.Column("writer", sa.String(40), primary_key=True),
        sa.Column("flush", sa.Integer, nullable=False),
        sa.Column("at", sa.Float, nullable=False),
    )
    op.create_table(
        "budget_alerts",
        sa.Column("budget_id", sa.String(40), primary_key=True),
        sa.Column("scope", sa.String(300), primary_key=True),
        sa.Column("period", sa.String(16), primary_key=True),
        sa.Column("threshold", sa.Integer, primary_key=True),
        sa.Column("spent_usd", sa.Float, nullable=False),
        sa.Column("fired_at", sa.Float, nullable=False),
    )


def downgrade() -> None:
    tables = ("budget_alerts", "ledger_writers", "spend_ledger", "usage_policies", "rate_limits", "budgets")
    for table in tables:
        op.drop_table(table)
    with op.batch_alter_table("request_logs") as batch:
        batch.drop_column("limits")
