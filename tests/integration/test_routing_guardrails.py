"""Routing and guardrails together: a route config's own guardrails, the cache, and stream failover."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from lockgate.testing.mock_provider import MockProviderThread
from tests.gateway_harness import GatewayThread, demo_config
from tests.integration.routing_helpers import (
    assert_envelope,
    fallback,
    leaf,
    post,
    record_of,
    sse_events,
    upstream_models,
)

NO_MOCK_WORDS = {
    "action": "deny",
    "checks": [{"type": "denied_keywords", "params": {"keywords": ["mock response"]}}],
}
NO_SECRETS = {
    "action": "deny",
    "checks": [{"type": "denied_keywords", "params": {"keywords": ["open sesame"]}}],
}


@pytest.fixture(scope="module")
def gw(mock: MockProviderThread, tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayThread]:
    config = demo_config(mock.url)
    config["guardrails"] = [
        {"name": "flag-long", "action": "flag", "checks": [{"type": "limits", "params": {"max_words": 2}}]}
    ]
    with GatewayThread(tmp_path_factory.mktemp("routing-guards"), config, demo=True) as gateway:
        yield gateway


def test_a_route_configs_input_guardrails_run(gw: GatewayThread, mock) -> None:
    config = {**leaf("g-in"), "input_guardrails": [NO_SECRETS]}
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "open sesame, please"}]}
    denied = post(gw, config, body=body)
    assert denied.status_code == 400 and denied.json()["error"]["type"] == "guardrail_denied"
    assert "g-in" not in upstream_models(mock)
    assert post(gw, config).status_code == 200
    error = assert_envelope(
        post(gw, {**leaf("g-in"), "input_guardrails": ["no-such-guardrail"]}), 400, "invalid_config"
    )
    assert (
        error["param"] == "x-lockgate-config" and "no guardrail named 'no-such-guardrail'" in error["message"]
    )


def test_output_guardrails_bypass_the_cache(gw: GatewayThread, mock) -> None:
    config = {**leaf("g-cache"), "cache": {"mode": "simple"}, "output_guardrails": ["flag-long"]}
    first, second = post(gw, config), post(gw, config)
    assert first.status_code == second.status_code == 200
    assert second.headers["x-lockgate-cache"] == "miss" and upstream_models(mock) == ["g-cache", "g-cache"]
    assert record_of(gw, second)["cache_status"] == "bypass"
    assert record_of(gw, second)["guardrails"]  # the verdict a cached answer would have skipped


def test_a_guardrail_refusing_a_stream_is_final_not_a_failover(gw: GatewayThread, mock) -> None:
    config = fallback(
        leaf("g-stream-a"), leaf("g-stream-b"), stream_failover=True, output_guardrails=[NO_MOCK_WORDS]
    )
    response = post(gw, config, stream=True)
    last = json.loads(sse_events(response.text)[-1].removeprefix("data: "))
    assert last["error"]["type"] == "guardrail_denied" and "[DONE]" not in response.text
    assert upstream_models(mock) == ["g-stream-a"]  # the answer was refused, not the target
    record = record_of(gw, response)
    assert record["status"] == 400 and not record["stream_failover"] and record["fallbacks"] == 0
