"""Three gateway processes sharing Redis and PostgreSQL hold one budget and one rate limit exactly,
and keep every settled dollar through a Redis restart and a restart of the gateways."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import yaml

from lockgate.catalog import Catalog, cost
from tests.e2e.test_cli import spawn, wait_ready
from tests.gateway_harness import free_port

ADMIN = "lga-e2e-limits-admin"
BUDGET_KEY = "lg-e2e-budget-key-0123456789"
RPM_KEY = "lg-e2e-rpm-key-0123456789"
RESTART_KEY = "lg-e2e-restart-key-0123456789"
O1 = Catalog.default().lookup("o1", "openai")
# ~400 prompt tokens: at o1 prices (15/60 per M) about $0.0075 a request, so 200 requests would
# spend ~$1.5 against a $1.00 budget.
FILLER = "The quick brown fox jumps over the lazy dog while the budget ticks. " * 26


class RedisServer:
    """A Redis on a fixed port that a test can stop and start again (no persistence: a restart
    loses everything, the worst case for the counters)."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self._dir = tempfile.mkdtemp(prefix="lockgate-e2e-redis-")
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            pytest.skip("redis-server is not installed; run `make test`")
        args = [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        self._process = subprocess.Popen(
            [*args, "--dir", self._dir], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        import socket

        for _ in range(200):
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.1):
                    return
            except OSError:
                time.sleep(0.05)
        raise TimeoutError("redis did not start")

    def stop(self) -> None:
        if self._process is not None:
            self._process.terminate()
            self._process.wait(10)
            self._process = None

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self._dir, ignore_errors=True)


@dataclass
class Cluster:
    urls: list[str]
    redis: RedisServer
    database_url: str
    env: dict[str, str]
    config: Path
    processes: list[subprocess.Popen[str]]

    def start(self) -> None:
        ports = [free_port() for _ in range(3)]
        self.processes = [
            spawn("serve", "--port", str(p), "--config", str(self.config), env=self.env) for p in ports
        ]
        self.urls = [f"http://127.0.0.1:{p}" for p in ports]
        for url, process in zip(self.urls, self.processes, strict=True):
            wait_ready(url + "/readyz", process, timeout=40)

    def stop(self) -> None:
        for process in self.processes:
            process.terminate()  # a graceful stop: the last ledger batch is written
        for process in self.processes:
            process.wait(20)

    def usage(self, scope: str) -> dict[str, Any]:
        reply = httpx.get(
            self.urls[0] + "/admin/v1/usage",
            params={"scope": scope},
            headers={"authorization": f"Bearer {ADMIN}"},
            timeout=10,
        )
        assert reply.status_code == 200, reply.text
        return reply.json()

    def key_id(self, name: str) -> str:
        reply = httpx.get(
            self.urls[0] + "/admin/v1/keys",
            params={"name": name},
            headers={"authorization": f"Bearer {ADMIN}"},
            timeout=10,
        )
        return str(reply.json()["data"][0]["id"])


@contextmanager
def _database(postgres_url: str) -> Iterator[str]:
    name = f"e2e_limits_{os.getpid()}_{free_port()}"
    base = postgres_url.rsplit("/", 1)[0]
    psql = [
        "psql",
        postgres_url,
        "-v",
        "ON_ERROR_STOP=1",
        "-q",
        "-c",
    ]
    if shutil.which("psql") is None:
        bin_dir = next(Path("/usr/lib/postgresql").glob("*/bin"))
        psql[0] = str(bin_dir / "psql")
    subprocess.run([*psql, f"CREATE DATABASE {name}"], check=True)
    yield f"{base}/{name}"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory, postgres_url: str) -> Iterator[Cluster]:
    tmp = tmp_path_factory.mktemp("replicas")
    redis = RedisServer()
    redis.start()
    mock_port = free_port()
    config = {
        "integrations": [
            {
                "name": "mock-openai",
                "provider": "openai",
                "base_url": f"http://127.0.0.1:{mock_port}/v1",
                "api_key": "k",
            }
        ],
        "models": [
            {"alias": "pricey", "targets": ["@mock-openai/o1"]},
            {"alias": "cheap", "targets": ["@mock-openai/gpt-4o-mini"]},
        ],
        "keys": [
            {"name": "budgeted", "key": BUDGET_KEY},
            {"name": "limited", "key": RPM_KEY},
            {"name": "restarted", "key": RESTART_KEY},
        ],
        "budgets": [
            {"name": "one-dollar", "scope": "key:default/budgeted", "amount_usd": 1.0, "period": "month"},
            {"name": "restart-budget", "scope": "key:default/restarted", "amount_usd": 0.25, "period": "day"},
        ],
        "rate_limits": [{"name": "hundred-rpm", "scope": "key:default/limited", "requests_per_minute": 100}],
    }
    path = tmp / "lockgate.yaml"
    path.write_text(yaml.safe_dump(config))
    with _database(postgres_url) as database_url:
        env = {
            **{k: v for k, v in os.environ.items() if not k.endswith("_API_KEY")},
            "LOCKGATE_DATABASE_URL": database_url,
            "LOCKGATE_REDIS_URL": redis.url,
            "LOCKGATE_SECRET_KEY": "e2e-limits-secret",
            "LOCKGATE_ADMIN_KEY": ADMIN,
            "LOCKGATE_LEDGER_FLUSH_INTERVAL": "0.2",
            # Two shared cores run three gateways, the mock, Redis, PostgreSQL and the client: give
            # Redis calls more than the default 0.25 s before failing closed.
            "LOCKGATE_STATE_TIMEOUT": "2",
            "LOCKGATE_LOG_FLUSH_INTERVAL": "0.2",
        }
        mock = spawn("mock-provider", "--port", str(mock_port), "--latency-ms", "20", env=env)
        wait_ready(f"http://127.0.0.1:{mock_port}/__mock/health", mock)
        nodes = Cluster([], redis, database_url, env, path, [])
        try:
            nodes.start()
            yield nodes
        finally:
            nodes.stop()
            mock.terminate()
            mock.wait(10)
            redis.close()


def _body(n: int, *, stream: bool, model: str = "pricey") -> dict[str, Any]:
    body: dict[str, Any] = {
        "model": model,
        "messages": [{"role": "user", "content": f"Request {n}. {FILLER[: 1500 + (n % 7) * 40]}"}],
        "max_tokens": 30,
    }
    if stream:
        body.update(stream=True, stream_options={"include_usage": True})
    return body


async def _one(
    http: httpx.AsyncClient, url: str, key: str, body: dict[str, Any]
) -> tuple[int, dict[str, Any] | None]:
    """Status and the usage the upstream reported (read from the answer the client got)."""
    headers = {"authorization": f"Bearer {key}"}
    async with http.stream("POST", url + "/v1/chat/completions", json=body, headers=headers) as reply:
        raw = await reply.aread()
    if reply.status_code != 200:
        return reply.status_code, None
    if not body.get("stream"):
        return 200, orjson.loads(raw)["usage"]
    events = [
        line[6:] for line in raw.decode().splitlines() if line.startswith("data: ") and line != "data: [DONE]"
    ]
    return 200, next(orjson.loads(e)["usage"] for e in reversed(events) if orjson.loads(e).get("usage"))


async def _burst(
    urls: list[str], key: str, bodies: list[dict[str, Any]], *, together: int | None = None, gap: float = 0.01
) -> list[tuple[int, dict[str, Any] | None]]:
    """All requests in parallel, round robin over the gateways. The first ``together`` leave at once;
    the rest follow ``gap`` seconds apart, so spend (not only reservations) reaches the budget."""
    limits = httpx.Limits(max_connections=400, max_keepalive_connections=400)
    first = len(bodies) if together is None else together

    async def send(
        http: httpx.AsyncClient, n: int, body: dict[str, Any]
    ) -> tuple[int, dict[str, Any] | None]:
        await asyncio.sleep(max(0, n - first + 1) * gap)
        return await _one(http, urls[n % len(urls)], key, body)

    async with httpx.AsyncClient(timeout=60, limits=limits) as http:
        return await asyncio.gather(*(send(http, n, b) for n, b in enumerate(bodies)))


def _spent(results: list[tuple[int, dict[str, Any] | None]]) -> float:
    return sum(cost(O1, usage) or 0.0 for status, usage in results if status == 200)


def _settled(cluster: Cluster, scope: str, expected: float) -> dict[str, Any]:
    """/usage once the last ledger batches are in (they flush every 0.2 s)."""
    deadline = time.monotonic() + 10
    while True:
        usage = cluster.usage(scope)
        if abs(sum(d["cost_usd"] for d in usage["daily"]) - expected) < 1e-9 or time.monotonic() > deadline:
            return usage
        time.sleep(0.2)


def test_one_budget_across_three_processes_under_200_parallel_requests(cluster: Cluster) -> None:
    bodies = [_body(n, stream=n % 2 == 0) for n in range(200)]
    results = asyncio.run(_burst(cluster.urls, BUDGET_KEY, bodies, together=50))
    statuses = [s for s, _ in results]
    assert set(statuses) <= {200, 402}, statuses
    assert statuses.count(402) > 0  # the budget ran out part way
    passed_streams = sum(1 for n, (s, _) in enumerate(results) if s == 200 and n % 2 == 0)
    assert passed_streams > 0
    reported = _spent(results)
    # Every admitted request reserved its worst case first, so spend never went past the budget.
    assert 0.5 < reported <= 1.0
    usage = _settled(cluster, f"key:{cluster.key_id('budgeted')}", reported)
    assert usage["counters"] == "redis"
    assert usage["spend_usd"]["month"] == pytest.approx(reported, abs=1e-9)  # the shared counter
    assert sum(d["cost_usd"] for d in usage["daily"]) == pytest.approx(reported, abs=1e-9)  # the ledger
    assert usage["reserved_usd"] == pytest.approx(0.0, abs=1e-9)  # nothing left held
    assert sum(d["requests"] for d in usage["daily"]) == statuses.count(200)


def test_one_rate_limit_across_three_processes_passes_exactly_100_of_300(cluster: Cluster) -> None:
    bodies = [_body(n, stream=n % 3 == 0, model="cheap") for n in range(300)]
    statuses = [s for s, _ in asyncio.run(_burst(cluster.urls, RPM_KEY, bodies))]
    assert statuses.count(200) == 100
    assert statuses.count(429) == 200, sorted(set(statuses))


def test_settled_spend_survives_a_redis_restart_and_a_gateway_restart(cluster: Cluster) -> None:
    scope = f"key:{cluster.key_id('restarted')}"
    before = asyncio.run(
        _burst(
            cluster.urls, RESTART_KEY, [_body(n, stream=n % 2 == 1) for n in range(8)], together=1, gap=0.05
        )
    )
    assert {s for s, _ in before} == {200}
    cluster.redis.stop()  # mid-run: every counter is lost
    during = asyncio.run(_burst(cluster.urls, RESTART_KEY, [_body(n, stream=False) for n in range(3)]))
    assert {s for s, _ in during} == {503}  # fail closed: no counters, no admission
    cluster.redis.start()
    time.sleep(1.2)  # the gateways wait a second before trying Redis again
    after: list[tuple[int, dict[str, Any] | None]] = []
    for round_ in range(10):  # keep going until the $0.25 budget refuses
        after += asyncio.run(
            _burst(
                cluster.urls,
                RESTART_KEY,
                [_body(round_ * 10 + n, stream=n % 2 == 0) for n in range(10)],
                together=1,
                gap=0.05,
            )
        )
        if any(s == 402 for s, _ in after):
            break
    assert {s for s, _ in after} <= {200, 402} and any(s == 402 for s, _ in after)
    reported = _spent(before) + _spent(after)
    assert reported <= 0.25
    usage = _settled(cluster, scope, reported)
    assert usage["spend_usd"]["day"] == pytest.approx(reported, abs=1e-9)

    cluster.stop()  # and now both at once: gateways down, Redis emptied, gateways up again
    cluster.redis.stop()
    cluster.redis.start()
    cluster.start()
    usage = cluster.usage(scope)
    assert usage["spend_usd"]["day"] == pytest.approx(reported, abs=1e-9)
    assert sum(d["cost_usd"] for d in usage["daily"]) == pytest.approx(reported, abs=1e-9)
    again = asyncio.run(_burst(cluster.urls, RESTART_KEY, [_body(0, stream=False)]))
    assert again[0][0] == 402
