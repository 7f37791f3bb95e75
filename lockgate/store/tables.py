"""SQLAlchemy Core tables. ``store/`` is the only package that speaks SQL."""

from __future__ import annotations

from sqlalchemy import JSON, Boolean, Column, Float, Index, Integer, MetaData, String, Table, Text

metadata = MetaData()

# One slim row per request: identifiers, numbers and short strings; no static
# data repeated per row (prices, provider URLs live in the catalog/config).
request_logs = Table(
    "request_logs",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("created_at", Float, nullable=False),
    Column("endpoint", String(32), nullable=False),
    Column("key_id", String(64)),
    Column("requested_model", String(200)),
    Column("provider", String(100)),
    Column("model", String(200)),
    Column("status", Integer, nullable=False),
    Column("stream", Boolean, nullable=False),
    Column("prompt_tokens", Integer),
    Column("completion_tokens", Integer),
    Column("cached_tokens", Integer),
    Column("reasoning_tokens", Integer),
    Column("cost_usd", Float),
    Column("usage_source", String(16)),
    Column("latency_ms", Float),
    Column("ttft_ms", Float),
    Column("attempts", Integer, nullable=False),
    Column("attempt_log", JSON),
    Column("error_type", String(64)),
    Column("error_message", Text),
    Column("metadata", JSON),
    Index("ix_request_logs_created_at", "created_at"),
)
