"""Fault injection through the mock provider over real HTTP: what the client got, what was recorded.

Each test uses its own upstream model names, so faults and per-target health
(breakers, latency) never leak between tests sharing the module's gateway.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator

import httpx
import pytest

from lockgate.testing.mock_provider import MockProviderThread, reply_text
from tests.gateway_harness import GatewayThread, demo_config
from tests.integration.routing_helpers import (
    PROMPT,
    assert_envelope,
    fallback,
    leaf,
    post,
    record_of,
    sse_events,
    streamed_text,
    upstream_models,
)

FULL_REPLY = reply_text(PROMPT[0]["content"])
NARROW_KEY = "lg-narrow-test-key-0123456789"


@pytest.fixture(scope="module")
def gw(mock: MockProviderThread, tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayThread]:
    config = demo_config(mock.url)
    config["configs"] = [
        {
            "id": "prod",
            "config": fallback(
                leaf("saved-a"), leaf("claude-sonnet-4-5", "mock-anthropic"), retry={"attempts": 1}
            ),
        },
    ]
    config["models"].append({"alias": "prod-alias", "config": "prod"})
    config["integrations"].append(
        {**config["integrations"][0], "name": "limited", "allowed_models": ["m-ok*"]}
    )
    config["keys"] = [{"name": "narrow", "key": NARROW_KEY, "allowed_models": ["gpt-4o-mini", "m-fine"]}]
    with GatewayThread(tmp_path_factory.mktemp("routing"), config, request_timeout=5.0, demo=True) as gateway:
        yield gateway


def test_5xx_then_success_is_retried_on_the_same_target(gw: GatewayThread, mock) -> None:
    mock.add_fault(status=503, times=2, match_model="m-retry")
    response = post(gw, {**leaf("m-retry"), "retry": {"attempts": 3}})
    assert response.status_code == 200 and response.json()["choices"][0]["message"]["content"] == FULL_REPLY
    assert response.headers["x-lockgate-attempts"] == "3"
    assert response.headers["x-lockgate-provider"] == "mock-openai"
    assert response.headers["x-lockgate-model"] == "m-retry"
    record = record_of(gw, response)
    assert [a["status"] for a in record["attempt_log"]] == [503, 503, 200]
    assert record["retries"] == 2 and record["fallbacks"] == 0 and record["status"] == 200
    assert record["route"].startswith("inline:") and upstream_models(mock) == ["m-retry"] * 3


def test_429_with_retry_after_waits_as_told(gw: GatewayThread, mock) -> None:
    mock.add_fault(status=429, retry_after=0.2, match_model="m-429")
    response = post(gw, {**leaf("m-429"), "retry": {"attempts": 2}})
    assert response.status_code == 200
    log = record_of(gw, response)["attempt_log"]
    assert [a["status"] for a in log] == [429, 200]
    assert log[1]["backoff_ms"] == 200.0  # exactly the provider's Retry-After, not a jittered guess


def test_429_that_outlasts_the_retries_reaches_the_client_with_retry_after(gw: GatewayThread, mock) -> None:
    mock.add_fault(status=429, retry_after=30, times=-1, match_model="m-429-long")
    response = post(gw, {**leaf("m-429-long"), "retry": {"attempts": 3}})
    error = assert_envelope(response, 429)
    assert response.headers["retry-after"] == "30" and "429" in error["message"]
    record = record_of(gw, response)
    assert record["status"] == 429 and record["retries"] == 0  # 30 s is past the cap: not waited for


def test_timeout_falls_back_and_all_timeouts_are_504(gw: GatewayThread, mock) -> None:
    mock.add_fault(delay_ms=3000, match_model="m-slow")
    response = post(gw, fallback(leaf("m-slow", request_timeout=200), leaf("m-quick")))
    assert response.status_code == 200 and response.headers["x-lockgate-model"] == "m-quick"
    record = record_of(gw, response)
    assert record["attempt_log"][0]["status"] is None
    assert "did not answer within 0.2 s" in record["attempt_log"][0]["error"]
    assert record["fallbacks"] == 1

    mock.add_fault(delay_ms=3000, times=2, match_model="m-slower")
    response = post(gw, {**fallback(leaf("m-slower"), leaf("m-slower")), "request_timeout": 150})
    assert_envelope(response, 504, "upstream_timeout")
    record = record_of(gw, response)
    assert record["status"] == 504 and record["error_type"] == "timeout_error"


def test_connection_reset_is_retried(gw: GatewayThread, mock) -> None:
    mock.add_fault(reset=True, match_model="m-reset")
    response = post(gw, {**leaf("m-reset"), "retry": {"attempts": 1}})
    assert response.status_code == 200
    log = record_of(gw, response)["attempt_log"]
    assert log[0]["status"] is None and "could not be reached" in log[0]["error"]
    assert log[1]["status"] == 200


def test_malformed_body_falls_back_or_is_a_clean_502(gw: GatewayThread, mock) -> None:
    mock.add_fault(malformed=True, match_model="m-garbled")
    response = post(gw, fallback(leaf("m-garbled"), leaf("m-clean")))
    assert response.status_code == 200 and response.json()["model"] == "m-clean"
    record = record_of(gw, response)
    assert record["attempt_log"][0]["status"] == 200 and "cannot read" in record["attempt_log"][0]["error"]

    mock.add_fault(malformed=True, match_model="m-garbled")
    response = post(gw, leaf("m-garbled"))
    assert_envelope(response, 502, "upstream_bad_response")


def test_stream_that_fails_before_any_byte_falls_back(gw: GatewayThread, mock) -> None:
    # A 200 whose body is no event stream at all: nothing reaches the client, so the next target may.
    mock.add_fault(malformed=True, match_model="m-stream-garbled")
    response = post(gw, fallback(leaf("m-stream-garbled"), leaf("m-stream-ok")), stream=True)
    assert response.status_code == 200 and response.headers["x-lockgate-model"] == "m-stream-ok"
    assert streamed_text(response.text) == FULL_REPLY and sse_events(response.text)[-1] == "data: [DONE]"
    record = record_of(gw, response)
    assert record["status"] == 200 and record["fallbacks"] == 1 and not record["stream_failover"]


def test_stream_cut_mid_answer_without_failover_ends_with_an_error_event(gw: GatewayThread, mock) -> None:
    mock.add_fault(cut_after_chunks=3, match_model="m-cut")
    response = post(gw, fallback(leaf("m-cut"), leaf("m-unused")), stream=True)
    assert response.status_code == 200
    events = sse_events(response.text)
    assert "[DONE]" not in response.text
    assert json.loads(events[-1].removeprefix("data: "))["error"]["code"] == "stream_interrupted"
    record = record_of(gw, response)
    assert (
        record["status"] == 502 and record["usage_source"] == "estimated" and record["completion_tokens"] > 0
    )
    assert "m-unused" not in upstream_models(mock)  # the first byte was out: no going back


@pytest.mark.parametrize("second", ["mock-openai", "mock-anthropic"])
def test_stream_failover_continues_the_answer_on_the_next_target(
    gw: GatewayThread, mock, second: str
) -> None:
    mock.add_fault(cut_after_chunks=4, match_model="m-cut-over")
    second_model = "m-continue" if second == "mock-openai" else "claude-sonnet-4-5"
    config = fallback(leaf("m-cut-over"), leaf(second_model, second), stream_failover=True)
    response = post(
        gw,
        config,
        stream=True,
        body={"model": "gpt-4o-mini", "messages": PROMPT, "stream_options": {"include_usage": True}},
    )
    assert response.status_code == 200
    # One seamless answer: the spliced stream reads exactly like an uninterrupted one.
    assert streamed_text(response.text) == FULL_REPLY
    assert sse_events(response.text)[-1] == "data: [DONE]" and '"error"' not in response.text
    record = record_of(gw, response)
    assert record["status"] == 200 and record["stream_failover"] is True and record["fallbacks"] == 1
    assert record["provider"] == second and record["completion_tokens"] > 0
    first, last = record["attempt_log"]
    assert first["status"] == 200 and "stream" in first["error"] and last["error"] is None
    asked = mock.requests[-1]["json"]
    partial = asked["messages"][-1]
    assert partial["role"] == "assistant"
    text = partial["content"] if isinstance(partial["content"], str) else partial["content"][0]["text"]
    assert text and FULL_REPLY.startswith(text) and text != FULL_REPLY


def test_a_target_down_for_the_whole_run_loses_no_request(gw: GatewayThread, mock) -> None:
    mock.add_fault(status=503, times=-1, match_model="m-down")
    config = fallback(
        leaf("m-down"), leaf("m-up"), circuit_breaker={"failure_threshold": 3, "cooldown_ms": 600_000}
    )
    responses = [post(gw, config, stream=i % 2 == 1) for i in range(24)]
    for i, response in enumerate(responses):
        assert response.status_code == 200
        text = streamed_text(response.text) if i % 2 else response.json()["choices"][0]["message"]["content"]
        assert text == FULL_REPLY
    # The breaker took the dead target out after three failures; nobody waited on it after that.
    assert upstream_models(mock).count("m-down") == 3
    records = [record_of(gw, r) for r in responses]
    assert all(r["status"] == 200 for r in records)
    assert [len(r["attempt_log"]) for r in records] == [2, 2, 2] + [1] * 21


def test_concurrent_requests_under_mixed_faults_each_get_an_answer_or_an_envelope(
    gw: GatewayThread, mock
) -> None:
    mock.add_fault(status=500, times=6, match_model="m-mixed")
    mock.add_fault(reset=True, times=4, match_model="m-mixed")
    mock.add_fault(malformed=True, times=4, match_model="m-mixed")
    mock.add_fault(status=503, times=3, match_model="m-mixed-2")
    config = json.dumps(fallback(leaf("m-mixed"), leaf("m-mixed-2"), retry={"attempts": 1}))

    async def one(http: httpx.AsyncClient, i: int) -> httpx.Response:
        body = {"model": "gpt-4o-mini", "messages": PROMPT, "stream": i % 3 == 0}
        return await http.post("/v1/chat/completions", json=body, headers={"x-lockgate-config": config})

    async def run() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=gw.url, timeout=20) as http:
            return await asyncio.gather(*(one(http, i) for i in range(30)))

    responses = asyncio.run(run())
    assert len(responses) == 30
    for i, response in enumerate(responses):
        if response.status_code == 200 and i % 3 == 0:
            assert streamed_text(response.text) == FULL_REPLY
        elif response.status_code == 200:
            assert response.json()["choices"][0]["message"]["content"] == FULL_REPLY
        else:
            assert_envelope(response, response.status_code)
    ids = {r.headers["x-lockgate-request-id"] for r in responses}
    assert len({r["id"] for r in gw.records()} & ids) == 30


def test_saved_configs_by_header_and_by_alias(gw: GatewayThread, mock) -> None:
    mock.add_fault(status=502, times=2, match_model="saved-a")
    by_alias = post(gw, None, body={"model": "prod-alias", "messages": PROMPT})
    assert by_alias.status_code == 200 and by_alias.headers["x-lockgate-provider"] == "mock-anthropic"
    record = record_of(gw, by_alias)
    assert record["route"] == "alias:prod-alias" and record["retries"] == 1 and record["fallbacks"] == 1
    by_header = post(gw, "prod")
    assert by_header.status_code == 200 and by_header.headers["x-lockgate-model"] == "saved-a"
    assert record_of(gw, by_header)["route"] == "config:prod"


def test_conditional_routing_on_metadata(gw: GatewayThread) -> None:
    config = {
        "strategy": {
            "mode": "conditional",
            "conditions": [{"query": {"metadata.tier": {"$in": ["pro", "team"]}}, "then": "pro"}],
            "default": "free",
        },
        "targets": [{"name": "pro", **leaf("m-pro")}, {"name": "free", **leaf("m-free")}],
    }
    assert post(gw, config, metadata={"tier": "team"}).headers["x-lockgate-model"] == "m-pro"
    assert post(gw, config, metadata={"tier": "hobby"}).headers["x-lockgate-model"] == "m-free"
    assert post(gw, config).headers["x-lockgate-model"] == "m-free"


def test_bad_configs_are_400_naming_the_field_and_unknown_ids_404(gw: GatewayThread) -> None:
    error = assert_envelope(post(gw, {"targets": [{"provider": "@mock-openai", "weight": -1}]}), 400)
    assert error["param"] == "x-lockgate-config" and "targets.0.weight" in error["message"]
    error = assert_envelope(post(gw, fallback(leaf("x"), leaf("y", "ghost"))), 400, "invalid_config")
    assert "targets.1.provider: unknown integration '@ghost'" in error["message"]
    assert_envelope(post(gw, "{oops"), 400, "invalid_config")
    error = assert_envelope(post(gw, "pc-unknown"), 404, "config_not_found")
    assert error["param"] == "x-lockgate-config"
    anthropic = post(
        gw,
        "pc-unknown",
        path="/v1/messages",
        body={"model": "claude-sonnet", "max_tokens": 20, "messages": PROMPT},
        headers={"anthropic-version": "2023-06-01"},
    )
    assert anthropic.status_code == 404 and anthropic.json()["type"] == "error"


def test_a_single_target_stream_that_fails_before_any_byte_is_a_json_502(gw: GatewayThread, mock) -> None:
    mock.add_fault(malformed=True, match_model="m-stream-alone")
    response = post(gw, leaf("m-stream-alone"), stream=True)
    assert_envelope(response, 502, "stream_interrupted")
    record = record_of(gw, response)
    assert record["status"] == 502 and record["fallbacks"] == 0 and len(record["attempt_log"]) == 1


def test_configs_reach_only_models_the_integration_and_the_key_allow(gw: GatewayThread) -> None:
    assert post(gw, leaf("m-ok-1", "limited")).status_code == 200
    error = assert_envelope(post(gw, leaf("m-other", "limited")), 403, "model_not_allowed")
    assert "'limited' may not serve the model 'm-other'" in error["message"]
    # Strict: a forbidden target fails the request rather than quietly falling back.
    assert_envelope(post(gw, fallback(leaf("m-other", "limited"), leaf("m-fine"))), 403, "model_not_allowed")
    narrow = {"authorization": f"Bearer {NARROW_KEY}"}
    assert post(gw, leaf("m-fine"), headers=narrow).status_code == 200
    error = assert_envelope(post(gw, leaf("m-pricey"), headers=narrow), 403, "model_not_allowed")
    assert error["param"] == "x-lockgate-config" and "'@mock-openai/m-pricey'" in error["message"]
