"""Upstream attempts: one HTTP call (``send_once``), and the retries on one target (``Attempts``).

``send_once`` knows nothing about retries or fallback. ``Attempts.on_target``
owns what happens on a single target: the circuit breaker's admission, the
per-attempt timeout, retries with exponential backoff and full jitter (or the
provider's ``Retry-After``, within a cap), the retry budget, and reporting each
outcome to the health board. Which target to try is ``strategies.py``'s job.
aiohttp's exceptions are translated into Lockgate's here, at the boundary, by type.
"""

from __future__ import annotations

import asyncio
import email.utils
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from yarl import URL

from lockgate.errors import (
    BadRequest,
    DeadlineExceeded,
    TargetUnavailable,
    UpstreamError,
    UpstreamProtocolError,
    UpstreamTimeout,
    UpstreamUnreachable,
)
from lockgate.gateway.conditions import MatchContext
from lockgate.gateway.health import HealthBoard
from lockgate.gateway.plan import FALLBACK_STATUSES, Leaf
from lockgate.gateway.route_config import CircuitBreakerConfig, RetryConfig
from lockgate.gateway.targets import Target
from lockgate.providers.base import UpstreamRequest, parse_upstream_error
from lockgate.telemetry.records import AttemptRecord, RequestRecord

__all__ = ["FALLBACK_STATUSES", "Attempts", "Call", "Success", "UpstreamClient", "send_once"]

BACKOFF_BASE = 0.2  # seconds: the first retry waits up to this, doubling each time
BACKOFF_CAP = 10.0
# A Retry-After longer than this is not waited for: the target is left to the fallback.
RETRY_AFTER_CAP = 20.0
_BREAKER_DEFAULT_FAILURES = frozenset(CircuitBreakerConfig().failure_status_codes)


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
    response: aiohttp.ClientResponse  # (tests: anything with .headers)
    # The whole body, read for non-streams and for every error; None while a stream is open.
    body: bytes | None


async def send_once(
    client: UpstreamClient,
    target: Target,
    request: UpstreamRequest,
    *,
    stream: bool,
    time_limit: float | None = None,
) -> UpstreamResponse:
    """One HTTP exchange with the target. Streams come back open (body None) when they succeeded.

    ``time_limit`` (seconds) bounds the whole exchange, or for a stream the wait for its headers;
    an open stream's idle gaps are bounded by the client's ``request_timeout``.
    """
    limit = client.request_timeout if time_limit is None else time_limit
    name = target.credential.name
    try:
        if not stream:
            response = await client.session.request(
                request.method,
                # encoded=True: the URL goes out byte for byte as the provider built (and maybe signed) it.
                URL(request.url, encoded=True),
                data=request.body,
                headers=request.headers,
                timeout=aiohttp.ClientTimeout(total=limit),
            )
            try:
                return UpstreamResponse(response.status, response, await response.read())
            finally:
                response.release()
        async with asyncio.timeout(limit):  # a stream's limit covers its headers only
            response = await client.session.request(
                request.method,
                # encoded=True: the URL goes out byte for byte as the provider built (and maybe signed) it.
                URL(request.url, encoded=True),
                data=request.body,
                headers=request.headers,
                timeout=aiohttp.ClientTimeout(total=None, connect=None, sock_read=client.request_timeout),
            )
            if response.status == 200:
                return UpstreamResponse(response.status, response, None)
            try:
                body = await response.read()
            finally:
                response.release()
        return UpstreamResponse(response.status, response, body)
    except TimeoutError as exc:
        raise UpstreamTimeout(
            f"The upstream {name} did not answer within {limit:g} s.", provider=name
        ) from exc
    except aiohttp.ClientPayloadError as exc:
        raise UpstreamProtocolError(
            f"The upstream {name} sent a broken response: {exc}", provider=name
        ) from exc
    except aiohttp.ClientError as exc:
        raise UpstreamUnreachable(f"The upstream {name} could not be reached: {exc}", provider=name) from exc


@dataclass(slots=True)
class Call:
    """One client request's journey through a plan: what the engine needs from the pipeline."""

    build: Callable[[Target, Leaf], UpstreamRequest]
    # Non-streams: read a success body (raises UpstreamProtocolError when unreadable).
    accept: Callable[[Target, bytes], Any] | None
    stream: bool
    client_model: str
    match: MatchContext
    record: RequestRecord
    deadline: float  # time.monotonic() by which the answer must have started
    exclude: set[str] = field(default_factory=set)  # target keys not to try again
    timeouts: int = 0  # attempts that timed out


@dataclass(slots=True)
class Success:
    leaf: Leaf
    target: Target
    request: UpstreamRequest
    upstream: UpstreamResponse
    answer: Any  # Call.accept's result for non-streams
    attempt: AttemptRecord


SendOnce = Callable[..., Awaitable[UpstreamResponse]]


class Attempts:
    def __init__(
        self,
        client: UpstreamClient,
        health: HealthBoard,
        *,
        rng: random.Random,
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
        clock: Callable[[], float] = time.monotonic,
        send: SendOnce = send_once,
    ) -> None:
        self.client = client
        self.health = health
        self._rng = rng
        self._sleep = sleep
        self._clock = clock
        self._send = send  # tests drive the engine in-process with their own

    async def on_target(self, leaf: Leaf, target: Target, call: Call) -> Success:
        """Attempt ``target`` until it answers, retrying as its policy allows; raise the last error."""
        key, policy = target.key, leaf.policy
        if not self.health.admit(key, policy.breaker):
            raise TargetUnavailable(
                f"The circuit for {target.label} is open; it was skipped.", provider=target.credential.name
            )
        self.health.note_request(key)
        retries, backoff_ms, settled = 0, None, False
        try:
            while True:
                settled = False
                try:
                    request = call.build(target, leaf)
                except BadRequest as exc:
                    # This target cannot express the request (e.g. n > 1 on Anthropic); another may.
                    call.record.attempt_log.append(AttemptRecord(target.label, None, 0.0, exc.message))
                    raise
                timeout = self._attempt_timeout(policy.timeout, call)
                started = time.perf_counter()
                upstream: UpstreamResponse | None = None
                try:
                    upstream = await self._traced_send(target, request, call, timeout)
                    error = self._error_of(target, upstream)
                    answer = None
                    if error is None and call.accept is not None and not call.stream:
                        answer = call.accept(target, upstream.body or b"")
                except UpstreamError as exc:
                    error = exc
                latency = (time.perf_counter() - started) * 1000.0
                attempt = AttemptRecord(
                    target.label,
                    upstream.status if upstream else None,
                    latency,
                    error.message if error else None,
                    backoff_ms,
                )
                call.record.attempt_log.append(attempt)
                settled = True
                if error is None:
                    assert upstream is not None
                    self.health.success(key, latency, policy.breaker)
                    return Success(leaf, target, request, upstream, answer, attempt)
                self._report(key, error, policy.breaker, call)
                delay = self._retry_delay(policy.retry, error, upstream, retries, call, key, attempt)
                if delay is None or not await self._wait(delay, key, policy.breaker):
                    raise error
                retries += 1
                call.record.retries += 1
                backoff_ms = round(delay * 1000.0, 3)
        finally:
            if not settled:
                self.health.release(key)  # cancelled mid-attempt: free the half-open probe slot

    async def _traced_send(
        self, target: Target, request: UpstreamRequest, call: Call, time_limit: float
    ) -> UpstreamResponse:
        """One send as a child span of the request's (tracing on), or with the client's traceparent."""
        trace, stream = call.record.trace, call.stream
        if trace is None:
            if call.record.traceparent is not None:
                request.headers["traceparent"] = call.record.traceparent
            return await self._send(self.client, target, request, stream=stream, time_limit=time_limit)
        span = trace.start_attempt(target, request)  # injects this span's traceparent
        try:
            upstream = await self._send(self.client, target, request, stream=stream, time_limit=time_limit)
        except BaseException as exc:
            trace.end_attempt(span, None, exc)
            raise
        trace.end_attempt(span, upstream.status, None)
        return upstream

    def _attempt_timeout(self, per_attempt: float | None, call: Call) -> float:
        remaining = call.deadline - self._clock()
        if remaining <= 0:
            raise DeadlineExceeded("The request's deadline passed before an upstream answered.")
        return remaining if per_attempt is None else min(per_attempt, remaining)

    @staticmethod
    def _error_of(target: Target, upstream: UpstreamResponse) -> UpstreamError | None:
        if upstream.status < 400:
            return None
        error = parse_upstream_error(
            target.provider, upstream.status, upstream.body or b"", upstream.response.headers
        )
        error.provider = target.credential.name
        error.upstream_status = error.upstream_status or upstream.status
        error.retry_after = upstream.response.headers.get("retry-after")
        return error

    def _report(
        self, key: str, error: UpstreamError, breaker: CircuitBreakerConfig | None, call: Call
    ) -> None:
        if isinstance(error, UpstreamTimeout):
            call.timeouts += 1
        if is_failure(error, breaker):
            self.health.failure(key, breaker)
        else:
            self.health.neutral(key)  # it answered: alive, even if it said no

    def _retry_delay(
        self,
        retry: RetryConfig,
        error: UpstreamError,
        upstream: UpstreamResponse | None,
        retries: int,
        call: Call,
        key: str,
        attempt: AttemptRecord,
    ) -> float | None:
        if retries >= retry.attempts or not retryable(error, retry):
            return None
        delay: float | None = None
        if retry.use_retry_after_header and upstream is not None:
            delay = retry_after_seconds(upstream.response.headers)
            if delay is not None and delay > RETRY_AFTER_CAP:
                return None  # the provider asks for longer than a request should wait
        if delay is None:
            delay = self._rng.uniform(0.0, min(BACKOFF_CAP, BACKOFF_BASE * 2**retries))
        if self._clock() + delay >= call.deadline:
            return None
        if not self.health.spend_retry(key):
            attempt.error = f"{attempt.error} (retry budget exhausted: not retried)"
            return None
        return delay

    async def _wait(self, delay: float, key: str, breaker: CircuitBreakerConfig | None) -> bool:
        await self._sleep(delay)
        # The circuit may have opened meanwhile (this or concurrent requests failing).
        return self.health.admit(key, breaker)


def retryable(error: UpstreamError, retry: RetryConfig) -> bool:
    if isinstance(error, DeadlineExceeded | TargetUnavailable):
        return False
    if isinstance(error, UpstreamTimeout | UpstreamUnreachable | UpstreamProtocolError):
        return True
    return error.upstream_status in retry.on_status_codes


def is_failure(error: UpstreamError, breaker: CircuitBreakerConfig | None) -> bool:
    """Does this error count against the target's health?"""
    if isinstance(error, TargetUnavailable):
        return False
    if isinstance(error, UpstreamTimeout | UpstreamUnreachable | UpstreamProtocolError):
        return True
    codes = breaker.failure_status_codes if breaker is not None else _BREAKER_DEFAULT_FAILURES
    return error.upstream_status in codes


def retry_after_seconds(headers: Any) -> float | None:
    """The provider's requested wait: ``retry-after-ms`` (OpenAI), else ``Retry-After`` seconds or date."""
    raw_ms = headers.get("retry-after-ms")
    if raw_ms:
        try:
            return max(0.0, float(raw_ms) / 1000.0)
        except ValueError:
            pass
    raw = headers.get("retry-after")
    if not raw:
        return None
    try:
        return max(0.0, float(raw))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(raw)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())
