"""The request record: one per request, streamed or not, built as the request runs.

A record becomes one slim ``request_logs`` row (``to_row``). What is filtered or
aggregated is a typed column; what is only read back with the record (the
attempt list, guardrail verdicts, metadata, optional bodies) is a JSON column,
so other stages add detail without a migration each. Static data (prices,
provider URLs, the workspace's org) is never copied into a row: it lives in the
config and the catalog. A new persisted field needs a column of the same name
(``to_row`` sends every field not listed in ``_TRANSIENT``, and the insert
refuses unknown names, so a missing column fails loudly in the tests).
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

from lockgate.telemetry.bodies import render


@dataclass(slots=True)
class AttemptRecord:
    target: str
    status: int | None
    latency_ms: float
    error: str | None = None
    # The wait before this attempt (a retry's backoff, or the provider's Retry-After).
    backoff_ms: float | None = None


@dataclass(slots=True)
class RequestRecord:
    id: str
    created_at: float
    endpoint: str
    stream: bool = False
    key_id: str | None = None
    workspace_id: str | None = None
    requested_model: str | None = None
    # The integration (named provider credential) that answered, and the model it ran.
    provider: str | None = None
    model: str | None = None
    status: int = 0
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    cached_tokens: int | None = None
    reasoning_tokens: int | None = None
    cost_usd: float | None = None
    # "reported" by the provider, "estimated" by local counting, None when no call was made.
    usage_source: str | None = None
    latency_ms: float | None = None
    ttft_ms: float | None = None
    # Time Lockgate itself added: total latency minus the time spent waiting on upstreams
    # (their attempts, and the backoff before a retry).
    overhead_ms: float | None = None
    attempt_log: list[AttemptRecord] = field(default_factory=list)
    # Routing: the plan that served it (alias:x, config:x, inline:<hash>, model:x), extra
    # attempts on the same target, moves to another target, and the response cache's verdict
    # (hit, miss, refresh, no-store, bypass; None when the route does not cache).
    route: str | None = None
    retries: int = 0
    fallbacks: int = 0
    cache_status: str | None = None
    # The stream broke mid-answer and was continued on another target.
    stream_failover: bool = False
    # W3C trace id (from the client's traceparent, or the gateway's own span) or the
    # client's x-lockgate-trace-id; span_id is the gateway's request span when tracing is on.
    trace_id: str | None = None
    span_id: str | None = None
    # {"request": ..., "response": ...}: only for workspaces that log bodies, capped on the request
    # path as (bytes, truncated) and rendered redacted by ``to_row`` in the writer.
    bodies: dict[str, Any] | None = None
    error_type: str | None = None
    error_message: str | None = None
    metadata: dict[str, str] | None = None
    # One entry per guardrail run: stage, name, verdict, redactions, per-check latency.
    guardrails: list[dict[str, Any]] | None = None
    # How limits and budgets held for it: exact, approximate (per worker), local (Redis down);
    # None when none applied.
    limits: str | None = None
    # Not persisted: the client's traceparent header (forwarded upstream when tracing is off),
    # the time spent in upstream calls (for overhead_ms), and the request's span while tracing.
    traceparent: str | None = None
    upstream_ms: float = 0.0
    trace: Any = None

    def set_usage(self, usage: dict[str, Any], source: str) -> None:
        def as_int(value: Any) -> int | None:
            return value if isinstance(value, int) and not isinstance(value, bool) else None

        self.prompt_tokens = as_int(usage.get("prompt_tokens"))
        self.completion_tokens = as_int(usage.get("completion_tokens"))
        details = usage.get("prompt_tokens_details")
        self.cached_tokens = as_int(details.get("cached_tokens")) if isinstance(details, dict) else None
        details = usage.get("completion_tokens_details")
        self.reasoning_tokens = as_int(details.get("reasoning_tokens")) if isinstance(details, dict) else None
        self.usage_source = source

    def attempts_ms(self) -> float:
        """Time spent on upstreams so far: every attempt, and the backoff waits before retries."""
        return sum(a.latency_ms + (a.backoff_ms or 0.0) for a in self.attempt_log)

    def finish(self, latency_ms: float) -> None:
        """Stamp the total latency and the overhead once the response has gone out."""
        self.latency_ms = latency_ms
        upstream = self.upstream_ms or self.attempts_ms()
        self.overhead_ms = max(0.0, latency_ms - upstream)

    def to_row(self) -> dict[str, Any]:
        # Field by field rather than dataclasses.asdict, whose recursive deep copy was the
        # largest single cost of a request under load (records are written on the same loop).
        row = {name: getattr(self, name) for name in _PERSISTED}
        row["attempt_log"] = [
            {name: getattr(attempt, name) for name in _ATTEMPT_FIELDS} for attempt in self.attempt_log
        ]
        row["attempts"] = len(self.attempt_log)
        if self.bodies is not None:
            row["bodies"] = {k: render(v) if isinstance(v, tuple) else v for k, v in self.bodies.items()}
        return row


_TRANSIENT = frozenset({"traceparent", "upstream_ms", "trace"})
_PERSISTED = tuple(f.name for f in fields(RequestRecord) if f.name not in _TRANSIENT)
_ATTEMPT_FIELDS = tuple(f.name for f in fields(AttemptRecord))


@dataclass(slots=True)
class McpOrigin:
    """Where a routed MCP call came from, for its span (telemetry/tracing.py); never persisted."""

    traceparent: str | None = None  # params._meta's, else the HTTP header's
    request_id: str | None = None  # the JSON-RPC id
    session_token: str | None = None  # Mcp-Session-Id (handshake era); the span has a digest of it
    protocol_version: str | None = None


@dataclass(slots=True)
class ToolCallRecord:
    """One MCP request that reached (or was refused before) a server: the tool-call audit record."""

    id: str
    created_at: float
    method: str
    server: str | None = None
    server_version: str | None = None
    tool: str | None = None
    key_id: str | None = None
    workspace_id: str | None = None
    session: str | None = None  # modern | legacy
    arguments: dict[str, Any] | None = None  # after PII redaction
    status: str = "ok"  # ok | tool_error | denied | error | timeout | killed
    error_code: int | None = None
    error_message: str | None = None
    result_bytes: int | None = None
    latency_ms: float | None = None
    verdicts: list[dict[str, Any]] | None = None
    trace_id: str | None = None
    span_id: str | None = None
    cost_usd: float | None = None  # the tool's price (mcp_servers.tool_costs), charged to budgets
    origin: McpOrigin | None = None  # not persisted

    def to_row(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in _TOOL_CALL_FIELDS}


_TOOL_CALL_FIELDS = tuple(f.name for f in fields(ToolCallRecord) if f.name != "origin")
# A tool call's row in the writer's batches and spill files carries this key, so the store
# (store/logs.py) sends it to ``tool_calls``; request rows never have it.
TOOL_CALL_MARK = "_tool_call"
