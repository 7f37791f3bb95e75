"""Minted bearer tokens: service-account JWTs and Entra ID, against loopback token endpoints."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
from aiohttp import web
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from lockgate.errors import UpstreamError
from lockgate.gateway.credentials import (
    CredentialConfigError,
    CredentialTokens,
    EntraClientCredentials,
    ServiceAccountSource,
    source_for,
)
from lockgate.providers.base import Credential

KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
PEM = KEY.private_bytes(
    serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
).decode()


def _b64(segment: str) -> bytes:
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


class TokenServer:
    """A loopback OAuth token endpoint that records forms and answers from a script."""

    def __init__(self) -> None:
        self.forms: list[dict[str, str]] = []
        self.status = 200
        self.lifetime = 3600
        app = web.Application()
        app.router.add_post("/token", self._token)
        app.router.add_post("/{tenant}/oauth2/v2.0/token", self._token)
        self._runner = web.AppRunner(app)
        self.url = ""

    async def _token(self, request: web.Request) -> web.Response:
        self.forms.append(dict(await request.post()))
        if self.status != 200:
            return web.json_response(
                {"error": "invalid_grant", "error_description": "bad key"}, status=self.status
            )
        n = len(self.forms)
        return web.json_response(
            {"access_token": f"tok-{n}", "expires_in": self.lifetime, "token_type": "Bearer"}
        )

    async def __aenter__(self) -> TokenServer:
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.root = f"http://127.0.0.1:{self._runner.addresses[0][1]}"
        self.url = f"{self.root}/token"
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._runner.cleanup()


def service_account(token_uri: str) -> dict[str, Any]:
    return {
        "type": "service_account",
        "private_key_id": "kid-1",
        "private_key": PEM,
        "client_email": "svc@proj.iam.gserviceaccount.com",
        "token_uri": token_uri,
    }


def vertex(token_uri: str, **options: Any) -> Credential:
    return Credential(
        "vx",
        "vertex",
        "https://x",
        options={"project": "p", "service_account": service_account(token_uri), **options},
    )


class Clock:
    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


def test_service_account_assertion_is_a_valid_rs256_jwt() -> None:
    source = ServiceAccountSource(service_account("https://oauth2.example/token"))
    header, claims, signature = source.assertion(1_700_000_000).split(".")
    assert json.loads(_b64(header)) == {"alg": "RS256", "typ": "JWT", "kid": "kid-1"}
    assert json.loads(_b64(claims)) == {
        "iss": "svc@proj.iam.gserviceaccount.com",
        "scope": "https://www.googleapis.com/auth/cloud-platform",
        "aud": "https://oauth2.example/token",
        "iat": 1_700_000_000,
        "exp": 1_700_003_600,
    }
    # Verifies with the account's public key (raises InvalidSignature otherwise).
    KEY.public_key().verify(
        _b64(signature), f"{header}.{claims}".encode(), padding.PKCS1v15(), hashes.SHA256()
    )


async def test_tokens_are_minted_once_and_refreshed_before_expiry() -> None:
    clock = Clock()
    async with TokenServer() as server, aiohttp.ClientSession() as session:
        tokens = CredentialTokens([vertex(server.url)], clock=clock, refresh_margin=300)
        wait = await tokens.refresh_due(session)
        assert wait == pytest.approx(3600 - 300)
        assert server.forms[0]["grant_type"] == "urn:ietf:params:oauth:grant-type:jwt-bearer"
        cred = vertex(server.url)
        for _ in range(3):  # requests read the cache
            assert tokens.apply(cred).headers["authorization"] == "Bearer tok-1"
        await tokens.refresh_due(session)
        assert len(server.forms) == 1  # not due yet: nothing minted
        clock.now += 3600 - 299  # inside the margin
        await tokens.refresh_due(session)
        assert len(server.forms) == 2 and tokens.apply(cred).headers["authorization"] == "Bearer tok-2"


async def test_failures_are_reported_and_retried_with_backoff() -> None:
    clock = Clock()
    async with TokenServer() as server, aiohttp.ClientSession() as session:
        server.status = 400
        tokens = CredentialTokens([vertex(server.url)], clock=clock)
        assert await tokens.refresh_due(session) == 2.0
        assert await tokens.refresh_due(session) == 4.0
        with pytest.raises(UpstreamError) as err:
            tokens.apply(vertex(server.url))
        assert err.value.code == "credential_unavailable" and "bad key" in err.value.message
        server.status = 200
        await tokens.refresh_due(session)
        assert tokens.apply(vertex(server.url)).headers["authorization"] == "Bearer tok-3"


async def test_an_expired_token_is_never_sent() -> None:
    clock = Clock()
    async with TokenServer() as server, aiohttp.ClientSession() as session:
        server.lifetime = 60
        tokens = CredentialTokens([vertex(server.url)], clock=clock)
        await tokens.refresh_due(session)
        clock.now += 61
        with pytest.raises(UpstreamError):
            tokens.apply(vertex(server.url))


async def test_entra_client_credentials_form() -> None:
    assert (
        EntraClientCredentials("tenant-1", "app-1", "s3cret").token_url
        == "https://login.microsoftonline.com/tenant-1/oauth2/v2.0/token"
    )
    async with TokenServer() as server, aiohttp.ClientSession() as session:
        source = EntraClientCredentials("tenant-1", "app-1", "s3cret", authority_host=server.root)
        assert await source.fetch(session, 1000.0) == ("tok-1", 4600.0)
        assert server.forms[0] == {
            "grant_type": "client_credentials",
            "client_id": "app-1",
            "client_secret": "s3cret",
            "scope": "https://cognitiveservices.azure.com/.default",
        }


def test_which_integrations_need_tokens(tmp_path: Path) -> None:
    path = tmp_path / "sa.json"
    path.write_text(orjson.dumps(service_account("https://t")).decode())
    assert isinstance(source_for(vertex("https://t")), ServiceAccountSource)
    from_file = Credential("v", "vertex", "x", options={"project": "p", "service_account": str(path)})
    assert isinstance(source_for(from_file), ServiceAccountSource)
    assert source_for(Credential("v", "vertex", "x", api_key="static", options={"project": "p"})) is None
    entra = Credential(
        "a", "azure", "x", options={"entra": {"tenant_id": "t", "client_id": "c", "client_secret": "s"}}
    )
    assert isinstance(source_for(entra), EntraClientCredentials)
    assert source_for(Credential("a", "azure", "x", api_key="k")) is None
    assert source_for(Credential("o", "openai", "x", api_key="k")) is None
    with pytest.raises(CredentialConfigError, match="client_secret"):
        source_for(Credential("a", "azure", "x", options={"entra": {"tenant_id": "t", "client_id": "c"}}))
    with pytest.raises(CredentialConfigError, match="cannot read"):
        source_for(
            Credential("v", "vertex", "x", options={"service_account": str(tmp_path / "missing.json")})
        )
    with pytest.raises(CredentialConfigError, match="private_key"):
        source_for(Credential("v", "vertex", "x", options={"service_account": {"client_email": "e"}}))


def test_credentials_that_need_no_token_pass_unchanged() -> None:
    tokens = CredentialTokens([Credential("o", "openai", "x", api_key="k")])
    cred = Credential("o", "openai", "x", api_key="k")
    assert tokens.names == [] and tokens.apply(cred) is cred


async def test_sync_follows_the_snapshot_integrations() -> None:
    clock = Clock()
    async with TokenServer() as server, aiohttp.ClientSession() as session:
        tokens = CredentialTokens(clock=clock)
        first = vertex(server.url)
        tokens.sync([first, Credential("o", "openai", "x", api_key="k")])
        assert tokens.names == ["vx"]
        await tokens.refresh_due(session)
        assert tokens.apply(first).headers["authorization"] == "Bearer tok-1"
        tokens.sync([first])  # same settings: the token is kept, nothing minted
        await tokens.refresh_due(session)
        assert len(server.forms) == 1
        changed = vertex(server.url, scope="https://www.googleapis.com/auth/generative-language")
        tokens.sync([changed])  # new settings: the old token is never sent again
        with pytest.raises(UpstreamError, match="not minted yet"):
            tokens.apply(changed)
        await tokens.refresh_due(session)
        assert tokens.apply(changed).headers["authorization"] == "Bearer tok-2"
        tokens.sync([])  # removed
        assert tokens.names == [] and tokens.apply(changed) is changed


def test_sync_reports_a_broken_integration_on_its_requests_only() -> None:
    broken = Credential(
        "bad", "vertex", "x", options={"project": "p", "service_account": {"client_email": "e"}}
    )
    fine = Credential("o", "openai", "x", api_key="k")
    tokens = CredentialTokens([broken, fine])
    with pytest.raises(UpstreamError, match="lacks private_key"):
        tokens.apply(broken)
    assert tokens.apply(fine) is fine
