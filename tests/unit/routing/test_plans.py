"""Route configs compiled into plans: sources, inheritance, credentials, errors with field paths."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from lockgate.config import ConfigError, ModelAliasConfig, load_file
from lockgate.errors import BadRequest, NotFound
from lockgate.gateway.plan import Branch, Leaf
from lockgate.gateway.route_config import parse_route_config
from lockgate.gateway.routing import RouteTable
from lockgate.providers.base import Credential

CREDS = [
    Credential("openai", "openai", "https://api.openai.com/v1", "sk-default"),
    Credential("team-a", "openai", "http://a.test/v1", "sk-a"),
    Credential("claude", "anthropic", "https://api.anthropic.com", "sk-ant"),
]
PROD = {
    "strategy": {"mode": "fallback"},
    "retry": {"attempts": 2},
    "request_timeout": 1500,
    "cache": {"mode": "simple", "max_age": 60},
    "targets": [
        {
            "strategy": {"mode": "loadbalance"},
            "retry": {"attempts": 0},
            "circuit_breaker": {"failure_threshold": 2},
            "targets": [{"provider": "@team-a", "weight": 3}, {"virtual_key": "openai", "weight": 1}],
        },
        {"provider": "@claude", "override_params": {"model": "claude-sonnet-4-5", "max_tokens": 99}},
    ],
}


def table(**configs: dict) -> RouteTable:
    return RouteTable(
        CREDS,
        [
            ModelAliasConfig(alias="smart", config="prod"),
            ModelAliasConfig(alias="fast", targets=["@team-a/gpt-4o-mini", "@claude/claude-haiku-4-5"]),
        ],
        configs={"prod": parse_route_config(PROD), **{k: parse_route_config(v) for k, v in configs.items()}},
    )


def test_saved_config_compiles_with_inheritance() -> None:
    plan = table().plan("whatever", "prod")
    assert plan.name == "config:prod" and plan.caches and not plan.conditional
    root = plan.root
    assert isinstance(root, Branch) and root.mode == "fallback" and root.move_on is None
    pool, claude = root.children
    assert isinstance(pool, Branch) and isinstance(claude, Leaf)
    a, default = pool.children
    assert isinstance(a, Leaf) and isinstance(default, Leaf)
    # The pool overrides retry and adds a breaker; timeout and cache come down from the root.
    assert a.policy.retry.attempts == 0 and a.policy.breaker.failure_threshold == 2
    assert a.policy.timeout == 1.5 and a.policy.cache.max_age == 60
    assert claude.policy.retry.attempts == 2 and claude.policy.breaker is None
    assert claude.target("x").model == "claude-sonnet-4-5" and claude.overrides == {"max_tokens": 99}
    assert default.credential_target.credential.name == "openai"


def test_leaves_without_a_model_take_the_clients_resolved() -> None:
    routes = table()
    a = routes.plan("x", "prod").root.children[0].children[0]
    assert a.target("gpt-4.1").model == "gpt-4.1"
    assert a.target("@team-a/gpt-4o").model == "gpt-4o"
    assert a.target("fast").model == "gpt-4o-mini"  # an alias: its target for this provider
    assert a.target("meta-llama/Llama-3-70b").model == "meta-llama/Llama-3-70b"  # unknown: as sent
    assert a.target("gpt-4.1") is a.target("gpt-4.1")  # memoised


def test_aliases_point_at_targets_or_saved_configs() -> None:
    routes = table()
    smart = routes.plan("smart")
    assert smart.name == "alias:smart" and smart.root is routes.plan("x", "prod").root
    fast = routes.plan("fast")
    assert isinstance(fast.root, Branch) and [c.target("fast").label for c in fast.root.children] == [
        "@team-a/gpt-4o-mini",
        "@claude/claude-haiku-4-5",
    ]
    assert routes.plan("@claude/claude-opus-4-1").name == "model:@claude/claude-opus-4-1"
    assert ("smart", "claude") in routes.listed_models()  # its first fixed target


def test_inline_header_configs_are_memoised_by_value() -> None:
    routes = table()
    header = orjson.dumps({"provider": "@team-a", "retry": {"attempts": 1}}).decode()
    first = routes.plan("gpt-4o", header)
    assert first is routes.plan("gpt-4o", header) and first.name.startswith("inline:")


def test_inline_byok_and_custom_host_only_in_saved_configs() -> None:
    byok = orjson.dumps({"provider": "anthropic", "api_key": "sk-mine"}).decode()
    target = table().plan("claude-sonnet-4-5", byok).root.target("claude-sonnet-4-5")
    assert target.credential.api_key == "sk-mine" and target.provider.name == "anthropic"
    assert target.credential.base_url == "https://api.anthropic.com"

    # Any caller with a key could aim the gateway at an internal host: inline configs may not redirect.
    redirect = {"provider": "anthropic", "api_key": "sk-mine", "custom_host": "http://proxy.test/"}
    nested = {"strategy": {"mode": "fallback"}, "targets": [{"provider": "@team-a"}, redirect]}
    for config, where in ((redirect, "custom_host"), (nested, "targets.1.custom_host")):
        with pytest.raises(BadRequest, match=where) as err:
            table().plan("claude-sonnet-4-5", orjson.dumps(config).decode())
        assert err.value.param == "x-lockgate-config" and err.value.code == "custom_host_not_allowed"

    saved = table(proxied=redirect).plan("claude-sonnet-4-5", "proxied").root.target("claude-sonnet-4-5")
    assert saved.credential.base_url == "http://proxy.test" and saved.credential.api_key == "sk-mine"


@pytest.mark.parametrize(
    ("header", "needle"),
    [
        ("{not json", "not valid JSON"),
        ('{"targets": [{"provider": "@team-a", "weight": -1}]}', "targets.0.weight"),
        (
            '{"strategy": {"mode": "fallback"}, "targets": [{"provider": "@a"}, {"provider": "@nope"}]}',
            "targets.0.provider: unknown integration '@a'",
        ),
        ('{"provider": "groq"}', "provider: no credential for provider 'groq'"),
        ('{"provider": "nosuch"}', "unknown provider 'nosuch'"),
        ('{"provider": "@team-a", "override_params": {"model": 4}}', "override_params.model"),
        (
            '{"strategy": {"mode": "conditional", "conditions": '
            '[{"query": {"metadata.x": {"$bad": 1}}, "then": "a"}]},'
            ' "targets": [{"name": "a", "provider": "@team-a"}]}',
            "strategy.conditions.0.query.metadata.x.$bad",
        ),
        (
            '{"strategy": {"mode": "loadbalance"}, "targets": [{"provider": "@team-a", "weight": 0}]}',
            "targets: loadbalance needs a target with weight > 0",
        ),
    ],
)
def test_bad_inline_configs_are_400s_naming_the_field(header: str, needle: str) -> None:
    with pytest.raises(BadRequest) as err:
        table().plan("gpt-4o", header)
    assert needle in err.value.message
    assert err.value.param == "x-lockgate-config" and err.value.code == "invalid_config"


def test_unknown_saved_config_is_404() -> None:
    with pytest.raises(NotFound) as err:
        table().plan("gpt-4o", "pc-missing")
    assert err.value.status == 404 and err.value.param == "x-lockgate-config"


def test_saved_configs_that_cannot_route_here_fail_when_used() -> None:
    routes = RouteTable(
        CREDS,
        [ModelAliasConfig(alias="ghostly", config="broken")],
        configs={"broken": parse_route_config({"targets": [{"provider": "@ghost"}]})},
    )
    for model, header in (("gpt-4o", "broken"), ("ghostly", None)):
        with pytest.raises(BadRequest) as err:
            routes.plan(model, header)
        assert "'broken' cannot be used here: targets.0.provider: unknown integration" in err.value.message
    with pytest.raises(ConfigError, match="no saved config named 'nope'"):
        RouteTable(CREDS, [ModelAliasConfig(alias="x", config="nope")])


def test_config_file_with_saved_configs(tmp_path: Path) -> None:
    path = tmp_path / "lockgate.yaml"
    path.write_text("configs:\n  - id: prod\n    config: {targets: [{provider: '@a', weight: -2}]}\n")
    with pytest.raises(ConfigError, match=r"configs.0.config.*targets.0.weight"):
        load_file(path)
    path.write_text(
        "configs:\n  - {id: prod, config: {provider: '@a', requestTimeout: 100}}\n"
        "models: [{alias: smart, config: prod}]\n"
    )
    loaded = load_file(path)
    assert loaded.configs[0].config["requestTimeout"] == 100 and loaded.models[0].config == "prod"
