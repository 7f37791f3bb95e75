"""Prometheus metrics for ``GET /metrics``.

Per request (stage 10) the pipeline's record is counted: requests by
workspace/model/provider/status, latency and TTFT histograms, tokens and cost
counters. Label children are bound once per label set and cached, so the hot
path is a dict hit and a few increments.

Label cardinality rule: label values come only from Lockgate's own vocabulary
(workspace ids, integration names, resolved model names, HTTP status codes),
never from free client input (metadata, the requested model string, error
text); and each process binds at most ``max_series`` label sets, after which
new combinations are counted under ``other`` (the total stays exact).

MCP: routed ``tools/call`` requests are counted per server, tool and record
status, with a latency histogram per server and tool. Servers are registered
ones; a tool name is used only when the server's cached tool list has it, else
it is counted as ``unknown`` (a client may send any name), under the same
``max_series`` cap.

Multi-worker: ``lockgate serve --workers N`` points ``PROMETHEUS_MULTIPROC_DIR``
at a fresh directory before the workers start; prometheus_client then keeps
each worker's values in memory-mapped files there, and whichever worker
answers a scrape sums them all (gauges: ``livesum``/``livemax`` over live workers).
"""

from __future__ import annotations

import os
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

from lockgate.telemetry.records import RequestRecord, ToolCallRecord

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
TTFT_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30)
OVERHEAD_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.1)
OTHER = "other"
UNKNOWN = "unknown"  # an MCP server or tool name that is not registered (client input)
CONTENT_TYPE = CONTENT_TYPE_LATEST


def multiprocess_dir() -> str | None:
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None


class Metrics:
    def __init__(self, *, max_series: int = 500) -> None:
        self.max_series = max_series
        self.registry = CollectorRegistry()
        r = self.registry
        series = ("workspace", "model", "provider")
        self.requests = Counter("lockgate_requests", "Requests answered.", (*series, "status"), registry=r)
        self.latency = Histogram(
            "lockgate_request_duration_seconds", "Total request latency.", series,
            buckets=LATENCY_BUCKETS, registry=r,
        )  # fmt: skip
        self.ttft = Histogram(
            "lockgate_time_to_first_token_seconds", "Streams: time to the first byte of the answer.",
            series, buckets=TTFT_BUCKETS, registry=r,
        )  # fmt: skip
        self.tokens = Counter("lockgate_tokens", "Tokens by type.", (*series, "type"), registry=r)
        self.cost = Counter("lockgate_cost_usd", "Spend in USD.", series, registry=r)
        self.overhead = Histogram(
            "lockgate_gateway_overhead_seconds", "Time Lockgate added: latency minus upstream time.",
            buckets=OVERHEAD_BUCKETS, registry=r,
        )  # fmt: skip
        self.queue_depth = Gauge(
            "lockgate_record_queue_depth", "Request records waiting to be written.",
            multiprocess_mode="livesum", registry=r,
        )  # fmt: skip
        self.records_written = Counter("lockgate_records_written", "Records stored.", registry=r)
        self.records_spilled = Counter(
            "lockgate_records_spilled", "Records that overflowed the queue into the spill file.", registry=r
        )
        self.records_dropped = Counter(
            "lockgate_records_dropped", "Records lost: queue and spill file both full.", registry=r
        )
        self.store_failures = Counter(
            "lockgate_record_store_failures", "Failed record writes (retried).", registry=r
        )
        self.config_version = Gauge(
            "lockgate_config_version", "Config snapshot version in use.",
            multiprocess_mode="livemax", registry=r,
        )  # fmt: skip
        self.open_circuits = Gauge(
            "lockgate_open_circuits", "Targets whose circuit breaker is open or half-open.",
            multiprocess_mode="livesum", registry=r,
        )  # fmt: skip
        self.tool_calls = Counter(
            "lockgate_mcp_tool_calls", "MCP tools/call requests by record status.",
            ("server", "tool", "status"), registry=r,
        )  # fmt: skip
        self.tool_latency = Histogram(
            "lockgate_mcp_tool_call_duration_seconds", "MCP tools/call latency through Lockgate.",
            ("server", "tool"), buckets=LATENCY_BUCKETS, registry=r,
        )  # fmt: skip
        self._children: dict[tuple[str, str, str, int], tuple[Any, ...]] = {}
        self._tool_children: dict[tuple[str, str, str], tuple[Any, Any]] = {}
        self._synced: dict[str, int] = {}

    def _bind(self, key: tuple[str, str, str, int]) -> tuple[Any, ...]:
        workspace, model, provider, status = key
        if len(self._children) >= self.max_series:
            capped = (OTHER, OTHER, OTHER, status)
            if capped in self._children:
                return self._children[capped]
            workspace = model = provider = OTHER
        labels = (workspace, model, provider)
        children = (
            self.requests.labels(*labels, str(status)),
            self.latency.labels(*labels),
            self.ttft.labels(*labels),
            self.cost.labels(*labels),
            self.tokens.labels(*labels, "prompt"),
            self.tokens.labels(*labels, "completion"),
            self.tokens.labels(*labels, "cached"),
            self.tokens.labels(*labels, "reasoning"),
        )
        self._children[key] = children
        return children

    def observe(self, record: RequestRecord) -> None:
        key = (record.workspace_id or "", record.model or "", record.provider or "", record.status)
        children = self._children.get(key) or self._bind(key)
        requests, latency, ttft, cost, prompt, completion, cached, reasoning = children
        requests.inc()
        if record.latency_ms is not None:
            latency.observe(record.latency_ms / 1000.0)
        if record.ttft_ms is not None:
            ttft.observe(record.ttft_ms / 1000.0)
        if record.cost_usd:
            cost.inc(record.cost_usd)
        if record.prompt_tokens:
            prompt.inc(record.prompt_tokens)
        if record.completion_tokens:
            completion.inc(record.completion_tokens)
        if record.cached_tokens:
            cached.inc(record.cached_tokens)
        if record.reasoning_tokens:
            reasoning.inc(record.reasoning_tokens)
        if record.overhead_ms is not None:
            self.overhead.observe(record.overhead_ms / 1000.0)

    def observe_tool_call(self, record: ToolCallRecord, *, known_tool: bool) -> None:
        """Count a routed ``tools/call``; ``known_tool``: its server lists the tool (labels stay bounded)."""
        if record.method != "tools/call":
            return
        server = record.server or UNKNOWN  # None: the name matched no registered server
        tool = record.tool if known_tool and record.tool else UNKNOWN
        key = (server, tool, record.status)
        children = self._tool_children.get(key)
        if children is None:
            if len(self._tool_children) >= self.max_series:
                key = (OTHER, OTHER, record.status)
            children = self._tool_children.get(key)
            if children is None:
                children = (self.tool_calls.labels(*key), self.tool_latency.labels(*key[:2]))
                self._tool_children[key] = children
        calls, latency = children
        calls.inc()
        if record.latency_ms is not None:
            latency.observe(record.latency_ms / 1000.0)

    def sync(
        self,
        *,
        queued: int,
        written: int,
        spilled: int,
        dropped: int,
        failures: int,
        version: int,
        open_circuits: int = 0,
    ) -> None:
        """Copy the writer's, snapshot's and breakers' numbers in (counters advance by what changed)."""
        self.queue_depth.set(queued)
        self.config_version.set(version)
        self.open_circuits.set(open_circuits)
        for name, counter, value in (
            ("written", self.records_written, written),
            ("spilled", self.records_spilled, spilled),
            ("dropped", self.records_dropped, dropped),
            ("failures", self.store_failures, failures),
        ):
            delta = value - self._synced.get(name, 0)
            if delta > 0:
                counter.inc(delta)
                self._synced[name] = value

    def render(self) -> bytes:
        path = multiprocess_dir()
        if path is None:
            return generate_latest(self.registry)
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry, path=path)
        return generate_latest(registry)

    def close(self) -> None:
        """In multiprocess mode, drop this worker's live gauges from the sums."""
        if multiprocess_dir() is not None:
            multiprocess.mark_process_dead(os.getpid())
