"""Guardrails through the control plane: admin API (RBAC, audit, validation) and lockgate.yaml apply."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest
import yaml

from lockgate.testing.mock_provider import MockProviderThread
from tests.admin_harness import admin_client, admin_gateway, ok
from tests.gateway_harness import GatewayThread, demo_config

PII = [{"type": "pii", "params": {"entities": ["email"]}}]


@pytest.fixture(scope="module")
def gw(mock: MockProviderThread, tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayThread]:
    config = demo_config(mock.url)
    config["keys"] = [{"name": "app", "key": "lg-guardrail-admin-app-key"}]
    with admin_gateway(tmp_path_factory.mktemp("guardadmin"), config, master_key="lg-master-key-000001") as g:
        yield g


@pytest.fixture(scope="module")
def team(gw: GatewayThread) -> dict[str, Any]:
    with admin_client(gw) as admin:
        ws = ok(admin.post("/workspaces", json={"name": "guard-a"}), 201)
        user = ok(
            admin.post(
                "/users", json={"name": "ga-admin", "roles": [{"role": "admin", "workspace_id": ws["id"]}]}
            ),
            201,
        )
        viewer = ok(admin.post("/users", json={"name": "g-viewer", "roles": [{"role": "viewer"}]}), 201)
        return {
            "ws": ws["id"],
            "ws_admin": ok(admin.post(f"/users/{user['id']}/keys", json={"name": "cli"}), 201)["key"],
            "viewer": ok(admin.post(f"/users/{viewer['id']}/keys", json={"name": "cli"}), 201)["key"],
        }


def chat(gw: GatewayThread, text: str) -> openai.types.chat.ChatCompletion:
    c = openai.OpenAI(base_url=gw.url + "/v1", api_key="lg-guardrail-admin-app-key", max_retries=0)
    return c.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": text}])


def test_crud_attach_and_the_data_plane_follows(gw: GatewayThread, mock: MockProviderThread) -> None:
    with admin_client(gw) as admin:
        created = ok(
            admin.post("/guardrails", json={"name": "mail-redact", "action": "redact", "checks": PII}), 201
        )
        assert (
            created["object"] == "guardrail" and created["on_error"] == "closed" and created["version"] == 1
        )
        attached = ok(
            admin.post("/guardrail-attachments", json={"scope": "org", "input_guardrails": ["mail-redact"]}),
            201,
        )
        assert attached["target_id"] == "org_default"
        assert "[EMAIL]" in chat(gw, "to ann@example.com").choices[0].message.content
        assert "ann@example.com" not in str(mock.requests[-1]["json"])

        # Switch it to deny: the next request is refused, without a restart.
        ok(admin.patch(f"/guardrails/{created['id']}", json={"action": "deny"}, headers={"If-Match": "1"}))
        with pytest.raises(openai.BadRequestError):
            chat(gw, "to ann@example.com")

        in_use = admin.delete(f"/guardrails/{created['id']}")
        assert in_use.status_code == 409 and in_use.json()["error"]["code"] == "in_use"
        ok(admin.delete(f"/guardrail-attachments/{attached['id']}"))
        ok(admin.delete(f"/guardrails/{created['id']}"))
        assert "ann@example.com" in chat(gw, "to ann@example.com").choices[0].message.content

        actions = [e["action"] for e in ok(admin.get("/audit", params={"object_type": "guardrail"}))["data"]]
        assert actions[:3] == ["guardrail.delete", "guardrail.update", "guardrail.create"]
        assert ok(admin.get("/audit/verify"))["ok"]


def test_validation_names_the_field(gw: GatewayThread) -> None:
    with admin_client(gw) as admin:
        bad = admin.post(
            "/guardrails",
            json={"name": "bad", "checks": [{"type": "regex_match", "params": {"pattern": "("}}]},
        )
        assert bad.status_code == 400 and bad.json()["error"]["param"] == "checks.0.params.pattern"
        hook = {"type": "webhook", "params": {"url": "https://hooks.example/check"}}
        hook["params"]["headers"] = {"Authorization": "Bearer in-clear"}
        in_clear = admin.post("/guardrails", json={"name": "bad", "checks": [hook]})
        assert in_clear.status_code == 400, in_clear.text
        assert in_clear.json()["error"]["param"] == "checks.0.params.headers"
        assert "headers_env" in in_clear.json()["error"]["message"]
        assert "in-clear" not in json.dumps(ok(admin.get("/audit", params={"limit": 5})))
        unknown = admin.post("/guardrails", json={"name": "bad", "checks": [{"type": "nope"}]})
        assert unknown.status_code == 400 and "unknown check 'nope'" in unknown.json()["error"]["message"]
        ok(
            admin.post(
                "/guardrails",
                json={"name": "schema-out", "checks": [{"type": "json_schema", "params": {"schema": {}}}]},
            ),
            201,
        )
        wrong_stage = admin.post(
            "/guardrail-attachments", json={"scope": "org", "input_guardrails": ["schema-out"]}
        )
        assert wrong_stage.status_code == 400 and wrong_stage.json()["error"]["param"] == "input_guardrails.0"
        missing = admin.post("/guardrail-attachments", json={"scope": "org", "output_guardrails": ["ghost"]})
        assert (
            missing.status_code == 400 and "no guardrail named 'ghost'" in missing.json()["error"]["message"]
        )
        types = {c["type"] for c in ok(admin.get("/guardrail-checks"))["data"]}
        assert {"pii", "webhook", "json_schema", "prompt_injection"} <= types


def test_rbac(gw: GatewayThread, team: dict[str, Any]) -> None:
    with admin_client(gw, team["ws_admin"]) as ws_admin, admin_client(gw, team["viewer"]) as viewer:
        assert ws_admin.post("/guardrails", json={"name": "org-wide", "checks": PII}).status_code == 403
        own = ok(
            ws_admin.post("/guardrails", json={"name": "ga-pii", "workspace_id": team["ws"], "checks": PII}),
            201,
        )
        ok(
            ws_admin.post(
                "/guardrail-attachments",
                json={"scope": "workspace", "target_id": team["ws"], "input_guardrails": ["ga-pii"]},
            ),
            201,
        )
        assert (
            ws_admin.post(
                "/guardrail-attachments", json={"scope": "org", "input_guardrails": ["ga-pii"]}
            ).status_code
            == 403
        )
        assert viewer.get(f"/guardrails/{own['id']}").status_code == 200
        assert viewer.patch(f"/guardrails/{own['id']}", json={"timeout_ms": 50}).status_code == 403
    with admin_client(gw) as admin:
        # A workspace's guardrail cannot be attached outside that workspace.
        other = admin.post(
            "/guardrail-attachments",
            json={"scope": "workspace", "target_id": "ws_default", "input_guardrails": ["ga-pii"]},
        )
        assert other.status_code == 400 and "another workspace" in other.json()["error"]["message"]
        emptied = admin.delete(f"/workspaces/{team['ws']}")
        assert emptied.status_code == 409 and emptied.json()["error"]["code"] == "workspace_not_empty"


def test_yaml_apply_export_and_prune(gw: GatewayThread, mock: MockProviderThread) -> None:
    config = demo_config(mock.url)
    config["keys"] = [{"name": "app", "key": "lg-guardrail-admin-app-key"}]
    config["guardrails"] = [
        {"name": "file-mail", "action": "redact", "checks": PII},
        {"name": "file-flag", "action": "flag", "checks": [{"type": "limits", "params": {"max_words": 2}}]},
    ]
    config["guardrail_attachments"] = [
        {
            "scope": "key",
            "workspace": "default",
            "key": "app",
            "input_guardrails": ["file-mail"],
            "output_guardrails": ["file-flag"],
        }
    ]
    with admin_client(gw) as admin:
        applied = ok(admin.post("/config/apply", json={"yaml": yaml.safe_dump(config)}))
        kinds = sorted({(c["kind"], c["action"]) for c in applied["changes"]})
        assert ("guardrail", "create") in kinds and ("guardrail_attachment", "create") in kinds
        again = ok(admin.post("/config/apply", json={"yaml": yaml.safe_dump(config)}))
        assert again["changes"] == []  # idempotent
        exported = ok(admin.get("/config/export"))["config"]
        names = [g["name"] for g in exported["guardrails"]]
        assert "file-mail" in names
        assert {
            "scope": "key",
            "workspace": "default",
            "key": "app",
            "input_guardrails": ["file-mail"],
            "output_guardrails": ["file-flag"],
        } in exported["guardrail_attachments"]
        raw = httpx.post(
            gw.url + "/v1/chat/completions",
            headers={"authorization": "Bearer lg-guardrail-admin-app-key"},
            json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "to ann@example.com"}]},
        )
        assert raw.headers["x-lockgate-guardrails"] == "input.file-mail=redacted(1), output.file-flag=flagged"
        del config["guardrail_attachments"]
        del config["guardrails"]
        pruned = ok(admin.post("/config/apply", json={"yaml": yaml.safe_dump(config)}))
        assert {(c["kind"], c["action"]) for c in pruned["changes"]} == {
            ("guardrail_attachment", "delete"),
            ("guardrail", "delete"),
        }
    assert (
        "x-lockgate-guardrails"
        not in httpx.post(
            gw.url + "/v1/chat/completions",
            headers={"authorization": "Bearer lg-guardrail-admin-app-key"},
            json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]},
        ).headers
    )
