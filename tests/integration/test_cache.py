"""The response cache over real HTTP: hits, misses, streams replayed, directives, Redis shared."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from lockgate.testing.mock_provider import MockProviderThread
from tests.gateway_harness import GatewayThread, demo_config
from tests.integration.routing_helpers import PROMPT, leaf, post, record_of, streamed_text, upstream_models


def cached(model: str, **extra: object) -> dict:
    return {**leaf(model), "cache": {"mode": "simple", "max_age": 600}, **extra}


@pytest.fixture(scope="module")
def gw(mock: MockProviderThread, tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayThread]:
    with GatewayThread(tmp_path_factory.mktemp("cache"), demo_config(mock.url), demo=True) as gateway:
        yield gateway


def test_second_identical_request_is_a_hit(gw: GatewayThread, mock) -> None:
    config = cached("c-plain")
    first = post(gw, config)
    second = post(gw, config, body={"model": "gpt-4o-mini", "messages": PROMPT, "user": "someone-else"})
    assert first.headers["x-lockgate-cache"] == "miss" and second.headers["x-lockgate-cache"] == "hit"
    assert first.content == second.content and second.headers["x-lockgate-attempts"] == "0"
    assert upstream_models(mock) == ["c-plain"]  # `user` is not part of the key
    hit = record_of(gw, second)
    assert hit["cache_status"] == "hit" and hit["status"] == 200 and hit["cost_usd"] == 0.0
    assert hit["prompt_tokens"] == record_of(gw, first)["prompt_tokens"] and hit["usage_source"] == "cache"
    # A different question is another key.
    other = post(gw, config, body={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "?"}]})
    assert other.headers["x-lockgate-cache"] == "miss"


def test_streams_are_cached_and_replayed_as_the_same_event_sequence(gw: GatewayThread, mock) -> None:
    config = cached("c-stream")
    body = {"model": "gpt-4o-mini", "messages": PROMPT, "stream_options": {"include_usage": True}}
    first = post(gw, config, stream=True, body=body)
    second = post(gw, config, stream=True, body=body)
    assert first.headers["x-lockgate-cache"] == "miss" and second.headers["x-lockgate-cache"] == "hit"
    assert second.headers["content-type"] == "text/event-stream"
    assert second.text == first.text and streamed_text(second.text)
    # A non-stream request is another shape of answer: its own entry.
    plain = post(gw, config)
    assert plain.headers["x-lockgate-cache"] == "miss"
    assert upstream_models(mock) == ["c-stream", "c-stream"]


def test_no_store_and_refresh(gw: GatewayThread, mock) -> None:
    config = cached("c-directives")
    assert post(gw, config, headers={"x-lockgate-cache": "no-store"}).headers["x-lockgate-cache"] == "miss"
    assert post(gw, config).headers["x-lockgate-cache"] == "miss"  # no-store did not write
    refreshed = post(gw, config, headers={"x-lockgate-cache": "refresh"})
    assert refreshed.headers["x-lockgate-cache"] == "miss"
    assert record_of(gw, refreshed)["cache_status"] == "refresh"
    assert post(gw, config).headers["x-lockgate-cache"] == "hit"
    assert len(upstream_models(mock)) == 3
    bad = post(gw, config, headers={"x-lockgate-cache": "sometimes"})
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "x-lockgate-cache"


@pytest.mark.parametrize("status", [429, 503])
def test_errors_are_never_cached(gw: GatewayThread, mock, status: int) -> None:
    config = cached(f"c-error-{status}")
    mock.add_fault(status=status, match_model=f"c-error-{status}")
    assert post(gw, config).status_code == (429 if status == 429 else 502)
    again = post(gw, config)
    assert again.status_code == 200 and again.headers["x-lockgate-cache"] == "miss"
    assert post(gw, config).headers["x-lockgate-cache"] == "hit"


def test_broken_streams_are_not_cached(gw: GatewayThread, mock) -> None:
    config = cached("c-cut")
    mock.add_fault(cut_after_chunks=2, match_model="c-cut")
    assert "[DONE]" not in post(gw, config, stream=True).text
    assert post(gw, config, stream=True).headers["x-lockgate-cache"] == "miss"


def test_redis_backend_is_shared_by_gateways(
    mock: MockProviderThread, redis_url: str, tmp_path: Path
) -> None:
    config = cached("c-redis")
    (tmp_path / "one").mkdir()
    (tmp_path / "two").mkdir()
    config_file = demo_config(mock.url)
    with (
        GatewayThread(tmp_path / "one", config_file, redis_url=redis_url, demo=True) as one,
        GatewayThread(tmp_path / "two", config_file, redis_url=redis_url, demo=True) as two,
    ):
        assert one.app.cache.store.name == "redis"
        first = post(one, config, stream=True)
        second = post(two, config, stream=True)
        assert first.headers["x-lockgate-cache"] == "miss" and second.headers["x-lockgate-cache"] == "hit"
        assert second.text == first.text
        assert post(two, config).headers["x-lockgate-cache"] == "miss"
        assert post(one, config).headers["x-lockgate-cache"] == "hit"
    assert upstream_models(mock) == ["c-redis", "c-redis"]


def test_an_unreachable_redis_costs_hits_not_requests(mock: MockProviderThread, tmp_path: Path) -> None:
    from tests.gateway_harness import free_port

    with GatewayThread(
        tmp_path, demo_config(mock.url), redis_url=f"redis://127.0.0.1:{free_port()}/0", demo=True
    ) as gw:
        for _ in range(2):
            response = post(gw, cached("c-no-redis"))
            assert response.status_code == 200 and response.headers["x-lockgate-cache"] == "miss"


def test_routes_without_a_cache_policy_say_nothing(gw: GatewayThread) -> None:
    with httpx.Client(base_url=gw.url) as http:
        response = http.post("/v1/chat/completions", json={"model": "gpt-4o-mini", "messages": PROMPT})
    assert response.status_code == 200 and "x-lockgate-cache" not in response.headers
