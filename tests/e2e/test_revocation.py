"""Revoking a key stops it on every worker of `lockgate serve --workers 2` within a second,
by the version poll alone and with Redis notices."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from tests.e2e.test_cli import spawn, wait_ready
from tests.gateway_harness import free_port

ADMIN_KEY = "lga-e2e-admin-key"
CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hello"}]}


def _serve(tmp: Path, extra_env: dict[str, str]) -> Iterator[str]:
    mock_port, port = free_port(), free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.endswith("_API_KEY")},
        "LOCKGATE_MOCK_URL": f"http://127.0.0.1:{mock_port}",
        "LOCKGATE_DATABASE_URL": f"sqlite:///{tmp / 'e2e.db'}",
        "LOCKGATE_ADMIN_KEY": ADMIN_KEY,
        **extra_env,
    }
    mock = spawn("mock-provider", "--port", str(mock_port), env=env)
    approximate = [] if "LOCKGATE_REDIS_URL" in extra_env else ["--approximate-limits"]
    gateway = spawn(
        "serve",
        "--port",
        str(port),
        "--workers",
        "2",
        *approximate,
        "--config",
        "examples/demo.yaml",
        env=env,
    )
    try:
        wait_ready(f"http://127.0.0.1:{mock_port}/__mock/health", mock)
        wait_ready(f"http://127.0.0.1:{port}/readyz", gateway)
        yield f"http://127.0.0.1:{port}"
    finally:
        for process in (gateway, mock):
            process.terminate()
            process.wait(10)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    yield from _serve(tmp_path_factory.mktemp("revoke"), {})


@pytest.fixture(scope="module")
def served_with_redis(tmp_path_factory: pytest.TempPathFactory, redis_url: str) -> Iterator[str]:
    yield from _serve(tmp_path_factory.mktemp("revoke-redis"), {"LOCKGATE_REDIS_URL": redis_url})


def _statuses(url: str, key: str, n: int = 12) -> set[int]:
    """Fresh connections, so requests spread over both worker processes."""
    found = set()
    for _ in range(n):
        with httpx.Client(timeout=10) as http:
            reply = http.post(
                url + "/v1/chat/completions", json=CHAT, headers={"authorization": f"Bearer {key}"}
            )
            found.add(reply.status_code)
    return found


def _wait_for(condition: Callable[[], bool], what: str, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


@pytest.mark.parametrize("fixture", ["served", "served_with_redis"])
def test_revoked_key_stops_on_every_worker_within_a_second(
    fixture: str, request: pytest.FixtureRequest
) -> None:
    url = request.getfixturevalue(fixture)
    admin = httpx.Client(
        base_url=url + "/admin/v1", headers={"authorization": f"Bearer {ADMIN_KEY}"}, timeout=10
    )
    created = admin.post("/keys", json={"name": f"e2e-{fixture}"})
    assert created.status_code == 201, created.text
    key = created.json()["key"]
    # The worker that did not make the key picks it up on its next version poll (every 0.5 s).
    _wait_for(lambda: _statuses(url, key) == {200}, "the new key to work on every worker")

    assert admin.post(f"/keys/{created.json()['id']}/revoke").status_code == 200
    revoked_at = time.monotonic()
    # Promised within a second (0.5 s poll, or at once by Redis notice). Tests assert no timings on
    # this shared 2-core machine: they wait with slack, and the delay seen is printed for the note.
    _wait_for(lambda: _statuses(url, key) == {401}, "the revoked key to be refused everywhere")
    print(f"revocation seen on every worker after {time.monotonic() - revoked_at:.2f} s")
    admin.close()
