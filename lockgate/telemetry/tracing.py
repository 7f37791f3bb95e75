"""OpenTelemetry tracing: a span per request and per upstream attempt, GenAI attributes.

Off unless an OTLP endpoint is configured by the standard variables
(``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` or ``OTEL_EXPORTER_OTLP_ENDPOINT``;
headers, timeouts, compression and ``OTEL_SERVICE_NAME`` are read by the SDK
as usual; ``OTEL_SDK_DISABLED=true`` or ``OTEL_TRACES_EXPORTER=none`` turn
it off). When off, the SDK is never imported and no span object exists: the
pipeline and attempts check ``record.trace is None`` and move on (the client's
own ``traceparent``, if any, is still forwarded upstream unchanged).

When on, the request span continues the client's W3C ``traceparent`` (or
starts a trace), each attempt is a child CLIENT span, and the attempt's
context is injected into the upstream request, so the provider's spans join
the same trace. The provider is private to Lockgate (not the global one), so
nothing else in the process is affected. Spans are exported in batches by the
SDK's background thread.

A routed MCP call (tools/call, prompts/get, resources/read) is one SERVER span
after the OpenTelemetry MCP semantic conventions: named ``{method} {target}``,
with ``mcp.method.name``, ``gen_ai.tool.name``, ``jsonrpc.request.id``,
``mcp.session.id`` ..., a child of the caller's W3C context (``params._meta``
first, then the ``traceparent`` header). It is made from the finished record
(its start and end times are the call's), so the MCP path carries no span
object while it runs; the record then holds the span's trace and span ids.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from lockgate.gateway.routing import Target
    from lockgate.providers.base import UpstreamRequest
    from lockgate.telemetry.records import RequestRecord, ToolCallRecord

log = logging.getLogger("lockgate.telemetry")

_OPERATIONS = {
    "chat": "chat",
    "messages": "chat",
    "completions": "text_completion",
    "embeddings": "embeddings",
}


def enabled(environ: Mapping[str, str] | None = None) -> bool:
    env = os.environ if environ is None else environ
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    if env.get("OTEL_TRACES_EXPORTER", "").strip().lower() == "none":
        return False
    return bool(env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or env.get("OTEL_EXPORTER_OTLP_ENDPOINT"))


def from_env(environ: Mapping[str, str] | None = None) -> Tracing | None:
    return Tracing() if enabled(environ) else None


def parse_traceparent(value: str | None) -> str | None:
    """The trace id of a well-formed W3C traceparent (version 00), else None."""
    if not value:
        return None
    parts = value.strip().split("-")
    if len(parts) != 4 or len(parts[1]) != 32 or len(parts[2]) != 16 or parts[1] == "0" * 32:
        return None
    try:
        int(parts[1], 16), int(parts[2], 16), int(parts[3], 16)
    except ValueError:
        return None
    return parts[1].lower()


def _exporter() -> Any:
    env = os.environ
    protocol = env.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL") or env.get("OTEL_EXPORTER_OTLP_PROTOCOL") or ""
    if protocol.strip().lower() == "grpc":
        try:
            from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as Grpc
        except ImportError:
            log.warning("OTLP over gRPC needs opentelemetry-exporter-otlp-proto-grpc; using http/protobuf")
        else:
            return Grpc()
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    return OTLPSpanExporter()


class Tracing:
    def __init__(self, exporter: Any = None) -> None:
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
        from opentelemetry.trace import SpanKind, Status, StatusCode, set_span_in_context
        from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

        # Resource.create reads OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES.
        resource = Resource.create({"service.name": os.environ.get("OTEL_SERVICE_NAME") or "lockgate"})
        self.provider = TracerProvider(resource=resource)
        self.provider.add_span_processor(BatchSpanProcessor(exporter or _exporter()))
        self.tracer = self.provider.get_tracer("lockgate")
        self.propagator = TraceContextTextMapPropagator()
        self._kind, self._status, self._code = SpanKind, Status, StatusCode
        self._in_context = set_span_in_context

    def start_request(self, endpoint: str, headers: Mapping[str, str], record: RequestRecord) -> RequestTrace:
        parent = self.propagator.extract(headers) if "traceparent" in headers else None
        operation = _OPERATIONS.get(endpoint, endpoint)
        span = self.tracer.start_span(
            operation,
            context=parent,
            kind=self._kind.SERVER,
            attributes={"gen_ai.operation.name": operation, "lockgate.request_id": record.id},
        )
        ctx = span.get_span_context()
        record.trace_id, record.span_id = f"{ctx.trace_id:032x}", f"{ctx.span_id:016x}"
        return RequestTrace(self, span, operation)

    def tool_call(self, record: ToolCallRecord) -> None:
        """The MCP call's span, from its finished record; stamps the record's trace and span ids."""
        origin = record.origin
        traceparent = origin.traceparent if origin is not None else None
        parent = self.propagator.extract({"traceparent": traceparent}) if traceparent else None
        start = int(record.created_at * 1e9)
        span = self.tracer.start_span(
            _mcp_span_name(record),
            context=parent,
            kind=self._kind.SERVER,
            attributes=_mcp_attributes(record),
            start_time=start,
        )
        if record.status != "ok":
            error = "tool_error" if record.status == "tool_error" else str(record.error_code or record.status)
            span.set_attribute("error.type", error)
            if record.error_code is not None:
                span.set_attribute("rpc.response.status_code", str(record.error_code))
            span.set_status(self._status(self._code.ERROR, record.error_message or record.status))
        ctx = span.get_span_context()
        record.trace_id, record.span_id = f"{ctx.trace_id:032x}", f"{ctx.span_id:016x}"
        span.end(end_time=start + int((record.latency_ms or 0.0) * 1e6))

    def shutdown(self) -> None:
        self.provider.shutdown()  # flushes what the batch processor holds


# The attribute that names a routed call's target, per method (MCP semantic conventions).
_MCP_TARGETS = {"tools/call": "gen_ai.tool.name", "prompts/get": "gen_ai.prompt.name"}


def _mcp_span_name(record: ToolCallRecord) -> str:
    # Only a resolved target: span names stay low-cardinality (a URI, or a name that reached no
    # server, is an attribute at most).
    if record.method in _MCP_TARGETS and record.server is not None and record.tool:
        return f"{record.method} {record.tool}"
    return record.method


def _mcp_attributes(record: ToolCallRecord) -> dict[str, Any]:
    origin = record.origin
    attributes: dict[str, Any] = {
        "mcp.method.name": record.method,
        "network.protocol.name": "http",
        "network.transport": "tcp",
        "lockgate.tool_call_id": record.id,
        "lockgate.mcp.status": record.status,
    }
    if record.method == "tools/call":
        attributes["gen_ai.operation.name"] = "execute_tool"
    if record.tool:
        attributes[_MCP_TARGETS.get(record.method, "mcp.resource.uri")] = record.tool
    if origin is not None and origin.request_id is not None:
        attributes["jsonrpc.request.id"] = origin.request_id
    if origin is not None and origin.session_token:
        # A digest: the session id itself is a sealed credential-bearing token.
        digest = hashlib.sha256(origin.session_token.encode()).hexdigest()[:32]
        attributes["mcp.session.id"] = digest
    for name, value in (
        ("mcp.protocol.version", origin.protocol_version if origin is not None else None),
        ("lockgate.mcp.server", record.server),
        ("lockgate.mcp.server_version", record.server_version),
        ("lockgate.workspace_id", record.workspace_id),
        ("lockgate.key_id", record.key_id),
        ("lockgate.mcp.result_bytes", record.result_bytes),
    ):
        if value is not None:
            attributes[name] = value
    return attributes


class RequestTrace:
    """One request's span; attempts hang under it. Lives in ``record.trace`` while the request runs."""

    __slots__ = ("context", "operation", "span", "tracing")

    def __init__(self, tracing: Tracing, span: Any, operation: str) -> None:
        self.tracing = tracing
        self.span = span
        self.operation = operation
        self.context = tracing._in_context(span)

    def start_attempt(self, target: Target, request: UpstreamRequest) -> Any:
        t = self.tracing
        span = t.tracer.start_span(
            f"{self.operation} {target.model}",
            context=self.context,
            kind=t._kind.CLIENT,
            attributes={
                "gen_ai.operation.name": self.operation,
                "gen_ai.system": target.credential.provider,
                "gen_ai.request.model": target.model,
                "lockgate.integration": target.credential.name,
                "http.request.method": request.method,
                "url.full": request.url,
            },
        )
        t.propagator.inject(request.headers, context=t._in_context(span))
        return span

    def end_attempt(self, span: Any, status: int | None, error: BaseException | None) -> None:
        if status is not None:
            span.set_attribute("http.response.status_code", status)
        if error is not None or (status is not None and status >= 400):
            kind = type(error).__name__ if error is not None else str(status)
            span.set_attribute("error.type", kind)
            span.set_status(self.tracing._status(self.tracing._code.ERROR, str(error or status)))
        span.end()

    def end(self, record: RequestRecord) -> None:
        span = self.span
        attributes: dict[str, Any] = {
            "http.response.status_code": record.status,
            "lockgate.stream": record.stream,
        }
        for name, value in (
            ("gen_ai.request.model", record.requested_model),
            ("gen_ai.response.model", record.model),
            ("lockgate.integration", record.provider),
            ("gen_ai.usage.input_tokens", record.prompt_tokens),
            ("gen_ai.usage.output_tokens", record.completion_tokens),
            ("lockgate.cost_usd", record.cost_usd),
            ("lockgate.workspace_id", record.workspace_id),
            ("lockgate.key_id", record.key_id),
            ("lockgate.route", record.route),
            ("lockgate.cache_status", record.cache_status),
            ("lockgate.limits", record.limits),
            ("lockgate.ttft_ms", record.ttft_ms),
        ):
            if value is not None:
                attributes[name] = value
        span.set_attributes(attributes)
        if record.status >= 400 or record.status == 0:
            span.set_attribute("error.type", record.error_type or str(record.status))
            span.set_status(self.tracing._status(self.tracing._code.ERROR, record.error_message or ""))
        span.end()
