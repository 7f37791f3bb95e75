"""A real HTTP mock LLM provider on loopback, speaking every dialect Lockgate translates.

Tests and demos of the gateway use it as the upstream:

    async with MockProvider() as mock:          # in async tests
        mock.add_fault(status=429, retry_after=1)
        ... point the gateway at mock.url ...
        assert mock.requests[0]["json"]["model"] == "gpt-4o-mini"

    with MockProviderThread() as mock: ...      # same, for sync tests (server in its own thread)

    lockgate mock-provider --port 9090          # CLI: run(); steer it over HTTP with /__mock/*

Endpoints: ``POST /v1/chat/completions``, ``POST /v1/completions``, ``POST /v1/embeddings``,
``GET /v1/models[/{model}]`` (OpenAI dialect, ``mock_provider_openai.py``), ``POST /v1/messages``
(Anthropic dialect, ``mock_provider_anthropic.py``), Gemini and Vertex AI (``mock_provider_gemini.py``),
Bedrock Converse with its binary event stream (``mock_provider_bedrock.py``), Cohere v2
(``mock_provider_cohere.py``), and Azure OpenAI / AI Foundry paths plus the Entra ID and Google
OAuth token endpoints (``mock_provider_azure.py``). Replies and token counts are deterministic;
the rules live in ``mock_provider_common.py``.

Control API (never recorded, never faulted): ``POST /__mock/faults`` (one fault object or a
list), ``GET|DELETE /__mock/faults``, ``GET|DELETE /__mock/requests``, ``GET /__mock/health``.

Faults are matched in the order they were added; a request takes the first one that matches
(``match_model`` = body model, ``match_path`` = URL path) and uses up one of its ``times``
(default 1, -1 = forever). Behaviours, combinable: ``delay_ms`` (sleep first), then one of
``reset`` (close the connection, no response), ``malformed`` (200 + invalid JSON body) or
``status`` (+ ``message``, ``retry_after``) in the dialect's error shape; otherwise a normal
reply shaped by ``cut_after_chunks`` (streams: N content events, then the connection drops)
and ``no_usage`` (no usage anywhere).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Self

import orjson
from aiohttp import web

from lockgate.testing import mock_provider_anthropic as anthropic
from lockgate.testing import mock_provider_azure as azure
from lockgate.testing import mock_provider_bedrock as bedrock
from lockgate.testing import mock_provider_cohere as cohere
from lockgate.testing import mock_provider_gemini as gemini
from lockgate.testing import mock_provider_openai as openai
from lockgate.testing.mock_provider_common import (
    BadRequest,
    Call,
    JSONDict,
    count_tokens,
    dialect_of,
    error_for,
    json_response,
    openai_error,
    reply_text,
    sample_from_schema,
)
from lockgate.testing.mock_provider_openai import chat_prompt_tokens, embedding_vector

__all__ = [
    "MockProvider",
    "MockProviderThread",
    "MockState",
    "chat_prompt_tokens",
    "count_tokens",
    "create_app",
    "embedding_vector",
    "reply_text",
    "run",
    "sample_from_schema",
    "validate_fault",
]

Handler = Callable[[Call], Awaitable[web.StreamResponse]]
AuthCheck = Callable[[web.Request], web.Response | None]
RouteHandler = Callable[[web.Request], Awaitable[web.StreamResponse]]

_BEHAVIOURS = ("status", "delay_ms", "reset", "malformed", "cut_after_chunks", "no_usage")
_FIELD_TYPES: dict[str, tuple[type, ...]] = {
    "match_model": (str,),
    "match_path": (str,),
    "times": (int,),
    "status": (int,),
    "message": (str,),
    "retry_after": (int, float),
    "delay_ms": (int, float),
    "reset": (bool,),
    "malformed": (bool,),
    "cut_after_chunks": (int,),
    "no_usage": (bool,),
}
_MALFORMED_BODY = b'{"id": "mock-malformed", "choices": [{"index": 0, "message": '
_SHUTDOWN_TIMEOUT = 0.25  # seconds given to in-flight requests when a test server stops
_MAX_RECORDED = 10_000  # keep the newest requests only, so long benchmark runs stay flat in memory


def validate_fault(fault: Mapping[str, Any]) -> JSONDict:
    """Check a fault's fields and types; return a copy with ``times`` filled in."""
    if not isinstance(fault, Mapping):
        raise ValueError("a fault must be a JSON object")
    unknown = set(fault) - set(_FIELD_TYPES)
    if unknown:
        raise ValueError(f"unknown fault fields: {sorted(unknown)}")
    for name, value in fault.items():
        types = _FIELD_TYPES[name]
        if not isinstance(value, types) or (isinstance(value, bool) and bool not in types):
            raise ValueError(f"fault field {name!r} must be {' or '.join(t.__name__ for t in types)}")
    if not any(name in fault for name in _BEHAVIOURS):
        raise ValueError(f"a fault needs one of {', '.join(_BEHAVIOURS)}")
    out = {"times": 1, **fault}
    if out["times"] != -1 and out["times"] < 1:
        raise ValueError("times must be >= 1, or -1 for forever")
    if "status" in out and not 400 <= out["status"] <= 599:
        raise ValueError("status must be an error status (400-599)")
    if out.get("cut_after_chunks", 0) < 0 or out.get("delay_ms", 0) < 0 or out.get("retry_after", 0) < 0:
        raise ValueError("cut_after_chunks, delay_ms and retry_after must be >= 0")
    return out


class MockState:
    """Faults and recorded requests; thread-safe, so a test thread can steer a server thread."""

    def __init__(self, max_recorded: int = _MAX_RECORDED) -> None:
        self._lock = threading.Lock()
        self._faults: list[JSONDict] = []
        self._requests: deque[JSONDict] = deque(maxlen=max_recorded)
        self._tokens: list[tuple[str, str]] = []  # (token, audience) issued by the OAuth endpoints

    def add_faults(self, faults: Iterable[Mapping[str, Any]]) -> None:
        checked = [validate_fault(f) for f in faults]  # all or nothing
        with self._lock:
            self._faults.extend(checked)

    def take_fault(self, model: Any, path: str) -> JSONDict | None:
        with self._lock:
            for index, fault in enumerate(self._faults):
                if "match_model" in fault and fault["match_model"] != model:
                    continue
                if "match_path" in fault and fault["match_path"] != path:
                    continue
                if fault["times"] > 0:
                    fault["times"] -= 1
                    if fault["times"] == 0:
                        del self._faults[index]
                return dict(fault)
        return None

    def record(self, entry: JSONDict) -> None:
        with self._lock:
            self._requests.append(entry)

    def issue_token(self, prefix: str, audience: str) -> str:
        with self._lock:
            token = f"{prefix}-{len(self._tokens) + 1}"
            self._tokens.append((token, audience))
            return token

    @property
    def tokens(self) -> list[tuple[str, str]]:
        """OAuth access tokens issued so far, oldest first, with their tenant or audience."""
        with self._lock:
            return list(self._tokens)

    @property
    def faults(self) -> list[JSONDict]:
        with self._lock:
            return [dict(f) for f in self._faults]

    @property
    def requests(self) -> list[JSONDict]:
        with self._lock:
            return list(self._requests)

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    def clear_requests(self) -> None:
        with self._lock:
            self._requests.clear()

    def clear(self) -> None:
        self.clear_faults()
        self.clear_requests()
        with self._lock:
            self._tokens.clear()


@dataclass(frozen=True)
class _Config:
    latency_ms: float
    chunk_delay_ms: float


STATE_KEY = web.AppKey("mock_state", MockState)
CONFIG_KEY = web.AppKey("mock_config", _Config)


# --- the provider endpoints ----------------------------------------------------------------


def _parse_body(raw: bytes) -> tuple[Any, bool]:
    """(body, ok): an empty body is None and fine; a body that is not JSON is not."""
    if not raw:
        return None, True
    try:
        return orjson.loads(raw), True
    except orjson.JSONDecodeError:
        return None, False


async def _fault_response(request: web.Request, fault: JSONDict) -> web.StreamResponse | None:
    if fault.get("delay_ms"):
        await asyncio.sleep(fault["delay_ms"] / 1000)
    if fault.get("reset"):
        # abort() drops the socket without flushing: the client sees a disconnect, not a status.
        if request.transport is not None:
            request.transport.abort()
        return web.Response()
    if fault.get("malformed"):
        return web.Response(body=_MALFORMED_BODY, content_type="application/json")
    if "status" in fault:
        headers: dict[str, str] = {}
        if "retry_after" in fault:
            value = fault["retry_after"]
            headers["Retry-After"] = str(int(value)) if float(value).is_integer() else str(value)
        message = fault.get("message") or f"Mock fault: status {fault['status']}"
        return error_for(request.path, fault["status"], message, headers)
    return None


def _endpoint(handler: Handler, auth: AuthCheck, *, needs_body: bool) -> RouteHandler:
    """Wrap a dialect handler with recording, latency, faults, JSON and auth checks."""

    async def serve(request: web.Request) -> web.StreamResponse:
        state, config = request.app[STATE_KEY], request.app[CONFIG_KEY]
        body, ok = _parse_body(await request.read())
        state.record(
            {
                "method": request.method,
                "path": request.path,
                "query": dict(request.query),
                "headers": {k.lower(): v for k, v in request.headers.items()},
                "json": body,
            }
        )
        if config.latency_ms:
            await asyncio.sleep(config.latency_ms / 1000)
        model = body.get("model") if isinstance(body, dict) else None
        # Gemini, Bedrock and Azure name the model (or deployment) in the path.
        model = model or request.match_info.get("model")
        fault = state.take_fault(model, request.path) or {}
        if fault:
            response = await _fault_response(request, fault)
            if response is not None:
                return response
        if not ok or (needs_body and not isinstance(body, dict)):
            message = "We could not parse the JSON body of your request. Expected a JSON object."
            return error_for(request.path, 400, message)
        denied = auth(request)
        if denied is not None:
            return denied
        request_id_header = {"anthropic": "request-id", "bedrock": "x-amzn-requestid"}.get(
            dialect_of(request.path), "x-request-id"
        )
        call = Call(
            request=request,
            body=body if isinstance(body, dict) else {},
            chunk_delay_ms=config.chunk_delay_ms,
            no_usage=bool(fault.get("no_usage")),
            cut_after_chunks=fault.get("cut_after_chunks"),
            extra_headers={request_id_header: f"req_mock_{id(request):x}"},
        )
        try:
            return await handler(call)
        except BadRequest as exc:
            if dialect_of(request.path) != "openai":
                return error_for(request.path, 400, exc.message)
            return openai_error(400, exc.message, param=exc.param)

    return serve


async def _unknown(call: Call) -> web.StreamResponse:
    request = call.request
    return error_for(request.path, 404, f"Invalid URL ({request.method} {request.path})")


def _no_auth(request: web.Request) -> web.Response | None:
    return None


# --- the control API -----------------------------------------------------------------------


async def _post_faults(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    body, ok = _parse_body(await request.read())
    faults = body if isinstance(body, list) else [body]
    try:
        if not ok or body is None:
            raise ValueError("body must be a fault object or a list of them")
        state.add_faults(faults)
    except ValueError as exc:
        return openai_error(400, str(exc))
    return json_response({"faults": state.faults})


async def _get_faults(request: web.Request) -> web.Response:
    return json_response({"faults": request.app[STATE_KEY].faults})


async def _delete_faults(request: web.Request) -> web.Response:
    request.app[STATE_KEY].clear_faults()
    return json_response({"faults": []})


async def _get_requests(request: web.Request) -> web.Response:
    return json_response({"requests": request.app[STATE_KEY].requests})


async def _delete_requests(request: web.Request) -> web.Response:
    request.app[STATE_KEY].clear_requests()
    return json_response({"requests": []})


async def _health(request: web.Request) -> web.Response:
    return json_response({"status": "ok"})


def create_app(*, latency_ms: float = 0, chunk_delay_ms: float = 0) -> web.Application:
    """The mock provider as an aiohttp application (state in ``app[STATE_KEY]``)."""
    app = web.Application()
    app[STATE_KEY] = MockState()
    app[CONFIG_KEY] = _Config(latency_ms=latency_ms, chunk_delay_ms=chunk_delay_ms)
    router = app.router
    router.add_post("/__mock/faults", _post_faults)
    router.add_get("/__mock/faults", _get_faults)
    router.add_delete("/__mock/faults", _delete_faults)
    router.add_get("/__mock/requests", _get_requests)
    router.add_delete("/__mock/requests", _delete_requests)
    router.add_get("/__mock/health", _health)
    router.add_post(
        "/v1/chat/completions", _endpoint(openai.chat_completions, openai.check_auth, needs_body=True)
    )
    router.add_post("/v1/completions", _endpoint(openai.completions, openai.check_auth, needs_body=True))
    router.add_post("/v1/embeddings", _endpoint(openai.embeddings, openai.check_auth, needs_body=True))
    router.add_get("/v1/models", _endpoint(openai.list_models, openai.check_any_auth, needs_body=False))
    router.add_get("/v1/models/{model}", _endpoint(openai.get_model, openai.check_any_auth, needs_body=False))
    router.add_post("/v1/messages", _endpoint(anthropic.messages, anthropic.check_auth, needs_body=True))
    gemini_handler = _endpoint(gemini.handle, gemini.check_auth, needs_body=True)
    router.add_post("/v1beta/models/{model}:{method}", gemini_handler)
    router.add_post("/v1/publishers/google/models/{model}:{method}", gemini_handler)
    router.add_post(
        "/v1/projects/{project}/locations/{region}/publishers/google/models/{model}:{method}", gemini_handler
    )
    router.add_post(
        "/model/{model}/converse", _endpoint(bedrock.converse, bedrock.check_auth, needs_body=True)
    )
    router.add_post(
        "/model/{model}/converse-stream",
        _endpoint(bedrock.converse_stream, bedrock.check_auth, needs_body=True),
    )
    router.add_post("/model/{model}/invoke", _endpoint(bedrock.invoke, bedrock.check_auth, needs_body=True))
    router.add_post("/v2/chat", _endpoint(cohere.chat, cohere.check_auth, needs_body=True))
    router.add_post("/v2/embed", _endpoint(cohere.embed, cohere.check_auth, needs_body=True))
    for op, handler in (
        ("chat/completions", azure.CHAT),
        ("completions", azure.COMPLETIONS),
        ("embeddings", azure.EMBEDDINGS),
    ):
        router.add_post(
            f"/openai/deployments/{{model}}/{op}", _endpoint(handler, azure.check_auth, needs_body=True)
        )
    router.add_post(
        "/models/chat/completions", _endpoint(openai.chat_completions, azure.check_auth, needs_body=True)
    )
    router.add_post("/models/embeddings", _endpoint(openai.embeddings, azure.check_auth, needs_body=True))
    router.add_post("/oauth2/token", azure.google_token)
    router.add_post("/{tenant}/oauth2/v2.0/token", azure.entra_token)
    # Last: any other path or method gets the provider's own 404 (OpenAI answers "Invalid URL").
    router.add_route("*", "/{tail:.*}", _endpoint(_unknown, _no_auth, needs_body=False))
    return app


# --- servers for tests and the CLI ---------------------------------------------------------


class MockProvider:
    """The mock on a loopback port, for async tests: ``async with MockProvider() as mock``."""

    def __init__(
        self, *, host: str = "127.0.0.1", port: int = 0, latency_ms: float = 0, chunk_delay_ms: float = 0
    ) -> None:
        self.host = host
        self.port = port
        self.app = create_app(latency_ms=latency_ms, chunk_delay_ms=chunk_delay_ms)
        self.state = self.app[STATE_KEY]
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def requests(self) -> list[JSONDict]:
        return self.state.requests

    @property
    def faults(self) -> list[JSONDict]:
        return self.state.faults

    @property
    def tokens(self) -> list[tuple[str, str]]:
        return self.state.tokens

    def add_fault(self, **fault: Any) -> None:
        self.state.add_faults([fault])

    def clear(self) -> None:
        self.state.clear()

    async def start(self) -> None:
        runner = web.AppRunner(self.app, access_log=None, shutdown_timeout=_SHUTDOWN_TIMEOUT)
        await runner.setup()
        site = web.TCPSite(runner, self.host, self.port)
        try:
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        self.port = runner.addresses[0][1]

    async def stop(self) -> None:
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()


class MockProviderThread:
    """The mock served from a background thread with its own event loop, for sync tests."""

    def __init__(
        self, *, host: str = "127.0.0.1", port: int = 0, latency_ms: float = 0, chunk_delay_ms: float = 0
    ) -> None:
        self._mock = MockProvider(host=host, port=port, latency_ms=latency_ms, chunk_delay_ms=chunk_delay_ms)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    @property
    def host(self) -> str:
        return self._mock.host

    @property
    def port(self) -> int:
        return self._mock.port

    @property
    def url(self) -> str:
        return self._mock.url

    @property
    def requests(self) -> list[JSONDict]:
        return self._mock.requests

    @property
    def faults(self) -> list[JSONDict]:
        return self._mock.faults

    @property
    def tokens(self) -> list[tuple[str, str]]:
        """OAuth access tokens the mock's token endpoints issued, with tenant or audience."""
        return self._mock.tokens

    def add_fault(self, **fault: Any) -> None:
        self._mock.add_fault(**fault)  # MockState is thread-safe: no hop onto the loop needed

    def clear(self) -> None:
        self._mock.clear()

    def start(self) -> None:
        loop = asyncio.new_event_loop()
        thread = threading.Thread(target=loop.run_forever, name="lockgate-mock-provider", daemon=True)
        thread.start()
        self._loop, self._thread = loop, thread
        try:
            asyncio.run_coroutine_threadsafe(self._mock.start(), loop).result(timeout=10)
        except BaseException:
            self._shutdown_loop()
            raise

    def stop(self) -> None:
        if self._loop is None:
            return
        try:
            asyncio.run_coroutine_threadsafe(self._mock.stop(), self._loop).result(timeout=10)
        finally:
            self._shutdown_loop()

    def _shutdown_loop(self) -> None:
        loop, thread = self._loop, self._thread
        self._loop = self._thread = None
        if loop is None or thread is None:
            return
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        loop.close()

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def run(host: str = "127.0.0.1", port: int = 9090, latency_ms: float = 0, chunk_delay_ms: float = 0) -> None:
    """Serve until interrupted (``lockgate mock-provider``)."""

    async def serve() -> None:
        mock = MockProvider(host=host, port=port, latency_ms=latency_ms, chunk_delay_ms=chunk_delay_ms)
        await mock.start()
        print(f"Lockgate mock provider (all dialects) listening on {mock.url}", flush=True)
        try:
            await asyncio.Event().wait()
        finally:
            await mock.stop()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve())
