"""The strategy engine: walks a compiled plan and picks which target to attempt next.

Modes, nested to any depth:
- ``single``: the first child.
- ``fallback``: children in order. A failed child hands over to the next when its
  error is a timeout, a connection error, an unreadable answer, a skipped target
  (open circuit), a request this provider cannot express, or an upstream status
  in ``on_status_codes`` (any status when the config gives none, as in Portkey).
- ``loadbalance``: one child drawn by weight; if it fails the way a fallback would
  move on (default: ``FALLBACK_STATUSES``), the next is drawn from the rest.
  Children whose circuit is open are skipped. The draw prefers healthy, fast
  targets: a leaf's weight is multiplied by ``max(0.1, 1 - failure_rate)``
  (failure EWMA) and, when its latency EWMA is more than 1.5x its fastest
  sibling's (each padded by 100 ms, so noise on fast targets does not count),
  by ``max(0.1, 1.5 / slowness)``. A target with no history keeps its weight.
- ``conditional``: the first condition whose query matches names the child, else
  ``default``; no match and no default is the client's error (400).

A single target's retries, timeouts and breaker are ``attempts.py``'s job.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from typing import Any

from lockgate.errors import (
    BadRequest,
    DeadlineExceeded,
    LockgateError,
    TargetUnavailable,
    UpstreamError,
    UpstreamProtocolError,
    UpstreamTimeout,
    UpstreamUnreachable,
)
from lockgate.gateway.attempts import Attempts, Call, SendOnce, Success, UpstreamClient, send_once
from lockgate.gateway.health import HealthBoard
from lockgate.gateway.plan import Branch, Leaf, Node, Plan

_LATENCY_PAD_MS = 100.0
_SLOWNESS_TOLERATED = 1.5
_MIN_FACTOR = 0.1
_ALREADY_TRIED = "already_tried"  # a stream's continuation skips targets that failed it


class Engine:
    def __init__(
        self,
        client: UpstreamClient,
        *,
        health: HealthBoard | None = None,
        rng: random.Random | None = None,
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
        clock: Callable[[], float] = time.monotonic,
        send: SendOnce = send_once,
    ) -> None:
        self.client = client
        self.health = health or HealthBoard(clock=clock)
        self.rng = rng or random.Random()
        self.attempts = Attempts(client, self.health, rng=self.rng, sleep=sleep, clock=clock, send=send)

    async def run(self, plan: Plan, call: Call) -> Success:
        """The first successful attempt along the plan, or the last error (504 if all timed out)."""
        try:
            return await self._node(plan.root, call)
        except UpstreamError as exc:
            attempts = len(call.record.attempt_log)
            if attempts and call.timeouts == attempts and not isinstance(exc, UpstreamTimeout):
                raise UpstreamTimeout(
                    f"Every attempt timed out ({attempts}); last: {exc.message}", provider=exc.provider
                ) from exc
            raise

    async def _node(self, node: Node, call: Call) -> Success:
        if isinstance(node, Leaf):
            target = node.target(call.client_model)
            if target.key in call.exclude:
                raise TargetUnavailable(
                    f"{target.label} was already tried.", provider=target.credential.name, code=_ALREADY_TRIED
                )
            return await self.attempts.on_target(node, target, call)
        if node.mode == "conditional":
            return await self._node(self._choose(node, call), call)
        if node.mode == "single":
            return await self._node(node.children[0], call)
        order = node.children if node.mode == "fallback" else self._draw(node, call)
        last: LockgateError | None = None
        for child in order:
            if last is not None and last.code != _ALREADY_TRIED:
                call.record.fallbacks += 1
            try:
                return await self._node(child, call)
            except LockgateError as exc:
                if not moves_on(exc, node.move_on):
                    raise
                last = exc
        assert last is not None
        raise last

    def _choose(self, node: Branch, call: Call) -> Node:
        for predicate, index in node.conditions:
            if predicate(call.match):
                return node.children[index]
        if node.default is None:
            raise BadRequest(
                "No condition of the conditional route matched this request, and it has no default.",
                param="x-lockgate-config",
                code="no_condition_matched",
            )
        return node.children[node.default]

    def _draw(self, node: Branch, call: Call) -> list[Node]:
        """Children in weighted-random order (without replacement), unavailable ones left out."""
        pool = [(child, w) for child, w in self._weights(node, call) if w > 0]
        if not pool:
            raise TargetUnavailable("Every target of the loadbalance group is unavailable (open circuits).")
        order: list[Node] = []
        while pool:
            point = self.rng.random() * sum(w for _, w in pool)
            for index, (child, weight) in enumerate(pool):
                point -= weight
                if point < 0 or index == len(pool) - 1:
                    order.append(child)
                    del pool[index]
                    break
        return order

    def _weights(self, node: Branch, call: Call) -> list[tuple[Node, float]]:
        keys: list[str | None] = []
        for child in node.children:
            keys.append(child.target(call.client_model).key if isinstance(child, Leaf) else None)
        latencies = [
            h.latency_ms for k in keys if k is not None and (h := self.health.peek(k)) and h.latency_ms
        ]
        fastest = min(latencies) if latencies else None
        weighted: list[tuple[Node, float]] = []
        for child, key in zip(node.children, keys, strict=True):
            if child.weight <= 0 or not self._available(child, key, call):
                continue
            weighted.append((child, child.weight * (self._factor(key, fastest) if key else 1.0)))
        return weighted

    def _available(self, node: Node, key: str | None, call: Call) -> bool:
        if isinstance(node, Leaf):
            assert key is not None
            return key not in call.exclude and self.health.available(key, node.policy.breaker)
        if node.mode == "conditional":
            return True
        return any(
            self._available(c, c.target(call.client_model).key if isinstance(c, Leaf) else None, call)
            for c in node.children
        )

    def _factor(self, key: str, fastest_ms: float | None) -> float:
        health = self.health.peek(key)
        if health is None:
            return 1.0
        factor = max(_MIN_FACTOR, 1.0 - health.fail_rate)
        if health.latency_ms is not None and fastest_ms is not None:
            slowness = (health.latency_ms + _LATENCY_PAD_MS) / (fastest_ms + _LATENCY_PAD_MS)
            if slowness > _SLOWNESS_TOLERATED:
                factor *= max(_MIN_FACTOR, _SLOWNESS_TOLERATED / slowness)
        return factor


def moves_on(error: LockgateError, statuses: frozenset[int] | None) -> bool:
    """Does this child's failure hand the request to the next child?"""
    if isinstance(error, DeadlineExceeded):
        return False
    if isinstance(
        error, BadRequest | TargetUnavailable | UpstreamTimeout | UpstreamUnreachable | UpstreamProtocolError
    ):
        return True
    if isinstance(error, UpstreamError):
        return statuses is None or error.upstream_status is None or error.upstream_status in statuses
    return False
