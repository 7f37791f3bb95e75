"""Static settings: one object read from ``LOCKGATE_*`` environment variables.

The CLI writes its flags into the environment before starting uvicorn, so every
worker process builds the same Settings. Dynamic configuration (providers,
aliases, later keys and policies) lives in the config snapshot, not here.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, fields


@dataclass(frozen=True, slots=True)
class Settings:
    host: str = "127.0.0.1"
    port: int = 8080
    workers: int = 1
    config: str | None = None
    master_key: str | None = None
    # Accept data-plane requests without a key (``lockgate serve --demo``); never in production.
    demo: bool = False
    # Admin API bootstrap key (an owner); later admins get their own keys.
    admin_key: str | None = None
    # Encrypts provider secrets at rest (see governance/secrets.py for what happens when unset).
    secret_key: str | None = None
    redis_url: str | None = None
    # Limits and budgets (governance/): with N workers and no Redis, each worker enforces 1/N of
    # every rate limit (``--approximate-limits``; records say so). Without it such a start is refused.
    approximate_limits: bool = False
    # When Redis cannot be reached: "closed" answers 503 to requests that limits or budgets
    # apply to; "open" counts them in this process instead (records are flagged "local").
    limits_on_redis_failure: str = "closed"
    # Redis calls on the request path give up after this long (seconds): never a hang.
    state_timeout: float = 0.25
    # Spend ledger: settled spend is written in batches this often (seconds), never per request.
    ledger_flush_interval: float = 1.0
    # Ledger rows older than this many days are folded into one row per scope (lifetime totals stay).
    ledger_retention_days: int = 400
    # Budget alerts go here unless the budget names its own webhook.
    alert_webhook_url: str | None = None
    # How often each worker checks the config version (seconds); Redis notices wake it sooner.
    config_poll_interval: float = 0.5
    database_url: str = "sqlite:///.lockgate/lockgate.db"
    max_body_bytes: int = 32 * 1024 * 1024
    # Upstream timeouts in seconds: connect is short, a whole answer may be long. request_timeout
    # is also the deadline for all attempts of one request (until a stream's first byte).
    connect_timeout: float = 10.0
    request_timeout: float = 600.0
    # In-memory response cache bounds (with redis_url set, the cache lives in Redis instead,
    # bounded by Redis's own maxmemory).
    cache_max_bytes: int = 64 * 1024 * 1024
    cache_max_entries: int = 10_000
    # Store a record per request (metrics and traces are emitted either way).
    log_requests: bool = True
    # Request-record writer: flush when this many are queued or this often.
    log_batch_size: int = 500
    log_flush_interval: float = 1.0
    log_queue_size: int = 100_000
    # MCP gateway: executables a stdio MCP server may be spawned with (comma-separated names or
    # absolute paths); empty: no stdio servers. Cached tool lists are refreshed this often (seconds).
    mcp_stdio_commands: str = ""
    mcp_tools_refresh: float = 60.0
    # The gateway's public base URL (e.g. https://gw.example.com): OAuth resource identifiers
    # (RFC 8707) and metadata URLs are built from it. Unset: metadata uses the request's Host,
    # and tokens are accepted only for the audiences an issuer config names.
    public_url: str | None = None
    # OAuth issuers' signing keys (JWKS): refreshed this often (seconds); a token with an unknown
    # key id refetches at most once per oauth_jwks_refetch seconds per issuer.
    oauth_jwks_ttl: float = 300.0
    oauth_jwks_refetch: float = 30.0
    # Overflow past the queue goes to JSONL files here (default: beside a SQLite database,
    # else .lockgate/spill), at most this many bytes per process, replayed when the store is back.
    log_spill_dir: str | None = None
    log_spill_max_bytes: int = 256 * 1024 * 1024
    # Request records older than this are deleted in batches in the background (0: keep forever).
    log_retention_days: float = 30.0
    # Analytics rollups: hour rows for this long, minute rows for these hours.
    rollup_retention_days: float = 400.0
    rollup_minute_hours: float = 48.0
    # Request/response bodies, for workspaces that log them, are cut to this many bytes each.
    log_body_max_bytes: int = 16 * 1024
    # Prometheus: at most this many label sets per metric per process; the rest count as "other".
    metrics_max_series: int = 2000
    # When set, /metrics answers only ``Authorization: Bearer <token>`` (Prometheus'
    # ``authorization.credentials``); unset, it is open, for scrapers on a private network.
    metrics_token: str | None = None

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None, **overrides: object) -> Settings:
        env = os.environ if environ is None else environ
        values: dict[str, object] = {}
        for f in fields(cls):
            raw = env.get("LOCKGATE_" + f.name.upper())
            if raw is None or raw == "":
                continue
            kind = f.type if isinstance(f.type, str) else f.type.__name__
            if kind.startswith("bool"):
                values[f.name] = raw.strip().lower() in ("1", "true", "yes", "on")
            elif kind.startswith("int"):
                values[f.name] = int(raw)
            elif kind.startswith("float"):
                values[f.name] = float(raw)
            else:
                values[f.name] = raw
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)  # type: ignore[arg-type]
