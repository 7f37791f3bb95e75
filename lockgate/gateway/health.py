"""Per-target health: circuit breaker, retry budget, latency and failure averages.

State lives in this worker process's memory (one ``HealthBoard`` per worker):
each worker learns about a failing provider from its own traffic within a few
requests, which is cheaper than a shared round trip per attempt and good enough
for a breaker. The board is bounded; the least recently added target is
forgotten first.

Circuit breaker (opt-in per route with ``circuit_breaker``): closed until
``failure_threshold`` consecutive failures, or a failure ratio of at least
``failure_ratio`` over a tumbling ``window_ms`` with ``minimum_requests`` seen;
then open for ``cooldown_ms``; then half-open, where exactly one request (the
probe) may go. A probe that succeeds closes the circuit; one that fails opens it
for another cooldown. Failures are timeouts, connection errors, unreadable bodies
and ``failure_status_codes``; other 4xx answers show the target is alive.

Retry budget: retries to a target may add at most ``ratio`` (20%) to its
request volume over a sliding ``window`` (10 s, two-bucket estimate), plus a
floor of ``min_per_window`` so a quiet target can still retry. In an outage this
caps the load retries add instead of multiplying it by ``attempts``.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from lockgate.gateway.route_config import CircuitBreakerConfig

_MAX_TARGETS = 10_000
_EWMA_ALPHA = 0.2


class TargetHealth:
    __slots__ = (
        "budget_prev",
        "budget_requests",
        "budget_retries",
        "budget_start",
        "consecutive",
        "fail_rate",
        "latency_ms",
        "open_until",
        "probing",
        "window_failures",
        "window_start",
        "window_total",
    )

    def __init__(self, now: float) -> None:
        self.consecutive = 0
        self.open_until: float | None = None  # None: closed
        self.probing = False
        self.window_start = now
        self.window_total = 0
        self.window_failures = 0
        self.latency_ms: float | None = None  # EWMA of successful attempts
        self.fail_rate = 0.0  # EWMA of failures (1) and successes (0)
        self.budget_start = now
        self.budget_requests = 0
        self.budget_retries = 0
        self.budget_prev = (0, 0)  # (requests, retries) of the previous window


class HealthBoard:
    def __init__(
        self,
        *,
        clock: Callable[[], float] = time.monotonic,
        retry_ratio: float = 0.2,
        retry_floor: int = 10,
        budget_window: float = 10.0,
    ) -> None:
        self._clock = clock
        self._targets: dict[str, TargetHealth] = {}
        self._retry_ratio = retry_ratio
        self._retry_floor = retry_floor
        self._budget_window = budget_window

    def get(self, key: str) -> TargetHealth:
        health = self._targets.get(key)
        if health is None:
            if len(self._targets) >= _MAX_TARGETS:
                del self._targets[next(iter(self._targets))]
            health = self._targets[key] = TargetHealth(self._clock())
        return health

    def peek(self, key: str) -> TargetHealth | None:
        return self._targets.get(key)

    # --- circuit breaker -------------------------------------------------------------

    def available(self, key: str, breaker: CircuitBreakerConfig | None) -> bool:
        """Would ``admit`` let a request through? (No side effects: for load balancing.)"""
        health = self._targets.get(key)
        if breaker is None or health is None or health.open_until is None:
            return True
        return not health.probing and self._clock() >= health.open_until

    def admit(self, key: str, breaker: CircuitBreakerConfig | None) -> bool:
        """May a request go to this target now? In half-open state only the first caller may."""
        if breaker is None:
            return True
        health = self.get(key)
        if health.open_until is None:
            return True
        if health.probing or self._clock() < health.open_until:
            return False
        health.probing = True
        return True

    def open_circuits(self) -> int:
        """Targets whose circuit is open or half-open now (for /metrics)."""
        return sum(1 for health in self._targets.values() if health.open_until is not None)

    def is_open(self, key: str) -> bool:
        health = self._targets.get(key)
        return health is not None and health.open_until is not None

    def success(self, key: str, latency_ms: float | None, breaker: CircuitBreakerConfig | None) -> None:
        health = self.get(key)
        health.consecutive = 0
        health.open_until = None
        health.probing = False
        self._count(health, breaker, failed=False)
        health.fail_rate *= 1 - _EWMA_ALPHA
        if latency_ms is not None:
            previous = health.latency_ms
            health.latency_ms = (
                latency_ms if previous is None else previous + _EWMA_ALPHA * (latency_ms - previous)
            )

    def failure(self, key: str, breaker: CircuitBreakerConfig | None) -> None:
        health = self.get(key)
        health.consecutive += 1
        self._count(health, breaker, failed=True)
        health.fail_rate += _EWMA_ALPHA * (1 - health.fail_rate)
        if breaker is None:
            return
        now = self._clock()
        if health.probing or (health.open_until is not None and now >= health.open_until):
            health.probing = False
            health.open_until = now + breaker.cooldown_ms / 1000
            return
        if health.open_until is not None:
            return  # already open (a request admitted before it opened came back)
        tripped = health.consecutive >= breaker.failure_threshold
        if breaker.failure_ratio is not None and health.window_total >= breaker.minimum_requests:
            tripped = tripped or health.window_failures / health.window_total >= breaker.failure_ratio
        if tripped:
            health.open_until = now + breaker.cooldown_ms / 1000
            health.window_start, health.window_total, health.window_failures = now, 0, 0

    def neutral(self, key: str) -> None:
        """The target answered with an error that is the caller's (4xx): it is alive."""
        health = self.get(key)
        if health.probing:
            health.probing = False
            health.open_until = None
            health.consecutive = 0

    def release(self, key: str) -> None:
        """An admitted request ended without a verdict (cancelled): let another probe go."""
        health = self._targets.get(key)
        if health is not None:
            health.probing = False

    def _count(self, health: TargetHealth, breaker: CircuitBreakerConfig | None, *, failed: bool) -> None:
        if breaker is None:
            return  # the ratio window only matters to a breaker
        now = self._clock()
        if now - health.window_start >= breaker.window_ms / 1000:
            health.window_start, health.window_total, health.window_failures = now, 0, 0
        health.window_total += 1
        health.window_failures += failed

    # --- retry budget ----------------------------------------------------------------

    def note_request(self, key: str) -> None:
        health = self._budget(key)
        health.budget_requests += 1

    def spend_retry(self, key: str) -> bool:
        """Take one retry from the target's budget; False when the budget is spent."""
        health = self._budget(key)
        elapsed = (self._clock() - health.budget_start) / self._budget_window
        carry = max(0.0, 1.0 - elapsed)
        prev_requests, prev_retries = health.budget_prev
        requests = health.budget_requests + prev_requests * carry
        retries = health.budget_retries + prev_retries * carry
        if retries + 1 > requests * self._retry_ratio + self._retry_floor:
            return False
        health.budget_retries += 1
        return True

    def _budget(self, key: str) -> TargetHealth:
        health = self.get(key)
        now = self._clock()
        if now - health.budget_start >= self._budget_window:
            # Two-bucket sliding window: the finished window carries over, fading linearly.
            fresh = now - health.budget_start >= 2 * self._budget_window
            health.budget_prev = (0, 0) if fresh else (health.budget_requests, health.budget_retries)
            health.budget_start = now if fresh else health.budget_start + self._budget_window
            health.budget_requests = health.budget_retries = 0
        return health
