"""`lockgate workspaces|keys|integrations|models|configs …` as users run them, against a real gateway."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest

from lockgate.testing.mock_provider import MockProviderThread
from tests.admin_harness import ADMIN_KEY, admin_client, admin_gateway, ok
from tests.gateway_harness import GatewayThread, demo_config

ROOT = Path(__file__).resolve().parents[2]
CHAT = [{"role": "user", "content": "Hello"}]


@pytest.fixture(scope="module")
def gw(mock: MockProviderThread, tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayThread]:
    with admin_gateway(tmp_path_factory.mktemp("cliadmin"), demo_config(mock.url)) as gateway:
        yield gateway


def cli(
    gw: GatewayThread, *args: str, stdin: str | None = None, **env: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "lockgate", *args],
        capture_output=True,
        text=True,
        input=stdin,
        cwd=ROOT,
        env={**os.environ, "COLUMNS": "250", "LOCKGATE_URL": gw.url, "LOCKGATE_ADMIN_KEY": ADMIN_KEY, **env},
        timeout=60,
        check=False,
    )


def out(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, result.stderr
    return result.stdout


def as_json(result: subprocess.CompletedProcess[str]) -> Any:
    return json.loads(out(result))


def failed(result: subprocess.CompletedProcess[str], code: int = 1) -> str:
    assert result.returncode == code, (result.stdout, result.stderr)
    return result.stderr


def sdk(gw: GatewayThread, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=gw.url + "/v1", api_key=key, max_retries=0)


def test_workspace_and_key_lifecycle(gw: GatewayThread) -> None:
    made = as_json(
        cli(
            gw,
            "workspaces",
            "create",
            "team-cli",
            "--description",
            "CLI team",
            "--metadata",
            "owner=ops",
            "--json",
        )
    )
    assert made["name"] == "team-cli" and made["metadata"] == {"owner": "ops"}
    listed = out(cli(gw, "workspaces", "list"))
    assert re.search(rf"{made['id']}\s+team-cli\s+CLI team", listed), listed
    # Names and ids are interchangeable wherever a workspace is named.
    assert as_json(cli(gw, "workspaces", "get", made["id"], "--json"))["name"] == "team-cli"
    assert "renamed team" in out(cli(gw, "workspaces", "update", "team-cli", "--description", "renamed team"))

    created = cli(
        gw,
        "keys",
        "create",
        "app",
        "-w",
        "team-cli",
        "--allow-model",
        "gpt-4o-mini",
        "--expires-at",
        "2099-01-01",
    )
    key = re.search(r"lg-[A-Za-z0-9_-]+", out(created))
    assert key is not None and "shown once" in created.stdout
    sdk(gw, key.group()).chat.completions.create(model="gpt-4o-mini", messages=CHAT)
    with pytest.raises(openai.PermissionDeniedError):
        sdk(gw, key.group()).chat.completions.create(model="claude-sonnet", messages=CHAT)

    (row,) = as_json(cli(gw, "keys", "list", "-w", "team-cli", "--json"))
    assert row["name"] == "app" and row["status"] == "active" and "key" not in row and "key_hash" not in row
    assert row["allowed_models"] == ["gpt-4o-mini"] and row["expires_at"] > 4e9
    table = out(cli(gw, "keys", "list", "--workspace", made["id"]))
    assert re.search(
        rf"{row['id']}\s+app\s+{made['id']}\s+active\s+{re.escape(row['key_hint'])}\s+2099-01-01", table
    ), table

    rotated = as_json(cli(gw, "keys", "rotate", "app", "-w", "team-cli", "--json"))
    assert rotated["id"] == row["id"] and rotated["key"] != key.group()
    with pytest.raises(openai.AuthenticationError):
        sdk(gw, key.group()).chat.completions.create(model="gpt-4o-mini", messages=CHAT)
    new_key = rotated["key"]
    updated = as_json(
        cli(
            gw, "keys", "update", row["id"], "--any-model", "--no-expiry", "--metadata", "tier=gold", "--json"
        )
    )
    assert (
        updated["allowed_models"] is None
        and updated["expires_at"] is None
        and updated["metadata"] == {"tier": "gold"}
    )
    sdk(gw, new_key).chat.completions.create(model="claude-sonnet", messages=CHAT)

    assert re.search(r"status\s+revoked", out(cli(gw, "keys", "revoke", "app", "-w", "team-cli")))
    with pytest.raises(openai.AuthenticationError, match="revoked"):
        sdk(gw, new_key).chat.completions.create(model="gpt-4o-mini", messages=CHAT)
    assert "still holds api_key objects" in failed(cli(gw, "workspaces", "delete", "team-cli"))
    assert f"deleted api_key {row['id']}" in out(cli(gw, "keys", "delete", "app", "-w", "team-cli"))
    assert as_json(cli(gw, "workspaces", "delete", "team-cli", "--json"))["deleted"] is True
    assert out(cli(gw, "workspaces", "list", "--name", "team-cli")).strip() == "none"


def test_integrations_aliases_and_configs(
    gw: GatewayThread, mock: MockProviderThread, tmp_path: Path
) -> None:
    secret = "sk-cli-provider-secret-4242"
    made = cli(
        gw,
        "integrations",
        "create",
        "cli-openai",
        "--provider",
        "openai",
        "--base-url",
        f"{mock.url}/v1",
        "--api-key-env",
        "CLI_PROVIDER_SECRET",
        "--header",
        "x-team=cli",
        "--json",
        CLI_PROVIDER_SECRET=secret,
    )
    integration = as_json(made)
    assert secret not in made.stdout and integration["secret_hint"] == "sk-...4242"
    assert integration["headers"] == {"x-team": "cli"}
    assert re.search(
        r"cli-openai\s+openai\s+\S+/v1\s+sk-\.\.\.4242\s+all\s+any",
        out(cli(gw, "integrations", "list", "--provider", "openai")),
    )

    alias = as_json(
        cli(
            gw,
            "models",
            "create",
            "cli-chat",
            "--target",
            "@cli-openai/gpt-4o-mini",
            "--target",
            "@mock-anthropic/claude-sonnet-4-5",
            "--json",
        )
    )
    assert alias["targets"] == ["@cli-openai/gpt-4o-mini", "@mock-anthropic/claude-sonnet-4-5"]
    key = as_json(cli(gw, "keys", "create", "cli-user", "--json"))["key"]
    sdk(gw, key).chat.completions.create(model="cli-chat", messages=CHAT)
    sent = mock.requests[-1]["headers"]
    assert sent["authorization"] == f"Bearer {secret}" and sent["x-team"] == "cli"

    rotated_secret = "sk-cli-rotated-secret-0007"
    replaced = cli(gw, "integrations", "update", "cli-openai", "--api-key-stdin", stdin=rotated_secret + "\n")
    assert re.search(r"secret_hint\s+sk-\.\.\.0007", out(replaced))
    sdk(gw, key).chat.completions.create(model="cli-chat", messages=CHAT)
    assert mock.requests[-1]["headers"]["authorization"] == f"Bearer {rotated_secret}"

    tree = {
        "strategy": {"mode": "fallback"},
        "targets": [{"provider": "@cli-openai"}, {"provider": "@mock-anthropic"}],
    }
    config_file = tmp_path / "route.yaml"
    config_file.write_text(json.dumps(tree))
    saved = as_json(
        cli(
            gw,
            "configs",
            "create",
            "--id",
            "cli-route",
            "--file",
            str(config_file),
            "--description",
            "from a file",
            "--json",
        )
    )
    assert saved["config"] == tree
    assert re.search(
        r"cli-route\s+org-wide\s+fallback, 2 targets\s+from a file", out(cli(gw, "configs", "list"))
    )
    pointed = as_json(cli(gw, "models", "update", "cli-chat", "--config", "cli-route", "--json"))
    assert pointed["config_id"] == "cli-route" and pointed["targets"] is None
    assert re.search(
        r"cli-chat\s+org-wide\s+config cli-route", out(cli(gw, "models", "list", "--alias", "cli-chat"))
    )
    in_use = failed(cli(gw, "configs", "delete", "cli-route"))
    assert "HTTP 409: An alias still uses this config." in in_use
    inline = as_json(
        cli(gw, "configs", "update", "cli-route", "--data", '{"provider": "@cli-openai"}', "--json")
    )
    assert inline["config"] == {"provider": "@cli-openai"} and inline["description"] == "from a file"
    assert as_json(cli(gw, "configs", "get", "cli-route", "--json"))["version"] == 2

    assert "deleted model_alias" in out(cli(gw, "models", "delete", "cli-chat"))
    assert "deleted route_config cli-route" in out(cli(gw, "configs", "delete", "cli-route"))
    assert "deleted integration" in out(cli(gw, "integrations", "delete", "cli-openai"))
    assert "deleted api_key" in out(cli(gw, "keys", "delete", "cli-user"))


def test_errors_are_clear_and_exit_non_zero(gw: GatewayThread) -> None:
    assert "set LOCKGATE_ADMIN_KEY or pass --admin-key" in failed(
        cli(gw, "keys", "list", LOCKGATE_ADMIN_KEY=""), 2
    )
    assert "HTTP 401" in failed(cli(gw, "workspaces", "list", "--admin-key", "lga-not-a-key"))
    assert "cannot reach http://127.0.0.1:9" in failed(
        cli(gw, "workspaces", "list", "--url", "http://127.0.0.1:9")
    )
    bad_name = failed(cli(gw, "workspaces", "create", "no spaces"))
    assert "HTTP 400" in bad_name and "(name)" in bad_name
    assert "no key named or with id 'ghost'" in failed(cli(gw, "keys", "get", "ghost"))
    assert "no workspace named or with id 'ws_missing'" in failed(cli(gw, "keys", "list", "-w", "ws_missing"))
    assert "not an ISO 8601 time" in failed(cli(gw, "keys", "create", "k", "--expires-at", "soon"), 2)
    assert "expected KEY=VALUE" in failed(cli(gw, "workspaces", "create", "meta", "--metadata", "novalue"), 2)
    assert "the variable NOT_SET_ANYWHERE is not set" in failed(
        cli(gw, "integrations", "create", "x", "--provider", "openai", "--api-key-env", "NOT_SET_ANYWHERE"), 2
    )
    with admin_client(gw) as admin:
        ws = ok(admin.post("/workspaces", json={"name": "shadowing"}), 201)
        for scope in (None, ws["id"]):
            body = {"alias": "twin", "workspace_id": scope, "targets": ["@mock-openai/gpt-4o-mini"]}
            ok(admin.post("/models", json=body), 201)
        user = ok(admin.post("/users", json={"name": "cli-viewer", "roles": [{"role": "viewer"}]}), 201)
        viewer_key = ok(admin.post(f"/users/{user['id']}/keys", json={"name": "cli"}), 201)["key"]
    assert "more than one alias is named 'twin'" in failed(cli(gw, "models", "get", "twin"))
    assert as_json(cli(gw, "models", "get", "twin", "-w", "shadowing", "--json"))["workspace_id"] == ws["id"]
    assert "HTTP 403" in failed(cli(gw, "workspaces", "create", "viewer-made", "--admin-key", viewer_key))
    assert "shadowing" in out(cli(gw, "workspaces", "list", "--admin-key", viewer_key))
