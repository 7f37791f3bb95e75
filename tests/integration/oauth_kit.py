"""A local OAuth 2.1 authorization server / OIDC issuer for tests, on loopback.

Keys are generated here (RSA and EC P-256); the JWKS, OIDC discovery and RFC 8414 metadata
are served over HTTP, with a count of JWKS fetches. It also runs the authorization-code flow
the ``mcp`` SDK's OAuthClientProvider drives: dynamic client registration, ``/authorize``
(which approves at once and redirects with a code) and ``/token`` (PKCE checked, the RFC 8707
``resource`` becomes the token's ``aud``).
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlencode

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from tests.integration.mcp_kit import AsgiThread

REALM = "/realms/corp"


@dataclass
class SigningKey:
    kid: str
    alg: str
    private: Any

    def jwk(self) -> dict[str, Any]:
        codec = RSAAlgorithm if self.alg.startswith(("RS", "PS")) else ECAlgorithm
        return {**codec.to_jwk(self.private.public_key(), as_dict=True), "kid": self.kid, "use": "sig"}


def rsa_key(kid: str) -> SigningKey:
    return SigningKey(kid, "RS256", rsa.generate_private_key(public_exponent=65537, key_size=2048))


def ec_key(kid: str) -> SigningKey:
    return SigningKey(kid, "ES256", ec.generate_private_key(ec.SECP256R1()))


@dataclass
class LocalIssuer:
    """The issuer's state; ``serve()`` puts it on loopback (``issuer`` is known once it runs)."""

    keys: list[SigningKey] = field(default_factory=lambda: [rsa_key("rsa-1"), ec_key("ec-1")])
    # What /token puts in the tokens it issues, besides iss, aud, scope and times.
    claims: dict[str, Any] = field(default_factory=lambda: {"sub": "alice@corp", "groups": ["support"]})
    jwks_fetches: int = 0
    issuer: str = ""
    _codes: dict[str, dict[str, str]] = field(default_factory=dict)

    def serve(self) -> AsgiThread:
        thread = AsgiThread(self.app())
        self.issuer = thread.url + REALM
        return thread

    def rotate(self, key: SigningKey) -> None:
        """A new signing key is published (the old ones stay, as IdPs do during a rotation)."""
        self.keys.append(key)

    def key(self, kid: str) -> SigningKey:
        return next(k for k in self.keys if k.kid == kid)

    def mint(
        self,
        *,
        aud: str | list[str],
        scope: str = "mcp:tools",
        kid: str = "rsa-1",
        ttl: float = 300,
        key: SigningKey | None = None,
        **claims: Any,
    ) -> str:
        now = int(time.time())
        body = {"iss": self.issuer, "aud": aud, "iat": now, "exp": now + int(ttl), "scope": scope}
        body.update(self.claims)
        body.update(claims)
        signer = key or self.key(kid)
        return jwt.encode(body, signer.private, algorithm=signer.alg, headers={"kid": signer.kid})

    # -- HTTP ---------------------------------------------------------------------------------

    def metadata(self) -> dict[str, Any]:
        return {
            "issuer": self.issuer,
            "jwks_uri": self.issuer + "/jwks",
            "authorization_endpoint": self.issuer + "/authorize",
            "token_endpoint": self.issuer + "/token",
            "registration_endpoint": self.issuer + "/register",
            "response_types_supported": ["code"],
            "grant_types_supported": ["authorization_code"],
            "code_challenge_methods_supported": ["S256"],
            "token_endpoint_auth_methods_supported": ["none"],
        }

    def app(self) -> Starlette:
        async def metadata(request: Request) -> Response:
            return JSONResponse(self.metadata())

        async def jwks(request: Request) -> Response:
            self.jwks_fetches += 1
            return JSONResponse({"keys": [k.jwk() for k in self.keys]})

        async def register(request: Request) -> Response:
            body = await request.json()
            client = {
                **body,
                "client_id": "client-" + secrets.token_hex(4),
                "token_endpoint_auth_method": "none",
            }
            return JSONResponse(client, status_code=201)

        async def authorize(request: Request) -> Response:
            q = request.query_params
            code = secrets.token_urlsafe(16)
            self._codes[code] = {
                k: q.get(k, "") for k in ("code_challenge", "resource", "scope", "client_id")
            }
            target = q["redirect_uri"] + "?" + urlencode({"code": code, "state": q.get("state", "")})
            return RedirectResponse(target, status_code=302)

        async def token(request: Request) -> Response:
            form = {k: v[0] for k, v in parse_qs((await request.body()).decode()).items()}
            grant = self._codes.pop(form.get("code", ""), None)
            verifier = form.get("code_verifier", "").encode()
            challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier).digest()).rstrip(b"=").decode()
            if grant is None or grant["code_challenge"] != challenge:
                return JSONResponse({"error": "invalid_grant"}, status_code=400)
            resource = form.get("resource") or grant["resource"]
            access = self.mint(aud=resource, scope=grant["scope"])
            answer = {
                "access_token": access,
                "token_type": "Bearer",
                "expires_in": 300,
                "scope": grant["scope"],
            }
            return JSONResponse(answer)

        return Starlette(
            routes=[
                Route(REALM + "/.well-known/openid-configuration", metadata),
                Route("/.well-known/oauth-authorization-server" + REALM, metadata),
                Route("/.well-known/openid-configuration" + REALM, metadata),
                Route(REALM + "/jwks", jwks),
                Route(REALM + "/register", register, methods=["POST"]),
                Route(REALM + "/authorize", authorize),
                Route(REALM + "/token", token, methods=["POST"]),
            ]
        )


class HeaderLog:
    """ASGI middleware: remembers the Authorization header of every request it passes on."""

    def __init__(self) -> None:
        self.seen: list[str | None] = []

    def wrap(self, app: Any) -> Any:
        async def watched(scope: Any, receive: Any, send: Any) -> None:
            if scope["type"] == "http":
                value = dict(scope["headers"]).get(b"authorization")
                self.seen.append(value.decode() if value is not None else None)
            await app(scope, receive, send)

        return watched
