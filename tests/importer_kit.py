"""Importer fixtures (tests/fixtures/importers) and helpers to serve their results from the mock."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import yaml

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "importers"


def load(name: str) -> Any:
    path = FIXTURES / name
    return orjson.loads(path.read_bytes()) if path.suffix == ".json" else yaml.safe_load(path.read_text())


def at_mock(document: dict[str, Any], mock_url: str) -> dict[str, Any]:
    """The document with every integration pointed at the mock provider (its dialect's root).

    Self-hosted servers (vLLM, Ollama) take no key, but the mock wants one: they get a
    stand-in ``authorization`` header, ``Bearer local``.
    """
    out = {**document, "integrations": []}
    for item in document.get("integrations", []):
        # Anthropic and Azure paths start at the root (/v1/messages, /openai/deployments/...).
        base = mock_url if item["provider"] in ("anthropic", "azure") else f"{mock_url}/v1"
        moved = {**item, "base_url": base}
        if "api_key" not in item:
            moved["headers"] = {**item.get("headers", {}), "authorization": "Bearer local"}
        out["integrations"].append(moved)
    return out


def expected_auth(document: dict[str, Any], integration: str, env: dict[str, str]) -> tuple[str, str]:
    """(header, value) the mock should see from this integration of an ``at_mock`` document."""
    item = next(i for i in document["integrations"] if i["name"] == integration)
    if "api_key" not in item:
        return "authorization", "Bearer local"
    value = env[item["api_key"][2:-1]]
    header = {"anthropic": "x-api-key", "azure": "api-key"}.get(item["provider"])
    return (header, value) if header else ("authorization", f"Bearer {value}")


def leaf_targets(node: dict[str, Any]) -> list[str]:
    """A route config's leaves as '@integration/model' targets, in tree order.

    Until alias -> config routing lands (issue 5), tests reach a config's leaves through
    an alias with these targets; the config's structure is checked on its own.
    """
    if node.get("targets"):
        return [spec for child in node["targets"] for spec in leaf_targets(child)]
    return [f"{node['provider']}/{node['override_params']['model']}"]


def secret_env(names: list[str]) -> dict[str, str]:
    """A distinct, recognisable value per variable, long enough for a virtual key."""
    return {name: f"sk-test-{name.lower().replace('_', '-')}-0123456789" for name in names}
