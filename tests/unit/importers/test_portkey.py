"""The Portkey importer on realistic configs (tests/fixtures/importers/portkey)."""

from __future__ import annotations

from typing import Any

import pytest

from lockgate.gateway.route_config import parse_route_config
from lockgate.importers import ImportFailed, ImportResult
from lockgate.importers.portkey import import_portkey
from tests.importer_kit import load


def findings(result: ImportResult) -> dict[str, str]:
    return {f.path: f"{f.level}: {f.message}" for f in result.findings}


def only_config(result: ImportResult) -> dict[str, Any]:
    (saved,) = result.document["configs"]
    parse_route_config(saved["config"])  # the tree is a valid Lockgate route config
    return saved["config"]


def test_fallback_keeps_the_tree_and_turns_held_credentials_into_integrations() -> None:
    result = import_portkey(load("portkey/fallback.json"), config_id="support-bot", alias="support")
    assert result.document["integrations"] == [
        {
            "name": "openai-prod-8f2c1a",
            "provider": "openai",
            "api_key": "${LOCKGATE_SECRET_OPENAI_PROD_8F2C1A}",
        },
        {"name": "anthropic-main", "provider": "anthropic", "api_key": "${LOCKGATE_SECRET_ANTHROPIC_MAIN}"},
    ]
    assert only_config(result) == {
        "strategy": {"mode": "fallback", "on_status_codes": [429, 500, 502, 503]},
        "retry": {"attempts": 2, "on_status_codes": [429]},
        "request_timeout": 15000,
        "cache": {"mode": "simple", "max_age": 300},
        "targets": [
            {"provider": "@openai-prod-8f2c1a", "override_params": {"model": "gpt-4o-mini"}},
            {
                "provider": "@anthropic-main",
                "override_params": {"model": "claude-sonnet-4-5", "max_tokens": 1024},
            },
        ],
    }
    assert result.document["configs"][0]["id"] == "support-bot"
    assert result.document["models"] == [{"alias": "support", "config": "support-bot"}]
    found = findings(result)
    assert "set LOCKGATE_SECRET_OPENAI_PROD_8F2C1A" in found["targets.0.virtual_key"]
    assert "set LOCKGATE_SECRET_ANTHROPIC_MAIN" in found["targets.1.virtual_key"]


def test_loadbalance_with_inline_keys_camel_case_and_a_cloud_target() -> None:
    result = import_portkey(load("portkey/loadbalance.json"), config_id="lb")
    text = result.to_yaml("loadbalance.json")
    assert "sk-proj-team-a-literal" not in text and "gsk_literal" not in text and "AKIAEXAMPLE" not in text
    assert result.document["integrations"] == [
        {"name": "openai", "provider": "openai", "api_key": "${LOCKGATE_SECRET_OPENAI}"},
        {
            "name": "groq",
            "provider": "groq",
            "base_url": "https://groq-proxy.internal/openai/v1",
            "api_key": "${LOCKGATE_SECRET_GROQ}",
        },
    ]
    config = only_config(result)
    assert config["strategy"] == {"mode": "loadbalance"}
    assert config["targets"] == [
        {"provider": "@openai", "override_params": {"model": "gpt-4o-mini"}, "weight": 0.7},
        {"provider": "@groq", "override_params": {"model": "llama-3.3-70b-versatile"}, "weight": 0.3},
    ]
    found = findings(result)
    assert found["targets.2.provider"] == "unsupported: bedrock needs cloud credentials; left out"
    assert found["targets.2.aws_access_key_id"].startswith("unsupported: cloud credentials")
    assert "set LOCKGATE_SECRET_OPENAI" in found["targets.0.api_key"]


def test_nested_conditional_without_azure(azure_missing: None) -> None:
    result = import_portkey(load("portkey/nested.json"), config_id="tiers")
    config = only_config(result)
    assert config["strategy"]["mode"] == "conditional" and config["strategy"]["default"] == "free"
    pro, free = config["targets"]
    assert pro["name"] == "pro" and pro["strategy"] == {"mode": "fallback", "on_status_codes": [429, 503]}
    assert pro["targets"][0]["targets"] == [
        {"provider": "@main-openai", "override_params": {"model": "gpt-4o"}, "weight": 1}
    ]
    # main-openai says its provider; team-claude does not, but the catalog knows claude-sonnet-4-5.
    assert pro["targets"][1] == {
        "provider": "@team-claude",
        "override_params": {"model": "claude-sonnet-4-5"},
    }
    assert free == {"provider": "@main-openai", "override_params": {"model": "gpt-4o-mini"}, "name": "free"}
    names = [i["name"] for i in result.document["integrations"]]
    assert names == ["main-openai", "team-claude"]  # one integration per virtual key, however often used
    found = findings(result)
    assert "azure-openai" in found["targets.0.targets.0.targets.1.provider"]
    assert found["input_guardrails"].startswith("unsupported: Portkey guardrails")
    assert found["targets.1.after_request_hooks"].startswith("unsupported: Portkey guardrails")


def test_nested_azure_target_becomes_an_azure_integration(azure_registered: None) -> None:
    result = import_portkey(load("portkey/nested.json"), config_id="tiers")
    azure = next(i for i in result.document["integrations"] if i["provider"] == "azure")
    assert azure == {
        "name": "azure",
        "provider": "azure",
        "base_url": "https://contoso-eu.openai.azure.com",
        "api_key": "${LOCKGATE_SECRET_AZURE}",
        "options": {"api_version": "2024-10-21"},
    }
    balanced = only_config(result)["targets"][0]["targets"][0]["targets"]
    # Azure routes by deployment: Lockgate's azure provider takes the deployment as the model.
    assert balanced[1] == {"provider": "@azure", "override_params": {"model": "gpt-4o-eu"}, "weight": 1}


def test_unknown_virtual_key_providers_are_named_and_can_be_given() -> None:
    config = {
        "strategy": {"mode": "fallback"},
        "targets": [{"virtual_key": "vk-7f3a"}, {"virtual_key": "prod"}],
    }
    with pytest.raises(ImportFailed, match=r"prod, vk-7f3a; pass --virtual-key NAME=PROVIDER"):
        import_portkey(config, config_id="x")
    result = import_portkey(config, config_id="x", virtual_keys={"vk-7f3a": "together-ai", "prod": "mistral"})
    providers = {i["name"]: i["provider"] for i in result.document["integrations"]}
    assert providers == {"vk-7f3a": "together", "prod": "mistral"}  # Portkey ids become Lockgate's
    # Targets without a model keep the client's model, as in Portkey.
    assert only_config(result)["targets"] == [{"provider": "@vk-7f3a"}, {"provider": "@prod"}]


def test_left_out_targets_prune_their_conditions_and_bad_input_fails() -> None:
    config = {
        "strategy": {
            "mode": "conditional",
            "conditions": [{"query": {"metadata.x": "1"}, "then": "cloud"}],
            "default": "main",
        },
        "targets": [
            {"name": "cloud", "provider": "vertex-ai", "vertex_project_id": "p"},
            {"name": "main", "provider": "openai", "unknown_field": True},
        ],
    }
    result = import_portkey(config, config_id="c")
    tree = only_config(result)
    assert tree["strategy"] == {"mode": "conditional", "conditions": [], "default": "main"}
    assert tree["targets"] == [{"provider": "openai", "name": "main"}]  # no key: the gateway's default
    found = findings(result)
    assert found["strategy"].startswith("unsupported: conditions whose target was left out")
    assert found["targets.1.unknown_field"] == "unsupported: not a route config field; not imported"
    assert "default openai credential" in found["targets.1.provider"]
    with pytest.raises(ImportFailed, match="JSON object"):
        import_portkey([], config_id="c")
    with pytest.raises(ImportFailed, match="config id"):
        import_portkey(config, config_id="has spaces")
    with pytest.raises(ImportFailed, match="no target"):
        import_portkey({"targets": [{"provider": "bedrock"}]}, config_id="c")
