"""The request record: one per request, streamed or not, built as the request runs."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any


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
    error_type: str | None = None
    error_message: str | None = None
    metadata: dict[str, str] | None = None
    # One entry per guardrail run: stage, name, verdict, redactions, per-check latency.
    guardrails: list[dict[str, Any]] | None = None
    # How limits and budgets held for it: exact, approximate (per worker), local (Redis down);
    # None when none applied.
    limits: str | None = None

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

    def to_row(self) -> dict[str, Any]:
        # Field by field rather than dataclasses.asdict, whose recursive deep copy was the
        # largest single cost of a request under load (records are written on the same loop).
        row = {name: getattr(self, name) for name in _RECORD_FIELDS}
        row["attempt_log"] = [
            {name: getattr(attempt, name) for name in _ATTEMPT_FIELDS} for attempt in self.attempt_log
        ]
        row["attempts"] = len(self.attempt_log)
        return row


_RECORD_FIELDS = tuple(f.name for f in fields(RequestRecord))
_ATTEMPT_FIELDS = tuple(f.name for f in fields(AttemptRecord))


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

    def to_row(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in _TOOL_CALL_FIELDS}


_TOOL_CALL_FIELDS = tuple(f.name for f in fields(ToolCallRecord))
