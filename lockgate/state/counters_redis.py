"""Counters in Redis, shared by every process and replica: one script call per request stage.

Every call has a short timeout and no client-side retry: a slow or absent Redis
must cost a request at most ``timeout`` before the caller's fail-open/closed
policy decides. Errors surface as ``CountersUnavailable``.

The per-request calls (admit, settle) go through ``_ScriptBatch``: calls made in
the same event-loop turn share one pipelined round trip, and while the round
trips in flight are at their cap new calls queue for the next one. Under load a
worker sends one pipeline for many requests instead of one connection checkout,
write and read per request; alone, a call still leaves on the next loop turn.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
from collections.abc import Sequence
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import NoScriptError, RedisError

from lockgate.state import counters_lua as lua
from lockgate.state.counters import (
    BUCKETS_PER_WINDOW,
    Admission,
    BudgetCheck,
    Charge,
    ConcurrencyCheck,
    CountersUnavailable,
    Refusal,
    Settled,
    Ticket,
    TokenSettle,
    Unseeded,
    WindowCheck,
    window_bucket,
)

log = logging.getLogger("lockgate.state")
_SEED_CLAIM_MS = 60_000
_MAX_CONNECTIONS = 64  # per worker process
# Pipelines a worker has on the wire at once; the rest of the pool serves reads and seeding.
_MAX_BATCHES_IN_FLIGHT = 8
_MAX_BATCH = 256  # calls per pipeline


def _s(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _charge_args(charges: Sequence[Charge]) -> list[Any]:
    args: list[Any] = []
    for c in charges:
        args += [c.scope, repr(c.amount), len(c.fields), *c.fields]
    return args


def _packed(args: list[Any]) -> str:
    """The one ARGV of ADMIT and SETTLE: every argument as a string, as flat ARGV would carry it."""
    return json.dumps([a if isinstance(a, str) else str(a) for a in args], separators=(",", ":"))


class _ScriptBatch:
    """Sends concurrent EVALSHA calls of this process as pipelines (see the module docstring)."""

    def __init__(self, client: aioredis.Redis, timeout: float) -> None:
        self._client = client
        self._timeout = timeout
        self._pending: list[tuple[Any, str, asyncio.Future[Any]]] = []
        self._in_flight = 0
        self._scheduled = False
        self._tasks: set[asyncio.Task[None]] = set()

    def call(self, script: Any, payload: str) -> asyncio.Future[Any]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        self._pending.append((script, payload, future))
        if not self._scheduled and self._in_flight < _MAX_BATCHES_IN_FLIGHT:
            self._scheduled = True
            loop.call_soon(self._launch)
        return future

    def _launch(self) -> None:
        self._scheduled = False
        while self._pending and self._in_flight < _MAX_BATCHES_IN_FLIGHT:
            batch, self._pending = self._pending[:_MAX_BATCH], self._pending[_MAX_BATCH:]
            self._in_flight += 1
            task = asyncio.get_running_loop().create_task(self._send(batch))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _send(self, batch: list[tuple[Any, str, asyncio.Future[Any]]]) -> None:
        try:
            async with asyncio.timeout(self._timeout * 2):
                replies = await self._pipeline(batch)
                missing = [n for n, r in enumerate(replies) if isinstance(r, NoScriptError)]
                if missing:  # Redis restarted or was flushed: load the scripts, run those calls again
                    for script in {id(batch[n][0]): batch[n][0] for n in missing}.values():
                        await self._client.script_load(script.script)
                    again = await self._pipeline([batch[n] for n in missing])
                    for n, reply in zip(missing, again, strict=True):
                        replies[n] = reply
        except (RedisError, OSError, TimeoutError) as exc:
            failure = CountersUnavailable(f"redis: {type(exc).__name__}: {exc}")
            for _, _, future in batch:
                if not future.done():
                    future.set_exception(failure)
        except BaseException as exc:  # cancelled at shutdown: no caller may wait forever
            for _, _, future in batch:
                if not future.done():
                    future.set_exception(CountersUnavailable(f"redis: {type(exc).__name__}"))
            raise
        else:
            for (_, _, future), reply in zip(batch, replies, strict=True):
                if future.done():
                    continue  # the caller went away
                if isinstance(reply, Exception):
                    future.set_exception(CountersUnavailable(f"redis: {type(reply).__name__}: {reply}"))
                else:
                    future.set_result(reply)
        finally:
            self._in_flight -= 1
            if self._pending and not self._scheduled:
                self._scheduled = True
                asyncio.get_running_loop().call_soon(self._launch)

    async def _pipeline(self, batch: list[tuple[Any, str, asyncio.Future[Any]]]) -> list[Any]:
        pipe = self._client.pipeline(transaction=False)
        for script, payload, _ in batch:
            pipe.execute_command("EVALSHA", script.sha, 0, payload)
        return await pipe.execute(raise_on_error=False)

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


class RedisCounters:
    name = "redis"
    shared = True

    def __init__(self, url: str, *, timeout: float = 0.25) -> None:
        # A bounded pool: a burst of requests queues for a connection (within the call's deadline)
        # instead of opening thousands of sockets at once.
        pool = aioredis.BlockingConnectionPool.from_url(
            url,
            max_connections=_MAX_CONNECTIONS,
            timeout=timeout * 2,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            retry=Retry(NoBackoff(), 0),
            health_check_interval=30,
        )
        self._client = aioredis.Redis.from_pool(pool)  # closing the client closes the pool
        self._timeout = timeout
        self._batch = _ScriptBatch(self._client, timeout)
        self._admit = self._client.register_script(lua.ADMIT)
        self._settle = self._client.register_script(lua.SETTLE)
        self._readd = self._client.register_script(lua.READD)
        self._epoch = self._client.register_script(lua.EPOCH)
        self._seed = self._client.register_script(lua.SEED)
        self._reset = self._client.register_script(lua.RESET)

    async def _call(self, script: Any, args: list[Any], limit: float | None = None) -> Any:
        try:
            # The socket timeout bounds each read; this bounds the whole call (pool wait and connect
            # included), without the extra task wait_for would create on Python 3.11.
            async with asyncio.timeout(limit or self._timeout * 2):
                return await script(args=args)
        except (RedisError, OSError, TimeoutError) as exc:
            raise CountersUnavailable(f"redis: {type(exc).__name__}: {exc}") from exc

    async def _batched(self, script: Any, args: list[Any]) -> list[str]:
        return (await self._batch.call(script, _packed(args))).decode().split("\t")  # type: ignore[no-any-return]

    async def admit(
        self,
        request_id: str,
        now: float,
        lease_until: float,
        reserve: float,
        budgets: tuple[BudgetCheck, ...],
        windows: tuple[WindowCheck, ...],
        slots: tuple[ConcurrencyCheck, ...],
    ) -> Admission:
        args: list[Any] = [
            request_id,
            repr(max(lease_until - now, 1.0)),
            repr(reserve),
            len(budgets),
            len(windows),
            len(slots),
            BUCKETS_PER_WINDOW,
        ]
        for b in budgets:
            args += [b.scope, b.field, repr(b.limit)]
        for w in windows:
            args += [w.key, repr(w.window), w.limit, w.amount]
        for c in slots:
            args += [c.key, c.limit]
        reply = await self._batched(self._admit, args)
        if reply[0] == "unseeded":
            raise Unseeded("no spend epoch in Redis")
        if reply[0] == "refused":
            kind, index, used = reply[1], int(reply[2]) - 1, float(reply[3])
            retry = float(reply[4]) if reply[4] else None
            if kind == "budget":
                b = budgets[index]
                return Admission(None, Refusal("budget", b.ident, b.limit, used))
            if kind == "window":
                w = windows[index]
                return Admission(None, Refusal("window", w.ident, w.limit, used, retry))
            c = slots[index]
            return Admission(None, Refusal("concurrency", c.ident, c.limit, used, retry))
        epoch = reply[1] or None
        buckets = [int(reply[2 + 2 * n]) for n in range(len(windows))]
        remaining = tuple(float(reply[3 + 2 * n]) for n in range(len(windows)))
        reserved = reserve > 0
        scopes = tuple(dict.fromkeys(b.scope for b in budgets)) if reserved else ()
        ticket = Ticket(
            request_id,
            epoch,
            reserve if reserved else 0.0,
            scopes,
            tuple((w.key, buckets[n], w.amount, w.window) for n, w in enumerate(windows) if w.tokens),
            tuple(c.key for c in slots),
        )
        return Admission(ticket, None, remaining)

    async def settle(
        self,
        ticket: Ticket | None,
        now: float,
        charges: tuple[Charge, ...],
        tokens: tuple[TokenSettle, ...] = (),
    ) -> Settled:
        charges = tuple(c for c in charges if c.amount)
        held = ticket or Ticket("", None, 0.0, (), (), ())
        args: list[Any] = [
            held.request_id,
            held.epoch or "",
            repr(held.reserve),
            len(held.reserved_scopes),
            len(charges),
            len(held.token_buckets),
            len(tokens),
            len(held.slots),
            BUCKETS_PER_WINDOW,
            *held.reserved_scopes,
            *_charge_args(charges),
        ]
        for key, bucket, estimate, _window in held.token_buckets:
            args += [key, bucket, estimate]
        for t in tokens:
            args += [t.key, repr(t.window), t.tokens]
        args += list(held.slots)
        reply = await self._batched(self._settle, args)
        epoch = reply[0] or None
        if epoch is None:
            return Settled(None)
        values: dict[tuple[str, str], float] = {}
        position = 1
        for c in charges:
            for name in c.fields:
                values[(c.scope, name)] = float(reply[position])
                position += 1
        return Settled(epoch, values)

    async def release(self, ticket: Ticket) -> None:
        await self.settle(ticket, 0.0, ())

    async def read(self, scopes: tuple[str, ...]) -> dict[str, dict[str, float]]:
        try:
            epoch = await asyncio.wait_for(self._client.get("{lg}:epoch"), self._timeout * 4)
            if epoch is None:
                return {scope: {} for scope in scopes}
            async with self._client.pipeline(transaction=False) as pipe:
                for scope in scopes:
                    pipe.hgetall(f"{{lg}}:e:{_s(epoch)}:s:{scope}")
                rows = await asyncio.wait_for(pipe.execute(), self._timeout * 4)
        except (RedisError, OSError, TimeoutError) as exc:
            raise CountersUnavailable(f"redis: {exc}") from exc
        return {
            scope: {_s(k): float(v) for k, v in row.items()} for scope, row in zip(scopes, rows, strict=True)
        }

    async def window_count(self, key: str, window: float, now: float) -> int:
        _, current = window_bucket(window, now)
        try:
            row = await asyncio.wait_for(self._client.hgetall(f"{{lg}}:w:{key}"), self._timeout * 4)
        except (RedisError, OSError, TimeoutError) as exc:
            raise CountersUnavailable(f"redis: {exc}") from exc
        oldest = current - BUCKETS_PER_WINDOW
        return sum(int(v) for k, v in row.items() if int(k) >= oldest)

    async def epoch(self, writer: str) -> tuple[str | None, int]:
        epoch, seq = (_s(v) for v in await self._call(self._epoch, [writer]))
        return epoch or None, int(seq)

    async def begin_seed(self) -> str:
        token = secrets.token_hex(12)
        try:
            await asyncio.wait_for(
                self._client.set("{lg}:seeding", token, px=_SEED_CLAIM_MS), self._timeout * 4
            )
        except (RedisError, OSError, TimeoutError) as exc:
            raise CountersUnavailable(f"redis: {exc}") from exc
        return token

    async def seed(
        self, token: str, epoch: str, values: dict[str, dict[str, float]], writers: dict[str, int]
    ) -> bool:
        args: list[Any] = [token, epoch, len(values)]
        for scope, fields in values.items():
            args += [scope, len(fields)]
            for name, value in fields.items():
                args += [name, repr(value)]
        args.append(len(writers))
        for writer, seq in writers.items():
            args += [writer, seq]
        return int(await self._call(self._seed, args, limit=10.0)) == 1

    async def readd(self, epoch: str, charges: tuple[Charge, ...]) -> bool:
        charges = tuple(c for c in charges if c.amount)
        if not charges:
            return True
        args = [epoch, len(charges), *_charge_args(charges)]
        return int(await self._call(self._readd, args, limit=5.0)) == 1

    async def reset(self, epoch: str) -> None:
        await self._call(self._reset, [epoch], limit=5.0)

    async def close(self) -> None:
        await self._batch.close()
        await self._client.aclose()
