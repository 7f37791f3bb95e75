"""Upstream attempts: one HTTP call per attempt, and the walk over a route's targets.

``send_once`` knows nothing about fallback; ``call_route`` owns it. aiohttp's
exceptions are translated into Lockgate's here, at the boundary, by type.
The routing issue adds retries with backoff, circuit breakers and
loadbalancing on top of this same split.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import aiohttp
from yarl import URL

from lockgate.errors import (
    BadRequest,
    UpstreamError,
    UpstreamProtocolError,
    UpstreamTimeout,
    UpstreamUnreachable,
)
from lockgate.gateway.routing import Route, Target
from lockgate.providers.base import UpstreamRequest, parse_upstream_error
from lockgate.telemetry.records import AttemptRecord, RequestRecord

# Statuses after which the next target is tried: the provider is overloaded or broken,
# not the request.
FALLBACK_STATUSES = frozenset({408, 409, 429, 500, 502, 503, 504, 529})


class UpstreamClient:
    """One aiohttp session per worker: pooled keep-alive connections, no auto-decompression."""

    def __init__(self, *, connect_timeout: float, request_timeout: float) -> None:
        self._connect_timeout = connect_timeout
        self.request_timeout = request_timeout
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        connector = aiohttp.TCPConnector(
            limit=8192, limit_per_host=0, ttl_dns_cache=300, keepalive_timeout=75, enable_cleanup_closed=True
        )
        self._session = aiohttp.ClientSession(
            connector=connector,
            auto_decompress=False,
            skip_auto_headers=("User-Agent", "Accept-Encoding"),
            timeout=aiohttp.ClientTimeout(total=None, connect=self._connect_timeout),
        )

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    @property
    def session(self) -> aiohttp.ClientSession:
        assert self._session is not None, "UpstreamClient.start() was not awaited"
        return self._session


@dataclass(slots=True)
class UpstreamResponse:
    status: int
    response: aiohttp.ClientResponse
    # The whole body, read for non-streams and for every error; None while a stream is open.
    body: bytes | None


async def send_once(
    client: UpstreamClient, target: Target, request: UpstreamRequest, *, stream: bool
) -> UpstreamResponse:
    """One HTTP exchange with the target. Streams come back open (body None) when they succeeded."""
    timeout = (
        aiohttp.ClientTimeout(total=None, connect=None, sock_read=client.request_timeout)
        if stream
        else aiohttp.ClientTimeout(total=client.request_timeout)
    )
    name = target.credential.name
    try:
        # encoded=True: the URL goes out byte for byte as the provider built (and maybe signed) it.
        response = await client.session.request(
            request.method,
            URL(request.url, encoded=True),
            data=request.body,
            headers=request.headers,
            timeout=timeout,
        )
        if stream and response.status == 200:
            return UpstreamResponse(response.status, response, None)
        try:
            body = await response.read()
        finally:
            response.release()
        return UpstreamResponse(response.status, response, body)
    except TimeoutError as exc:
        raise UpstreamTimeout(
            f"The upstream {name} did not answer within {client.request_timeout:g} s.", provider=name
        ) from exc
    except aiohttp.ClientPayloadError as exc:
        raise UpstreamProtocolError(
            f"The upstream {name} sent a broken response: {exc}", provider=name
        ) from exc
    except aiohttp.ClientError as exc:
        raise UpstreamUnreachable(f"The upstream {name} could not be reached: {exc}", provider=name) from exc


async def call_route(
    client: UpstreamClient,
    route: Route,
    build: Callable[[Target], UpstreamRequest],
    *,
    stream: bool,
    record: RequestRecord,
) -> tuple[Target, UpstreamRequest, UpstreamResponse]:
    """Try the route's targets in order until one answers with success.

    Falls back on connection errors, timeouts and FALLBACK_STATUSES; any other
    error is the caller's and is returned at once. The last error is raised
    when every target failed.
    """
    last_error: Exception | None = None
    for position, target in enumerate(route.targets):
        has_next = position + 1 < len(route.targets)
        try:
            request = build(target)
        except BadRequest as exc:
            # This target cannot express the request (e.g. n > 1 on Anthropic); another may.
            record.attempt_log.append(AttemptRecord(target.label, None, 0.0, exc.message))
            last_error = exc
            continue
        started = time.perf_counter()
        try:
            upstream = await send_once(client, target, request, stream=stream)
        except UpstreamError as exc:
            record.attempt_log.append(AttemptRecord(target.label, None, _ms_since(started), exc.message))
            last_error = exc
            continue
        latency = _ms_since(started)
        if upstream.status < 400:
            record.attempt_log.append(AttemptRecord(target.label, upstream.status, latency))
            return target, request, upstream
        error = parse_upstream_error(
            target.provider, upstream.status, upstream.body or b"", upstream.response.headers
        )
        error.provider = target.credential.name
        error.retry_after = upstream.response.headers.get("retry-after")
        record.attempt_log.append(AttemptRecord(target.label, upstream.status, latency, error.message))
        last_error = error
        if not (has_next and upstream.status in FALLBACK_STATUSES):
            break
    assert last_error is not None
    raise last_error


def _ms_since(started: float) -> float:
    return (time.perf_counter() - started) * 1000.0
