"""The LiteLLM importer on realistic proxy configs (tests/fixtures/importers/litellm)."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from lockgate.config import parse_config_text
from lockgate.importers import ImportFailed, ImportResult
from lockgate.importers.common import Findings, IntegrationBook
from lockgate.importers.litellm import import_litellm
from tests.importer_kit import load, secret_env


def by(items: list[dict[str, Any]], key: str) -> dict[str, dict[str, Any]]:
    return {item[key]: item for item in items}


def findings(result: ImportResult) -> dict[str, str]:
    return {f.path: f"{f.level}: {f.message}" for f in result.findings}


def test_multi_provider_without_azure_reports_it(azure_missing: None) -> None:
    result = import_litellm(load("litellm/multi_provider.yaml"))
    doc = result.document
    assert by(doc["integrations"], "name") == {
        "openai": {"name": "openai", "provider": "openai", "api_key": "${OPENAI_API_KEY}"},
        "anthropic": {"name": "anthropic", "provider": "anthropic", "api_key": "${ANTHROPIC_API_KEY}"},
    }
    found = findings(result)
    assert found["model_list.0.litellm_params.model"].startswith("unsupported: the 'azure' provider")
    assert "bedrock needs cloud credentials" in found["model_list.6.litellm_params.model"]
    for path in (
        "router_settings.context_window_fallbacks",
        "router_settings.redis_host",
        "litellm_settings.success_callback",
        "litellm_settings.drop_params",
        "model_list.3.model_info",
        "model_list.4.litellm_params.temperature",
        "general_settings.database_url",
    ):
        assert found[path].startswith("unsupported"), path
    for path in ("router_settings.routing_strategy", "router_settings.allowed_fails"):
        assert found[path].startswith("changed"), path
    # gpt-4o lost its Azure deployment, so it is the OpenAI one, then claude-sonnet's deployment.
    configs = by(doc["configs"], "id")
    gpt4o = configs["litellm-gpt-4o"]["config"]
    assert gpt4o["strategy"] == {"mode": "fallback"}
    assert [t["provider"] for t in gpt4o["targets"]] == ["@openai", "@anthropic"]


def test_multi_provider_with_azure_loadbalances_by_rpm(azure_registered: None) -> None:
    result = import_litellm(load("litellm/multi_provider.yaml"))
    doc = result.document
    azure = by(doc["integrations"], "name")["azure"]
    assert azure == {
        "name": "azure",
        "provider": "azure",
        "base_url": "https://contoso-eu.openai.azure.com/",
        "api_key": "${AZURE_API_KEY_EU}",
        "options": {"api_version": "2024-10-21"},
    }
    configs = by(doc["configs"], "id")
    gpt4o = configs["litellm-gpt-4o"]["config"]
    # Router-wide settings sit on the root and are inherited by every target.
    assert gpt4o["retry"] == {"attempts": 2} and gpt4o["request_timeout"] == 30000
    assert gpt4o["circuit_breaker"] == {"failure_threshold": 3, "cooldown_ms": 60000}
    primary, fallback = gpt4o["targets"]
    assert primary["strategy"] == {"mode": "loadbalance"}
    assert [(t["provider"], t["override_params"]["model"], t["weight"]) for t in primary["targets"]] == [
        ("@azure", "gpt-4o-eu", 600),
        ("@openai", "gpt-4o", 1800),
    ]
    assert fallback == {"provider": "@anthropic", "override_params": {"model": "claude-sonnet-4-5"}}
    # A deployment's own timeout wins over the router's; claude-sonnet falls back to gpt-4o-mini.
    assert configs["litellm-gpt-4o-mini"]["config"]["request_timeout"] == 20000
    sonnet = configs["litellm-claude-sonnet"]["config"]["targets"]
    assert sonnet[1]["override_params"] == {"model": "gpt-4o-mini"} and sonnet[1]["request_timeout"] == 20000
    # A bare model name is looked up in the catalog: text-embedding-3-small is OpenAI's.
    assert configs["litellm-embeddings"]["config"]["provider"] == "@openai"
    aliases = by(doc["models"], "alias")
    assert set(aliases) == {"gpt-4o", "gpt-4o-mini", "claude-sonnet", "claude-haiku", "embeddings"}
    assert all(a == {"alias": name, "config": f"litellm-{name}"} for name, a in aliases.items())
    assert doc["keys"] == [
        {"name": "litellm-master-key", "workspace": "default", "key": "${LITELLM_MASTER_KEY}"}
    ]
    assert result.env_vars == [
        "ANTHROPIC_API_KEY",
        "AZURE_API_KEY_EU",
        "LITELLM_MASTER_KEY",
        "OPENAI_API_KEY",
    ]


def test_load_balanced_duplicates_weights_fallbacks_and_cache() -> None:
    result = import_litellm(load("litellm/loadbalance.yaml"))
    doc = result.document
    integrations = by(doc["integrations"], "name")
    # Two keys of one provider, two hosts of another: each its own integration, named apart.
    assert {n: (i["provider"], i.get("base_url"), i.get("api_key")) for n, i in integrations.items()} == {
        "openai": ("openai", None, "${OPENAI_KEY_TEAM_A}"),
        "openai-team-b": ("openai", None, "${OPENAI_KEY_TEAM_B}"),
        "vllm": ("vllm", "http://vllm-a.internal:8000/v1", None),
        "vllm-b": ("vllm", "http://vllm-b.internal:8000/v1", None),
    }
    configs = by(doc["configs"], "id")
    mini = configs["litellm-gpt-4o-mini"]["config"]
    assert mini["strategy"] == {"mode": "loadbalance"} and mini["cache"] == {"mode": "simple", "max_age": 600}
    assert [(t["provider"], t["weight"]) for t in mini["targets"]] == [("@openai", 3), ("@openai-team-b", 1)]
    # default_fallbacks apply to every group but the fallback itself.
    llama = configs["litellm-llama"]["config"]
    assert llama["strategy"] == {"mode": "fallback"}
    assert [(t["provider"], t["weight"]) for t in llama["targets"][0]["targets"]] == [
        ("@vllm", 200000),
        ("@vllm-b", 100000),
    ]
    assert llama["targets"][0]["targets"][0]["override_params"] == {
        "model": "meta-llama/Llama-3.1-8B-Instruct"
    }
    assert [t["provider"] for t in llama["targets"][1]["targets"]] == ["@openai", "@openai-team-b"]
    aliases = by(doc["models"], "alias")
    assert aliases["gpt-4o-mini-latest"] == {"alias": "gpt-4o-mini-latest", "config": "litellm-gpt-4o-mini"}
    assert "openai/*" not in aliases  # a wildcard is an integration, addressed as @openai/<model>
    assert "'@openai/<model>'" in findings(result)["model_list.4"]
    assert "only ttl is kept" in findings(result)["litellm_settings.cache_params"]


def test_simple_chains_stay_plain_targets_and_literal_secrets_never_leave(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    result = import_litellm(load("litellm/simple.yaml"))
    text = result.to_yaml("simple.yaml")
    assert "literal-secret-do-not-copy" not in text and "sk-1234" not in text
    doc = result.document
    assert by(doc["integrations"], "name")["anthropic"]["api_key"] == "${LOCKGATE_SECRET_ANTHROPIC}"
    assert by(doc["integrations"], "name")["ollama"]["base_url"] == "http://localhost:11434/v1"
    assert "configs" not in doc  # nothing here needs more than an ordered target list
    assert by(doc["models"], "alias") == {
        "gpt-4o-mini": {
            "alias": "gpt-4o-mini",
            "targets": ["@openai/gpt-4o-mini", "@anthropic/claude-sonnet-4-5"],
        },
        "claude-sonnet": {"alias": "claude-sonnet", "targets": ["@anthropic/claude-sonnet-4-5"]},
        "local-qwen": {"alias": "local-qwen", "targets": ["@ollama/qwen2.5:7b"]},
        "gpt-4": {"alias": "gpt-4", "targets": ["@openai/gpt-4o-mini", "@anthropic/claude-sonnet-4-5"]},
    }
    assert doc["keys"][0]["key"] == "${LOCKGATE_SECRET_LITELLM_MASTER_KEY}"
    found = findings(result)
    assert "set LOCKGATE_SECRET_ANTHROPIC" in found["model_list.1.litellm_params.api_key"]
    # The header lists what to set and what to review; the YAML is a valid lockgate.yaml.
    assert text.startswith("# Imported by `lockgate import litellm` from simple.yaml.")
    assert "LOCKGATE_SECRET_ANTHROPIC, LOCKGATE_SECRET_LITELLM_MASTER_KEY, OPENAI_API_KEY" in text
    assert yaml.safe_load(text) == doc
    for name, value in secret_env(result.env_vars).items():
        monkeypatch.setenv(name, value)
    parsed = parse_config_text(text)
    assert [m.alias for m in parsed.models] == ["gpt-4o-mini", "claude-sonnet", "local-qwen", "gpt-4"]


@pytest.mark.parametrize("name", ["multi_provider.yaml", "loadbalance.yaml", "simple.yaml"])
def test_every_fixture_becomes_a_valid_file(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    result = import_litellm(load(f"litellm/{name}"))
    for var, value in secret_env(result.env_vars).items():
        monkeypatch.setenv(var, value)
    config = parse_config_text(result.to_yaml(name))
    assert config.models and config.integrations
    # No two findings say the same thing; a finding always names where it came from.
    lines = [f.line() for f in result.findings]
    assert len(lines) == len(set(lines)) and all(f.path for f in result.findings)


def test_unusable_sources_fail_with_a_reason() -> None:
    with pytest.raises(ImportFailed, match="mapping"):
        import_litellm(["not", "a", "mapping"])
    with pytest.raises(ImportFailed, match="model_list"):
        import_litellm({"router_settings": {}})
    skipped = import_litellm(
        {
            "model_list": [
                {"model_name": "ok", "litellm_params": {"model": "openai/gpt-4o"}},
                {"model_name": "no-params"},
                {"model_name": "odd", "litellm_params": {"model": "made-up-provider/x"}},
                {"model_name": "compat", "litellm_params": {"model": "openai_like/m"}},
            ],
            "router_settings": {
                "fallbacks": [{"ok": ["missing-group"]}],
                "default_fallbacks": ["odd"],
                "model_group_alias": {"alias-of-odd": "odd"},
            },
        }
    )
    found = findings(skipped)
    assert "needs litellm_params.model" in found["model_list.1"]
    assert "'made-up-provider/'" in found["model_list.2.litellm_params.model"]
    assert "needs api_base" in found["model_list.3.litellm_params.api_base"]
    assert "'missing-group', which has no imported deployment" in found["router_settings.fallbacks"]
    assert "every model_name falls back to 'odd'" in found["router_settings.default_fallbacks"]
    assert "'odd' has no imported deployment" in found["router_settings.model_group_alias.alias-of-odd"]
    # A provider's key variable is read, as LiteLLM would, when the deployment names none.
    assert skipped.document["integrations"] == [
        {"name": "openai", "provider": "openai", "api_key": "${OPENAI_API_KEY}"}
    ]
    assert skipped.document["models"] == [{"alias": "ok", "targets": ["@openai/gpt-4o"]}]


def test_secret_headers_follow_the_secret_rule() -> None:
    params = {
        "model": "openai/gpt-4o",
        "api_key": "os.environ/OPENAI_API_KEY",
        "extra_headers": {
            "Authorization": "Bearer literal-header-secret-0123",
            "X-Api-Key": "os.environ/GATEWAY_KEY",
            "X-Team": "search",
        },
    }
    result = import_litellm({"model_list": [{"model_name": "gpt-4o", "litellm_params": params}]})
    assert "literal-header-secret" not in result.to_yaml("inline")
    assert result.document["integrations"][0]["headers"] == {
        "Authorization": "${LOCKGATE_SECRET_OPENAI_HEADER_AUTHORIZATION}",
        "X-Api-Key": "${GATEWAY_KEY}",  # a reference stays the same reference
        "X-Team": "search",
    }
    found = findings(result)
    assert (
        "set LOCKGATE_SECRET_OPENAI_HEADER_AUTHORIZATION"
        in (found["model_list.0.litellm_params.extra_headers.Authorization"])
    )
    assert "model_list.0.litellm_params.extra_headers.X-Api-Key" not in found


def test_secret_options_of_any_importer_become_references() -> None:
    book, found = IntegrationBook(), Findings()
    options = {
        "region": "us-west-2",
        "access_key_id": "${AWS_ACCESS_KEY_ID}",
        "secret_access_key": "wJal-literal",
    }
    book.add("bedrock", options=options, findings=found, options_path="model_list.0.litellm_params")
    assert book.items[0]["options"] == {
        "region": "us-west-2",
        "access_key_id": "${AWS_ACCESS_KEY_ID}",
        "secret_access_key": "${LOCKGATE_SECRET_BEDROCK_SECRET_ACCESS_KEY}",
    }
    assert [f.path for f in found] == ["model_list.0.litellm_params.secret_access_key"]
