"""SQLAlchemy Core tables. ``store/`` is the only package that speaks SQL.

The schema itself is owned by the Alembic migrations in ``migrations/versions``;
these definitions are what queries are written against and must match them
(the store tests run every query against the migrated schema, on SQLite and PostgreSQL).

Control-plane rows carry ``version`` (bumped on every update, for optimistic
concurrency) and ``source`` ("api" or "file": who manages the row, so a
declarative apply prunes only what the file created).
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    false,
)

from lockgate.telemetry.histogram import BUCKETS

metadata = MetaData()
_COUNT_COLUMNS = (
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

# One slim row per request: identifiers, numbers and short strings; no static
# data repeated per row (prices, provider URLs live in the catalog/config).
request_logs = Table(
    "request_logs",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("created_at", Float, nullable=False),
    Column("endpoint", String(32), nullable=False),
    Column("key_id", String(64)),
    Column("workspace_id", String(40)),
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
    Column("overhead_ms", Float),
    Column("attempts", Integer, nullable=False),
    Column("attempt_log", JSON),
    Column("route", String(200)),
    Column("retries", Integer, nullable=False, server_default="0"),
    Column("fallbacks", Integer, nullable=False, server_default="0"),
    Column("cache_status", String(16)),
    Column("stream_failover", Boolean, nullable=False, server_default=false()),
    Column("trace_id", String(128)),
    Column("span_id", String(16)),
    Column("bodies", JSON),
    Column("error_type", String(64)),
    Column("error_message", Text),
    Column("metadata", JSON),
    Column("guardrails", JSON),  # verdicts, check latencies, redaction counts
    # How limits and budgets were enforced: exact, approximate (per worker), local (Redis down).
    Column("limits", String(16)),
    # Every index slows every batch insert: one for time (retention, the unscoped log view)
    # and one each for the two scopes the logs API is mostly asked for.
    Index("ix_request_logs_created_at", "created_at"),
    Index("ix_request_logs_workspace_created", "workspace_id", "created_at"),
    Index("ix_request_logs_key_created", "key_id", "created_at"),
)

# Pre-aggregated analytics (see telemetry/rollups.py): one row per resolution, dimension,
# time bucket, workspace and dimension value; every other column is a sum, so the writer
# adds to it with an upsert and any set of rows merges by SUM. lat_NN / ttft_NN are the
# counts of the fixed latency histogram buckets (telemetry/histogram.py).
request_rollups = Table(
    "request_rollups",
    metadata,
    Column("res", Integer, primary_key=True),  # 60 or 3600 seconds
    Column("dim", String(8), primary_key=True),
    Column("bucket", BigInteger, primary_key=True),  # Unix seconds at the bucket's start
    Column("workspace_id", String(40), primary_key=True),  # "" for requests without one
    Column("value", String(200), primary_key=True),
    *(Column(name, BigInteger, nullable=False, server_default="0") for name in _COUNT_COLUMNS),
    Column("cost_usd", Float, nullable=False, server_default="0"),
    Column("latency_ms_sum", Float, nullable=False, server_default="0"),
    Column("ttft_ms_sum", Float, nullable=False, server_default="0"),
    *(Column(f"lat_{i:02d}", Integer, nullable=False, server_default="0") for i in range(BUCKETS)),
    *(Column(f"ttft_{i:02d}", Integer, nullable=False, server_default="0") for i in range(BUCKETS)),
)


def _tracked() -> list[Column]:
    """Columns every control-plane object has."""
    return [
        Column("version", Integer, nullable=False, server_default="1"),
        Column("source", String(8), nullable=False, server_default="api"),
        Column("created_at", Float, nullable=False),
        Column("updated_at", Float, nullable=False),
    ]


# A single row: the config version every worker polls, and the head of the audit chain.
# Every admin change updates it first, which also serialises admin writes.
config_state = Table(
    "config_state",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("version", BigInteger, nullable=False),
    Column("audit_head", String(64), nullable=False),
    Column("updated_at", Float, nullable=False),
)

organizations = Table(
    "organizations",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("created_at", Float, nullable=False),
)

workspaces = Table(
    "workspaces",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("org_id", String(40), ForeignKey("organizations.id"), nullable=False),
    Column("name", String(100), nullable=False, unique=True),
    Column("description", Text, nullable=False, server_default=""),
    Column("metadata", JSON, nullable=False),
    # Keep request/response bodies in this workspace's request records (redacted, capped).
    Column("log_bodies", Boolean, nullable=False, server_default=false()),
    *_tracked(),
)

api_keys = Table(
    "api_keys",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("workspace_id", String(40), ForeignKey("workspaces.id"), nullable=False),
    Column("name", String(200), nullable=False),
    Column("key_hash", String(64), nullable=False, unique=True),
    Column("key_hint", String(32), nullable=False),
    Column("status", String(16), nullable=False),
    Column("expires_at", Float),
    Column("allowed_models", JSON),
    Column("metadata", JSON, nullable=False),
    Column("rotated_at", Float),
    Column("revoked_at", Float),
    *_tracked(),
    UniqueConstraint("workspace_id", "name", name="uq_api_keys_workspace_name"),
)

integrations = Table(
    "integrations",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("name", String(100), nullable=False, unique=True),
    Column("provider", String(64), nullable=False),
    Column("base_url", String(500)),
    # Fernet token of the provider secret; never the secret itself.
    Column("secret_ciphertext", Text),
    Column("secret_hint", String(32)),
    # Secret option and header values appear here masked; the values themselves are in
    # sealed_ciphertext, a Fernet token (governance/secret_fields.py says which are secret).
    Column("headers", JSON, nullable=False),
    Column("options", JSON, nullable=False),
    Column("sealed_ciphertext", Text),
    Column("workspace_ids", JSON),  # null: every workspace may use it
    Column("allowed_models", JSON),  # null: any model
    *_tracked(),
)

model_aliases = Table(
    "model_aliases",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("alias", String(200), nullable=False),
    Column("workspace_id", String(40), ForeignKey("workspaces.id")),  # null: every workspace
    Column("targets", JSON),
    Column("config_id", String(100)),
    *_tracked(),
    UniqueConstraint("alias", "workspace_id", name="uq_model_aliases_alias_workspace"),
)

route_configs = Table(
    "route_configs",
    metadata,
    Column("id", String(100), primary_key=True),
    Column("workspace_id", String(40), ForeignKey("workspaces.id")),
    Column("description", Text, nullable=False, server_default=""),
    Column("config", JSON, nullable=False),
    *_tracked(),
)

# Named guardrail definitions (lockgate/guardrails/definition.py), org-wide or one workspace's.
guardrails = Table(
    "guardrails",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("name", String(100), nullable=False, unique=True),
    Column("workspace_id", String(40), ForeignKey("workspaces.id")),  # null: org-wide
    Column("description", Text, nullable=False, server_default=""),
    Column("action", String(8), nullable=False),
    Column("mode", String(16), nullable=False),
    Column("on_error", String(8), nullable=False),
    Column("timeout_ms", Integer, nullable=False),
    Column("roles", JSON),
    Column("checks", JSON, nullable=False),
    *_tracked(),
)

# The input_guardrails/output_guardrails lists (guardrail names, in order) of the org, a
# workspace or a key. ``workspace_id`` is the workspace the target lives in (null for the org).
guardrail_attachments = Table(
    "guardrail_attachments",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("scope", String(16), nullable=False),  # org | workspace | key
    Column("target_id", String(40), nullable=False),
    Column("workspace_id", String(40), ForeignKey("workspaces.id")),
    Column("input_guardrails", JSON, nullable=False),
    Column("output_guardrails", JSON, nullable=False),
    *_tracked(),
    UniqueConstraint("scope", "target_id", name="uq_guardrail_attachments_target"),
)

admin_users = Table(
    "admin_users",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("name", String(200), nullable=False, unique=True),
    Column("email", String(320)),
    # [{"workspace_id": null | "ws_…", "role": "owner" | "admin" | "member" | "viewer"}]
    Column("roles", JSON, nullable=False),
    Column("status", String(16), nullable=False),
    *_tracked(),
)

admin_keys = Table(
    "admin_keys",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("user_id", String(40), ForeignKey("admin_users.id"), nullable=False),
    Column("name", String(200), nullable=False),
    Column("key_hash", String(64), nullable=False, unique=True),
    Column("key_hint", String(32), nullable=False),
    Column("status", String(16), nullable=False),
    Column("expires_at", Float),
    Column("revoked_at", Float),
    *_tracked(),
)

audit_log = Table(
    "audit_log",
    metadata,
    Column("seq", Integer, primary_key=True, autoincrement=True),
    Column("at", Float, nullable=False),
    Column("config_version", BigInteger, nullable=False),
    Column("actor_id", String(40), nullable=False),
    Column("actor_name", String(200), nullable=False),
    Column("action", String(40), nullable=False),
    Column("object_type", String(40), nullable=False),
    Column("object_id", String(100), nullable=False),
    Column("workspace_id", String(40)),
    Column("before", JSON),
    Column("after", JSON),
    Column("prev_hash", String(64), nullable=False),
    Column("hash", String(64), nullable=False),
    Index("ix_audit_log_at", "at"),
    Index("ix_audit_log_object", "object_type", "object_id"),
)


def _scoped() -> list[Column]:
    """Where a budget, limit or policy applies: ``scope_type`` org, workspace, key, integration or
    metadata; ``scope_id`` the workspace/key id, integration name or metadata key; ``scope_value``
    one metadata value (null: each value on its own). ``workspace_id`` owns the row for RBAC."""
    return [
        Column("id", String(40), primary_key=True),
        Column("name", String(100), nullable=False, unique=True),
        Column("scope_type", String(16), nullable=False),
        Column("scope_id", String(200)),
        Column("scope_value", String(200)),
        Column("workspace_id", String(40), ForeignKey("workspaces.id")),
    ]


budgets = Table(
    "budgets",
    metadata,
    *_scoped(),
    Column("amount_usd", Float, nullable=False),
    Column("period", String(8), nullable=False),  # none | day | week | month (UTC calendar)
    Column("mode", String(8), nullable=False),  # hard: refuse past it; soft: alert only
    Column("auto_revoke", Boolean, nullable=False),
    Column("alert_thresholds", JSON, nullable=False),  # percentages, e.g. [50, 80, 100]
    Column("alert_webhook", String(500)),
    *_tracked(),
)

rate_limits = Table(
    "rate_limits",
    metadata,
    *_scoped(),
    Column("requests_per_minute", Integer),
    Column("requests_per_hour", Integer),
    Column("requests_per_day", Integer),
    Column("tokens_per_minute", Integer),
    Column("tokens_per_day", Integer),
    Column("concurrent", Integer),
    *_tracked(),
)

usage_policies = Table(
    "usage_policies",
    metadata,
    *_scoped(),  # scope_type workspace or key
    Column("allowed_models", JSON),  # null: any
    Column("denied_models", JSON),
    Column("max_tokens", Integer),
    Column("max_n", Integer),
    Column("temperature_min", Float),
    Column("temperature_max", Float),
    Column("required_metadata", JSON),
    *_tracked(),
)

# Settled spend, append-only, one row per (scope, UTC day) per flush of one process
# (``writer``, ``flush``); compaction folds old rows into one per (scope, day) with
# writer null. Budgets are sums over these rows, so they survive restarts.
spend_ledger = Table(
    "spend_ledger",
    metadata,
    Column("seq", Integer, primary_key=True, autoincrement=True),
    Column("scope", String(300), nullable=False),
    Column("day", Integer, nullable=False),  # UTC days since 1970-01-01; 0: folded history
    Column("cost_usd", Float, nullable=False),
    Column("tokens", BigInteger, nullable=False),
    Column("requests", Integer, nullable=False),
    Column("writer", String(40)),
    Column("flush", Integer, nullable=False),
    Column("at", Float, nullable=False),
    Index("ix_spend_ledger_scope_day", "scope", "day"),
    Index("ix_spend_ledger_at", "at"),
)

# The last flush each process committed, written in the flush's transaction; compaction never
# touches it, so a seed always knows exactly which flushes it holds.
ledger_writers = Table(
    "ledger_writers",
    metadata,
    Column("writer", String(40), primary_key=True),
    Column("flush", Integer, nullable=False),
    Column("at", Float, nullable=False),
)

# One row per budget alert fired: the primary key makes "once per period" hold across processes.
budget_alerts = Table(
    "budget_alerts",
    metadata,
    Column("budget_id", String(40), primary_key=True),
    Column("scope", String(300), primary_key=True),
    Column("period", String(16), primary_key=True),  # the period field: d:20250603, m:202506, a
    Column("threshold", Integer, primary_key=True),
    Column("spent_usd", Float, nullable=False),
    Column("fired_at", Float, nullable=False),
)

DEFAULT_ORG_ID = "org_default"
DEFAULT_WORKSPACE_ID = "ws_default"
GENESIS_HASH = "0" * 64


# MCP servers (DESIGN §5). ``name`` + ``server_version`` identify one registration; a new version keeps
# the old addressable (``/mcp/name@1.0.0``) until it is retired. ``status`` is enabled, disabled
# (new calls refused) or killed (in-flight calls cut too); ``tool_status`` does the same per tool.
mcp_servers = Table(
    "mcp_servers",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("name", String(64), nullable=False),
    Column("server_version", String(64), nullable=False),
    Column("latest", Boolean, nullable=False),  # the version /mcp/{name} resolves to
    Column("description", Text, nullable=False),
    Column("transport", String(16), nullable=False),  # streamable_http | sse | stdio
    Column("url", String(2000)),
    Column("command", JSON),  # [argv...] for stdio
    Column("env", JSON),  # non-secret environment for stdio
    Column("headers", JSON),  # non-secret headers sent upstream
    # The upstream credential, encrypted (never returned): sent as ``auth_header: auth_scheme <secret>``.
    Column("secret_ciphertext", Text),
    Column("auth_header", String(100)),
    Column("auth_scheme", String(32)),
    Column("workspace_id", String(40), ForeignKey("workspaces.id")),  # owner; null: org
    Column("workspace_ids", JSON),  # who may use it; null: every workspace
    Column("key_ids", JSON),  # null: every key of those workspaces
    Column("status", String(16), nullable=False),
    Column("status_reason", Text),
    Column("tool_status", JSON, nullable=False),  # {tool: "disabled" | "killed"}
    Column("pin_policy", String(8), nullable=False),  # off | flag | block
    Column("timeout_ms", Integer, nullable=False),
    Column("tags", JSON, nullable=False),
    Column("tool_costs", JSON),  # {tool or fnmatch pattern: USD per call}, charged to budgets
    Column("retired", Boolean, nullable=False),
    # {"input": [names], "output": [names]}: guardrails on tool arguments and results; null: none.
    Column("guardrails", JSON),
    *_tracked(),
    UniqueConstraint("name", "server_version", name="uq_mcp_servers_name_version"),
)

# Who may use which servers and tools: allow and deny lists of fnmatch patterns over server
# names and ``server__tool`` names, for a workspace or one key. Errors name the rule.
mcp_access_rules = Table(
    "mcp_access_rules",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("name", String(100), nullable=False, unique=True),
    Column("scope_type", String(16), nullable=False),  # workspace | key
    Column("scope_id", String(40), nullable=False),
    Column("workspace_id", String(40), ForeignKey("workspaces.id")),
    Column("allow_servers", JSON),  # null: any
    Column("deny_servers", JSON),
    Column("allow_tools", JSON),
    Column("deny_tools", JSON),
    *_tracked(),
)

# One row per MCP request that reached a server (tools/call, prompts/get, resources/read ...):
# the tool-call audit record, beside request_logs and searchable the same way.
tool_calls = Table(
    "tool_calls",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("created_at", Float, nullable=False),
    Column("method", String(64), nullable=False),
    Column("server", String(64)),
    Column("server_version", String(64)),
    Column("tool", String(200)),
    Column("key_id", String(64)),
    Column("workspace_id", String(40)),
    Column("session", String(16)),  # protocol era: modern | legacy
    Column("arguments", JSON),  # PII-redacted
    Column("status", String(16), nullable=False),  # ok | tool_error | denied | error | timeout | killed
    Column("error_code", Integer),
    Column("error_message", Text),
    Column("result_bytes", Integer),
    Column("latency_ms", Float),
    Column("verdicts", JSON),  # policy decisions and pins
    Column("cost_usd", Float),  # the tool's price, when it has one and the call reached the server
    Column("trace_id", String(32)),
    Column("span_id", String(16)),
    Index("ix_tool_calls_created_at", "created_at"),
    Index("ix_tool_calls_server_tool", "server", "tool"),
)

# Action policies on tools/call (mcp/action_policy.py): for a workspace or one key, server and tool
# patterns, a CEL condition (``when``; null: always) and what a match does: allow, deny or
# require_approval. Tried in creation order; the first match decides. ``limit`` policies decide
# nothing: every one that matches counts the call.
mcp_tool_policies = Table(
    "mcp_tool_policies",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("name", String(100), nullable=False, unique=True),
    Column("scope_type", String(16), nullable=False),  # workspace | key
    Column("scope_id", String(40), nullable=False),
    Column("workspace_id", String(40), ForeignKey("workspaces.id")),
    Column("server", String(200), nullable=False),  # fnmatch over server names
    Column("tool", String(200), nullable=False),  # fnmatch over the server's tool names
    Column("when_expr", Text),
    Column("action", String(24), nullable=False),  # allow | deny | require_approval | limit
    Column("approval_timeout_s", Integer, nullable=False),
    # action "limit": at most limit_calls matching calls per limit_window (minute | hour | day),
    # counted per limit_by (key | workspace) on the shared counters (state/).
    Column("limit_calls", Integer),
    Column("limit_window", String(8)),
    Column("limit_by", String(16)),
    *_tracked(),
)

# Calls waiting for a human: created by the worker holding the call, decided through the admin API.
# Both are audited config changes, so a decision reaches the waiting worker with the snapshot notice.
mcp_approvals = Table(
    "mcp_approvals",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("policy", String(100), nullable=False),
    Column("workspace_id", String(40)),
    Column("key_id", String(64), nullable=False),
    Column("server", String(64), nullable=False),
    Column("tool", String(200), nullable=False),
    Column("arguments", JSON),  # PII-redacted
    Column("status", String(16), nullable=False),  # pending | approved | rejected | expired
    Column("expires_at", Float, nullable=False),
    Column("decided_by", String(200)),
    Column("reason", Text),
    *_tracked(),
)

# Tool-definition pins (DESIGN §5): the hash of each tool's description and schemas, pinned when
# the gateway first lists the tool. A different definition upstream sets ``status`` to changed and
# keeps what it saw in ``current_*`` until an admin approves it (which re-pins); both are audited,
# so the audit record of each carries the old and the new definition.
mcp_tool_pins = Table(
    "mcp_tool_pins",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("server_id", String(40), nullable=False),
    Column("workspace_id", String(40)),  # the server's owner, for RBAC
    Column("tool", String(200), nullable=False),
    Column("hash", String(64), nullable=False),  # the approved definition
    Column("definition", JSON, nullable=False),
    Column("status", String(16), nullable=False),  # approved | changed
    Column("current_hash", String(64)),  # what the upstream serves now, when changed
    Column("current_definition", JSON),
    *_tracked(),
    UniqueConstraint("server_id", "tool", name="uq_mcp_tool_pins_server_tool"),
)

# Trusted OAuth issuers for inbound bearer JWTs on /mcp (mcp/oauth.py): where the keys are
# (``jwks_uri``, else OIDC discovery from ``issuer``), which ``aud`` values and scopes a token
# must carry, and ordered claim rules (stored with their workspace ids) that map a token to a
# workspace and narrow what it may reach. Org-wide: a rule may name any workspace.
oauth_issuers = Table(
    "oauth_issuers",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("name", String(64), nullable=False, unique=True),
    Column("issuer", String(500), nullable=False, unique=True),
    Column("jwks_uri", String(1000)),
    Column("audiences", JSON, nullable=False),
    Column("required_scopes", JSON, nullable=False),
    Column("algorithms", JSON, nullable=False),
    Column("leeway_s", Integer, nullable=False),
    Column("subject_claim", String(100), nullable=False),
    Column("default_workspace_id", String(40), ForeignKey("workspaces.id")),
    Column("rules", JSON, nullable=False),
    Column("status", String(16), nullable=False),  # enabled | disabled
    *_tracked(),
)
