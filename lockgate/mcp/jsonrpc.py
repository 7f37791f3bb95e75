"""JSON-RPC 2.0 framing for the MCP gateway: parse what the hot path needs, and the errors.

Bodies are decoded once with orjson and kept as dicts; the SDK's pydantic types are
not built per request (they cost more than the proxying itself). Error codes come
from the SDK's ``mcp_types`` so they stay in step with the spec.

    McpError                  a JSON-RPC error to the caller (code, message, data)
    ├── parse / invalid request / method not found / invalid params (spec codes)
    └── gateway codes (-32030 ... -32039): forbidden, disabled, killed, upstream failures
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson
from mcp_types import (
    HEADER_MISMATCH,
    INTERNAL_ERROR,
    INVALID_PARAMS,
    INVALID_REQUEST,
    METHOD_NOT_FOUND,
    PARSE_ERROR,
    REQUEST_TIMEOUT,
    UNSUPPORTED_PROTOCOL_VERSION,
)

# Gateway-defined codes (the -32000..-32099 server range, clear of the spec's own).
FORBIDDEN = -32030
DISABLED = -32031
KILLED = -32032
UPSTREAM_ERROR = -32033
UNKNOWN_SERVER = -32034
PIN_CHANGED = -32035
APPROVAL_REJECTED = -32036  # a require_approval policy: an admin said no
APPROVAL_TIMEOUT = -32037  # ... nobody decided in time
APPROVAL_PENDING_LIMIT = -32038  # ... too many calls already wait on this worker
RATE_LIMITED = -32039  # a per-tool rate limit
BUDGET_EXCEEDED = -32040  # the tool's price does not fit the caller's budget
GUARDRAIL_DENIED = -32041  # a guardrail on the arguments or the result refused the call
GUARDRAIL_ERROR = -32042  # a fail-closed guardrail could not give a verdict

__all__ = [
    "APPROVAL_PENDING_LIMIT",
    "APPROVAL_REJECTED",
    "APPROVAL_TIMEOUT",
    "BUDGET_EXCEEDED",
    "DISABLED",
    "FORBIDDEN",
    "GUARDRAIL_DENIED",
    "GUARDRAIL_ERROR",
    "HEADER_MISMATCH",
    "INTERNAL_ERROR",
    "INVALID_PARAMS",
    "INVALID_REQUEST",
    "KILLED",
    "METHOD_NOT_FOUND",
    "PARSE_ERROR",
    "PIN_CHANGED",
    "RATE_LIMITED",
    "REQUEST_TIMEOUT",
    "UNKNOWN_SERVER",
    "UNSUPPORTED_PROTOCOL_VERSION",
    "UPSTREAM_ERROR",
    "McpError",
    "Message",
    "error_body",
    "parse_message",
    "result_body",
]


_DENIED = frozenset(
    (
        FORBIDDEN,
        PIN_CHANGED,
        DISABLED,
        APPROVAL_REJECTED,
        APPROVAL_TIMEOUT,
        APPROVAL_PENDING_LIMIT,
        RATE_LIMITED,
        BUDGET_EXCEEDED,
        GUARDRAIL_DENIED,
    )
)


class McpError(Exception):
    """A JSON-RPC error for the caller; ``http_status`` applies when it answers the whole POST."""

    def __init__(
        self, code: int, message: str, data: dict[str, Any] | None = None, *, http_status: int = 200
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.data = data
        self.http_status = http_status

    @property
    def status_name(self) -> str:
        """The tool-call record's status for this error."""
        if self.code in _DENIED:
            return "denied"
        return {KILLED: "killed"}.get(self.code, "timeout" if self.code == REQUEST_TIMEOUT else "error")


@dataclass(slots=True)
class Message:
    """One inbound JSON-RPC message: a request (has ``id``) or a notification."""

    method: str
    params: dict[str, Any]
    id: Any = None
    is_request: bool = True


def parse_message(body: bytes) -> Message:
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise McpError(PARSE_ERROR, f"Parse error: {exc}", http_status=400) from None
    if isinstance(data, list):
        # Batches were removed from the protocol in 2025-06-18; one message per POST.
        raise McpError(
            INVALID_REQUEST, "JSON-RPC batches are not supported; send one message.", http_status=400
        )
    if not isinstance(data, dict) or data.get("jsonrpc") != "2.0":
        raise McpError(INVALID_REQUEST, "Invalid request: expected a JSON-RPC 2.0 object.", http_status=400)
    method = data.get("method")
    if not isinstance(method, str) or not method:
        if "result" in data or "error" in data:  # a client's answer to a server request: accepted, unused
            return Message(method="", params={}, id=data.get("id"), is_request=False)
        raise McpError(
            INVALID_REQUEST, "Invalid request: 'method' must be a non-empty string.", http_status=400
        )
    params = data.get("params", {})
    if params is None:
        params = {}
    if not isinstance(params, dict):
        raise McpError(INVALID_PARAMS, "Invalid params: 'params' must be an object.", http_status=400)
    if "id" not in data:
        return Message(method=method, params=params, is_request=False)
    request_id = data["id"]
    if not isinstance(request_id, (str, int)) or isinstance(request_id, bool):
        raise McpError(
            INVALID_REQUEST, "Invalid request: 'id' must be a string or an integer.", http_status=400
        )
    return Message(method=method, params=params, id=request_id)


def result_body(request_id: Any, result: Any) -> bytes:
    return orjson.dumps({"jsonrpc": "2.0", "id": request_id, "result": result})


def error_body(request_id: Any, error: McpError) -> bytes:
    payload: dict[str, Any] = {"code": error.code, "message": error.message}
    if error.data is not None:
        payload["data"] = error.data
    return orjson.dumps({"jsonrpc": "2.0", "id": request_id, "error": payload})
