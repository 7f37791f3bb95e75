"""What is measured: the scenarios, and the exact requests each one sends.

To turn more of the gateway on in the "full pipeline" scenario (rate limits, budgets, guardrails ...), edit
PIPELINE below and nothing else: its env goes to the gateway process, its config is merged into the
gateway's YAML, its headers go on every request. Every scenario with `pipeline=True` picks it up.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

MASTER_KEY = "sk-lockgate-bench-master-key"  # LiteLLM wants master keys to start with "sk-"
UPSTREAM_API_KEY = "bench-key"
MCP_UPSTREAM_TOKEN = "bench-mcp-upstream-token"  # the mock MCP server wants it; Lockgate injects it
MCP_SERVER = "orders"  # the mock MCP server's name in Lockgate: /mcp/orders
PROMPT = [{"role": "user", "content": "Say hello in one short sentence."}]


@dataclass(frozen=True)
class Pipeline:
    env: dict[str, str] = field(default_factory=dict)
    config: dict = field(default_factory=dict)  # deep-merged into the Lockgate config file
    headers: dict[str, str] = field(default_factory=dict)


# The full pipeline: key auth, a USD budget reserved and settled per request, a request and token rate
# limit, and request logging (always on: every Lockgate run gets LOCKGATE_DATABASE_URL). The master key
# belongs to the default workspace, so the budget and limit scope it; they are set high enough that
# the benchmark measures their cost, never a refusal. `--env LOCKGATE_REDIS_URL=...` puts the counters
# on Redis.
PIPELINE = Pipeline(
    env={"LOCKGATE_MASTER_KEY": MASTER_KEY},
    config={
        "budgets": [
            {"name": "bench-budget", "scope": "workspace:default", "amount_usd": 1_000_000, "period": "month"}
        ],
        "rate_limits": [
            {
                "name": "bench-limit",
                "scope": "workspace:default",
                "requests_per_minute": 100_000_000,
                "tokens_per_minute": 100_000_000_000,
            }
        ],
    },
    headers={"Authorization": f"Bearer {MASTER_KEY}"},
)
# Bare pass-through: no key at all, which Lockgate accepts only in demo mode (`serve --demo`).
BARE = Pipeline(env={"LOCKGATE_DEMO": "1"})


@dataclass(frozen=True)
class Scenario:
    key: str
    title: str
    # "openai": POST /v1/chat/completions; "anthropic": POST /v1/messages; "mcp": a 2026-07-28 stateless
    # tools/call POST to the mock MCP server (direct) or /mcp/orders (through the gateway).
    ingress: str = "openai"
    pipeline: bool = False
    slow_upstream: bool = False  # the 1 s delayed upstream instead of the zero-delay one
    latency_c1: bool = True
    throughput: tuple[int, ...] = (32, 128)
    stream: bool = False  # also run the streaming comparison
    overload: int = 0  # connections for the delayed-upstream run

    @property
    def setup(self) -> Pipeline:
        return PIPELINE if self.pipeline else BARE

    @property
    def kind(self) -> str:
        """The request kind the latency and throughput runs send (see ``build``)."""
        return {"anthropic": "messages", "mcp": "mcp"}.get(self.ingress, "chat")


SCENARIOS = [
    Scenario("a", "bare pass-through (demo mode)", stream=True),
    Scenario("b", "full pipeline (auth, budget, limits, logging)", pipeline=True, stream=True),
    Scenario("c", "Anthropic ingress -> OpenAI", ingress="anthropic"),
    Scenario(
        "d",
        "1 s upstream, 1000 in flight",
        slow_upstream=True,
        latency_c1=False,
        throughput=(),
        overload=1000,
    ),
    # The mock MCP server is an SDK server on the load core: it bounds calls/s; the gateway's own CPU per
    # call (and the calls per core-second that makes) is what this scenario is for. Records are on.
    Scenario(
        "m", "MCP tools/call pass-through (key auth, records)", ingress="mcp", pipeline=True, throughput=(16,)
    ),
]


MCP_CALL = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "tools/call",
    "params": {
        "name": "lookup_order",
        "arguments": {"order_id": "A-1001"},
        "_meta": {
            "io.modelcontextprotocol/protocolVersion": "2026-07-28",
            "io.modelcontextprotocol/clientCapabilities": {},
        },
    },
}


@dataclass(frozen=True)
class Request:
    url: str
    headers: dict[str, str]
    body: bytes

    @property
    def host_port(self) -> tuple[str, int]:
        hostport = self.url.split("://", 1)[1].split("/", 1)[0]
        host, port = hostport.rsplit(":", 1)
        return host, int(port)

    @property
    def path(self) -> str:
        return "/" + self.url.split("://", 1)[1].split("/", 1)[1]


@dataclass(frozen=True)
class Route:
    """Where a target wants a kind of request: URL, the `model` to put in the body, extra headers."""

    url: str
    model: str
    headers: dict[str, str] = field(default_factory=dict)


def build(route: Route, scenario: Scenario, kind: str, auth: bool = True) -> Request:
    """kind: "chat" (non-stream), "stream" (OpenAI SSE with include_usage), "messages" (Anthropic) or
    "mcp" (tools/call)."""
    headers = {"Content-Type": "application/json"}
    if kind == "mcp":
        body = MCP_CALL
        headers |= {
            "Accept": "application/json, text/event-stream",
            "Mcp-Protocol-Version": "2026-07-28",
            "Mcp-Method": "tools/call",
            "Mcp-Name": "lookup_order",
        }
    elif kind == "messages":
        body = {"model": route.model, "max_tokens": 64, "messages": PROMPT}
        headers["anthropic-version"] = "2023-06-01"
    else:
        body = {"model": route.model, "messages": PROMPT, "max_tokens": 64}
        if kind == "stream":
            body |= {"stream": True, "stream_options": {"include_usage": True}}
    if auth:
        for name, value in scenario.setup.headers.items():
            if kind == "messages" and name == "Authorization":  # what the Anthropic SDK sends
                headers["x-api-key"] = value.removeprefix("Bearer ")
            else:
                headers[name] = value
    headers.update(route.headers)
    return Request(route.url, headers, json.dumps(body, separators=(",", ":")).encode())


def deep_merge(base: dict, extra: dict) -> dict:
    out = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        elif isinstance(value, list) and isinstance(out.get(key), list):
            out[key] = out[key] + value
        else:
            out[key] = value
    return out
