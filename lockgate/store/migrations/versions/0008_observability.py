"""Observability: the complete request record, its scoped indexes, analytics rollups, body logging.

Revision ID: 0008_observability
Revises: 0007_mcp
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008_observability"
down_revision = "0007_mcp"
branch_labels = None
depends_on = None

# Frozen here on purpose: the histogram layout of telemetry/histogram.py at this revision.
_BUCKETS = 74
_COUNTS = (
    "requests",
    "errors",
    "cache_lookups",
    "cache_hits",
    "prompt_tokens",
    "completion_tokens",
    "cached_tokens",
    "reasoning_tokens",
    "ttft_count",
)


def upgrade() -> None:
    with op.batch_alter_table("request_logs") as batch:
        batch.add_column(sa.Column("overhead_ms", sa.Float))
        batch.add_column(sa.Column("trace_id", sa.String(128)))
        batch.add_column(sa.Column("span_id", sa.String(16)))
        batch.add_column(sa.Column("bodies", sa.JSON))
    op.create_index("ix_request_logs_workspace_created", "request_logs", ["workspace_id", "created_at"])
    op.create_index("ix_request_logs_key_created", "request_logs", ["key_id", "created_at"])
    op.create_table(
        "request_rollups",
        sa.Column("res", sa.Integer, primary_key=True),
        sa.Column("dim", sa.String(8), primary_key=True),
        sa.Column("bucket", sa.BigInteger, primary_key=True),
        sa.Column("workspace_id", sa.String(40), primary_key=True),
        sa.Column("value", sa.String(200), primary_key=True),
        *(sa.Column(name, sa.BigInteger, nullable=False, server_default="0") for name in _COUNTS),
        sa.Column("cost_usd", sa.Float, nullable=False, server_default="0"),
        sa.Column("latency_ms_sum", sa.Float, nullable=False, server_default="0"),
        sa.Column("ttft_ms_sum", sa.Float, nullable=False, server_default="0"),
        *(sa.Column(f"lat_{i:02d}", sa.Integer, nullable=False, server_default="0") for i in range(_BUCKETS)),
        *(
            sa.Column(f"ttft_{i:02d}", sa.Integer, nullable=False, server_default="0")
            for i in range(_BUCKETS)
        ),
    )
    with op.batch_alter_table("workspaces") as batch:
        batch.add_column(sa.Column("log_bodies", sa.Boolean, nullable=False, server_default=sa.false()))


def downgrade() -> None:
    with op.batch_alter_table("workspaces") as batch:
        batch.drop_column("log_bodies")
    op.drop_table("request_rollups")
    op.drop_index("ix_request_logs_key_created", "request_logs")
    op.drop_index("ix_request_logs_workspace_created", "request_logs")
    with op.batch_alter_table("request_logs") as batch:
        for name in ("bodies", "span_id", "trace_id", "overhead_ms"):
            batch.drop_column(name)
