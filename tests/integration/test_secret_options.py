"""Secrets in integration options and headers, end to end through the admin API and the gateway.

Bedrock SigV4 keys, a Vertex service account and Entra ID client credentials reach the
(mock) provider and its token endpoints, and nowhere else: not the database, its file, a
log line at DEBUG, or an admin API response, audit record or export. Writing an
integration that cannot work is a 400 naming the field, and an integration that saved
configs still route to cannot be deleted.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from sqlalchemy import MetaData, create_engine, select

from lockgate.testing.mock_provider import MockProviderThread
from tests.admin_harness import admin_client, admin_gateway, ok
from tests.gateway_harness import GatewayThread, demo_config

AWS_KEY_ID = "AKIALEAKTEST0123"
AWS_SECRET = "wJalrXUtnFEMI/K7MDENG/LEAK-TEST-0123456789"
AWS_SESSION = "FwoGZXIvYXdzEBoaDLEAKTEST0123456789abcdef"
ENTRA_SECRET = "entra-DO-NOT-LEAK-0123456789"
HEADER_SECRET = "hdr-DO-NOT-LEAK-0123456789"
CHAT = [{"role": "user", "content": "Hello"}]


def _pem() -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


PEM = _pem()
# What must never be seen: each secret less the few characters a mask shows.
LEAKS = [AWS_KEY_ID[3:-4], AWS_SECRET[3:-4], AWS_SESSION[3:-4], ENTRA_SECRET[3:-4], HEADER_SECRET[3:-4]]
LEAKS += [line for line in PEM.splitlines()[1:-1] if len(line) > 40][:3]


def cloud_integrations(mock_url: str) -> list[dict[str, Any]]:
    account = {
        "type": "service_account",
        "client_email": "lg@proj-1.iam.gserviceaccount.com",
        "private_key": PEM,
        "private_key_id": "k1",
        "token_uri": f"{mock_url}/oauth2/token",
    }
    return [
        {
            "name": "leak-bedrock",
            "provider": "bedrock",
            "base_url": mock_url,
            "options": {
                "region": "us-west-2",
                "access_key_id": AWS_KEY_ID,
                "secret_access_key": AWS_SECRET,
                "session_token": AWS_SESSION,
            },
        },
        {
            "name": "leak-vertex",
            "provider": "vertex",
            "base_url": f"{mock_url}/v1",
            "options": {"project": "proj-1", "region": "europe-west4", "service_account": account},
        },
        {
            "name": "leak-entra",
            "provider": "azure",
            "base_url": mock_url,
            "headers": {"x-custom-token": HEADER_SECRET},
            "options": {
                "entra": {
                    "tenant_id": "tenant-leak",
                    "client_id": "app-1",
                    "client_secret": ENTRA_SECRET,
                    "authority_host": mock_url,
                }
            },
        },
    ]


ALIASES = {
    "leak-claude": "@leak-bedrock/anthropic.claude-3-5-haiku-20241022-v1:0",
    "leak-gemini": "@leak-vertex/gemini-2.5-pro",
    "leak-azure": "@leak-entra/gpt-4o-mini",
}


@pytest.fixture(scope="module")
def gw(mock: MockProviderThread, tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayThread]:
    with admin_gateway(tmp_path_factory.mktemp("secret-options"), demo_config(mock.url)) as gateway:
        yield gateway


def _chat_until_ready(client: openai.OpenAI, model: str) -> Any:
    """Integrations added at runtime are served once the snapshot reloads and tokens are minted."""
    deadline = time.monotonic() + 10
    while True:
        try:
            return client.chat.completions.create(model=model, messages=CHAT)
        except (openai.NotFoundError, openai.APIStatusError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def _upstream(mock: MockProviderThread, fragment: str) -> dict[str, Any]:
    return [r for r in mock.requests if fragment in r["path"]][-1]


def test_cloud_secret_options_never_leave(
    gw: GatewayThread, mock: MockProviderThread, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    responses: list[Any] = []
    with admin_client(gw) as admin:
        created = {
            i["name"]: ok(admin.post("/integrations", json=i), 201) for i in cloud_integrations(mock.url)
        }
        responses += created.values()
        for alias, target in ALIASES.items():
            ok(admin.post("/models", json={"alias": alias, "targets": [target]}), 201)
        key = ok(admin.post("/keys", json={"name": "leak-user"}), 201)["key"]
        bedrock = created["leak-bedrock"]
        assert bedrock["options"] == {
            "region": "us-west-2",
            "access_key_id": "AKI...0123",
            "secret_access_key": "wJa...6789",
            "session_token": "Fwo...cdef",
        }
        assert created["leak-vertex"]["options"]["service_account"] == "****"
        assert created["leak-entra"]["options"]["entra"]["client_secret"] == "ent...6789"
        assert created["leak-entra"]["headers"] == {"x-custom-token": "hdr...6789"}

    client = openai.OpenAI(base_url=gw.url + "/v1", api_key=key, max_retries=0)
    for alias in ALIASES:
        assert _chat_until_ready(client, alias).choices[0].message.content.startswith("Mock reply")
    signed = _upstream(mock, "/converse")
    assert signed["headers"]["authorization"].startswith(f"AWS4-HMAC-SHA256 Credential={AWS_KEY_ID}/")
    assert signed["headers"]["x-amz-security-token"] == AWS_SESSION
    minted = dict(mock.tokens)
    vertex_auth = _upstream(mock, "gemini-2.5-pro:generateContent")["headers"]["authorization"]
    assert vertex_auth.removeprefix("Bearer ") in minted  # minted from the service account
    azure = _upstream(mock, "/openai/deployments/gpt-4o-mini/")["headers"]
    assert minted[azure["authorization"].removeprefix("Bearer ")] == "tenant-leak"
    assert azure["x-custom-token"] == HEADER_SECRET

    with admin_client(gw) as admin:
        # A client that edits what it read sends the masks back: the secrets stay as they were.
        edited = {**bedrock["options"], "region": "eu-west-1"}
        responses.append(ok(admin.patch(f"/integrations/{bedrock['id']}", json={"options": edited})))
        responses += [ok(admin.get(f"/integrations/{i['id']}")) for i in created.values()]
        responses.append(ok(admin.get("/integrations", params={"limit": 200})))
        responses.append(ok(admin.get("/audit", params={"object_type": "integration", "limit": 200})))
        responses.append(ok(admin.get("/config/export")))
        planned = admin.post(
            "/config/apply",
            params={"dry_run": "true"},
            json={"yaml": yaml.safe_dump({"integrations": cloud_integrations(mock.url)})},
        )
        responses.append(ok(planned))
    deadline = time.monotonic() + 10
    while "/eu-west-1/" not in _upstream(mock, "/converse")["headers"]["authorization"]:
        assert time.monotonic() < deadline, "the edited region never reached the signer"
        client.chat.completions.create(model="leak-claude", messages=CHAT)
    assert f"Credential={AWS_KEY_ID}/" in _upstream(mock, "/converse")["headers"]["authorization"]

    exported = responses[-2]["config"]["integrations"]
    entra = next(i for i in exported if i["name"] == "leak-entra")
    assert entra["options"]["entra"]["client_secret"] == "${LOCKGATE_SECRET_LEAK_ENTRA_ENTRA_CLIENT_SECRET}"
    assert entra["headers"] == {"x-custom-token": "${LOCKGATE_SECRET_LEAK_ENTRA_HEADER_X_CUSTOM_TOKEN}"}
    for label, text in [
        ("responses", str(responses)),
        ("logs", caplog.text + repr([r.__dict__ for r in caplog.records])),
    ]:
        assert [s for s in LEAKS if s in text] == [], label
    dump = _dump_database(gw)
    assert "wJa...6789" in dump  # the dump does see the masked options
    assert [s for s in LEAKS if s in dump] == []


def _dump_database(gw: GatewayThread) -> str:
    engine = create_engine(gw.settings.database_url)
    meta = MetaData()
    meta.reflect(engine)
    with engine.connect() as conn:
        text = "".join(str(list(conn.execute(select(t)))) for t in meta.sorted_tables)
    engine.dispose()
    path = Path(gw.settings.database_url.removeprefix("sqlite:///"))
    files = [path, path.with_name(path.name + "-wal")]
    return text + "".join(f.read_bytes().decode("latin-1") for f in files if f.exists())


@pytest.mark.parametrize(
    ("integration", "param"),
    [
        ({"provider": "bedrock", "options": {"access_key_id": AWS_KEY_ID}}, "options.secret_access_key"),
        ({"provider": "bedrock", "options": {"region": "us-east-1"}}, "api_key"),
        ({"provider": "vertex", "options": {"service_account": {"client_email": "x"}}}, "options.project"),
        (
            {
                "provider": "vertex",
                "options": {"project": "p", "service_account": '{"private_key": "-----BEGIN'},
            },
            "options.service_account",
        ),
        (
            {"provider": "vertex", "options": {"project": "p", "service_account": {"client_email": "x"}}},
            "options.service_account",
        ),
        ({"provider": "azure", "base_url": "https://r.openai.azure.com"}, "api_key"),
        (
            {
                "provider": "azure",
                "base_url": "https://r.openai.azure.com",
                "options": {"entra": {"tenant_id": "t", "client_id": "c"}},
            },
            "options.entra.client_secret",
        ),
    ],
)
def test_an_integration_that_cannot_work_is_refused_when_written(
    gw: GatewayThread, integration: dict[str, Any], param: str
) -> None:
    with admin_client(gw) as admin:
        reply = admin.post("/integrations", json={"name": "broken", **integration})
        assert reply.status_code == 400, reply.text
        error = reply.json()["error"]
        assert error["param"] == param and error["code"] == "invalid_credential"
        assert "BEGIN" not in error["message"]  # a secret-bearing value is named, never quoted
        assert ok(admin.get("/integrations", params={"limit": 200}))["data"]  # and nothing was made
        assert all(
            i["name"] != "broken" for i in ok(admin.get("/integrations", params={"limit": 200}))["data"]
        )


def test_an_update_that_breaks_an_integration_is_refused(gw: GatewayThread, mock: MockProviderThread) -> None:
    with admin_client(gw) as admin:
        made = ok(
            admin.post(
                "/integrations",
                json={
                    "name": "upd-bedrock",
                    "provider": "bedrock",
                    "base_url": mock.url,
                    "api_key": "ABSK-key",
                },
            ),
            201,
        )
        reply = admin.patch(f"/integrations/{made['id']}", json={"api_key": None})
        assert reply.status_code == 400 and reply.json()["error"]["param"] == "api_key"
        reply = admin.patch(f"/integrations/{made['id']}", json={"options": {"access_key_id": "A"}})
        assert reply.status_code == 400 and reply.json()["error"]["param"] == "options.secret_access_key"
        assert ok(admin.get(f"/integrations/{made['id']}"))["version"] == made["version"]
        ok(admin.delete(f"/integrations/{made['id']}"))


def test_an_integration_saved_configs_route_to_cannot_be_deleted(
    gw: GatewayThread, mock: MockProviderThread
) -> None:
    with admin_client(gw) as admin:
        made = ok(
            admin.post(
                "/integrations",
                json={
                    "name": "in-use",
                    "provider": "openai",
                    "base_url": f"{mock.url}/v1",
                    "api_key": "sk-x",
                },
            ),
            201,
        )
        nested = {
            "strategy": {"mode": "fallback"},
            "targets": [
                {"provider": "@mock-openai", "override_params": {"model": "gpt-4o-mini"}},
                {
                    "strategy": {"mode": "loadbalance"},
                    "targets": [{"provider": "@in-use"}, {"provider": "openai"}],
                },
            ],
        }
        ok(admin.post("/configs", json={"id": "uses-nested", "config": nested}), 201)
        ok(admin.post("/configs", json={"id": "uses-vk", "config": {"virtualKey": "in-use"}}), 201)
        ok(admin.post("/configs", json={"id": "uses-other", "config": {"provider": "@mock-openai"}}), 201)
        refused = admin.delete(f"/integrations/{made['id']}")
        assert refused.status_code == 409 and refused.json()["error"]["code"] == "in_use"
        message = refused.json()["error"]["message"]
        assert "'uses-nested'" in message and "'uses-vk'" in message and "uses-other" not in message
        for config_id in ("uses-nested", "uses-vk", "uses-other"):
            ok(admin.delete(f"/configs/{config_id}"))
        ok(admin.delete(f"/integrations/{made['id']}"))


def test_apply_keeps_env_references_and_export_round_trips(
    gw: GatewayThread, mock: MockProviderThread, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TEST_AWS_KEY_ID", AWS_KEY_ID)
    monkeypatch.setenv("TEST_AWS_SECRET", AWS_SECRET)
    startup = demo_config(mock.url)
    bedrock = {
        "name": "file-bedrock",
        "provider": "bedrock",
        "base_url": mock.url,
        "options": {
            "region": "us-west-2",
            "access_key_id": "${TEST_AWS_KEY_ID}",
            "secret_access_key": "${TEST_AWS_SECRET}",
        },
    }
    document = {"yaml": yaml.safe_dump({**startup, "integrations": [*startup["integrations"], bedrock]})}
    with admin_client(gw) as admin:
        first = ok(admin.post("/config/apply", json=document))
        change = next(c for c in first["changes"] if c["name"] == "file-bedrock")
        assert change["fields"]["options"][1]["secret_access_key"] == "wJa...6789"
        assert change["fields"]["sealed_ciphertext"] == [None, "(hidden)"]
        again = ok(admin.post("/config/apply", json=document))
        assert not again["changed"], again["changes"]  # the same secrets: nothing to re-encrypt
        exported = ok(admin.get("/config/export"))["config"]
        item = next(i for i in exported["integrations"] if i["name"] == "file-bedrock")
        assert item["options"] == {
            "region": "us-west-2",
            "access_key_id": "${LOCKGATE_SECRET_FILE_BEDROCK_ACCESS_KEY_ID}",
            "secret_access_key": "${LOCKGATE_SECRET_FILE_BEDROCK_SECRET_ACCESS_KEY}",
        }
        monkeypatch.setenv("LOCKGATE_SECRET_FILE_BEDROCK_ACCESS_KEY_ID", AWS_KEY_ID)
        monkeypatch.setenv("LOCKGATE_SECRET_FILE_BEDROCK_SECRET_ACCESS_KEY", AWS_SECRET)
        for known in startup["integrations"]:
            monkeypatch.setenv(f"LOCKGATE_SECRET_{known['name'].upper().replace('-', '_')}", known["api_key"])
        # The gateway's environment fills the references: the export applies as a no-op.
        exported_file = {**startup, "integrations": [*startup["integrations"], item]}
        round_trip = ok(admin.post("/config/apply", json={"yaml": yaml.safe_dump(exported_file)}))
        assert not round_trip["changed"], round_trip["changes"]
        monkeypatch.setenv("TEST_AWS_SECRET", "rotated-secret-0123456789")
        rotated = ok(admin.post("/config/apply", json=document))
        fields = next(c for c in rotated["changes"] if c["name"] == "file-bedrock")["fields"]
        assert fields["sealed_ciphertext"] == ["(hidden)", "(hidden)"]
        ok(admin.post("/config/apply", json={"yaml": yaml.safe_dump(startup)}))
    assert httpx.get(gw.url + "/readyz").status_code == 200
