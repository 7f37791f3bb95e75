"""Drive the strategy engine in-process: fake upstreams, a fake clock, no sockets, no sleeping."""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import orjson

from lockgate.gateway.attempts import Call, Success, UpstreamResponse
from lockgate.gateway.conditions import MatchContext
from lockgate.gateway.health import HealthBoard
from lockgate.gateway.routing import RouteTable
from lockgate.gateway.strategies import Engine
from lockgate.providers.base import Credential, UpstreamRequest
from lockgate.telemetry.records import RequestRecord

NAMES = ("a", "b", "c", "d")
# What a fake upstream does on its n-th call: a status, (status, headers), or an exception to raise.
Outcome = int | tuple[int, dict[str, str]] | Exception


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class FakeUpstreams:
    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()
        self.behaviour: dict[str, Callable[[int], Outcome]] = {}

    def set(self, name: str, outcome: Outcome | Callable[[int], Outcome]) -> None:
        self.behaviour[name] = outcome if callable(outcome) else (lambda n, o=outcome: o)

    async def __call__(
        self, client: Any, target: Any, request: Any, *, stream: bool, time_limit: float
    ) -> Any:
        name = target.credential.name
        self.calls[name] += 1
        outcome = self.behaviour.get(name, lambda n: 200)(self.calls[name])
        if isinstance(outcome, Exception):
            raise outcome
        status, headers = outcome if isinstance(outcome, tuple) else (outcome, {})
        body = (
            b'{"ok": true}' if status < 400 else orjson.dumps({"error": {"message": f"{name} says {status}"}})
        )
        return UpstreamResponse(status, SimpleNamespace(headers=headers), body)


class Kit:
    """A route table over four fake OpenAI-dialect integrations (a-d) and an engine on fakes."""

    def __init__(self, seed: int = 7) -> None:
        creds = [Credential(n, "openai", f"http://{n}.test/v1", "sk") for n in NAMES]
        self.table = RouteTable(creds)
        self.clock = Clock()
        self.sleeps: list[float] = []
        self.advance_on_sleep = True
        self.upstreams = FakeUpstreams()
        self.health = HealthBoard(clock=self.clock)
        self.engine = Engine(
            None,  # type: ignore[arg-type]  # the fake send never touches a client
            health=self.health,
            rng=random.Random(seed),
            sleep=self._sleep,
            clock=self.clock,
            send=self.upstreams,
        )

    async def _sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        if self.advance_on_sleep:
            self.clock.now += seconds

    def call(self, metadata: dict[str, str] | None = None, params: dict[str, Any] | None = None) -> Call:
        return Call(
            build=lambda target, leaf: UpstreamRequest(target.credential.base_url, {}, b"{}"),
            accept=None,
            stream=False,
            client_model="gpt-4o-mini",
            match=MatchContext(metadata or {}, params or {"model": "gpt-4o-mini"}, "/v1/chat/completions"),
            record=RequestRecord(id="req_test", created_at=0.0, endpoint="chat"),
            deadline=self.clock() + 60.0,
        )

    async def run(self, config: dict[str, Any], call: Call | None = None) -> tuple[Success, Call]:
        call = call or self.call()
        plan = self.table.plan("gpt-4o-mini", orjson.dumps(config).decode())
        return await self.engine.run(plan, call), call


def leaf(integration: str, **extra: Any) -> dict[str, Any]:
    return {"provider": f"@{integration}", "override_params": {"model": "gpt-4o-mini"}, **extra}
