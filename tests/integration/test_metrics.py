"""GET /metrics: parses with the Prometheus client's parser, agrees with the records, stays bounded."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import httpx
import orjson
import pytest
from prometheus_client.parser import text_string_to_metric_families

from lockgate.telemetry.metrics import Metrics
from lockgate.telemetry.records import RequestRecord
from lockgate.testing.mock_provider import MockProviderThread
from tests.gateway_harness import GatewayThread, demo_config

CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def total(values: dict, name: str, **labels: str) -> float:
    return sum(v for (n, ls), v in values.items() if n == name and labels.items() <= dict(ls).items())


def test_metrics_agree_with_the_records(tmp_path: Path, mock: MockProviderThread) -> None:
    with (
        GatewayThread(tmp_path, demo_config(mock.url), demo=True) as gw,
        httpx.Client(base_url=gw.url) as http,
    ):
        for _ in range(3):
            assert http.post("/v1/chat/completions", json=CHAT).status_code == 200
        assert http.post("/v1/chat/completions", json={**CHAT, "stream": True}).status_code == 200
        assert http.post("/v1/chat/completions", json={**CHAT, "model": "claude-sonnet"}).status_code == 200
        assert http.post("/v1/chat/completions", json={**CHAT, "model": "no-such-model"}).status_code == 404
        records = gw.records()
        reply = http.get("/metrics")
        assert reply.status_code == 200 and reply.headers["content-type"].startswith("text/plain")
        values = samples(reply.text)
    openai = {"workspace": "ws_default", "model": "gpt-4o-mini", "provider": "mock-openai"}
    assert total(values, "lockgate_requests_total", status="200", **openai) == 4
    assert total(values, "lockgate_requests_total", status="404") == 1
    assert total(values, "lockgate_requests_total") == len(records) == 6
    assert total(values, "lockgate_request_duration_seconds_count", **openai) == 4
    assert total(values, "lockgate_time_to_first_token_seconds_count") == 1  # the one stream
    assert total(values, "lockgate_tokens_total", type="prompt") == sum(
        r["prompt_tokens"] or 0 for r in records
    )
    assert total(values, "lockgate_tokens_total", type="completion") == sum(
        r["completion_tokens"] or 0 for r in records
    )
    assert total(values, "lockgate_cost_usd_total") == pytest.approx(sum(r["cost_usd"] or 0 for r in records))
    assert total(values, "lockgate_gateway_overhead_seconds_count") == 6
    assert total(values, "lockgate_records_written_total") == 6
    assert total(values, "lockgate_records_dropped_total") == 0
    assert total(values, "lockgate_record_queue_depth") == 0
    assert total(values, "lockgate_config_version") == gw.app.snapshots.current.version >= 1
    assert total(values, "lockgate_open_circuits") == 0


def test_a_metrics_token_closes_the_endpoint(tmp_path: Path, mock: MockProviderThread) -> None:
    token = "scrape-token-0123456789"
    with (
        GatewayThread(tmp_path, demo_config(mock.url), demo=True, metrics_token=token) as gw,
        httpx.Client(base_url=gw.url) as http,
    ):
        for headers in ({}, {"authorization": "Bearer wrong-token"}):
            refused = http.get("/metrics", headers=headers)
            assert refused.status_code == 401, refused.text
            assert refused.headers["www-authenticate"].startswith("Bearer")
            assert refused.json()["error"]["type"] == "authentication_error"
        allowed = http.get("/metrics", headers={"authorization": f"Bearer {token}"})
        assert allowed.status_code == 200
        assert any(f.name == "lockgate_config_version" for f in text_string_to_metric_families(allowed.text))


def test_open_circuits_are_a_gauge(tmp_path: Path, mock: MockProviderThread) -> None:
    """A target whose breaker opened shows on /metrics until it closes again."""
    mock.add_fault(status=503, times=-1, match_model="m-broken")
    down = {"provider": "@mock-openai", "override_params": {"model": "m-broken"}}
    up = {"provider": "@mock-openai", "override_params": {"model": "gpt-4o-mini"}}
    config = {
        "strategy": {"mode": "fallback"},
        "targets": [down, up],
        "circuit_breaker": {"failure_threshold": 2, "cooldown_ms": 600_000},
    }
    with (
        GatewayThread(tmp_path, demo_config(mock.url), demo=True) as gw,
        httpx.Client(base_url=gw.url, headers={"x-lockgate-config": orjson.dumps(config).decode()}) as http,
    ):
        for _ in range(3):
            assert http.post("/v1/chat/completions", json=CHAT).status_code == 200
        values = samples(http.get("/metrics").text)
    assert total(values, "lockgate_open_circuits") == 1


def test_label_sets_are_capped_and_the_total_stays_exact() -> None:
    metrics = Metrics(max_series=2)
    for i in range(5):
        metrics.observe(
            RequestRecord(id=str(i), created_at=0, endpoint="chat", model=f"m{i}", status=200, latency_ms=1)
        )
    values = samples(metrics.render().decode())
    models = {dict(ls)["model"] for (n, ls), _ in values.items() if n == "lockgate_requests_total"}
    assert models == {"m0", "m1", "other"}
    assert (
        total(values, "lockgate_requests_total") == 5
        and total(values, "lockgate_requests_total", model="other") == 3
    )


def test_workers_share_one_view_through_the_multiprocess_directory(tmp_path: Path) -> None:
    """Two worker processes count; a third process answering the scrape sees the sum."""
    worker = textwrap.dedent(
        """
        import sys
        from lockgate.telemetry.metrics import Metrics
        from lockgate.telemetry.records import RequestRecord
        m = Metrics()
        for i in range(int(sys.argv[1])):
            m.observe(RequestRecord(id=str(i), created_at=0, endpoint="chat", workspace_id="w", model="m",
                                    provider="p", status=200, latency_ms=5, prompt_tokens=10))
        m.sync(queued=int(sys.argv[1]), written=0, spilled=0, dropped=0, failures=0, version=7)
        if len(sys.argv) > 2:
            sys.stdout.write(m.render().decode())
        """
    )
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}

    def run(*args: str) -> str:
        done = subprocess.run([sys.executable, "-c", worker, *args], env=env, capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
        return done.stdout

    run("3")
    run("4")
    values = samples(run("0", "scrape"))
    assert total(values, "lockgate_requests_total", workspace="w", status="200") == 7
    assert total(values, "lockgate_tokens_total", type="prompt") == 70
    assert total(values, "lockgate_request_duration_seconds_count") == 7
    assert total(values, "lockgate_config_version") == 7
