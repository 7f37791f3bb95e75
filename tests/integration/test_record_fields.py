"""The request record is complete and right: success, errors, fallback, stream, bodies, guardrails."""

from __future__ import annotations

import csv
import io
import time
from pathlib import Path

import httpx
import orjson
import pytest

from lockgate.testing.mock_provider import MockProviderThread
from tests.admin_harness import admin_client, admin_gateway, ok
from tests.gateway_harness import GatewayThread, demo_config
from tests.integration.guardrail_kit import KEYS, gateway_config

CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Tell me something"}]}
TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


def record_of(gateway: GatewayThread, response: httpx.Response) -> dict:
    request_id = response.headers["x-lockgate-request-id"]
    matching = [r for r in gateway.records() if r["id"] == request_id]
    assert len(matching) == 1, matching
    return matching[0]


def test_success_record_is_complete(gateway: GatewayThread, mock: MockProviderThread) -> None:
    before = time.time()
    with httpx.Client(base_url=gateway.url) as http:
        response = http.post(
            "/v1/chat/completions",
            json=CHAT,
            headers={"traceparent": TRACEPARENT, "x-lockgate-metadata": '{"env": "test", "team": "a"}'},
        )
    assert response.status_code == 200
    r = record_of(gateway, response)
    assert before <= r["created_at"] <= time.time()
    assert (r["endpoint"], r["stream"], r["status"]) == ("chat", False, 200)
    assert (r["workspace_id"], r["key_id"]) == ("ws_default", "anonymous")
    assert (r["requested_model"], r["provider"], r["model"]) == ("gpt-4o-mini", "mock-openai", "gpt-4o-mini")
    assert r["prompt_tokens"] > 0 and r["completion_tokens"] > 0 and r["usage_source"] == "reported"
    assert r["cost_usd"] == pytest.approx(float(response.headers["x-lockgate-cost-usd"]))
    # The client's W3C trace is the record's, and went upstream unchanged (tracing is off here).
    assert r["trace_id"] == "0af7651916cd43dd8448eb211c80319c" and r["span_id"] is None
    assert mock.requests[-1]["headers"]["traceparent"] == TRACEPARENT
    assert r["metadata"] == {"env": "test", "team": "a"}
    [attempt] = r["attempt_log"]
    assert attempt["target"].startswith("@mock-openai") and attempt["status"] == 200
    assert attempt["error"] is None
    # Overhead is what the gateway added on top of the upstream's time.
    assert 0 <= r["overhead_ms"] <= r["latency_ms"]
    assert r["overhead_ms"] == pytest.approx(r["latency_ms"] - attempt["latency_ms"], abs=0.01)
    assert r["cache_status"] is None and r["guardrails"] is None and r["bodies"] is None
    assert r["limits"] is None  # no budget or rate limit applies to it
    assert r["error_type"] is None and r["error_message"] is None


def test_upstream_error_record(gateway: GatewayThread, mock: MockProviderThread) -> None:
    mock.add_fault(status=400, message="bad things", match_model="gpt-4o-mini")
    with httpx.Client(base_url=gateway.url) as http:
        response = http.post("/v1/chat/completions", json=CHAT, headers={"x-lockgate-trace-id": "my-trace"})
    r = record_of(gateway, response)
    assert r["status"] == response.status_code == 400
    assert r["error_type"] == response.json()["error"]["type"] and "bad things" in r["error_message"]
    assert r["trace_id"] == "my-trace"
    assert r["cost_usd"] is None and r["usage_source"] is None
    [attempt] = r["attempt_log"]
    assert attempt["status"] == 400 and "bad things" in attempt["error"]


def test_fallback_record_lists_every_attempt(gateway: GatewayThread, mock: MockProviderThread) -> None:
    mock.add_fault(status=503, message="overloaded", match_model="gpt-4o-mini")
    with httpx.Client(base_url=gateway.url) as http:
        response = http.post("/v1/chat/completions", json={**CHAT, "model": "resilient"})
    assert response.status_code == 200
    r = record_of(gateway, response)
    first, second = r["attempt_log"]
    assert first["target"].startswith("@mock-openai") and first["status"] == 503
    assert "overloaded" in first["error"]
    assert second["target"].startswith("@mock-anthropic") and second["status"] == 200
    assert r["attempts"] == 2 and r["provider"] == "mock-anthropic" and r["model"] == "claude-sonnet-4-5"
    assert r["requested_model"] == "resilient" and r["cost_usd"] > 0
    assert r["overhead_ms"] <= r["latency_ms"] - first["latency_ms"] - second["latency_ms"] + 0.01


def test_stream_record_has_ttft_and_upstream_time(gateway: GatewayThread) -> None:
    with (
        httpx.Client(base_url=gateway.url) as http,
        http.stream("POST", "/v1/chat/completions", json={**CHAT, "stream": True}) as response,
    ):
        assert response.status_code == 200
        b"".join(response.iter_raw())
    r = record_of(gateway, response)
    assert r["stream"] is True and r["status"] == 200
    assert r["ttft_ms"] is not None and 0 < r["ttft_ms"] <= r["latency_ms"]
    assert 0 <= r["overhead_ms"] < r["latency_ms"]
    assert r["completion_tokens"] > 0 and r["cost_usd"] > 0


def test_retry_record_counts_the_backoff_as_upstream_time(
    gateway: GatewayThread, mock: MockProviderThread
) -> None:
    mock.add_fault(status=503, message="busy", match_model="gpt-4o-mini")
    config = {
        "provider": "@mock-openai",
        "override_params": {"model": "gpt-4o-mini"},
        "retry": {"attempts": 2},
    }
    with httpx.Client(base_url=gateway.url) as http:
        response = http.post(
            "/v1/chat/completions", json=CHAT, headers={"x-lockgate-config": orjson.dumps(config).decode()}
        )
    assert response.status_code == 200
    r = record_of(gateway, response)
    first, second = r["attempt_log"]
    assert (first["status"], second["status"]) == (503, 200) and "busy" in first["error"]
    assert first["backoff_ms"] is None and second["backoff_ms"] is not None
    assert (r["retries"], r["fallbacks"], r["attempts"]) == (1, 0, 2) and r["route"].startswith("inline:")
    # The wait between the attempts is the retry policy's, not time Lockgate added.
    waited = first["latency_ms"] + second["backoff_ms"] + second["latency_ms"]
    assert r["overhead_ms"] == pytest.approx(r["latency_ms"] - waited, abs=0.01)
    assert r["cost_usd"] > 0 and r["usage_source"] == "reported"


def test_cache_hit_record(gateway: GatewayThread, mock: MockProviderThread) -> None:
    config = {
        "provider": "@mock-openai",
        "override_params": {"model": "gpt-4o-mini"},
        "cache": {"mode": "simple", "max_age": 600},
    }
    headers = {"x-lockgate-config": orjson.dumps(config).decode(), "traceparent": TRACEPARENT}
    with httpx.Client(base_url=gateway.url) as http:
        first = http.post("/v1/chat/completions", json=CHAT, headers=headers)
        second = http.post("/v1/chat/completions", json=CHAT, headers=headers)
    assert second.headers["x-lockgate-cache"] == "hit" and second.content == first.content
    miss, hit = record_of(gateway, first), record_of(gateway, second)
    assert miss["cache_status"] == "miss" and miss["attempts"] == 1 and miss["cost_usd"] > 0
    assert (hit["cache_status"], hit["status"], hit["attempts"], hit["attempt_log"]) == ("hit", 200, 0, [])
    assert hit["cost_usd"] == 0.0 and hit["usage_source"] == "cache"
    assert hit["prompt_tokens"] == miss["prompt_tokens"] and hit["model"] == "gpt-4o-mini"
    assert hit["route"] == miss["route"] and hit["trace_id"] == "0af7651916cd43dd8448eb211c80319c"
    assert hit["overhead_ms"] == pytest.approx(hit["latency_ms"])  # no upstream: all of it is Lockgate's


def test_gateway_error_before_routing(gateway: GatewayThread) -> None:
    with httpx.Client(base_url=gateway.url) as http:
        response = http.post("/v1/chat/completions", content=b"{not json")
    r = record_of(gateway, response)
    assert r["status"] == 400 and r["error_type"] == "invalid_request_error"
    assert r["attempts"] == 0 and r["attempt_log"] == [] and r["provider"] is None


def test_bodies_are_logged_only_where_enabled_redacted_and_capped(
    tmp_path: Path, mock: MockProviderThread
) -> None:
    with admin_gateway(tmp_path, demo_config(mock.url), demo=True, log_body_max_bytes=300) as gw:
        secret = "sk-proj-abcdefghijklmnop1234"
        chat = {**CHAT, "messages": [{"role": "user", "content": f"mail bob@example.com key {secret}"}]}
        with httpx.Client(base_url=gw.url) as http:
            off = http.post("/v1/chat/completions", json=chat)
            with admin_client(gw) as admin:
                ok(admin.patch("/workspaces/ws_default", json={"log_bodies": True}))
                assert ok(admin.get("/workspaces/ws_default"))["log_bodies"] is True
            on = http.post("/v1/chat/completions", json=chat)
            long = http.post(
                "/v1/chat/completions",
                json={**CHAT, "messages": [{"role": "user", "content": "x" * 1000}]},
            )
        assert record_of(gw, off)["bodies"] is None
        bodies = record_of(gw, on)["bodies"]
        request_text = bodies["request"]["text"]
        assert "mail" in request_text and "[REDACTED]" in request_text  # the prompt stays, secrets go
        assert secret not in request_text and "bob@example.com" not in request_text
        assert bodies["response"]["text"].startswith("{") and bodies["request"]["truncated"] is False
        capped = record_of(gw, long)["bodies"]["request"]
        assert capped["truncated"] is True and len(capped["text"]) <= 300


def test_guardrail_verdicts_reach_the_logs_api_and_export(tmp_path: Path, mock: MockProviderThread) -> None:
    config = gateway_config(mock.url, "http://127.0.0.1:9/unused")
    with admin_gateway(tmp_path, config) as gw:
        key = KEYS["deny-in"][0]
        with httpx.Client(base_url=gw.url, headers={"authorization": f"Bearer {key}"}) as http:
            secret = {
                **CHAT,
                "messages": [{"role": "user", "content": "sk-proj-Ab3dE5fG7hI9jK1lM3nO5pQ7rS9tU1"}],
            }
            denied = http.post("/v1/chat/completions", json=secret)
        assert denied.status_code == 400
        gw.records()
        with admin_client(gw) as admin:
            found = ok(admin.get("/logs", params={"q": "guardrail_denied"}))["data"]
            exported = admin.get("/logs/export", params={"format": "csv", "status": "400"}).text
    [r] = found
    assert r["id"] == denied.headers["x-lockgate-request-id"] and r["attempt_log"] == []
    assert [(g["stage"], g["name"], g["verdict"]) for g in r["guardrails"]] == [
        ("input", "no-secrets", "denied")
    ]
    [row] = list(csv.DictReader(io.StringIO(exported)))
    assert orjson.loads(row["guardrails"])[0]["verdict"] == "denied"
