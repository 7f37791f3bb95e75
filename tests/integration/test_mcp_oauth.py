"""OAuth 2.1 on /mcp: bearer JWTs from a local issuer (keys made here, JWKS over HTTP), checked by
the gateway as a resource server; the official mcp client, with and without its OAuth flow."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlparse

import httpx
import httpx2
import jwt
import pytest
import yaml
from cryptography.hazmat.primitives import serialization
from mcp import Client
from mcp.client.auth import OAuthClientProvider
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.auth import (
    AuthorizationCodeResult,
    OAuthClientInformationFull,
    OAuthClientMetadata,
    OAuthToken,
)
from mcp.shared.exceptions import MCPError

from lockgate.mcp import jsonrpc
from tests.gateway_harness import GatewayThread, free_port
from tests.integration.mcp_kit import ALICE, UPSTREAM_TOKEN, MockMcpThread
from tests.integration.oauth_kit import HeaderLog, LocalIssuer, rsa_key

ADMIN = "lga-oauth-admin-key"
MODES = ["legacy", "auto"]


@pytest.fixture(scope="module")
def corp() -> Iterator[LocalIssuer]:
    issuer = LocalIssuer()
    with issuer.serve():
        yield issuer


@pytest.fixture(scope="module")
def rotating() -> Iterator[LocalIssuer]:
    issuer = LocalIssuer(claims={"sub": "svc-reporting"})
    with issuer.serve():
        yield issuer


@pytest.fixture(scope="module")
def seen() -> HeaderLog:
    return HeaderLog()


@pytest.fixture(scope="module")
def upstream(seen: HeaderLog) -> Iterator[MockMcpThread]:
    with MockMcpThread(wrap=seen.wrap) as mock:
        yield mock


def oauth_config(upstream: str, corp: LocalIssuer, rotating: LocalIssuer) -> dict[str, Any]:
    return {
        "workspaces": [{"name": "support"}, {"name": "finance"}],
        "keys": [{"name": "alice", "workspace": "default", "key": ALICE}],
        "mcp_servers": [
            {"name": "orders", "version": "1.0.0", "url": f"{upstream}/mcp", "secret": UPSTREAM_TOKEN},
            {"name": "old", "url": f"{upstream}/h/mcp", "secret": UPSTREAM_TOKEN, "timeout_ms": 3000},
        ],
        "mcp_tool_policies": [
            {
                "name": "no-lookups-for-mallory",
                "workspace": "support",
                "tool": "lookup_order",
                "when": 'principal.metadata.subject == "mallory@corp"',
                "action": "deny",
            },
            {
                "name": "one-email-each",
                "workspace": "support",
                "tool": "send_email",
                "action": "limit",
                "limit": {"calls": 1, "per": "hour", "by": "key"},
            },
        ],
        "oauth_issuers": [
            {
                "name": "corp",
                "issuer": corp.issuer,  # keys by OIDC discovery
                "required_scopes": ["mcp:tools"],
                "rules": [
                    {
                        "name": "support-staff",
                        "claim": "groups",
                        "contains": "support",
                        "workspace": "support",
                        "deny_tools": ["*__issue_refund"],
                    },
                    {
                        "name": "finance-staff",
                        "claim": "groups",
                        "contains": "finance",
                        "workspace": "finance",
                        "scopes": ["orders:write"],
                    },
                ],
            },
            {
                "name": "rotating",
                "issuer": rotating.issuer,
                "jwks_uri": rotating.issuer + "/jwks",
                "audiences": ["api://lockgate"],
                "default_workspace": "default",
            },
        ],
    }


@pytest.fixture(scope="module")
def gw(
    upstream: MockMcpThread,
    corp: LocalIssuer,
    rotating: LocalIssuer,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[GatewayThread]:
    port = free_port()
    with GatewayThread(
        tmp_path_factory.mktemp("oauth"),
        oauth_config(upstream.url, corp, rotating),
        port=port,
        public_url=f"http://127.0.0.1:{port}",
        admin_key=ADMIN,
    ) as gateway:
        yield gateway


def post(gw: GatewayThread, token: str | None, path: str = "/mcp") -> httpx.Response:
    headers = {"mcp-protocol-version": "2026-07-28", "mcp-method": "ping"}  # stateless: no session
    if token is not None:
        headers["authorization"] = f"Bearer {token}"
    body = {"jsonrpc": "2.0", "id": 7, "method": "ping"}
    return httpx.post(gw.url + path, json=body, headers=headers, timeout=10)


def challenge(response: httpx.Response) -> dict[str, str]:
    scheme, _, rest = response.headers["www-authenticate"].partition(" ")
    assert scheme == "Bearer"
    fields = {}
    for part in rest.split('", '):
        name, _, value = part.partition('="')
        fields[name] = value.rstrip('"')
    return fields


def bearer_client(gw: GatewayThread, path: str, mode: str, token: str) -> Client:
    http = httpx2.AsyncClient(headers={"authorization": f"Bearer {token}"}, timeout=20)
    return Client(streamable_http_client(gw.url + path, http_client=http), mode=mode)


def admin(gw: GatewayThread) -> httpx.Client:
    return httpx.Client(
        base_url=gw.url + "/admin/v1", headers={"authorization": f"Bearer {ADMIN}"}, timeout=10
    )


# -- the six refusals, and their neighbours -------------------------------------------------------


def _tampered(token: str) -> str:
    header, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["groups"] = ["finance", "support", "admins"]
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    return f"{header}.{forged}.{signature}"


@pytest.mark.parametrize(
    ("case", "status", "error", "says"),
    [
        ("expired", 401, "invalid_token", "expired"),
        ("wrong_audience", 401, "invalid_token", "not issued for this resource"),
        ("wrong_issuer", 401, "invalid_token", "issuer is not trusted"),
        ("unknown_kid", 401, "invalid_token", "No signing key 'rsa-unknown'"),
        ("missing_scope", 403, "insufficient_scope", "lacks the scope(s) mcp:tools"),
        ("tampered", 401, "invalid_token", "signature does not verify"),
    ],
)
def test_bad_tokens_are_refused_with_status_and_challenge(
    gw: GatewayThread, corp: LocalIssuer, case: str, status: int, error: str, says: str
) -> None:
    aud = gw.url + "/mcp"
    token = {
        "expired": lambda: corp.mint(aud=aud, ttl=-120),  # past the 30 s leeway
        "wrong_audience": lambda: corp.mint(aud="https://other.example/mcp"),
        "wrong_issuer": lambda: corp.mint(aud=aud, iss="https://evil.example/realms/corp"),
        "unknown_kid": lambda: corp.mint(aud=aud, key=rsa_key("rsa-unknown")),
        "missing_scope": lambda: corp.mint(aud=aud, scope="profile email"),
        "tampered": lambda: _tampered(corp.mint(aud=aud)),
    }[case]()
    response = post(gw, token)
    assert response.status_code == status
    body = response.json()
    assert body["id"] == 7 and says in body["error"]["message"]
    assert body["error"]["code"] == (jsonrpc.FORBIDDEN if status == 403 else jsonrpc.INVALID_REQUEST)
    fields = challenge(response)
    assert fields["error"] == error
    assert fields["resource_metadata"] == gw.url + "/.well-known/oauth-protected-resource/mcp"
    if status == 403:
        assert fields["scope"] == "mcp:tools"  # what to ask for on the step-up


def test_a_missing_token_gets_the_discovery_challenge(gw: GatewayThread) -> None:
    response = post(gw, None, "/mcp/orders")
    assert response.status_code == 401
    fields = challenge(response)
    assert "error" not in fields  # RFC 6750 §3.1: no error code when no credentials were sent
    assert fields["resource_metadata"] == gw.url + "/.well-known/oauth-protected-resource/mcp/orders"
    assert fields["scope"] == "mcp:tools orders:write"
    assert response.json()["error"]["code"] == jsonrpc.INVALID_REQUEST


def test_unaccepted_algorithms_are_refused(gw: GatewayThread, corp: LocalIssuer) -> None:
    now = int(time.time())
    claims = {
        "iss": corp.issuer,
        "aud": gw.url + "/mcp",
        "sub": "mallory",
        "exp": now + 60,
        "scope": "mcp:tools",
    }
    unsigned = jwt.encode(claims, None, algorithm="none", headers={"kid": "rsa-1"})
    # The classic confusion: HMAC "signed" with the issuer's public key, which anyone can fetch.
    public_pem = (
        corp.key("rsa-1")
        .private.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    header = base64.urlsafe_b64encode(b'{"alg":"HS256","typ":"JWT","kid":"rsa-1"}').rstrip(b"=")
    payload = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=")
    mac = hmac.new(public_pem, header + b"." + payload, hashlib.sha256).digest()
    confused = (header + b"." + payload + b"." + base64.urlsafe_b64encode(mac).rstrip(b"=")).decode()
    for token in (unsigned, confused):
        response = post(gw, token)
        assert response.status_code == 401
        assert "are not accepted" in response.json()["error"]["message"]
        assert challenge(response)["error"] == "invalid_token"


def test_unknown_key_ids_refetch_at_most_once(gw: GatewayThread, rotating: LocalIssuer) -> None:
    assert post(gw, rotating.mint(aud="api://lockgate")).status_code == 200  # the cache is warm
    before = rotating.jwks_fetches
    stranger = rsa_key("rsa-stranger")
    for _ in range(3):
        assert post(gw, rotating.mint(aud="api://lockgate", key=stranger)).status_code == 401
    assert rotating.jwks_fetches - before <= 1  # one refetch (rate-limited), never one per request


def test_a_rotated_key_is_accepted_after_one_refetch(
    tmp_path_factory: pytest.TempPathFactory, upstream: MockMcpThread, corp: LocalIssuer
) -> None:
    issuer = LocalIssuer(claims={"sub": "svc-rotation"})
    with issuer.serve():
        port = free_port()
        config = oauth_config(upstream.url, corp, issuer)
        with GatewayThread(tmp_path_factory.mktemp("rot"), config, port=port) as gw:
            assert post(gw, issuer.mint(aud="api://lockgate")).status_code == 200
            warm = issuer.jwks_fetches
            assert post(gw, issuer.mint(aud="api://lockgate", kid="ec-1")).status_code == 200
            assert issuer.jwks_fetches == warm  # known keys: no network
            issuer.rotate(rsa_key("rsa-2"))
            assert post(gw, issuer.mint(aud="api://lockgate", kid="rsa-2")).status_code == 200
            assert issuer.jwks_fetches == warm + 1
            assert post(gw, issuer.mint(aud="api://lockgate", kid="rsa-2")).status_code == 200
            assert issuer.jwks_fetches == warm + 1


# -- audiences, scopes and claim rules --------------------------------------------------------------


def test_a_server_path_token_is_good_there_only(gw: GatewayThread, corp: LocalIssuer) -> None:
    token = corp.mint(aud=gw.url + "/mcp/orders")
    assert post(gw, token, "/mcp/orders").status_code == 200
    assert post(gw, token, "/mcp/old").status_code == 401
    assert post(gw, token, "/mcp").status_code == 401
    aggregate = corp.mint(aud=gw.url + "/mcp")
    assert post(gw, aggregate, "/mcp/orders").status_code == 200  # the parent resource covers it


def test_a_rule_scope_missing_asks_for_a_step_up(gw: GatewayThread, corp: LocalIssuer) -> None:
    token = corp.mint(aud=gw.url + "/mcp", groups=["finance"])
    response = post(gw, token)
    assert response.status_code == 403
    fields = challenge(response)
    assert fields["error"] == "insufficient_scope" and fields["scope"] == "mcp:tools orders:write"
    stepped = corp.mint(aud=gw.url + "/mcp", groups=["finance"], scope="mcp:tools orders:write")
    assert post(gw, stepped).status_code == 200


def test_claims_no_rule_admits_are_forbidden_without_a_step_up(gw: GatewayThread, corp: LocalIssuer) -> None:
    response = post(gw, corp.mint(aud=gw.url + "/mcp", groups=["contractors"]))
    assert response.status_code == 403
    assert "www-authenticate" not in response.headers  # more scopes would not help
    assert "No rule of the issuer 'corp'" in response.json()["error"]["message"]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("path", ["/mcp", "/mcp/orders"])
async def test_claim_rules_narrow_tools_like_access_rules(
    gw: GatewayThread, corp: LocalIssuer, mode: str, path: str
) -> None:
    token = corp.mint(aud=gw.url + path)
    prefix = "orders__" if path == "/mcp" else ""
    async with bearer_client(gw, path, mode, token) as mcp:
        names = {t.name for t in (await mcp.list_tools()).tools}
        assert f"{prefix}lookup_order" in names and f"{prefix}issue_refund" not in names
        with pytest.raises(MCPError) as caught:
            await mcp.call_tool(f"{prefix}issue_refund", {"order_id": "A-1001", "amount": 5})
        assert (
            caught.value.code == jsonrpc.FORBIDDEN
            and "oauth:corp/support-staff" in caught.value.error.message
        )
        ok = await mcp.call_tool(f"{prefix}lookup_order", {"order_id": "A-1002"})
        assert ok.structured_content["status"] == "processing"


async def test_action_policies_and_tool_limits_see_the_subject(gw: GatewayThread, corp: LocalIssuer) -> None:
    email = {"to": "ops@corp.example", "subject": "hi"}
    for subject in ("dana@corp", "erin@corp"):  # same workspace, one limit each: counted per subject
        async with bearer_client(gw, "/mcp", "auto", corp.mint(aud=gw.url + "/mcp", sub=subject)) as mcp:
            assert not (await mcp.call_tool("orders__send_email", email)).is_error
            with pytest.raises(MCPError) as caught:
                await mcp.call_tool("orders__send_email", email)
            assert (
                caught.value.code == jsonrpc.RATE_LIMITED and "one-email-each" in caught.value.error.message
            )
    async with bearer_client(gw, "/mcp", "auto", corp.mint(aud=gw.url + "/mcp", sub="mallory@corp")) as mcp:
        with pytest.raises(MCPError) as caught:
            await mcp.call_tool("orders__lookup_order", {"order_id": "A-1001"})
        assert (
            caught.value.code == jsonrpc.FORBIDDEN and "no-lookups-for-mallory" in caught.value.error.message
        )


async def test_lockgate_keys_still_work_beside_oauth(gw: GatewayThread) -> None:
    async with bearer_client(gw, "/mcp", "auto", ALICE) as mcp:
        result = await mcp.call_tool("orders__issue_refund", {"order_id": "A-1001", "amount": 5})
    assert not result.is_error
    response = post(gw, "lg-not-a-real-key")
    assert response.status_code == 401 and challenge(response)["error"] == "invalid_token"


def test_protected_resource_metadata(gw: GatewayThread, corp: LocalIssuer, rotating: LocalIssuer) -> None:
    for path, resource in [
        ("", "/mcp"),
        ("/mcp", "/mcp"),
        ("/mcp/orders", "/mcp/orders"),
    ]:
        response = httpx.get(gw.url + "/.well-known/oauth-protected-resource" + path, timeout=10)
        assert response.status_code == 200
        meta = response.json()
        assert meta["resource"] == gw.url + resource
        assert meta["authorization_servers"] == [corp.issuer, rotating.issuer]  # as configured
        assert meta["scopes_supported"] == ["mcp:tools", "orders:write"]
        assert meta["bearer_methods_supported"] == ["header"]
        assert meta["resource_name"]
    missing = httpx.get(gw.url + "/.well-known/oauth-protected-resource/v1/chat", timeout=10)
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"
    wrong = httpx.post(gw.url + "/.well-known/oauth-protected-resource", timeout=10)
    assert wrong.status_code == 405


# -- the official client's own OAuth flow ------------------------------------------------------------


class _Memory:
    def __init__(self) -> None:
        self.tokens: OAuthToken | None = None
        self.client: OAuthClientInformationFull | None = None

    async def get_tokens(self) -> OAuthToken | None:
        return self.tokens

    async def set_tokens(self, tokens: OAuthToken) -> None:
        self.tokens = tokens

    async def get_client_info(self) -> OAuthClientInformationFull | None:
        return self.client

    async def set_client_info(self, client_info: OAuthClientInformationFull) -> None:
        self.client = client_info


def oauth_provider(server_url: str) -> tuple[OAuthClientProvider, _Memory]:
    """The SDK's OAuthClientProvider, with a "browser" that follows /authorize's redirect."""
    redirect: dict[str, str] = {}

    async def open_browser(url: str) -> None:
        async with httpx2.AsyncClient() as browser:
            answer = await browser.get(url, follow_redirects=False)
        query = parse_qs(urlparse(answer.headers["location"]).query)
        redirect.update(code=query["code"][0], state=query["state"][0])

    async def callback() -> AuthorizationCodeResult:
        return AuthorizationCodeResult(code=redirect["code"], state=redirect["state"])

    storage = _Memory()
    metadata = OAuthClientMetadata(
        client_name="lockgate-test",
        redirect_uris=["http://127.0.0.1:1/callback"],
        grant_types=["authorization_code"],
        response_types=["code"],
        token_endpoint_auth_method="none",
    )
    return OAuthClientProvider(server_url, metadata, storage, open_browser, callback), storage


@pytest.mark.parametrize("mode", MODES)
async def test_the_mcp_client_authorizes_itself_and_calls_tools(
    gw: GatewayThread, corp: LocalIssuer, seen: HeaderLog, mode: str
) -> None:
    provider, storage = oauth_provider(gw.url + "/mcp/orders")
    http = httpx2.AsyncClient(auth=provider, timeout=20)
    first = len(seen.seen)
    async with Client(streamable_http_client(gw.url + "/mcp/orders", http_client=http), mode=mode) as mcp:
        names = {t.name for t in (await mcp.list_tools()).tools}
        assert "lookup_order" in names and "issue_refund" not in names  # the support rule
        result = await mcp.call_tool("lookup_order", {"order_id": "A-1001"})
        assert result.structured_content["status"] == "shipped"
    assert storage.tokens is not None
    token = storage.tokens.access_token
    claims = jwt.decode(token, options={"verify_signature": False})
    assert claims["aud"] == gw.url + "/mcp/orders" and claims["scope"] == "mcp:tools orders:write"
    # Upstream saw the gateway's own credential only: never the caller's token.
    upstream_auth = seen.seen[first:]
    assert upstream_auth and set(upstream_auth) == {f"Bearer {UPSTREAM_TOKEN}"}
    gw.run(gw.app.writer.flush())
    with admin(gw) as api:
        rows = api.get("/mcp/tool-calls", params={"tool": "lookup_order", "limit": 200}).json()["data"]
        support = next(w["id"] for w in api.get("/workspaces").json()["data"] if w["name"] == "support")
    mine = [r for r in rows if r["key_id"] == "oauth:corp:alice@corp"]
    assert mine and mine[0]["status"] == "ok" and mine[0]["workspace_id"] == support


# -- configuration -------------------------------------------------------------------------------------


def test_issuers_through_the_admin_api(gw: GatewayThread) -> None:
    spec = {
        "name": "okta",
        "issuer": "https://corp.okta.example/oauth2/default",
        "audiences": ["api://lockgate"],
        "rules": [{"name": "ops", "claim": "groups", "contains": "ops", "workspace": "support"}],
    }
    with admin(gw) as api:
        bad = api.post("/mcp/oauth-issuers", json={**spec, "default_workspace": "nowhere"})
        assert bad.status_code == 400 and bad.json()["error"]["param"] == "default_workspace"
        hs = api.post("/mcp/oauth-issuers", json={**spec, "algorithms": ["HS256"]})
        assert hs.status_code == 400
        created = api.post("/mcp/oauth-issuers", json=spec)
        assert created.status_code == 201, created.text
        row = created.json()
        assert row["rules"][0]["workspace_id"].startswith("ws_") and row["required_scopes"] == []
        assert api.post("/mcp/oauth-issuers", json=spec).status_code == 409
        listed = api.get("/mcp/oauth-issuers").json()["data"]
        assert {"corp", "rotating", "okta"} <= {r["name"] for r in listed}
        replaced = api.put(f"/mcp/oauth-issuers/{row['id']}", json={**spec, "status": "disabled"})
        assert replaced.status_code == 200 and replaced.json()["status"] == "disabled"
        assert api.delete(f"/mcp/oauth-issuers/{row['id']}").status_code == 200
        assert api.get(f"/mcp/oauth-issuers/{row['id']}").status_code == 404


def test_issuers_in_lockgate_yaml_apply_export_and_prune(
    gw: GatewayThread, upstream: MockMcpThread, corp: LocalIssuer, rotating: LocalIssuer
) -> None:
    config = oauth_config(upstream.url, corp, rotating)
    entra = {
        "name": "entra",
        "issuer": "https://login.microsoftonline.example/tenant/v2.0",
        "audiences": ["api://lockgate"],
        "subject_claim": "oid",
        "rules": [{"name": "admins", "claim": "roles", "contains": "Lockgate.Admin", "workspace": "finance"}],
    }
    more = {**config, "oauth_issuers": [*config["oauth_issuers"], entra]}
    with admin(gw) as api:
        applied = api.post("/config/apply", json={"yaml": yaml.safe_dump(more)}).json()
        assert {(c["kind"], c["action"]) for c in applied["changes"]} == {("oauth_issuer", "create")}
        assert api.post("/config/apply", json={"yaml": yaml.safe_dump(more)}).json()["changes"] == []
        exported = api.get("/config/export").json()["config"]["oauth_issuers"]
        filed = next(i for i in exported if i["name"] == "entra")
        assert filed["subject_claim"] == "oid" and filed["audiences"] == ["api://lockgate"]
        assert filed["rules"] == [{**entra["rules"][0], "scopes": []}]
        corp_rules = next(i for i in exported if i["name"] == "corp")["rules"]
        assert [r["workspace"] for r in corp_rules] == ["support", "finance"]
        pruned = api.post("/config/apply", json={"yaml": yaml.safe_dump(config)}).json()
        assert [(c["kind"], c["action"], c["name"]) for c in pruned["changes"]] == [
            ("oauth_issuer", "delete", "entra")
        ]
    # The issuers the gateway started with still work.
    assert post(gw, corp.mint(aud=gw.url + "/mcp")).status_code == 200
