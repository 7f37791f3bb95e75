"""The spend book: settled spend goes to the ledger in batches and is kept right in the counters.

Every settled request adds to the open *generation*: ledger amounts per (scope, day)
and the charges it made to counters, each tagged with the epoch it landed in
(None: not applied yet; "?": the call timed out, so it may or may not have landed).
Every ``flush_interval`` the book commits closed generations to the ledger, in
order, as flush 1, 2, 3 … of this writer, then *reconciles* with the counters.

Why nothing is lost or counted twice when Redis restarts (the epoch goes away):
the next seed reads, in one snapshot, the ledger's sums and each writer's last
committed flush S, and installs them as epoch E. A charge is then in E exactly
once if it was (a) applied while E was current, or (b) in a flush <= S; every
other charge is re-added to E by its own process, atomically checked against E
(``readd``). A generation is forgotten only once it is committed *and* every
charge in it is known to be in the current epoch: any later seed happens after
that commit, so it includes it. A charge whose call timed out ("?") makes the
book drop the epoch on purpose (``reset``) after a grace period, so it is counted
once through the next seed.

With the memory backend the same machinery seeds the process's counters from the
ledger at start (divided per worker with ``--approximate-limits``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import Iterable
from dataclasses import dataclass, field

from lockgate.governance.periods import PERIODS, field_name, first_day
from lockgate.state.counters import Charge, Counters, CountersUnavailable
from lockgate.store import ledger
from lockgate.store.db import Store
from lockgate.store.ledger import LedgerRow, PeriodDays

log = logging.getLogger("lockgate.spend")

UNCERTAIN = "?"
_SUSPECT_GRACE = 5.0  # seconds before a timed-out charge forces a reseed (it may still land)
_COMPACT_EVERY = 3600.0
ChargeKey = tuple[str, tuple[str, ...], str | None]  # scope, fields, epoch


@dataclass(slots=True)
class Generation:
    flush: int | None = None
    committed: bool = False
    ledger: dict[tuple[str, int], list[float]] = field(default_factory=dict)  # cost, tokens, requests
    charges: dict[ChargeKey, float] = field(default_factory=dict)

    @property
    def empty(self) -> bool:
        return not self.ledger and not self.charges


class SpendBook:
    def __init__(
        self,
        store: Store,
        counters: Counters,
        *,
        flush_interval: float = 1.0,
        retention_days: int = 400,
        divisor: int = 1,
    ) -> None:
        self.store = store
        self.counters = counters
        self.writer = "w_" + secrets.token_hex(8)
        self.flush_interval = flush_interval
        self.retention_days = retention_days
        self.divisor = divisor
        self._flushes = 0
        self._open = Generation()
        self._closed: list[Generation] = []  # in flush order; dropped once confirmed
        self._suspect_epoch: str | None = None
        self._suspect_at: float | None = None
        self._reconciling = asyncio.Lock()
        self._seeding: asyncio.Task[None] | None = None
        self._task: asyncio.Task[None] | None = None
        self._last_compaction = 0.0
        self.epoch: str | None = None  # last epoch seen
        self.failures = 0

    # --- the request path (no I/O) ---------------------------------------------------------

    def record(
        self,
        usage: Iterable[tuple[str, int, float, int, int]],
        charges: Iterable[tuple[Charge, str | None]],
    ) -> None:
        """Ledger amounts (scope, day, cost, tokens, requests) and counter charges with their epoch."""
        g = self._open
        for scope, day, cost, tokens, requests in usage:
            row = g.ledger.setdefault((scope, day), [0.0, 0, 0])
            row[0] += cost
            row[1] += tokens
            row[2] += requests
        for charge, epoch in charges:
            if charge.amount:
                key = (charge.scope, charge.fields, epoch)
                g.charges[key] = g.charges.get(key, 0.0) + charge.amount
                if epoch == UNCERTAIN and self._suspect_at is None:
                    self._suspect_epoch, self._suspect_at = self.epoch, time.monotonic()

    # --- background -------------------------------------------------------------------------

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="lockgate-spend-book")

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.flush_interval)
            try:
                await self.flush()
                await self.reconcile()
                if time.monotonic() - self._last_compaction > _COMPACT_EVERY:
                    self._last_compaction = time.monotonic()
                    removed = await ledger.compact(
                        self.store.engine, now=time.time(), keep_days=self.retention_days
                    )
                    if removed:
                        log.info("spend ledger compaction folded %d rows", removed)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.failures += 1
                log.warning("spend book: %s (retrying in %.1fs)", exc, self.flush_interval)

    async def flush(self) -> None:
        """Close the open generation and commit every uncommitted one, in order."""
        if not self._open.empty:
            self._flushes += 1
            self._open.flush = self._flushes
            self._closed.append(self._open)
            self._open = Generation()
        for g in self._closed:
            if g.committed:
                continue
            assert g.flush is not None
            rows = [
                LedgerRow(scope, day, cost, int(tokens), int(requests))
                for (scope, day), (cost, tokens, requests) in g.ledger.items()
            ]
            await ledger.append(self.store.engine, rows, writer=self.writer, flush=g.flush, at=time.time())
            g.committed = True

    async def reconcile(self) -> None:
        """Make the counters hold every charge of this process exactly once (see the module doc)."""
        async with self._reconciling:
            try:
                epoch, seeded = await self.counters.epoch(self.writer)
            except CountersUnavailable:
                return
            self.epoch = epoch
            if epoch is None:
                self.seed_soon()
                return
            if self._suspect_at is not None:
                if epoch == self._suspect_epoch:
                    if time.monotonic() - self._suspect_at < _SUSPECT_GRACE:
                        return  # the timed-out call may still land; re-add nothing until it cannot
                    log.warning("a counter update timed out; reseeding spend counters from the ledger")
                    await self.counters.reset(epoch)
                    self._forget_suspects()
                    self.seed_soon()
                    return
                # The epoch changed since: whatever landed went into the old one.
                self._forget_suspects()
            missing: list[tuple[Generation, ChargeKey, float]] = []
            for g in self._generations():
                included = g.committed and g.flush is not None and g.flush <= seeded
                for key, amount in list(g.charges.items()):
                    if key[2] == epoch:
                        continue
                    if included:
                        _move(g, key, epoch, amount)
                    else:
                        missing.append((g, key, amount))
            if missing:
                merged: dict[tuple[str, tuple[str, ...]], float] = {}
                for _, (scope, fields, _), amount in missing:
                    merged[(scope, fields)] = merged.get((scope, fields), 0.0) + amount
                charges = tuple(Charge(scope, fields, amount) for (scope, fields), amount in merged.items())
                if not await self.counters.readd(epoch, charges):
                    return  # the epoch moved on: the next round works against the new one
                for g, key, amount in missing:
                    _move(g, key, epoch, amount)
            self._closed = [g for g in self._closed if not (g.committed and _all_in(g, epoch))]

    def _forget_suspects(self) -> None:
        self._suspect_at = self._suspect_epoch = None
        for g in self._generations():
            for key in [k for k in g.charges if k[2] == UNCERTAIN]:
                _move(g, key, None, g.charges[key])

    def _generations(self) -> list[Generation]:
        return [*self._closed, self._open]

    # --- seeding ----------------------------------------------------------------------------

    def seed_soon(self) -> asyncio.Task[None]:
        if self._seeding is None or self._seeding.done():
            self._seeding = asyncio.create_task(self._seed(), name="lockgate-spend-seed")
        return self._seeding

    async def ensure_seeded(self) -> None:
        """Seed the counters from the ledger unless an epoch exists (shared by concurrent callers).

        Callers bound the wait (``asyncio.timeout``); the seed itself carries on regardless."""
        await asyncio.shield(self.seed_soon())

    async def _seed(self) -> None:
        epoch, _ = await self.counters.epoch(self.writer)
        if epoch is None:
            token = await self.counters.begin_seed()
            now = time.time()
            periods = PeriodDays({field_name(p, now): first_day(p, now) for p in PERIODS})
            values, writers = await ledger.totals(self.store.engine, periods)
            if self.divisor > 1:
                values = {s: {f: v / self.divisor for f, v in fs.items()} for s, fs in values.items()}
            if await self.counters.seed(token, secrets.token_hex(6), values, writers):
                log.info("spend counters seeded from the ledger (%d scopes)", len(values))
        await self.reconcile()

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._seeding is not None and not self._seeding.done():
            self._seeding.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._seeding
        try:
            await self.flush()
        except Exception as exc:  # the counters still hold it; the ledger misses this last batch
            log.error("spend book: the last flush failed: %s", exc)


def _move(g: Generation, key: ChargeKey, epoch: str | None, amount: float) -> None:
    left = g.charges.get(key, 0.0) - amount
    if abs(left) < 1e-15:
        g.charges.pop(key, None)
    else:
        g.charges[key] = left
    target = (key[0], key[1], epoch)
    g.charges[target] = g.charges.get(target, 0.0) + amount


def _all_in(g: Generation, epoch: str) -> bool:
    return all(key[2] == epoch for key in g.charges)
