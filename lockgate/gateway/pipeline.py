"""The LLM request, top to bottom (DESIGN §2).

``Pipeline.handle`` is the whole story in order; each stage is a method or a
function from its own module. Later stages (admission: limits and budgets;
guardrails; cache) slot in where the comments name them.
"""

from __future__ import annotations

import time
import uuid
from typing import TYPE_CHECKING, Any, Protocol

import orjson

from lockgate.catalog import Catalog, cost
from lockgate.errors import BadRequest, InvalidJSON, LockgateError, RateLimited, UpstreamError
from lockgate.gateway import validation
from lockgate.gateway.attempts import UpstreamClient, call_route
from lockgate.gateway.credentials import CredentialTokens
from lockgate.gateway.exchange import ANTHROPIC, OPENAI, Endpoint, Exchange, text_of_response
from lockgate.gateway.routing import Target
from lockgate.gateway.streaming import (
    AnthropicPassthrough,
    OpenAIPassthrough,
    StreamMode,
    TranslatedStream,
    relay,
)
from lockgate.governance.admission import Governor, Pass, route_targets
from lockgate.governance.auth import Authenticator
from lockgate.governance.policy import check_model_allowed
from lockgate.guardrails import GuardSession
from lockgate.providers import anthropic
from lockgate.providers.base import Body, normalize_usage, stream_decoder
from lockgate.server.http import JSON_HEADERS, SSE_HEADERS, Request, error_payload, read_body, send_bytes
from lockgate.server.types import Headers, Receive, Scope, Send
from lockgate.telemetry.records import RequestRecord
from lockgate.telemetry.writer import RecordWriter

if TYPE_CHECKING:
    from lockgate.admin.snapshot import Snapshot

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


class Pipeline:
    def __init__(
        self,
        *,
        auth: Authenticator,
        snapshots: SnapshotSource,
        client: UpstreamClient,
        writer: RecordWriter,
        catalog: Catalog,
        max_body_bytes: int,
        tokens: CredentialTokens | None = None,
        governor: Governor,
    ) -> None:
        self.auth = auth
        self.snapshots = snapshots
        self.client = client
        self.writer = writer
        self.catalog = catalog
        self.max_body_bytes = max_body_bytes
        self.tokens = tokens
        self.governor = governor

    async def handle(self, endpoint: Endpoint, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        request = Request.from_scope(scope)
        record = RequestRecord(id=_request_id(), created_at=time.time(), endpoint=endpoint.name)
        headers: Headers = [(b"x-lockgate-request-id", record.id.encode())]
        guards: GuardSession | None = None
        admitted: Pass | None = None
        try:
            snapshot = self.snapshots.current  # one config version for the whole request
            principal = self.auth.authenticate(request.headers, snapshot)  # 1. authenticate
            record.key_id, record.workspace_id = principal.key_id, principal.workspace_id
            request.body = await read_body(scope, receive, self.max_body_bytes)  # 2. read and validate
            exchange = Exchange(endpoint, self._parse_body(endpoint, request.body), self.tokens)
            record.requested_model = exchange.body.data["model"]
            record.stream = exchange.stream
            record.metadata = _parse_metadata(request.headers.get("x-lockgate-metadata"))
            check_model_allowed(principal, record.requested_model)
            route = snapshot.resolve(principal.workspace_id, record.requested_model)  # 3. resolve the route
            admitted = await self.governor.admit(  # 4. admit: usage policy, rate limits, budget reservation
                snapshot.governance,
                principal,
                endpoint.name,
                exchange.body,
                request.body,
                route_targets(route),
                record,
            )
            headers += admitted.headers
            attached = snapshot.guardrails.for_request(principal.workspace_id, principal.key_id)
            if attached:  # 5. input guardrails: deny raises, redact rewrites the body
                guards = GuardSession(
                    attached, model=record.requested_model, metadata=record.metadata, http=self.client.session
                )
                if await guards.check_input(endpoint.name, exchange.body.data):
                    exchange.body.raw = None  # the client's bytes no longer match the body
            # 6. cache lookup — routing issue.
            target, upstream_request, upstream = await call_route(  # 7. call upstream
                self.client, route, exchange.build, stream=exchange.stream, record=record
            )
            record.provider, record.model = target.credential.name, target.model
            headers += _target_headers(target, record, upstream_request.dropped_params)
            if exchange.stream:  # 8. relay, output guardrails on the way
                await self._relay_stream(
                    exchange, target, upstream.response, send, headers, record, started, guards
                )
            else:
                await self._respond(exchange, target, upstream.body or b"", send, headers, record, guards)
        except LockgateError as exc:
            record.status, record.error_type, record.error_message = exc.status, exc.type, exc.message
            if exc.status == 429 and isinstance(exc, UpstreamError) and exc.retry_after:
                headers.append((b"retry-after", exc.retry_after.encode()))
            if guards is not None and (summary := guards.header()) is not None:
                headers.append(summary)
            if isinstance(exc, RateLimited):
                headers += exc.headers
            await send_bytes(
                send,
                exc.status,
                orjson.dumps(error_payload(exc, endpoint.dialect)),
                [*JSON_HEADERS, *headers],
            )
        finally:
            if guards is not None:
                record.guardrails = guards.summary()
            record.latency_ms = (time.perf_counter() - started) * 1000.0
            self.writer.put(record)  # 10. record: queued, written in batches off the request path
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
        target: Target,
        raw: bytes,
        send: Send,
        headers: Headers,
        record: RequestRecord,
        guards: GuardSession | None,
    ) -> None:
        body, usage = exchange.translate_response(target, raw)
        if usage is None:
            usage = await exchange.estimate_usage(*_generated(exchange, target, raw))
            source = "estimated"
        else:
            source = "reported"
        self._settle(record, target, usage, source)  # 9. settle
        if guards is not None:  # 8. output guardrails (the answer is paid for even if withheld)
            body = await guards.check_output(exchange.endpoint.name, body)
            if (summary := guards.header()) is not None:
                headers.append(summary)
        record.status = 200
        if record.cost_usd is not None:
            headers.append((b"x-lockgate-cost-usd", f"{record.cost_usd:.8f}".encode()))
        await send_bytes(send, 200, body, [*JSON_HEADERS, *headers])

    async def _relay_stream(
        self,
        exchange: Exchange,
        target: Target,
        upstream: Any,
        send: Send,
        headers: Headers,
        record: RequestRecord,
        started: float,
        guards: GuardSession | None,
    ) -> None:
        mode: StreamMode
        decoder = None
        if exchange.is_native(target):
            mode = (
                OpenAIPassthrough(exchange.wants_usage)
                if target.provider.dialect == OPENAI
                else AnthropicPassthrough()
            )
        else:
            translator = target.provider.stream_translator(exchange.endpoint.canonical, target.model)
            decoder = stream_decoder(target.provider, exchange.endpoint.canonical)
            mode = TranslatedStream(
                translator, exchange.endpoint.dialect, exchange.wants_usage, exchange.body.data["model"]
            )
        guard = None
        if guards is not None:  # input verdicts only: output ones are not known when headers go
            if (summary := guards.header()) is not None:
                headers.append(summary)
            guard = guards.stream_guard(exchange.endpoint.dialect, exchange.endpoint.name)
        result = await relay(
            mode,
            upstream,
            send,
            [*SSE_HEADERS, *headers],
            client_dialect=exchange.endpoint.dialect,
            started=started,
            upstream_name=target.credential.name,
            decoder=decoder,
            guard=guard,
        )
        record.ttft_ms = result.ttft_ms
        if result.usage is not None and result.error is None:
            self._settle(record, target, result.usage, "reported")
        else:
            # No usage (provider gave none, or the stream broke): count what was generated.
            self._settle(
                record, target, await exchange.estimate_usage(result.text, result.tool_calls), "estimated"
            )
        if result.error is not None:
            err = result.error
            record.status, record.error_type, record.error_message = err.status, err.type, err.message
        else:
            record.status = 200

    def _settle(self, record: RequestRecord, target: Target, usage: dict[str, Any], source: str) -> None:
        """Exact usage -> cost; the counters are settled from the record once the request ends."""
        usage = normalize_usage(target.provider, usage)
        record.set_usage(usage, source)
        info = self.catalog.lookup(target.model, target.credential.provider)
        record.cost_usd = cost(info, usage)


def _request_id() -> str:
    return "req_" + uuid.uuid4().hex


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


def _generated(exchange: Exchange, target: Target, raw: bytes) -> tuple[str, list[dict[str, Any]]]:
    """Text and tool calls of a successful non-stream answer, for local counting."""
    try:
        payload = orjson.loads(raw)
        if exchange.is_native(target) and target.provider.dialect == ANTHROPIC:
            payload = anthropic.messages_response_to_chat(payload)
        elif not exchange.is_native(target):
            payload = target.provider.parse_response(exchange.endpoint.canonical, raw)
        return text_of_response(payload)
    except (ValueError, TypeError, KeyError, AttributeError):
        return "", []
