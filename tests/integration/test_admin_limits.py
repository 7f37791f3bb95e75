"""The admin API and lockgate.yaml for budgets, rate limits and policies, and /usage."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import yaml

from lockgate.testing.mock_provider import MockProviderThread
from tests.admin_harness import admin_client, admin_gateway, ok
from tests.gateway_harness import GatewayThread, demo_config

CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hello"}], "max_tokens": 20}


@pytest.fixture(scope="module")
def gw(mock: MockProviderThread, tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayThread]:
    with admin_gateway(tmp_path_factory.mktemp("adminlimits"), demo_config(mock.url)) as gateway:
        yield gateway


@pytest.fixture(scope="module")
def team(gw: GatewayThread) -> dict[str, Any]:
    with admin_client(gw) as admin:
        a = ok(admin.post("/workspaces", json={"name": "lim-a"}), 201)
        b = ok(admin.post("/workspaces", json={"name": "lim-b"}), 201)
        key_a = ok(admin.post("/keys", json={"name": "ka", "workspace_id": a["id"]}), 201)
        objs: dict[str, Any] = {
            "a": a["id"],
            "b": b["id"],
            "key_a": key_a["id"],
            "key_a_secret": key_a["key"],
        }
        for name, bindings in {
            "viewer": [{"role": "viewer"}],
            "a_admin": [{"role": "admin", "workspace_id": a["id"]}],
        }.items():
            user = ok(admin.post("/users", json={"name": f"lim-{name}", "roles": bindings}), 201)
            objs[name] = ok(admin.post(f"/users/{user['id']}/keys", json={"name": "cli"}), 201)["key"]
    return objs


@pytest.mark.parametrize(
    ("who", "path", "body", "status"),
    [
        ("a_admin", "/budgets", {"name": "a-ws", "scope": "workspace:{a}", "amount_usd": 5}, 201),
        ("a_admin", "/budgets", {"name": "a-key", "scope": "key:{key_a}", "amount_usd": 1}, 201),
        ("a_admin", "/budgets", {"name": "b-ws", "scope": "workspace:{b}", "amount_usd": 5}, 403),
        ("a_admin", "/budgets", {"name": "org", "scope": "org", "amount_usd": 5}, 403),
        (
            "a_admin",
            "/rate-limits",
            {"name": "a-rpm", "scope": "workspace:{a}", "requests_per_minute": 9},
            201,
        ),
        ("a_admin", "/policies", {"name": "a-pol", "scope": "workspace:{a}", "max_n": 1}, 201),
        ("viewer", "/budgets", {"name": "v", "scope": "workspace:{a}", "amount_usd": 5}, 403),
    ],
)
def test_rbac_follows_the_scope(
    gw: GatewayThread, team: dict[str, Any], who: str, path: str, body: dict[str, Any], status: int
) -> None:
    body = {**body, "scope": body["scope"].format(**team)}
    with admin_client(gw, team[who]) as http:
        reply = http.post(path, json=body)
    assert reply.status_code == status, reply.text


@pytest.mark.parametrize(
    ("path", "body", "param"),
    [
        ("/budgets", {"name": "x", "scope": "team:a", "amount_usd": 1}, "scope"),
        ("/budgets", {"name": "x", "scope": "workspace:ws_nope", "amount_usd": 1}, "scope"),
        ("/budgets", {"name": "x", "scope": "org", "amount_usd": 0}, "amount_usd"),
        ("/budgets", {"name": "x", "scope": "org", "amount_usd": 1, "period": "year"}, "period"),
        ("/budgets", {"name": "x", "scope": "org", "amount_usd": 1, "auto_revoke": True}, "(body)"),
        ("/rate-limits", {"name": "x", "scope": "org"}, "(body)"),
        ("/rate-limits", {"name": "x", "scope": "org", "requests_per_minute": 0}, "requests_per_minute"),
        ("/policies", {"name": "x", "scope": "org", "max_n": 1}, "(body)"),
        ("/policies", {"name": "x", "scope": "workspace:ws_default", "max_tokenz": 1}, "max_tokenz"),
    ],
)
def test_bad_bodies_name_the_field(gw: GatewayThread, path: str, body: dict[str, Any], param: str) -> None:
    with admin_client(gw) as admin:
        reply = admin.post(path, json=body)
    assert reply.status_code == 400, reply.text
    assert reply.json()["error"]["param"] == param


def test_update_delete_and_audit(gw: GatewayThread, team: dict[str, Any]) -> None:
    with admin_client(gw) as admin:
        made = ok(admin.post("/budgets", json={"name": "edit-me", "scope": "org", "amount_usd": 3}), 201)
        assert made["scope"] == "org" and made["alert_thresholds"] == [50, 80, 100] and made["mode"] == "hard"
        stale = admin.patch(f"/budgets/{made['id']}", json={"amount_usd": 4}, headers={"If-Match": "7"})
        assert stale.status_code == 409
        changed = ok(
            admin.patch(f"/budgets/{made['id']}", json={"amount_usd": 4, "alert_thresholds": [90, 10]})
        )
        assert (
            changed["version"] == 2 and changed["amount_usd"] == 4 and changed["alert_thresholds"] == [10, 90]
        )
        assert admin.patch(f"/budgets/{made['id']}", json={"period": None}).status_code == 400
        listed = ok(admin.get("/budgets", params={"scope_type": "org"}))["data"]
        assert [b["name"] for b in listed] == ["edit-me"]
        assert ok(admin.delete(f"/budgets/{made['id']}"))["deleted"] is True
        actions = [e["action"] for e in ok(admin.get("/audit", params={"object_id": made["id"]}))["data"]]
        assert actions == ["budget.delete", "budget.update", "budget.create"]


def test_usage_shows_live_spend_budgets_windows_and_history(gw: GatewayThread, team: dict[str, Any]) -> None:
    scope = f"key:{team['key_a']}"
    with admin_client(gw) as admin:
        budget = ok(admin.post("/budgets", json={"name": "usage-b", "scope": scope, "amount_usd": 2}), 201)
        limit = ok(
            admin.post("/rate-limits", json={"name": "usage-rl", "scope": scope, "requests_per_hour": 100}),
            201,
        )
    with httpx.Client(base_url=gw.url, headers={"authorization": f"Bearer {team['key_a_secret']}"}) as http:
        for _ in range(3):
            assert http.post("/v1/chat/completions", json=CHAT).status_code == 200
    spent = sum(r["cost_usd"] for r in gw.records() if r["key_id"] == team["key_a"] and r["status"] == 200)
    gw.run(gw.app.spend.flush())
    with admin_client(gw, team["viewer"]) as viewer:
        usage = ok(viewer.get("/usage", params={"scope": scope}))
    assert usage["spend_usd"]["month"] == pytest.approx(spent, abs=1e-12)
    assert usage["spend_usd"]["none"] == pytest.approx(spent, abs=1e-12)
    mine = next(b for b in usage["budgets"] if b["id"] == budget["id"])
    assert mine["spent_usd"] == pytest.approx(spent, abs=1e-12) and mine["remaining_usd"] < 2
    window = next(w for w in usage["rate_limits"] if w["id"] == limit["id"])
    assert window == {
        "id": limit["id"],
        "name": "usage-rl",
        "window": "requests_per_hour",
        "limit": 100,
        "used": 3,
    }
    assert sum(d["requests"] for d in usage["daily"]) >= 3
    assert sum(d["cost_usd"] for d in usage["daily"]) == pytest.approx(spent, abs=1e-12)


def test_yaml_apply_is_idempotent_exports_by_name_and_prunes(
    gw: GatewayThread, mock: MockProviderThread
) -> None:
    desired = {
        **demo_config(mock.url),  # the file is the whole desired state: keep what the gateway started with
        "workspaces": [{"name": "gov"}],
        "keys": [{"name": "bot", "workspace": "gov", "key": "lg-gov-bot-key-0123456789"}],
        "budgets": [
            {"name": "gov-month", "scope": "workspace:gov", "amount_usd": 50, "period": "month"},
            {
                "name": "bot-day",
                "scope": "key:gov/bot",
                "amount_usd": 1,
                "period": "day",
                "auto_revoke": True,
            },
            {"name": "users", "scope": "metadata:user", "amount_usd": 0.5, "period": "day", "mode": "soft"},
        ],
        "rate_limits": [
            {"name": "bot-rpm", "scope": "key:gov/bot", "requests_per_minute": 60, "concurrent": 4}
        ],
        "policies": [{"name": "gov-pol", "scope": "workspace:gov", "allowed_models": ["gpt-4o-mini"]}],
    }
    body = {"yaml": yaml.safe_dump(desired)}
    with admin_client(gw) as admin:
        plan = ok(admin.post("/config/apply", params={"dry_run": "true"}, json=body))
        kinds = {(c["action"], c["kind"]) for c in plan["changes"]}
        assert {("create", "budget"), ("create", "rate_limit"), ("create", "usage_policy")} <= kinds
        ok(admin.post("/config/apply", json=body))
        assert not ok(admin.post("/config/apply", json=body))["changed"]
        exported = ok(admin.get("/config/export"))["config"]
        assert {
            "name": "bot-rpm",
            "scope": "key:gov/bot",
            "requests_per_minute": 60,
            "concurrent": 4,
        } in exported["rate_limits"]
        assert any(b["name"] == "users" and b["scope"] == "metadata:user" for b in exported["budgets"])
    reply = httpx.post(
        gw.url + "/v1/chat/completions",
        headers={"authorization": "Bearer lg-gov-bot-key-0123456789"},
        json={**CHAT, "model": "claude-sonnet"},
    )
    assert reply.status_code == 403 and "gov-pol" in reply.json()["error"]["message"]
    with admin_client(gw) as admin:
        pruned = ok(admin.post("/config/apply", json={"yaml": yaml.safe_dump(demo_config(mock.url))}))
        names = {c["name"] for c in pruned["changes"] if c["action"] == "delete"}
        assert {"gov-month", "bot-day", "users", "bot-rpm", "gov-pol", "gov"} <= names
