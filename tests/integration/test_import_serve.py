"""Imported LiteLLM and Portkey configs serve requests: applied to a real gateway, called with the
official OpenAI SDK, answered by the mock provider.

Aliases with plain targets are called by name. Aliases that name a saved config become
routable with issue 5 (routing); until then every leaf of an imported config is called
through its integration (``@integration/model``), and fallback order is checked through an
alias made of the leaves (``tests.importer_kit.leaf_targets``).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest
import yaml

from lockgate.importers import ImportResult
from lockgate.importers.litellm import import_litellm
from lockgate.importers.portkey import import_portkey
from lockgate.testing.mock_provider import MockProviderThread
from tests.admin_harness import admin_client, admin_gateway, ok
from tests.gateway_harness import GatewayThread
from tests.importer_kit import at_mock, expected_auth, leaf_targets, load, secret_env

CHAT = [{"role": "user", "content": "Hello"}]
IMPORTS = {
    "litellm/multi_provider.yaml": lambda data: import_litellm(data),
    "litellm/loadbalance.yaml": lambda data: import_litellm(data),
    "litellm/simple.yaml": lambda data: import_litellm(data),
    "portkey/fallback.json": lambda data: import_portkey(data, config_id="pk-fallback", alias="pk"),
    "portkey/loadbalance.json": lambda data: import_portkey(data, config_id="pk-lb"),
    "portkey/nested.json": lambda data: import_portkey(
        data, config_id="pk-nested", virtual_keys={"main-openai": "openai"}
    ),
}


@pytest.fixture
def gw(tmp_path: Path) -> Iterator[GatewayThread]:
    with admin_gateway(tmp_path, {}) as gateway:
        yield gateway


def apply(
    gw: GatewayThread, result: ImportResult, mock: MockProviderThread, monkeypatch: pytest.MonkeyPatch
) -> tuple[dict[str, Any], dict[str, str], str]:
    """Apply the import (pointed at the mock) as `lockgate import --apply` does; the variables it
    reads are set in the gateway's environment first. Returns (document, env, a virtual key)."""
    env = secret_env(result.env_vars)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    document = at_mock(result.document, mock.url)
    with admin_client(gw) as admin:
        applied = ok(
            admin.post("/config/apply", params={"merge": "true"}, json={"yaml": yaml.safe_dump(document)})
        )
        assert applied["changed"]
        key = ok(admin.post("/keys", json={"name": "importer-test"}), 201)["key"]
    return document, env, key


def sdk(gw: GatewayThread, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=gw.url + "/v1", api_key=key, max_retries=0)


def call(client: openai.OpenAI, model: str) -> Any:
    if "embedding" in model:
        return client.embeddings.with_raw_response.create(model=model, input="Hello")
    return client.chat.completions.with_raw_response.create(model=model, messages=CHAT)


def alias(gw: GatewayThread, name: str, targets: list[str]) -> None:
    with admin_client(gw) as admin:
        ok(admin.post("/models", json={"alias": name, "targets": targets}), 201)


@pytest.mark.parametrize("fixture", list(IMPORTS))
def test_every_imported_target_serves_through_its_integration(
    fixture: str, gw: GatewayThread, mock: MockProviderThread, monkeypatch: pytest.MonkeyPatch
) -> None:
    result = IMPORTS[fixture](load(fixture))
    document, env, key = apply(gw, result, mock, monkeypatch)
    specs = [spec for c in document.get("configs", []) for spec in leaf_targets(c["config"])]
    specs += [spec for m in document.get("models", []) for spec in m.get("targets", [])]
    assert specs
    if fixture in ("litellm/multi_provider.yaml", "portkey/nested.json"):
        assert any(spec.startswith("@azure/") for spec in specs)  # Azure's URL and api-key auth too
    client = sdk(gw, key)
    for spec in dict.fromkeys(specs):
        integration, _, model = spec[1:].partition("/")
        reply = call(client, spec)
        assert reply.status_code == 200, (spec, reply.text)
        sent = mock.requests[-1]
        assert sent["json"]["model"] == model
        header, value = expected_auth(document, integration, env)
        assert sent["headers"][header] == value, spec
        if value != "Bearer local":  # the provider secret went upstream, never back to the client
            assert value.removeprefix("Bearer ") not in str(reply.headers) + reply.text


def test_litellm_quick_start_serves_by_alias_with_fallback_and_the_master_key(
    gw: GatewayThread, mock: MockProviderThread, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, env, _ = apply(gw, import_litellm(load("litellm/simple.yaml")), mock, monkeypatch)
    # Apps keep the LiteLLM master key: it is a virtual key now.
    client = sdk(gw, env["LOCKGATE_SECRET_LITELLM_MASTER_KEY"])
    reply = client.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=CHAT)
    assert reply.headers["x-lockgate-provider"] == "openai"
    assert mock.requests[-1]["headers"]["authorization"] == f"Bearer {env['OPENAI_API_KEY']}"
    # router_settings.fallbacks: gpt-4o-mini -> claude-sonnet when OpenAI fails.
    mock.add_fault(status=503, match_model="gpt-4o-mini")
    reply = client.chat.completions.with_raw_response.create(
        model="gpt-4", messages=CHAT
    )  # model_group_alias
    assert reply.headers["x-lockgate-provider"] == "anthropic"
    assert reply.parse().choices[0].message.content
    last = mock.requests[-1]
    assert last["path"] == "/v1/messages" and last["json"]["model"] == "claude-sonnet-4-5"
    assert last["headers"]["x-api-key"] == env["LOCKGATE_SECRET_ANTHROPIC"]
    stream = client.chat.completions.create(model="local-qwen", messages=CHAT, stream=True)
    assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert mock.requests[-1]["json"]["model"] == "qwen2.5:7b"
    with pytest.raises(openai.AuthenticationError):
        sdk(gw, "sk-1234").chat.completions.create(model="gpt-4o-mini", messages=CHAT)


@pytest.mark.parametrize(
    ("fixture", "config_id", "failing_model", "served_by"),
    [
        ("litellm/multi_provider.yaml", "litellm-claude-sonnet", "claude-sonnet-4-5", "gpt-4o-mini"),
        ("portkey/fallback.json", "pk-fallback", "gpt-4o-mini", "claude-sonnet-4-5"),
    ],
)
def test_imported_fallback_order_holds(
    fixture: str,
    config_id: str,
    failing_model: str,
    served_by: str,
    gw: GatewayThread,
    mock: MockProviderThread,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    document, _, key = apply(gw, IMPORTS[fixture](load(fixture)), mock, monkeypatch)
    config = next(c["config"] for c in document["configs"] if c["id"] == config_id)
    assert config["strategy"]["mode"] == "fallback"
    alias(gw, "flat-" + config_id, leaf_targets(config))
    mock.add_fault(status=503, match_model=failing_model)
    reply = sdk(gw, key).chat.completions.with_raw_response.create(model="flat-" + config_id, messages=CHAT)
    assert reply.status_code == 200 and reply.headers["x-lockgate-attempts"] == "2"
    assert [r["json"]["model"] for r in mock.requests[-2:]] == [failing_model, served_by]


def test_litellm_wildcard_is_addressed_through_its_integration(
    gw: GatewayThread, mock: MockProviderThread, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, env, key = apply(gw, import_litellm(load("litellm/loadbalance.yaml")), mock, monkeypatch)
    # model_list had `openai/*` with team A's key: any OpenAI model through that integration.
    sdk(gw, key).chat.completions.create(model="@openai/gpt-4.1-nano", messages=CHAT)
    sent = mock.requests[-1]
    assert sent["json"]["model"] == "gpt-4.1-nano"
    assert sent["headers"]["authorization"] == f"Bearer {env['OPENAI_KEY_TEAM_A']}"
