"""A Portkey-format config, as Portkey users write them, through the official openai SDK, unchanged."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator

import openai
import pytest

from lockgate.testing.mock_provider import MockProviderThread, reply_text
from tests.gateway_harness import GatewayThread, demo_config

QUESTION = "What does a gateway do?"
# Straight from Portkey's docs patterns: snake_case keys, virtual_key and "@" providers,
# a conditional router over metadata, a loadbalanced pool, a fallback chain with retries.
PORTKEY_CONFIG = {
    "strategy": {
        "mode": "conditional",
        "conditions": [
            {"query": {"metadata.user_plan": {"$eq": "paid"}}, "then": "paid-pool"},
            {
                "query": {"$and": [{"params.max_tokens": {"$lte": 50}}, {"metadata.env": "dev"}]},
                "then": "chain",
            },
        ],
        "default": "chain",
    },
    "cache": {"mode": "simple", "max_age": 60},
    "targets": [
        {
            "name": "paid-pool",
            "strategy": {"mode": "loadbalance"},
            "targets": [
                {"virtual_key": "mock-openai", "override_params": {"model": "pk-lb-a"}, "weight": 0.5},
                {"provider": "@mock-openai", "override_params": {"model": "pk-lb-b"}, "weight": 0.5},
            ],
        },
        {
            "name": "chain",
            "strategy": {"mode": "fallback", "on_status_codes": [429, 500, 503]},
            "retry": {"attempts": 2, "on_status_codes": [503]},
            "targets": [
                {"provider": "@mock-openai", "override_params": {"model": "pk-primary"}},
                {"provider": "@mock-anthropic", "override_params": {"model": "claude-sonnet-4-5"}},
            ],
        },
    ],
}


@pytest.fixture(scope="module")
def gw(mock: MockProviderThread, tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayThread]:
    with GatewayThread(tmp_path_factory.mktemp("portkey"), demo_config(mock.url), demo=True) as gateway:
        yield gateway


@pytest.fixture
def client(gw: GatewayThread) -> openai.OpenAI:
    return openai.OpenAI(
        base_url=gw.url + "/v1",
        api_key="unused",
        max_retries=0,
        default_headers={"x-lockgate-config": json.dumps(PORTKEY_CONFIG)},
    )


def ask(client: openai.OpenAI, plan: str, text: str = QUESTION, **extra: object):
    return client.chat.completions.with_raw_response.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": text}],
        extra_headers={"x-lockgate-metadata": json.dumps({"user_plan": plan})},
        **extra,
    )


def test_paid_users_are_loadbalanced(client: openai.OpenAI, mock) -> None:
    models = Counter()
    for i in range(40):
        raw = ask(client, "paid", f"{QUESTION} #{i}")
        assert raw.parse().choices[0].message.content == reply_text(f"{QUESTION} #{i}")
        models[raw.headers["x-lockgate-model"]] += 1
    assert set(models) == {"pk-lb-a", "pk-lb-b"} and min(models.values()) >= 8


def test_free_users_get_the_chain_with_retries_then_fallback(client: openai.OpenAI, mock) -> None:
    mock.add_fault(status=503, times=2, match_model="pk-primary")
    raw = ask(client, "free", "retry me")
    assert raw.headers["x-lockgate-model"] == "pk-primary" and raw.headers["x-lockgate-attempts"] == "3"
    mock.add_fault(status=429, times=-1, match_model="pk-primary")
    raw = ask(client, "free", "fall back please")
    assert raw.headers["x-lockgate-provider"] == "mock-anthropic"
    assert raw.parse().choices[0].message.content == reply_text("fall back please")
    stream = client.chat.completions.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": "stream it"}],
        stream=True,
        extra_headers={"x-lockgate-metadata": json.dumps({"user_plan": "free"})},
    )
    assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices) == reply_text("stream it")


def test_the_portkey_cache_block_caches(client: openai.OpenAI, mock) -> None:
    first = ask(client, "free", "cache me")
    second = ask(client, "free", "cache me")
    assert (first.headers["x-lockgate-cache"], second.headers["x-lockgate-cache"]) == ("miss", "hit")
    assert second.parse().choices[0].message.content == reply_text("cache me")


def test_a_broken_config_is_a_400_the_sdk_raises(gw: GatewayThread) -> None:
    broken = {**PORTKEY_CONFIG, "strategy": {**PORTKEY_CONFIG["strategy"], "default": "nowhere"}}
    client = openai.OpenAI(
        base_url=gw.url + "/v1",
        api_key="x",
        max_retries=0,
        default_headers={"x-lockgate-config": json.dumps(broken)},
    )
    with pytest.raises(openai.BadRequestError) as err:
        client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
    assert "unknown target name 'nowhere'" in err.value.message
