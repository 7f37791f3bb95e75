"""The LLM request, top to bottom (DESIGN §2).

``Pipeline.handle`` is the whole story in order; each stage is a method or a
function from its own module. Later stages (admission: limits and budgets;
guardrails) slot in where the comments name them.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING, Any, Protocol

import orjson

from lockgate.catalog import Catalog, cost
from lockgate.errors import BadRequest, InvalidJSON, LockgateError, RateLimited, UpstreamError
from lockgate.gateway import validation
from lockgate.gateway.attempts import Call, Success
from lockgate.gateway.cache import CachedAnswer, CacheLookup, ResponseCache
from lockgate.gateway.conditions import MatchContext
from lockgate.gateway.credentials import CredentialTokens
from lockgate.gateway.exchange import ANTHROPIC, OPENAI, Endpoint, Exchange, text_of_response
from lockgate.gateway.plan import Leaf, Plan
from lockgate.gateway.routing import CONFIG_HEADER
from lockgate.gateway.strategies import Engine
from lockgate.gateway.stream_failover import Segment, respond_stream
from lockgate.gateway.targets import Route, Target
from lockgate.governance.admission import Governor, Pass, route_targets
from lockgate.governance.auth import Authenticator, Principal
from lockgate.governance.policy import check_model_allowed, check_target_allowed
from lockgate.guardrails import Attached, GuardSession
from lockgate.guardrails.attachments import GuardrailRefError
from lockgate.providers import anthropic
from lockgate.providers.base import Body, UpstreamRequest, normalize_usage
from lockgate.server.http import JSON_HEADERS, SSE_HEADERS, Request, error_payload, read_body, send_bytes
from lockgate.server.types import Headers, Receive, Scope, Send
from lockgate.telemetry import bodies
from lockgate.telemetry.records import RequestRecord
from lockgate.telemetry.tracing import parse_traceparent

if TYPE_CHECKING:
    from lockgate.admin.snapshot import Snapshot
    from lockgate.telemetry.tracing import Tracing

CHAT = Endpoint("chat", OPENAI, "chat")
COMPLETIONS = Endpoint("completions", OPENAI, "completions")
EMBEDDINGS = Endpoint("embeddings", OPENAI, "embeddings")
MESSAGES = Endpoint("messages", ANTHROPIC, "chat")

_VALIDATORS = {
    "chat": validation.validate_chat,
    "completions": validation.validate_completions,
    "embeddings": validation.validate_embeddings,
    "messages": validation.validate_messages,
}
_METADATA_MAX_BYTES = 2048


class SnapshotSource(Protocol):
    @property
    def current(self) -> Snapshot: ...


class RecordSink(Protocol):
    def put(self, record: RequestRecord) -> None: ...


class Pipeline:
    def __init__(
        self,
        *,
        auth: Authenticator,
        snapshots: SnapshotSource,
        engine: Engine,
        cache: ResponseCache,
        writer: RecordSink,
        catalog: Catalog,
        max_body_bytes: int,
        deadline: float,
        tokens: CredentialTokens | None = None,
        governor: Governor,
        tracing: Tracing | None = None,
        log_body_max_bytes: int = 16 * 1024,
    ) -> None:
        self.auth = auth
        self.snapshots = snapshots
        self.engine = engine
        self.cache = cache
        self.writer = writer
        self.catalog = catalog
        self.max_body_bytes = max_body_bytes
        self.deadline = deadline  # seconds for all attempts of a request (until a stream starts)
        self.tokens = tokens
        self.governor = governor
        self.tracing = tracing  # None: tracing off, no span is ever made
        self.log_body_max_bytes = log_body_max_bytes

    async def handle(self, endpoint: Endpoint, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        request = Request.from_scope(scope)
        record = RequestRecord(id=_request_id(), created_at=time.time(), endpoint=endpoint.name)
        headers: Headers = [(b"x-lockgate-request-id", record.id.encode())]
        guards: GuardSession | None = None
        admitted: Pass | None = None
        _trace_ids(record, request.headers)
        if self.tracing is not None:
            record.trace = self.tracing.start_request(endpoint.name, request.headers, record)
        try:
            snapshot = self.snapshots.current  # one config version for the whole request
            principal = self.auth.authenticate(request.headers, snapshot)  # 1. authenticate
            record.key_id, record.workspace_id = principal.key_id, principal.workspace_id
            request.body = await read_body(scope, receive, self.max_body_bytes)  # 2. read and validate
            if principal.workspace_id in snapshot.body_logging:
                record.bodies = {"request": bodies.capture(request.body, self.log_body_max_bytes)}
            exchange = Exchange(endpoint, self._parse_body(endpoint, request.body), self.tokens)
            record.requested_model = exchange.body.data["model"]
            record.stream = exchange.stream
            record.metadata = _parse_metadata(request.headers.get("x-lockgate-metadata"))
            check_model_allowed(principal, record.requested_model)
            config = request.headers.get(CONFIG_HEADER)
            plan = snapshot.plan(principal.workspace_id, record.requested_model, config)  # 3. route
            record.route = plan.name
            admitted = await self.governor.admit(  # 4. admit: usage policy, rate limits, budget reservation
                snapshot.governance,
                principal,
                endpoint.name,
                exchange.body,
                request.body,
                route_targets(Route(plan.name, plan.targets_for(record.requested_model))),
                record,
            )
            headers += admitted.headers
            attached = _attached_guardrails(snapshot, principal.workspace_id, principal.key_id, plan)
            if attached:  # 5. input guardrails: deny raises, redact rewrites the body
                guards = GuardSession(
                    attached,
                    model=record.requested_model,
                    metadata=record.metadata,
                    http=self.engine.client.session,
                )
                if await guards.check_input(endpoint.name, exchange.body.data):
                    exchange.body.raw = None  # the client's bytes no longer match the body
            lookup = self.cache.lookup(  # 6. cache lookup
                plan,
                exchange,
                scope=principal.workspace_id,
                directive=request.headers.get("x-lockgate-cache"),
                metadata=record.metadata,
                path=request.path,
                # A cached answer would skip output guardrails: requests that have them bypass it.
                bypass=guards is not None and guards.watches_output,
            )
            if lookup is not None:
                record.cache_status = lookup.status
                hit = await self.cache.get(lookup)
                if hit is not None:
                    await self._replay(hit, send, headers, record)
                    return
                headers.append((b"x-lockgate-cache", b"miss"))
            check = snapshot.check_target if config is None else _config_check(snapshot, principal)
            builder = partial(_builder, client_headers=request.headers, check=check)
            call = Call(  # 7. call upstream through the plan's strategy
                build=builder(exchange),
                accept=None if exchange.stream else exchange.translate_response,
                stream=exchange.stream,
                client_model=record.requested_model,
                match=MatchContext(record.metadata or {}, exchange.body.data, request.path),
                record=record,
                deadline=time.monotonic() + self.deadline,
            )
            success = await self.engine.run(plan, call)
            if exchange.stream:  # 8. relay, output guardrails on the way
                await self._stream(
                    exchange, plan, call, success, send, headers, builder, started, lookup, guards
                )
            else:
                await self._respond(exchange, success, send, headers, record, lookup, guards)
        except LockgateError as exc:
            record.status, record.error_type, record.error_message = exc.status, exc.type, exc.message
            if exc.status == 429 and isinstance(exc, UpstreamError) and exc.retry_after:
                headers.append((b"retry-after", exc.retry_after.encode()))
            if guards is not None and (summary := guards.header()) is not None:
                headers.append(summary)
            if isinstance(exc, RateLimited):
                headers += exc.headers
            headers.append((b"x-lockgate-attempts", str(len(record.attempt_log)).encode()))
            await send_bytes(
                send,
                exc.status,
                orjson.dumps(error_payload(exc, endpoint.dialect)),
                [*JSON_HEADERS, *headers],
            )
        finally:
            if guards is not None:
                record.guardrails = guards.summary()
            record.finish((time.perf_counter() - started) * 1000.0)
            # 10. record: metrics and span now, the row queued and written in batches off the path
            self.writer.put(record)
            if admitted is not None:
                await admitted.settle(record)  # 9. the counters: the real cost replaces the reservation

    def _parse_body(self, endpoint: Endpoint, raw: bytes) -> Body:
        if not raw:
            raise InvalidJSON("The request body is empty; expected a JSON object.")
        try:
            data = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise InvalidJSON(f"The request body is not valid JSON: {exc}") from exc
        return Body(_VALIDATORS[endpoint.name](data), raw)

    async def _respond(
        self,
        exchange: Exchange,
        success: Success,
        send: Send,
        headers: Headers,
        record: RequestRecord,
        lookup: CacheLookup | None,
        guards: GuardSession | None,
    ) -> None:
        target = success.target
        body, usage = success.answer
        source = "reported"
        if usage is None:
            usage, source = (
                await exchange.estimate_usage(*_generated(exchange, target, success.upstream.body)),
                "estimated",
            )
        self._settle(record, [Segment(target, usage, source)])  # 9. settle
        if guards is not None:  # 8. output guardrails (the answer is paid for even if withheld)
            body = await guards.check_output(exchange.endpoint.name, body)
            if (summary := guards.header()) is not None:
                headers.append(summary)
        record.status = 200
        headers += _target_headers(target, record, success.request.dropped_params)
        if record.cost_usd is not None:
            headers.append((b"x-lockgate-cost-usd", f"{record.cost_usd:.8f}".encode()))
        if record.bodies is not None:
            record.bodies["response"] = bodies.capture(body, self.log_body_max_bytes)
        await send_bytes(send, 200, body, [*JSON_HEADERS, *headers])
        if lookup is not None:
            answer = CachedAnswer("json", target.credential.name, target.model, usage, [body])
            await self.cache.put(lookup, success.leaf.policy.cache, answer)

    async def _stream(
        self,
        exchange: Exchange,
        plan: Plan,
        call: Call,
        success: Success,
        send: Send,
        headers: Headers,
        builder: Callable[[Exchange], Build],
        started: float,
        lookup: CacheLookup | None,
        guards: GuardSession | None,
    ) -> None:
        record = call.record
        if guards is not None and (summary := guards.header()) is not None:
            headers.append(summary)  # input verdicts only: output ones are not known when headers go

        def headers_for(attempt: Success) -> Headers:
            own = _target_headers(attempt.target, record, attempt.request.dropped_params)
            return [*SSE_HEADERS, *headers, *own]

        # Upstream time of a stream: the attempts up to its headers, then the whole relay
        # (failovers included: their attempts happen inside it).
        upstream_before = record.attempts_ms()
        relay_started = time.perf_counter()
        outcome = await respond_stream(
            self.engine,
            plan,
            call,
            exchange,
            success,
            send,
            headers_for,
            started=started,
            deadline_s=self.deadline,
            builder=builder,
            tap=lookup is not None and lookup.write,
            new_guard=(
                (lambda: guards.stream_guard(exchange.endpoint.dialect, exchange.endpoint.name))
                if guards is not None
                else None
            ),
        )
        final = outcome.success.target
        record.ttft_ms = outcome.ttft_ms
        record.upstream_ms = upstream_before + _ms_since(relay_started)
        if record.bodies is not None:
            record.bodies["response"] = bodies.capture(outcome.text, self.log_body_max_bytes)
        record.stream_failover = outcome.failover
        self._settle(record, outcome.segments)
        if outcome.error is not None:
            err = outcome.error
            record.status, record.error_type, record.error_message = err.status, err.type, err.message
            return
        record.status = 200
        if lookup is not None and outcome.pieces is not None:
            usage = outcome.segments[-1].usage if outcome.segments else None
            answer = CachedAnswer("sse", final.credential.name, final.model, usage, outcome.pieces)
            await self.cache.put(lookup, outcome.success.leaf.policy.cache, answer)

    async def _replay(self, hit: CachedAnswer, send: Send, headers: Headers, record: RequestRecord) -> None:
        """Answer from the cache: the stored body, or the stored SSE pieces one by one."""
        record.cache_status, record.status = "hit", 200
        record.provider, record.model = hit.provider, hit.model
        if hit.usage is not None:
            record.set_usage(hit.usage, "cache")
        record.cost_usd = 0.0  # nothing was spent upstream
        headers += [
            (b"x-lockgate-cache", b"hit"),
            (b"x-lockgate-provider", hit.provider.encode()),
            (b"x-lockgate-model", hit.model.encode()),
            (b"x-lockgate-attempts", b"0"),
        ]
        if record.bodies is not None:
            record.bodies["response"] = bodies.capture(b"".join(hit.pieces), self.log_body_max_bytes)
        if hit.kind == "json":
            headers.append((b"x-lockgate-cost-usd", b"0.00000000"))
            await send_bytes(send, 200, hit.pieces[0], [*JSON_HEADERS, *headers])
            return
        await send({"type": "http.response.start", "status": 200, "headers": [*SSE_HEADERS, *headers]})
        for index, piece in enumerate(hit.pieces):
            more = index + 1 < len(hit.pieces)
            await send({"type": "http.response.body", "body": piece, "more_body": more})

    def _settle(self, record: RequestRecord, segments: list[Segment]) -> None:
        """Exact usage -> cost; the counters are settled from the record once the request ends."""
        if not segments:
            return
        segments = [
            Segment(s.target, normalize_usage(s.target.provider, s.usage), s.source) for s in segments
        ]
        if len(segments) == 1:
            usage, source = segments[0].usage, segments[0].source
        else:  # a failed-over stream: every segment was generated and is paid for
            usage = {
                name: sum(int(s.usage.get(name) or 0) for s in segments)
                for name in ("prompt_tokens", "completion_tokens", "total_tokens")
            }
            source = "reported" if all(s.source == "reported" for s in segments) else "estimated"
        record.set_usage(usage, source)
        costs = [
            cost(self.catalog.lookup(s.target.model, s.target.credential.provider), s.usage) for s in segments
        ]
        record.cost_usd = None if any(c is None for c in costs) else sum(c for c in costs if c is not None)
        last = segments[-1].target
        record.provider, record.model = last.credential.name, last.model


def _attached_guardrails(snapshot: Snapshot, workspace_id: str, key_id: str, plan: Plan) -> Attached:
    """The org's, workspace's and key's guardrails, then the route config's own."""
    try:
        return snapshot.guardrails.for_request(workspace_id, key_id, plan.config)
    except GuardrailRefError as exc:
        raise BadRequest(
            f"Invalid {CONFIG_HEADER}: {exc}", param=CONFIG_HEADER, code="invalid_config"
        ) from exc


def _request_id() -> str:
    return "req_" + uuid.uuid4().hex


def _ms_since(started: float) -> float:
    return (time.perf_counter() - started) * 1000.0


def _trace_ids(record: RequestRecord, headers: dict[str, str]) -> None:
    """The client's W3C trace (kept to forward upstream), else its x-lockgate-trace-id."""
    traceparent = headers.get("traceparent")
    trace_id = parse_traceparent(traceparent)
    if trace_id is not None:
        record.traceparent, record.trace_id = traceparent, trace_id
    else:
        custom = headers.get("x-lockgate-trace-id")
        record.trace_id = custom[:128] if custom else None


def _target_headers(target: Target, record: RequestRecord, dropped: list[str]) -> Headers:
    headers = [
        (b"x-lockgate-provider", target.credential.name.encode()),
        (b"x-lockgate-model", target.model.encode()),
        (b"x-lockgate-attempts", str(len(record.attempt_log)).encode()),
    ]
    if dropped:
        headers.append((b"x-lockgate-dropped-params", ",".join(dropped).encode()))
    return headers


def _parse_metadata(raw: str | None) -> dict[str, str] | None:
    if raw is None:
        return None
    if len(raw.encode()) > _METADATA_MAX_BYTES:
        raise BadRequest(
            f"x-lockgate-metadata is larger than {_METADATA_MAX_BYTES} bytes.", param="x-lockgate-metadata"
        )
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise BadRequest("x-lockgate-metadata must be a JSON object.", param="x-lockgate-metadata") from exc
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise BadRequest(
            "x-lockgate-metadata must be a JSON object of string values.", param="x-lockgate-metadata"
        )
    return value


Build = Callable[[Target, Leaf], UpstreamRequest]


def _config_check(snapshot: Snapshot, principal: Principal) -> Callable[[Target], None]:
    """Targets of a client-chosen config obey the integration's and the key's model lists."""

    def check(target: Target) -> None:
        snapshot.check_target(target)
        check_target_allowed(principal, target.model, target.label)

    return check


def _builder(exchange: Exchange, *, client_headers: dict[str, str], check: Callable[[Target], None]) -> Build:
    """How this request is built for a target: the exchange, the leaf's overrides and headers."""

    def build(target: Target, leaf: Leaf) -> UpstreamRequest:
        check(target)  # the integration may serve only some models (403 otherwise)
        request = exchange.build(target, leaf.overrides)
        for name in leaf.policy.forward_headers:
            value = client_headers.get(name)
            if value is not None:
                request.headers[name] = value
        return request

    return build


def _generated(exchange: Exchange, target: Target, raw: bytes | None) -> tuple[str, list[dict[str, Any]]]:
    """Text and tool calls of a successful non-stream answer, for local counting."""
    try:
        payload = orjson.loads(raw or b"")
        if exchange.is_native(target) and target.provider.dialect == ANTHROPIC:
            payload = anthropic.messages_response_to_chat(payload)
        elif not exchange.is_native(target):
            payload = target.provider.parse_response(exchange.endpoint.canonical, raw)
        return text_of_response(payload)
    except (ValueError, TypeError, KeyError, AttributeError):
        return "", []
