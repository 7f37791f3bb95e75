"""Stage 4 (admit) and stage 9 (settle) of the pipeline: usage policies, rate limits, budgets.

``Governor.admit`` checks the usage policies (no I/O), then, if any budget or
limit applies, makes one atomic counters call that reserves the request's worst
case on every hard budget and counts it in every window (all or nothing). The
returned ``Pass`` is settled exactly once, whatever happened: the real cost
replaces the reservation (streams included, broken ones with their partial
usage), or the reservation is released. A request nothing applies to costs no
round trip: its spend goes to the ledger, and to the counters in the spend
book's next batch.

When the shared counters cannot be reached, ``limits_on_redis_failure`` decides:
"closed" refuses with 503, "open" counts in this process (records say "local").
A failed call marks Redis down for a second, so a dead Redis costs at most one
timeout per second, never a hang.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from lockgate.catalog import Catalog
from lockgate.errors import BudgetExceeded, LimitsUnavailable, RateLimited
from lockgate.governance.alerts import Alerts
from lockgate.governance.auth import Principal
from lockgate.governance.estimate import token_estimate, worst_cost
from lockgate.governance.periods import all_fields, day_number, field_name
from lockgate.governance.policy import check_usage_policies
from lockgate.governance.rules import Budget, Governance, RateLimit, metadata_scope
from lockgate.governance.spend import UNCERTAIN, SpendBook
from lockgate.providers.base import Body
from lockgate.state.counters import (
    Admission,
    BudgetCheck,
    Charge,
    ConcurrencyCheck,
    Counters,
    CountersUnavailable,
    Refusal,
    Settled,
    Ticket,
    TokenSettle,
    Unseeded,
    WindowCheck,
)
from lockgate.state.counters_memory import MemoryCounters
from lockgate.telemetry.records import RequestRecord

log = logging.getLogger("lockgate.limits")

Headers = list[tuple[bytes, bytes]]
_DOWN_FOR = 1.0  # seconds a failed counters call keeps the shared backend marked down
_SEED_WAIT = 5.0


@dataclass(slots=True)
class Pass:
    """An admitted request's hold on its budgets and limits."""

    governor: Governor
    tracked: tuple[str, ...]  # scopes this request's spend is recorded under (plus its integration)
    budgets: tuple[tuple[Budget, str], ...] = ()
    token_windows: tuple[tuple[str, float, str], ...] = ()  # key, window, scope
    ticket: Ticket | None = None
    local: bool = False  # admitted on this process's fallback counters
    headers: Headers = field(default_factory=list)
    settled: bool = False
    requests: int = 1  # what the spend ledger counts this as (see Settlement.requests)

    async def settle(self, record: RequestRecord) -> None:
        """Charge the real cost and tokens (or nothing) and let go of the reservation; once."""
        if not self.settled:
            await self._apply(self.governor.plan(self, record))

    async def settle_charge(self, cost: float) -> None:
        """Settle a fixed-price call (``Governor.admit_charge``): charge ``cost`` (0: release); once."""
        if not self.settled:
            await self._apply(self.governor.price_plan(self, cost))

    async def _apply(self, plan: Settlement) -> None:
        self.settled = True
        if plan.needs_counters and self.governor.counters.shared:
            # Shielded: a client that disconnects must not leave the reservation held.
            await asyncio.shield(self.governor.apply(plan))
        elif plan.needs_counters:
            await self.governor.apply(plan)  # in-process counters never suspend: nothing to shield
        else:
            self.governor.finish(plan, Settled(None))


class Governor:
    def __init__(
        self,
        counters: Counters,
        book: SpendBook,
        alerts: Alerts,
        catalog: Catalog,
        *,
        lease: float,
        fail_open: bool,
        approximate: bool = False,
    ) -> None:
        self.counters = counters
        self.book = book
        self.alerts = alerts
        self.catalog = catalog
        self.lease = lease
        self.fail_open = fail_open
        self.mode = "approximate" if approximate else "exact"
        self.fallback = MemoryCounters() if counters.shared and fail_open else None
        self._down_until = 0.0
        self._fallback_seed: asyncio.Task[None] | None = None

    async def admit(
        self,
        governance: Governance,
        principal: Principal,
        endpoint: str,
        body: Body,
        raw: bytes,
        targets: Sequence[tuple[str, str, str]],  # (integration, model, provider) per route target
        record: RequestRecord,
    ) -> Pass:
        metadata = {**principal.metadata, **(record.metadata or {})}
        integrations = tuple(dict.fromkeys(t[0] for t in targets))
        rules = (
            governance.rules(principal.key_id, principal.workspace_id)
            + governance.for_integrations(integrations)
            + governance.for_metadata(metadata)
        )
        model = str(body.data.get("model"))
        if rules.policies:
            check_usage_policies(
                rules.policies, model, [t[1] for t in targets], body, metadata, endpoint=endpoint
            )
        gate = Pass(self, _tracked(governance, principal, metadata), rules.budgets)
        if not rules.budgets and not rules.limits:
            return gate
        record.limits = self.mode
        now = time.time()
        hard = [(b, s) for b, s in rules.budgets if b.hard]
        reserve = worst_cost(self.catalog, [(m, p) for _, m, p in targets], raw, body.data) if hard else 0.0
        budget_checks = tuple(BudgetCheck(s, field_name(b.period, now), b.amount, b.id) for b, s in hard)
        estimate = (
            token_estimate(raw, body.data) if any(w.tokens for r, _ in rules.limits for w in r.windows) else 0
        )
        windows: list[WindowCheck] = []
        slots: list[ConcurrencyCheck] = []
        token_windows: list[tuple[str, float, str]] = []
        for limit, scope in rules.limits:
            for w in limit.windows:
                key = f"{limit.id}:{scope}:{w.name}"
                amount = min(estimate, w.limit) if w.tokens else 1
                windows.append(WindowCheck(key, w.seconds, w.limit, amount, f"{limit.id}/{w.name}", w.tokens))
                if w.tokens:
                    token_windows.append((key, w.seconds, scope))
            if limit.concurrent is not None:
                slots.append(
                    ConcurrencyCheck(f"{limit.id}:{scope}", limit.concurrent, f"{limit.id}/concurrent")
                )
        admission, gate.local = await self._admit(
            record.id, now, reserve, budget_checks, tuple(windows), tuple(slots)
        )
        if gate.local:
            record.limits = "local"
        if admission.refusal is not None:
            raise self._refused(admission.refusal, rules.budgets, rules.limits, windows, reserve, now)
        gate.ticket = admission.ticket
        gate.token_windows = tuple(token_windows)
        gate.headers = _limit_headers(windows, admission.remaining)
        return gate

    async def admit_charge(
        self, governance: Governance, principal: Principal, request_id: str, price: float
    ) -> Pass:
        """A call with a fixed price (an MCP tool's cost per call): reserve ``price`` on every hard
        budget of the caller, in the same atomic step and on the same counters as LLM requests;
        ``Pass.settle_charge`` charges it (or releases it when the call never ran)."""
        metadata = dict(principal.metadata)
        rules = governance.rules(principal.key_id, principal.workspace_id) + governance.for_metadata(metadata)
        gate = Pass(self, _tracked(governance, principal, metadata), rules.budgets, requests=0)
        hard = [(b, s) for b, s in rules.budgets if b.hard]
        if not hard:
            return gate
        now = time.time()
        checks = tuple(BudgetCheck(s, field_name(b.period, now), b.amount, b.id) for b, s in hard)
        admission, gate.local = await self._admit(request_id, now, price, checks, (), ())
        if admission.refusal is not None:
            raise self._refused(admission.refusal, rules.budgets, (), [], price, now)
        gate.ticket = admission.ticket
        return gate

    async def admit_windows(self, request_id: str, windows: tuple[WindowCheck, ...]) -> Admission:
        """Count-only windows from outside the LLM pipeline (MCP per-tool limits): the same
        counters, exact across processes on Redis, and the same rule when they are down."""
        admission, _ = await self._admit(request_id, time.time(), 0.0, (), windows, ())
        return admission

    async def _admit(
        self,
        request_id: str,
        now: float,
        reserve: float,
        budgets: tuple[BudgetCheck, ...],
        windows: tuple[WindowCheck, ...],
        slots: tuple[ConcurrencyCheck, ...],
    ) -> tuple[Admission, bool]:
        lease_until = now + self.lease
        if time.monotonic() >= self._down_until:
            try:
                try:
                    return await self.counters.admit(
                        request_id, now, lease_until, reserve, budgets, windows, slots
                    ), False
                except Unseeded:
                    async with asyncio.timeout(_SEED_WAIT):
                        await self.book.ensure_seeded()
                    return await self.counters.admit(
                        request_id, now, lease_until, reserve, budgets, windows, slots
                    ), False
            except (CountersUnavailable, Unseeded, TimeoutError, OSError) as exc:
                self._down_until = time.monotonic() + _DOWN_FOR
                log.warning(
                    "limit counters unavailable (%s); %s",
                    exc,
                    "counting locally" if self.fail_open else "refusing",
                )
        if self.fallback is None:
            raise LimitsUnavailable(
                "Rate limits and budgets apply to this request but their shared counters (Redis) cannot be "
                "reached, and this gateway fails closed (LOCKGATE_LIMITS_ON_REDIS_FAILURE=closed)."
            )
        epoch, _ = await self.fallback.epoch(self.book.writer)
        if epoch is None:
            budgets = ()  # local spend unknown until the fallback is seeded: fail open means admit
            if self._fallback_seed is None or self._fallback_seed.done():
                self._fallback_seed = asyncio.create_task(self._seed_fallback())
        return await self.fallback.admit(request_id, now, lease_until, reserve, budgets, windows, slots), True

    async def _seed_fallback(self) -> None:
        """Fill the local counters from the ledger, the best view of spend without Redis."""
        assert self.fallback is not None
        local = SpendBook(self.book.store, self.fallback, divisor=self.book.divisor)
        local.writer = self.book.writer
        try:
            await local.ensure_seeded()
        except Exception as exc:
            log.warning("seeding local fallback counters failed: %s", exc)

    def _refused(
        self,
        refusal: Refusal,
        budgets: tuple[tuple[Budget, str], ...],
        limits: tuple[tuple[RateLimit, str], ...],
        windows: list[WindowCheck],
        reserve: float,
        now: float,
    ) -> Exception:
        if refusal.kind == "budget":
            budget, scope = next((b, s) for b, s in budgets if b.id == refusal.ident)
            self.alerts.observe(budget, scope, field_name(budget.period, now), refusal.used, exhausted=True)
            period = "" if budget.period == "none" else f" this {budget.period}"
            return BudgetExceeded(
                f"Budget {budget.name!r} ({_describe(scope)}) is exhausted: ${refusal.used:.6f} of "
                f"${budget.amount:.2f} is spent or reserved{period}, and this request may cost up to "
                f"${reserve:.6f}."
            )
        limit_id, _, what = refusal.ident.partition("/")
        limit, scope = next((r, s) for r, s in limits if r.id == limit_id)
        retry = max(1, math.ceil(refusal.retry_after or 1.0))
        if refusal.kind == "concurrency":
            message = (
                f"Rate limit {limit.name!r} ({_describe(scope)}) allows {int(refusal.limit)} concurrent "
                f"requests; {int(refusal.used)} are in flight."
            )
        else:
            message = (
                f"Rate limit {limit.name!r} ({_describe(scope)}): {what.replace('_', ' ')} is "
                f"{int(refusal.limit)}; retry after {retry} s."
            )
        error = RateLimited(message, retry_after=retry)
        error.headers = [(b"retry-after", str(retry).encode())]
        refused_window = next((w for w in windows if w.ident == refusal.ident), None)
        requests = [w for w in windows if not w.tokens]
        if requests:
            tightest = min(requests, key=lambda w: w.limit)
            error.headers.append((b"x-ratelimit-limit-requests", str(tightest.limit).encode()))
            if refused_window is not None and not refused_window.tokens:
                error.headers.append((b"x-ratelimit-remaining-requests", b"0"))
        if refused_window is not None and refused_window.tokens:
            error.headers.append((b"x-ratelimit-remaining-tokens", b"0"))
        return error

    def plan(self, gate: Pass, record: RequestRecord) -> Settlement:
        """What settling ``gate`` takes, from the record's usage and cost (no I/O)."""
        tokens = (record.prompt_tokens or 0) + (record.completion_tokens or 0)
        served = f"int:{record.provider}" if record.provider else None
        return self._plan(gate, record.cost_usd or 0.0, tokens, served)

    def price_plan(self, gate: Pass, cost: float) -> Settlement:
        return self._plan(gate, cost, 0, None)

    def _plan(self, gate: Pass, cost: float, tokens: int, served: str | None) -> Settlement:
        scopes = gate.tracked + ((served,) if served else ())
        now = time.time()
        fields = all_fields(now)
        budgeted = {s for _, s in gate.budgets if not s.startswith("int:") or s == served}
        local = not self.counters.shared or gate.local
        # Budgeted scopes are charged now (their budgets must see it); the rest in the next batch.
        immediate = scopes if local else tuple(s for s in scopes if s in budgeted)
        return Settlement(
            gate,
            now,
            cost,
            tokens,
            gate.requests,
            scopes,
            tuple(Charge(s, fields, cost) for s in immediate) if cost else (),
            tuple(Charge(s, fields, cost) for s in scopes if s not in immediate) if cost else (),
            tuple(
                TokenSettle(key, window, tokens)
                for key, window, scope in gate.token_windows
                if tokens and (not scope.startswith("int:") or scope == served)
            ),
        )

    async def apply(self, plan: Settlement) -> None:
        gate = plan.gate
        backend = self.fallback if gate.local and self.fallback is not None else self.counters
        settled: Settled | None = Settled(None)
        if plan.needs_counters:
            try:
                settled = await backend.settle(gate.ticket, plan.now, plan.charges, plan.tokens_used)
            except CountersUnavailable as exc:
                self._down_until = time.monotonic() + _DOWN_FOR
                log.warning("settling a request on the limit counters failed: %s", exc)
                settled = None
        self.finish(plan, settled)

    def finish(self, plan: Settlement, settled: Settled | None) -> None:
        """Hand the spend to the book (ledger and counter bookkeeping) and check alert thresholds."""
        if plan.gate.local:
            epoch: str | None = None  # Redis has not seen it: the spend book re-adds it there
        else:
            epoch = settled.epoch if settled is not None else UNCERTAIN
        day = day_number(plan.now)
        spent = plan.cost or plan.tokens or plan.requests  # a released tool charge leaves no ledger row
        self.book.record(
            [(s, day, plan.cost, plan.tokens, plan.requests) for s in plan.scopes] if spent else [],
            [*((c, epoch) for c in plan.charges), *((c, None) for c in plan.later)],
        )
        if settled is not None and settled.values:
            for budget, scope in plan.gate.budgets:
                name = field_name(budget.period, plan.now)
                spent = settled.values.get((scope, name))
                if spent is not None:
                    self.alerts.observe(budget, scope, name, spent)


@dataclass(frozen=True, slots=True)
class Settlement:
    gate: Pass
    now: float
    cost: float
    tokens: int
    requests: int  # 1 for an LLM request; 0 for a priced tool call (spend, not request volume)
    scopes: tuple[str, ...]
    charges: tuple[Charge, ...]  # to the counters now
    later: tuple[Charge, ...]  # to the counters with the spend book's next batch
    tokens_used: tuple[TokenSettle, ...]

    @property
    def needs_counters(self) -> bool:
        return self.gate.ticket is not None or bool(self.charges) or bool(self.tokens_used)


def _tracked(governance: Governance, principal: Principal, metadata: dict[str, str]) -> tuple[str, ...]:
    """The scopes a caller's spend is recorded under: org, workspace, key and tracked metadata values."""
    return (
        governance.org_scope,
        f"ws:{principal.workspace_id}",
        f"key:{principal.key_id}",
        *(metadata_scope(k, v) for k, v in metadata.items() if k in governance.metadata),
    )


def route_targets(route: Any) -> list[tuple[str, str, str]]:
    """(integration, model, provider) of every target a route may use."""
    return [(t.credential.name, t.model, t.credential.provider) for t in route.targets]


def _limit_headers(windows: Sequence[WindowCheck], remaining: Sequence[float]) -> Headers:
    headers: Headers = []
    requests = [(w, r) for w, r in zip(windows, remaining, strict=False) if not w.tokens]
    tokens = [(w, r) for w, r in zip(windows, remaining, strict=False) if w.tokens]
    if requests:
        window, left = min(requests, key=lambda pair: pair[1])
        headers.append((b"x-ratelimit-limit-requests", str(window.limit).encode()))
        headers.append((b"x-ratelimit-remaining-requests", str(max(0, int(left))).encode()))
    if tokens:
        window, left = min(tokens, key=lambda pair: pair[1])
        headers.append((b"x-ratelimit-limit-tokens", str(window.limit).encode()))
        headers.append((b"x-ratelimit-remaining-tokens", str(max(0, int(left))).encode()))
    return headers


def _describe(scope: str) -> str:
    kind, _, rest = scope.partition(":")
    return {
        "org": "organization",
        "ws": "workspace",
        "key": "key",
        "int": "integration",
        "meta": "metadata",
    }.get(kind, kind) + f" {rest}"
