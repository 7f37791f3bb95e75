"""Virtual keys end to end: made through the admin API, used through the official OpenAI SDK."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest
from sqlalchemy import MetaData, create_engine, select

from lockgate.testing.mock_provider import MockProviderThread
from tests.admin_harness import admin_client, admin_gateway, ok
from tests.gateway_harness import GatewayThread, demo_config

PROVIDER_SECRET = "sk-live-DO-NOT-LEAK-0123456789abcd"
CHAT = [{"role": "user", "content": "Hello"}]


@pytest.fixture(scope="module")
def gw(mock: MockProviderThread, tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayThread]:
    with admin_gateway(tmp_path_factory.mktemp("admin"), demo_config(mock.url)) as gateway:
        yield gateway


def sdk(gw: GatewayThread, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=gw.url + "/v1", api_key=key, max_retries=0)


def test_no_key_is_refused_outside_demo_mode(gw: GatewayThread) -> None:
    with pytest.raises(openai.AuthenticationError, match="Invalid API key"):
        sdk(gw, "lg-not-a-real-key").chat.completions.create(model="gpt-4o-mini", messages=CHAT)


def test_key_lifecycle(gw: GatewayThread) -> None:
    with admin_client(gw) as admin:
        ws = ok(admin.post("/workspaces", json={"name": "team-keys"}), 201)
        created = ok(
            admin.post(
                "/keys",
                json={
                    "name": "app",
                    "workspace_id": ws["id"],
                    "allowed_models": ["gpt-4o-*", "claude-sonnet"],
                    "metadata": {"team": "keys"},
                },
            ),
            201,
        )
        key = created["key"]
        assert key.startswith("lg-") and created["key_hint"].endswith(key[-4:])
        assert "key_hash" not in created
        listed = ok(admin.get("/keys", params={"workspace_id": ws["id"]}))["data"]
        assert [k["id"] for k in listed] == [created["id"]] and "key" not in listed[0]

        reply = sdk(gw, key).chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=CHAT)
        assert reply.parse().choices[0].message.content.startswith("Mock reply")
        request_id = reply.headers["x-lockgate-request-id"]
        record = next(r for r in gw.records() if r["id"] == request_id)
        assert record["key_id"] == created["id"] and record["workspace_id"] == ws["id"]

        with pytest.raises(openai.PermissionDeniedError, match="may not use the model 'resilient'"):
            sdk(gw, key).chat.completions.create(model="resilient", messages=CHAT)
        listed_models = [m.id for m in sdk(gw, key).models.list()]
        assert {"gpt-4o-mini", "claude-sonnet"} <= set(listed_models) and "resilient" not in listed_models
        assert all(m == "claude-sonnet" or m.startswith("gpt-4o-") for m in listed_models)

        rotated = ok(admin.post(f"/keys/{created['id']}/rotate"))
        with pytest.raises(openai.AuthenticationError):
            sdk(gw, key).chat.completions.create(model="gpt-4o-mini", messages=CHAT)
        key = rotated["key"]
        sdk(gw, key).chat.completions.create(model="gpt-4o-mini", messages=CHAT)

        past = time.time() - 5
        ok(admin.patch(f"/keys/{created['id']}", json={"expires_at": past}))
        with pytest.raises(openai.AuthenticationError, match="expired at"):
            sdk(gw, key).chat.completions.create(model="gpt-4o-mini", messages=CHAT)
        ok(admin.patch(f"/keys/{created['id']}", json={"expires_at": None}))
        sdk(gw, key).chat.completions.create(model="gpt-4o-mini", messages=CHAT)

        revoked = ok(admin.post(f"/keys/{created['id']}/revoke"))
        assert revoked["status"] == "revoked"
        with pytest.raises(openai.AuthenticationError, match="revoked"):
            sdk(gw, key).chat.completions.create(model="gpt-4o-mini", messages=CHAT)


def test_integration_shared_with_some_workspaces(gw: GatewayThread, mock: MockProviderThread) -> None:
    with admin_client(gw) as admin:
        inside = ok(admin.post("/workspaces", json={"name": "inside"}), 201)
        outside = ok(admin.post("/workspaces", json={"name": "outside"}), 201)
        ok(
            admin.post(
                "/integrations",
                json={
                    "name": "private-openai",
                    "provider": "openai",
                    "base_url": f"{mock.url}/v1",
                    "api_key": "sk-private-0000000000",
                    "workspace_ids": [inside["id"]],
                    "allowed_models": ["gpt-4o-mini"],
                },
            ),
            201,
        )
        keys = {
            ws["name"]: ok(admin.post("/keys", json={"name": "k", "workspace_id": ws["id"]}), 201)["key"]
            for ws in (inside, outside)
        }
    sdk(gw, keys["inside"]).chat.completions.create(model="@private-openai/gpt-4o-mini", messages=CHAT)
    with pytest.raises(openai.PermissionDeniedError, match="may not serve the model 'gpt-4o'"):
        sdk(gw, keys["inside"]).chat.completions.create(model="@private-openai/gpt-4o", messages=CHAT)
    with pytest.raises(openai.PermissionDeniedError, match="not shared with this workspace"):
        sdk(gw, keys["outside"]).chat.completions.create(model="@private-openai/gpt-4o-mini", messages=CHAT)


def test_provider_secret_never_leaves(
    gw: GatewayThread, mock: MockProviderThread, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    with admin_client(gw) as admin:
        created = ok(
            admin.post(
                "/integrations",
                json={
                    "name": "secret-openai",
                    "provider": "openai",
                    "base_url": f"{mock.url}/v1",
                    "api_key": PROVIDER_SECRET,
                },
            ),
            201,
        )
        responses = [created]
        assert created["secret_hint"] == "sk-...abcd"
        ok(admin.post("/models", json={"alias": "secretive", "targets": ["@secret-openai/gpt-4o-mini"]}), 201)
        key = ok(admin.post("/keys", json={"name": "secret-user"}), 201)["key"]
        responses.append(
            ok(admin.patch(f"/integrations/{created['id']}", json={"allowed_models": ["gpt-*"]}))
        )
        responses.append(ok(admin.get(f"/integrations/{created['id']}")))
        responses.append(ok(admin.get("/integrations")))
        responses.append(ok(admin.get("/audit", params={"object_id": created["id"]})))
        responses.append(ok(admin.get("/config/export")))
        audit_rows = responses[-2]["data"]
        assert {r["action"] for r in audit_rows} == {"integration.create", "integration.update"}
        assert audit_rows[0]["before"]["secret_hint"] == "sk-...abcd"

    reply = sdk(gw, key).chat.completions.with_raw_response.create(model="secretive", messages=CHAT)
    assert mock.requests[-1]["headers"]["authorization"] == f"Bearer {PROVIDER_SECRET}"  # it went upstream
    mock.add_fault(status=401, times=1, message="Incorrect API key provided")
    with pytest.raises(openai.APIStatusError) as failed:
        sdk(gw, key).chat.completions.create(model="secretive", messages=CHAT)

    seen_by_app = [reply.text, str(dict(reply.headers)), failed.value.response.text]
    assert all(PROVIDER_SECRET not in text for text in seen_by_app)
    assert all(PROVIDER_SECRET not in str(r) for r in responses)
    assert PROVIDER_SECRET not in caplog.text
    assert all(PROVIDER_SECRET not in repr(r.__dict__) for r in caplog.records)
    assert PROVIDER_SECRET[8:] not in _dump_database(gw)


def _dump_database(gw: GatewayThread) -> str:
    engine = create_engine(gw.settings.database_url)
    meta = MetaData()
    meta.reflect(engine)
    with engine.connect() as conn:
        text = "".join(str(list(conn.execute(select(t)))) for t in meta.sorted_tables)
    engine.dispose()
    path = Path(gw.settings.database_url.removeprefix("sqlite:///"))
    assert "secret-openai" in text  # the dump does see the integration
    return text + path.read_bytes().decode("latin-1")
