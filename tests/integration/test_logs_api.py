"""/admin/v1/logs: filters, cursor paging, streamed export, RBAC; `lockgate logs tail` likewise."""

from __future__ import annotations

import csv
import io
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from lockgate.testing.mock_provider import MockProviderThread
from tests.admin_harness import admin_client, admin_gateway, ok
from tests.gateway_harness import GatewayThread, demo_config

CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}


@pytest.fixture(scope="module")
def scene(mock: MockProviderThread, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """Two workspaces with a key each, a viewer of team-a only, a (never reached) rate limit on
    team-a, and a handful of requests."""
    with admin_gateway(tmp_path_factory.mktemp("logs"), demo_config(mock.url)) as gw:
        mock.clear()
        with admin_client(gw) as admin:
            team = ok(admin.post("/workspaces", json={"name": "team-a"}), 201)["id"]
            key_a = ok(admin.post("/keys", json={"name": "a", "workspace_id": team}), 201)
            key_d = ok(admin.post("/keys", json={"name": "d"}), 201)
            user = ok(
                admin.post(
                    "/users", json={"name": "va", "roles": [{"role": "viewer", "workspace_id": team}]}
                ),
                201,
            )
            viewer = ok(admin.post(f"/users/{user['id']}/keys", json={"name": "cli"}), 201)["key"]
            limit = {"name": "team-a-rpm", "scope": f"workspace:{team}", "requests_per_minute": 1000}
            ok(admin.post("/rate-limits", json=limit), 201)
        ids: dict[str, str] = {}
        with httpx.Client(base_url=gw.url) as http:

            def call(name: str, key: dict, body: dict, **headers: str) -> None:
                auth = {"authorization": f"Bearer {key['key']}", **headers}
                ids[name] = http.post("/v1/chat/completions", json=body, headers=auth).headers[
                    "x-lockgate-request-id"
                ]
                time.sleep(0.002)  # distinct created_at, so "newest first" is well defined

            call("a_plain", key_a, CHAT)
            call("a_prod", key_a, CHAT, **{"x-lockgate-metadata": '{"env": "prod"}'})
            mock.add_fault(status=500, message="Kaboom in the upstream", match_model="gpt-4o-mini")
            call("a_error", key_a, CHAT)
            call("a_claude", key_a, {**CHAT, "model": "claude-sonnet"})
            call("d_plain", key_d, CHAT)
            call("d_stream", key_d, {**CHAT, "stream": True})
        gw.records()  # flush
        yield {"gw": gw, "ids": ids, "team": team, "key_a": key_a["id"], "viewer": viewer}


def names(scene: dict[str, Any], rows: list[dict[str, Any]]) -> list[str]:
    by_id = {v: k for k, v in scene["ids"].items()}
    return [by_id[r["id"]] for r in rows if r["id"] in by_id]


def logs(scene: dict[str, Any], key: str | None = None, **params: Any) -> list[dict[str, Any]]:
    with admin_client(scene["gw"], *([key] if key else [])) as admin:
        return ok(admin.get("/logs", params={"limit": 200, **params}))["data"]


def test_newest_first_and_every_filter(scene: dict[str, Any]) -> None:
    everything = names(scene, logs(scene))
    assert everything == ["d_stream", "d_plain", "a_claude", "a_error", "a_prod", "a_plain"]
    assert names(scene, logs(scene, workspace_id=scene["team"])) == [
        "a_claude",
        "a_error",
        "a_prod",
        "a_plain",
    ]
    assert names(scene, logs(scene, key_id=scene["key_a"], model="claude-sonnet")) == ["a_claude"]
    assert names(scene, logs(scene, model="claude-sonnet-4-5")) == ["a_claude"]  # the resolved model too
    assert names(scene, logs(scene, provider="mock-anthropic")) == ["a_claude"]
    assert names(scene, logs(scene, status="5xx")) == ["a_error"]
    assert names(scene, logs(scene, status="error")) == ["a_error"]
    assert names(scene, logs(scene, status="200")) == ["d_stream", "d_plain", "a_claude", "a_prod", "a_plain"]
    assert names(scene, logs(scene, metadata="env:prod")) == ["a_prod"]
    assert names(scene, logs(scene, q="KABOOM")) == ["a_error"]
    assert names(scene, logs(scene, min_latency_ms=10**7)) == []
    # Budgets' flag on the record: team-a's requests were admitted by its rate limit, exactly.
    assert names(scene, logs(scene, limits="exact")) == ["a_claude", "a_error", "a_prod", "a_plain"]
    assert names(scene, logs(scene, limits="local")) == []
    costs = {r["id"]: r["cost_usd"] for r in logs(scene)}
    cheapest = min(c for c in costs.values() if c)
    assert "a_error" not in names(scene, logs(scene, min_cost=cheapest))
    first = next(r for r in logs(scene) if r["id"] == scene["ids"]["a_error"])
    # Timestamps pass through datetime (microseconds): stay clear of rounding with half a millisecond.
    later = names(scene, logs(scene, since=first["created_at"] + 0.0005))
    assert later == ["d_stream", "d_plain", "a_claude"]
    assert names(scene, logs(scene, until=first["created_at"] - 0.0005)) == ["a_prod", "a_plain"]


def test_cursor_pages_cover_everything_once(scene: dict[str, Any]) -> None:
    seen, cursor = [], None
    with admin_client(scene["gw"]) as admin:
        while True:
            page = ok(admin.get("/logs", params={"limit": 4, **({"cursor": cursor} if cursor else {})}))
            seen += page["data"]
            assert len(page["data"]) <= 4 and page["has_more"] == (page["next_cursor"] is not None)
            cursor = page["next_cursor"]
            if cursor is None:
                break
        assert admin.get("/logs", params={"cursor": "garbage!"}).status_code == 400
    assert [r["id"] for r in seen] == [r["id"] for r in logs(scene)]


def test_workspace_viewer_sees_only_their_workspace(scene: dict[str, Any]) -> None:
    viewer = scene["viewer"]
    assert names(scene, logs(scene, viewer)) == ["a_claude", "a_error", "a_prod", "a_plain"]
    with admin_client(scene["gw"], viewer) as admin:
        assert admin.get("/logs", params={"workspace_id": "ws_default"}).status_code == 403
        assert admin.get(f"/logs/{scene['ids']['d_plain']}").status_code == 404
        assert ok(admin.get(f"/logs/{scene['ids']['a_prod']}"))["metadata"] == {"env": "prod"}
        exported = admin.get("/logs/export").text.splitlines()
        assert {orjson.loads(line)["workspace_id"] for line in exported} == {scene["team"]}
        analytics = ok(admin.get("/analytics", params={"group_by": "workspace"}))
        assert {t["group"] for t in analytics["totals"]} == {scene["team"]}


def test_export_jsonl_and_csv(scene: dict[str, Any]) -> None:
    with admin_client(scene["gw"]) as admin:
        jsonl = admin.get("/logs/export", params={"format": "jsonl", "status": "200"})
        assert jsonl.headers["content-type"].startswith("application/x-ndjson")
        assert "attachment" in jsonl.headers["content-disposition"]
        rows = [orjson.loads(line) for line in jsonl.text.splitlines()]
        reply = admin.get("/logs/export", params={"format": "csv"})
        table = list(csv.DictReader(io.StringIO(reply.text)))
    assert [r["id"] for r in rows] == [r["id"] for r in logs(scene, status="200")]
    assert [r["id"] for r in table] == [r["id"] for r in logs(scene)]
    prod = next(r for r in table if r["id"] == scene["ids"]["a_prod"])
    assert orjson.loads(prod["metadata"]) == {"env": "prod"} and float(prod["cost_usd"]) > 0
    assert prod["limits"] == "exact" and rows[0]["limits"] is None  # rows[0]: d_stream, no limit applies
    routing = (prod["retries"], prod["fallbacks"], prod["stream_failover"])
    assert prod["route"] and routing == ("0", "0", "False")


def test_cli_tail_uses_the_same_filters(scene: dict[str, Any]) -> None:
    gw: GatewayThread = scene["gw"]

    def tail(*args: str) -> list[dict[str, Any]]:
        out = subprocess.run(
            [sys.executable, "-m", "lockgate", "logs", "tail", "-o", "jsonl", *args],
            capture_output=True,
            text=True,
            env={**os.environ, "LOCKGATE_DATABASE_URL": gw.settings.database_url},
            cwd=Path(__file__).resolve().parents[2],
            check=True,
        )
        return [orjson.loads(line) for line in out.stdout.splitlines()]

    assert names(scene, tail("--metadata", "env:prod")) == ["a_prod"]
    assert names(scene, tail("--status", "5xx", "--grep", "kaboom")) == ["a_error"]
    # Oldest first, like tail(1); -n 0 streams every match.
    assert names(scene, tail("-n", "2", "--workspace", "ws_default")) == ["d_plain", "d_stream"]
    assert len(tail("-n", "0", "--since", "1h")) == len(logs(scene))
