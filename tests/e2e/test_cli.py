"""The CLI as users run it: `lockgate mock-provider` and `lockgate serve` as real processes."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.gateway_harness import free_port

ROOT = Path(__file__).resolve().parents[2]


def wait_ready(url: str, process: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(
                f"process exited with {process.returncode}: {process.stdout.read() if process.stdout else ''}"
            )
        try:
            if httpx.get(url, timeout=0.5).status_code < 500:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise TimeoutError(url)


def spawn(*args: str, env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "lockgate", *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


@dataclass
class Served:
    url: str
    database_url: str


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    tmp = tmp_path_factory.mktemp("cli")
    mock_port, port = free_port(), free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.endswith("_API_KEY")},
        "LOCKGATE_MOCK_URL": f"http://127.0.0.1:{mock_port}",
        "LOCKGATE_DATABASE_URL": f"sqlite:///{tmp / 'cli.db'}",
        "LOCKGATE_MASTER_KEY": "lg-cli-test",
    }
    mock = spawn("mock-provider", "--port", str(mock_port), env=env)
    # Two workers without Redis: limits would be per worker, which serve refuses unless told.
    gateway = spawn(
        "serve",
        "--port",
        str(port),
        "--workers",
        "2",
        "--approximate-limits",
        "--config",
        "examples/demo.yaml",
        env=env,
    )
    try:
        wait_ready(f"http://127.0.0.1:{mock_port}/__mock/health", mock)
        wait_ready(f"http://127.0.0.1:{port}/readyz", gateway)
        yield Served(f"http://127.0.0.1:{port}", env["LOCKGATE_DATABASE_URL"])
    finally:
        for process in (gateway, mock):
            process.terminate()
            process.wait(10)


def test_demo_config_with_two_workers(served: Served) -> None:
    headers = {"authorization": "Bearer lg-cli-test"}
    with httpx.Client(base_url=served.url, headers=headers, timeout=10) as http:
        for _ in range(6):  # spread over both workers
            reply = http.post(
                "/v1/chat/completions",
                json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hello"}]},
            )
            assert reply.status_code == 200, reply.text
            assert reply.json()["choices"][0]["message"]["content"].startswith("Mock reply to: Hello")
        message = http.post(
            "/v1/messages",
            json={
                "model": "claude-sonnet",
                "max_tokens": 50,
                "messages": [{"role": "user", "content": "Hi"}],
            },
            headers={"anthropic-version": "2023-06-01"},
        )
        assert message.status_code == 200 and message.json()["type"] == "message"
        assert http.get("/v1/models").json()["data"]
        assert httpx.post(served.url + "/v1/chat/completions", json={}).status_code == 401


def test_metrics_add_up_across_workers(served: Served) -> None:
    """Whichever of the two workers answers a scrape, it reports both workers' counts."""

    def requests_total() -> float:
        text = httpx.get(served.url + "/metrics", timeout=10).text  # a new connection each time
        return sum(
            s.value
            for family in text_string_to_metric_families(text)
            for s in family.samples
            if s.name == "lockgate_requests_total"
        )

    before = requests_total()
    for _ in range(8):  # new connections: the kernel spreads them over both workers
        reply = httpx.post(
            served.url + "/v1/embeddings",
            json={"model": "text-embedding-3-small", "input": "count me"},
            headers={"authorization": "Bearer lg-cli-test"},
        )
        assert reply.status_code == 200
    assert [requests_total() - before for _ in range(6)] == [8] * 6


def test_logs_tail_shows_records(served: Served) -> None:
    with httpx.Client(base_url=served.url, headers={"authorization": "Bearer lg-cli-test"}) as http:
        reply = http.post("/v1/embeddings", json={"model": "text-embedding-3-small", "input": "tail me"})
    request_id = reply.headers["x-lockgate-request-id"]
    deadline = time.monotonic() + 10
    while True:  # the writer flushes about every second
        out = subprocess.run(
            [
                sys.executable,
                "-m",
                "lockgate",
                "logs",
                "tail",
                "-n",
                "50",
                "--database-url",
                served.database_url,
            ],
            capture_output=True,
            text=True,
            env={**os.environ, "COLUMNS": "250"},
            cwd=ROOT,
            check=True,
        )
        if request_id[-12:] in out.stdout or time.monotonic() > deadline:
            break
        time.sleep(0.3)
    line = next(line for line in out.stdout.splitlines() if request_id[-12:] in line)
    assert "embeddings" in line and "text-embedding-3-small" in line and "200" in line


def test_bad_config_fails_fast_with_the_field_named(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("integrations: [{name: x, provider: nosuch}]\n")
    out = subprocess.run(
        [sys.executable, "-m", "lockgate", "serve", "--port", str(free_port()), "--config", str(bad)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=30,
        check=False,
    )
    assert out.returncode == 2
    assert "unknown provider" in out.stdout
