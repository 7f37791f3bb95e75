import pytest

from lockgate.errors import BadRequest
from lockgate.gateway.route_config import parse_route_config

PORTKEY_STYLE = {
    "strategy": {"mode": "fallback", "on_status_codes": [429, 500, 502, 503, 504]},
    "retry": {"attempts": 3, "on_status_codes": [429, 500, 502, 503, 504]},
    "request_timeout": 30000,
    "cache": {"mode": "simple", "max_age": 3600},
    "targets": [
        {
            "strategy": {"mode": "loadbalance"},
            "targets": [
                {"provider": "@openai-prod", "override_params": {"model": "gpt-4o-mini"}, "weight": 0.7},
                {"provider": "@azure-eu", "weight": 0.3},
            ],
        },
        {"provider": "@anthropic-prod", "override_params": {"model": "claude-sonnet-4-5"}},
    ],
}


def test_design_example_parses() -> None:
    config = parse_route_config(PORTKEY_STYLE)
    assert config.strategy.mode == "fallback"
    assert config.targets[0].targets[0].weight == 0.7
    assert config.retry.attempts == 3


def test_camel_case_keys_accepted() -> None:
    config = parse_route_config(
        {"virtualKey": "openai-prod", "overrideParams": {"model": "x"}, "requestTimeout": 5}
    )
    assert config.virtual_key == "openai-prod" and config.request_timeout == 5


def test_conditional_refs_checked() -> None:
    good = {
        "strategy": {
            "mode": "conditional",
            "conditions": [{"query": {"metadata.tier": {"$eq": "pro"}}, "then": "a"}],
            "default": "b",
        },
        "targets": [{"name": "a", "provider": "@x"}, {"name": "b", "provider": "@y"}],
    }
    parse_route_config(good)
    bad = {**good, "strategy": {**good["strategy"], "default": "nope"}}
    with pytest.raises(BadRequest, match="unknown target name 'nope'"):
        parse_route_config(bad)


@pytest.mark.parametrize(
    ("config", "needle"),
    [
        ({"targets": [{"provider": "@a", "weight": -1}]}, "targets.0.weight"),
        ({"strategy": {"mode": "roundrobin"}, "targets": [{"provider": "@a"}]}, "strategy.mode"),
        ({"provider": "@a", "targets": [{"provider": "@b"}]}, "not both"),
        ({"strategy": {"mode": "fallback"}}, "needs 'provider'"),
        ({"provider": "@a", "retry": {"attempts": 99}}, "retry.attempts"),
        ({"provider": "@a", "colour": "red"}, "colour"),
    ],
)
def test_errors_name_the_field(config: dict, needle: str) -> None:
    with pytest.raises(BadRequest, match=needle) as err:
        parse_route_config(config, source="x-lockgate-config")
    assert err.value.param == "x-lockgate-config" and err.value.code == "invalid_config"


def test_not_an_object() -> None:
    with pytest.raises(BadRequest):
        parse_route_config([1])
