"""The admin API's contract: RBAC per route, field-level errors, concurrency, audit, declarative apply."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
import yaml
from sqlalchemy import create_engine, text

from lockgate.testing.mock_provider import MockProviderThread
from tests.admin_harness import admin_client, admin_gateway, ok
from tests.gateway_harness import GatewayThread, demo_config


@pytest.fixture(scope="module")
def gw(mock: MockProviderThread, tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayThread]:
    with admin_gateway(tmp_path_factory.mktemp("adminapi"), demo_config(mock.url)) as gateway:
        yield gateway


@pytest.fixture(scope="module")
def team(gw: GatewayThread) -> dict[str, Any]:
    """Two workspaces, objects in each, and one admin identity per role."""
    with admin_client(gw) as admin:
        a = ok(admin.post("/workspaces", json={"name": "rbac-a"}), 201)
        b = ok(admin.post("/workspaces", json={"name": "rbac-b"}), 201)
        objs = {
            "a": a["id"],
            "b": b["id"],
            "key_a": ok(admin.post("/keys", json={"name": "ka", "workspace_id": a["id"]}), 201)["id"],
            "key_b": ok(admin.post("/keys", json={"name": "kb", "workspace_id": b["id"]}), 201)["id"],
            "alias_b": ok(
                admin.post(
                    "/models",
                    json={
                        "alias": "b-only",
                        "workspace_id": b["id"],
                        "targets": ["@mock-openai/gpt-4o-mini"],
                    },
                ),
                201,
            )["id"],
        }
        roles = {
            "viewer": [{"role": "viewer"}],
            "a_admin": [{"role": "admin", "workspace_id": a["id"]}],
            "a_member": [{"role": "member", "workspace_id": a["id"]}],
            "org_admin": [{"role": "admin"}],
        }
        for name, bindings in roles.items():
            user = ok(admin.post("/users", json={"name": f"user-{name}", "roles": bindings}), 201)
            objs[name] = ok(admin.post(f"/users/{user['id']}/keys", json={"name": "cli"}), 201)["key"]
    return objs


# (who, method, path, body, expected status). {a}, {key_b} ... are filled from the team fixture.
RBAC_TABLE: list[tuple[str, str, str, dict[str, Any] | None, int]] = [
    ("viewer", "GET", "/workspaces/{b}", None, 200),
    ("viewer", "GET", "/keys/{key_a}", None, 200),
    ("viewer", "POST", "/keys", {"name": "v", "workspace_id": "{a}"}, 403),
    ("viewer", "PATCH", "/workspaces/{a}", {"description": "x"}, 403),
    ("viewer", "POST", "/keys/{key_a}/revoke", None, 403),
    ("viewer", "POST", "/workspaces", {"name": "viewer-made"}, 403),
    ("viewer", "POST", "/integrations", {"name": "vi", "provider": "openai"}, 403),
    ("viewer", "GET", "/audit/verify", None, 403),
    ("a_admin", "PATCH", "/workspaces/{a}", {"description": "mine"}, 200),
    ("a_admin", "PATCH", "/workspaces/{b}", {"description": "theirs"}, 403),
    ("a_admin", "GET", "/workspaces/{b}", None, 404),
    ("a_admin", "GET", "/keys/{key_b}", None, 404),
    ("a_admin", "POST", "/keys/{key_b}/revoke", None, 404),
    ("a_admin", "POST", "/keys", {"name": "x", "workspace_id": "{b}"}, 403),
    ("a_admin", "POST", "/keys", {"name": "x", "workspace_id": "{a}"}, 201),
    ("a_admin", "PATCH", "/models/{alias_b}", {"targets": ["@mock-openai/gpt-4o"]}, 404),
    (
        "a_admin",
        "POST",
        "/models",
        {"alias": "a1", "workspace_id": "{a}", "targets": ["@mock-openai/x"]},
        201,
    ),
    ("a_admin", "POST", "/models", {"alias": "g1", "targets": ["@mock-openai/x"]}, 403),
    ("a_admin", "POST", "/workspaces", {"name": "a-made"}, 403),
    ("a_admin", "DELETE", "/workspaces/{b}", None, 403),
    ("a_admin", "POST", "/users", {"name": "n", "roles": [{"role": "viewer"}]}, 403),
    ("a_admin", "POST", "/config/apply", {"yaml": "workspaces: []"}, 403),
    ("a_member", "POST", "/keys", {"name": "m", "workspace_id": "{a}"}, 201),
    ("a_member", "PATCH", "/workspaces/{a}", {"description": "no"}, 403),
    (
        "a_member",
        "POST",
        "/models",
        {"alias": "m1", "workspace_id": "{a}", "targets": ["@mock-openai/x"]},
        403,
    ),
    ("org_admin", "POST", "/workspaces", {"name": "org-made"}, 201),
    ("org_admin", "PATCH", "/workspaces/{b}", {"description": "org"}, 200),
    ("org_admin", "GET", "/audit/verify", None, 200),
    ("org_admin", "POST", "/users", {"name": "n2", "roles": [{"role": "viewer"}]}, 403),
    ("nobody", "GET", "/workspaces", None, 401),
]


def _fill(value: Any, team: dict[str, Any]) -> Any:
    if isinstance(value, str):
        return value.format(**team)
    if isinstance(value, dict):
        return {k: _fill(v, team) for k, v in value.items()}
    if isinstance(value, list):
        return [_fill(v, team) for v in value]
    return value


@pytest.mark.parametrize(("who", "method", "path", "body", "status"), RBAC_TABLE)
def test_rbac(
    gw: GatewayThread, team: dict[str, Any], who: str, method: str, path: str, body: Any, status: int
) -> None:
    key = team.get(who, "lga-unknown")
    with admin_client(gw, key) as client:
        reply = client.request(method, _fill(path, team), json=_fill(body, team))
    assert reply.status_code == status, reply.text
    if status >= 400:
        assert set(reply.json()["error"]) == {"message", "type", "code", "param"}


def test_lists_show_only_visible_workspaces(gw: GatewayThread, team: dict[str, Any]) -> None:
    with admin_client(gw, team["a_admin"]) as client:
        assert {w["id"] for w in ok(client.get("/workspaces"))["data"]} == {team["a"]}
        assert {k["workspace_id"] for k in ok(client.get("/keys"))["data"]} == {team["a"]}
        assert team["alias_b"] not in {m["id"] for m in ok(client.get("/models"))["data"]}


@pytest.mark.parametrize(
    ("path", "body", "param"),
    [
        ("/workspaces", {"name": "bad name!"}, "name"),
        ("/workspaces", {"name": "ok", "metadata": {"team": 3}}, "metadata.team"),
        ("/workspaces", {"name": "ok", "colour": "red"}, "colour"),
        ("/keys", {"name": "k", "workspace_id": "ws_nope"}, "workspace_id"),
        ("/keys", {"name": "k", "expires_at": "next tuesday"}, "expires_at"),
        ("/integrations", {"name": "i", "provider": "nosuch"}, "provider"),
        ("/integrations", {"name": "i", "provider": "openai", "base_url": "ftp://x"}, "base_url"),
        ("/models", {"alias": "x", "targets": ["@missing/gpt-4o"]}, "targets.0"),
        ("/models", {"alias": "x"}, "config_id"),
        ("/configs", {"config": {"targets": [{"provider": "@a", "weight": -1}]}}, "config.targets.0.weight"),
        # A provider key in a saved config would be stored and exported in clear: integrations seal it.
        (
            "/configs",
            {"config": {"targets": [{"provider": "openai", "api_key": "sk-x"}]}},
            "config.targets.0.api_key",
        ),
        (
            "/config/apply",
            {"yaml": "configs: [{id: c, config: {provider: openai, api_key: sk-x}}]"},
            "configs.0.config",
        ),
        ("/users", {"name": "u", "roles": [{"role": "owner", "workspace_id": "ws_default"}]}, "roles.0.role"),
        ("/config/apply", {"yaml": "workspaces: [{name: 'bad name'}]"}, "workspaces.0.name"),
    ],
)
def test_bad_input_names_the_field(gw: GatewayThread, path: str, body: dict[str, Any], param: str) -> None:
    with admin_client(gw) as admin:
        before = ok(admin.get("/audit", params={"limit": 1}))["data"]
        reply = admin.post(path, json=body)
        after = ok(admin.get("/audit", params={"limit": 1}))["data"]
    assert reply.status_code == 400, reply.text
    error = reply.json()["error"]
    assert error["param"] == param and error["type"] == "invalid_request_error", error
    assert before == after  # nothing was written


def test_other_errors_use_the_envelope(gw: GatewayThread) -> None:
    with admin_client(gw) as admin:
        bad_json = admin.post("/workspaces", content=b"{nope", headers={"content-type": "application/json"})
        assert bad_json.status_code == 400 and bad_json.json()["error"]["code"] == "invalid_json"
        assert admin.get("/keys", params={"cursor": "garbage"}).json()["error"]["param"] == "cursor"
        assert admin.get("/keys", params={"limit": 0}).json()["error"]["param"] == "limit"
        missing = admin.get("/workspaces/ws_missing")
        assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"
        assert admin.get("/nowhere").status_code == 404
        bad_match = admin.patch("/workspaces/ws_default", json={}, headers={"if-match": "abc"})
        assert bad_match.json()["error"]["param"] == "If-Match"
        dup = admin.post("/workspaces", json={"name": "default"})
        assert dup.status_code == 409
    spec = httpx.get(gw.url + "/admin/v1/openapi.json").json()
    assert "/admin/v1/keys/{key_id}/rotate" in spec["paths"]


def test_concurrent_patches_lose_nothing(gw: GatewayThread) -> None:
    with admin_client(gw) as admin:
        ws = ok(admin.post("/workspaces", json={"name": "race"}), 201)
        with ThreadPoolExecutor(8) as pool:
            replies = list(
                pool.map(
                    lambda i: admin.patch(
                        f"/workspaces/{ws['id']}", json={"description": f"v{i}"}, headers={"if-match": "1"}
                    ),
                    range(8),
                )
            )
        assert sorted(r.status_code for r in replies) == [200] + [409] * 7
        assert {r.json()["error"]["code"] for r in replies if r.status_code == 409} == {"version_conflict"}
        fields = [{"description": "d"}, {"metadata": {"m": "1"}}, {"name": "race-renamed"}]
        with ThreadPoolExecutor(3) as pool:
            assert all(
                r.status_code == 200
                for r in pool.map(lambda b: admin.patch(f"/workspaces/{ws['id']}", json=b), fields)
            )
        final = ok(admin.get(f"/workspaces/{ws['id']}"))
        assert (final["description"], final["metadata"], final["name"]) == ("d", {"m": "1"}, "race-renamed")
        assert final["version"] == 5


def test_audit_filters_and_tamper_detection(gw: GatewayThread) -> None:
    with admin_client(gw) as admin:
        ws = ok(admin.post("/workspaces", json={"name": "audited"}), 201)
        ok(admin.patch(f"/workspaces/{ws['id']}", json={"description": "changed"}))
        entries = ok(admin.get("/audit", params={"object_id": ws["id"]}))["data"]
        assert [e["action"] for e in entries] == ["workspace.update", "workspace.create"]
        assert entries[0]["before"]["description"] == "" and entries[0]["after"]["description"] == "changed"
        assert entries[0]["actor_id"] == "bootstrap" and entries[0]["prev_hash"] == entries[1]["hash"]
        first = ok(admin.get("/audit", params={"limit": 2}))
        second = ok(admin.get("/audit", params={"limit": 2, "cursor": first["next_cursor"]}))
        assert first["data"][-1]["seq"] > second["data"][0]["seq"]
        assert ok(admin.get("/audit/verify"))["ok"] is True
        engine = create_engine(gw.settings.database_url)
        seq = entries[1]["seq"]
        with engine.begin() as conn:
            conn.execute(
                text("UPDATE audit_log SET after = :a WHERE seq = :s"), {"a": '{"name": "x"}', "s": seq}
            )
        engine.dispose()
        verdict = ok(admin.get("/audit/verify"))
        assert verdict["ok"] is False and verdict["broken_at"] == seq


def test_apply_is_idempotent_and_shows_a_diff_first(gw: GatewayThread, mock: MockProviderThread) -> None:
    startup = demo_config(mock.url)  # the whole file: what the gateway started with, and more
    desired = {
        "workspaces": [{"name": "gitops"}],
        "integrations": [
            *startup["integrations"],
            {
                "name": "gitops-openai",
                "provider": "openai",
                "base_url": f"{mock.url}/v1",
                "api_key": "sk-gitops-123456",
            },
        ],
        "models": [
            *startup["models"],
            {"alias": "gitops-model", "targets": ["@gitops-openai/gpt-4o-mini"], "workspace": "gitops"},
        ],
        "keys": [{"name": "deploy", "workspace": "gitops"}],
    }
    body = {"yaml": yaml.safe_dump(desired)}
    with admin_client(gw) as admin:
        version = ok(httpx.get(gw.url + "/readyz"))["config_version"]
        plan = ok(admin.post("/config/apply", params={"dry_run": "true"}, json=body))
        assert plan["changed"] and plan["version"] is None
        assert {(c["action"], c["kind"]) for c in plan["changes"]} >= {
            ("create", "workspace"),
            ("create", "api_key"),
        }
        assert ok(httpx.get(gw.url + "/readyz"))["config_version"] == version  # a dry run writes nothing
        applied = ok(admin.post("/config/apply", json=body))
        key = applied["generated_keys"]["gitops/deploy"]
        again = ok(admin.post("/config/apply", json=body))
        assert not again["changed"] and again["version"] is None and not again["generated_keys"]
        exported = ok(admin.get("/config/export"))["config"]
        assert "sk-gitops-123456" not in str(exported)
        assert any(m["alias"] == "gitops-model" for m in exported["models"])
    reply = httpx.post(
        gw.url + "/v1/chat/completions",
        headers={"authorization": f"Bearer {key}"},
        json={"model": "gitops-model", "messages": [{"role": "user", "content": "hi"}]},
    )
    assert reply.status_code == 200, reply.text
    # Dropping objects from the file prunes what the file made; not an integration that aliases
    # made through the API still route to.
    with admin_client(gw) as admin:
        pruned = ok(admin.post("/config/apply", json={"yaml": yaml.safe_dump(startup)}))
        assert {(c["action"], c["name"]) for c in pruned["changes"]} >= {
            ("delete", "gitops"),
            ("delete", "gitops-model"),
            ("delete", "gitops-openai"),
        }
        refused = admin.post("/config/apply", json={"yaml": "{}"})
        assert refused.status_code == 409 and "'mock-openai' is still used by" in refused.text


def test_merge_apply_creates_and_updates_but_never_deletes(
    gw: GatewayThread, mock: MockProviderThread
) -> None:
    startup = demo_config(mock.url)
    managed = {"yaml": yaml.safe_dump({**startup, "workspaces": [{"name": "merge-file"}]})}
    fragment = {"yaml": yaml.safe_dump({"workspaces": [{"name": "merge-fragment", "description": "v1"}]})}
    with admin_client(gw) as admin:
        ok(admin.post("/config/apply", json=managed))
        merged = ok(admin.post("/config/apply", params={"merge": "true"}, json=fragment))
        assert [(c["action"], c["name"]) for c in merged["changes"]] == [("create", "merge-fragment")]
        names = {w["name"]: w for w in ok(admin.get("/workspaces", params={"limit": 200}))["data"]}
        assert "merge-file" in names  # the file's workspace is not pruned by a merge
        assert names["merge-fragment"]["source"] == "api"
        # A later full apply of the file leaves the merged (API-managed) workspace alone.
        again = ok(admin.post("/config/apply", json=managed))
        assert not any(c["action"] == "delete" for c in again["changes"])
        fragment_v2 = yaml.safe_dump({"workspaces": [{"name": "merge-fragment", "description": "v2"}]})
        updated = ok(admin.post("/config/apply", params={"merge": "true"}, json={"yaml": fragment_v2}))
        assert updated["changes"][0]["fields"] == {"description": ["v1", "v2"]}
        assert ok(admin.get("/workspaces", params={"name": "merge-fragment"}))["data"][0]["source"] == "api"
        ok(admin.post("/config/apply", json={"yaml": yaml.safe_dump(startup)}))  # as the gateway started
