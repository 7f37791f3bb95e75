"""The pieces of inbound OAuth that need no network: JWKS parsing, claim rules, scopes, challenges."""

from __future__ import annotations

from typing import Any

import jwt
import pytest

from lockgate.governance.jwks import KeysUnavailable, _IssuerKeys, _parse_keys, unverified_claims
from lockgate.mcp.oauth import OAuthConfig, OAuthGate, build_oauth, challenge, token_scopes
from lockgate.mcp.oauth_specs import OAuthIssuerSpec, issuer_values
from tests.integration.oauth_kit import ec_key, rsa_key

RSA, EC = rsa_key("r1"), ec_key("e1")


def test_only_public_signing_keys_are_taken_from_a_jwks() -> None:
    private = {**jwt.algorithms.RSAAlgorithm.to_jwk(RSA.private, as_dict=True), "kid": "leaked"}
    document = {
        "keys": [
            RSA.jwk(),
            EC.jwk(),
            {**RSA.jwk(), "kid": "for-encryption", "use": "enc"},
            private,
            {"kty": "RSA", "kid": "broken", "n": "AQAB"},
            "not a key",
        ]
    }
    keys = _parse_keys(document)
    assert [k.kid for k in keys] == ["r1", "e1"]
    with pytest.raises(KeysUnavailable):
        _parse_keys({"keys": "none"})


def test_a_key_serves_only_algorithms_of_its_type() -> None:
    entry = _IssuerKeys("https://idp.example", None)
    entry.keys = _parse_keys({"keys": [RSA.jwk(), EC.jwk()]})
    assert entry.find("r1", "RS256") is not None and entry.find("r1", "PS256") is not None
    assert entry.find("r1", "ES256") is None  # an RSA key never verifies an EC signature
    assert entry.find("e1", "ES256") is not None and entry.find("e1", "ES384") is None  # P-256 only
    # No kid: only when one key of the type leaves no doubt.
    assert entry.find(None, "ES256") is not None
    entry.keys = _parse_keys({"keys": [RSA.jwk(), rsa_key("r2").jwk()]})
    assert entry.find(None, "RS256") is None


@pytest.mark.parametrize(
    ("token", "looks_like_jwt"),
    [
        ("lg-abcdef", False),
        ("a.b", False),
        ("eyJhbGciOiJub25lIn0.eyJpc3MiOiJ4In0.", True),  # alg none: ours to refuse, not the key path's
        ("eyJhbGciOiJub25lIn0.bm90IGpzb24.sig", False),
        ("eyJhbGciOiJub25lIn0.WzFd.sig", False),  # a JSON array, not claims
    ],
)
def test_what_looks_like_a_jwt(token: str, looks_like_jwt: bool) -> None:
    assert (unverified_claims(token) is not None) is looks_like_jwt


def test_scopes_come_from_scope_or_scp() -> None:
    assert token_scopes({"scope": "mcp:tools  openid"}) == {"mcp:tools", "openid"}
    assert token_scopes({"scp": ["mcp:tools", 7]}) == {"mcp:tools"}
    assert token_scopes({"scp": "a b", "scope": "c"}) == {"a", "b", "c"}
    assert token_scopes({}) == frozenset()


def test_challenge_values_cannot_break_out_of_their_quotes() -> None:
    header = challenge("https://gw/.well-known/oauth-protected-resource/mcp", "invalid_token", 'bad "x"\\\n')
    assert header == (
        'Bearer error="invalid_token", error_description="bad x", '
        'resource_metadata="https://gw/.well-known/oauth-protected-resource/mcp"'
    )


def _config(**spec: Any) -> OAuthConfig:
    ids = {"support": "ws_support", "ops": "ws_ops"}
    values = issuer_values(
        OAuthIssuerSpec(name="idp", issuer="https://idp.example", **spec), lambda n, p: ids[n]
    )
    return build_oauth([{**values, "id": "iss_1", "created_at": 1.0}])


def test_claim_rules_reach_nested_claims_and_first_match_wins() -> None:
    config = _config(
        rules=[
            {"name": "kc", "claim": "realm_access.roles", "contains": "ops", "workspace": "ops"},
            {"name": "mail", "claim": "email", "equals": "sam@corp.example", "workspace": "support"},
            {"name": "any-group", "claim": "groups", "workspace": "support", "allow_servers": ["orders"]},
        ]
    )
    rules = config.issuers["https://idp.example"].rules
    first = lambda claims: next((r.name for r in rules if r.matches(claims)), None)  # noqa: E731
    assert first({"realm_access": {"roles": ["ops", "dev"]}, "groups": []}) == "kc"
    assert first({"realm_access": "ops", "email": "sam@corp.example"}) == "mail"
    assert first({"groups": []}) == "any-group"  # no test: the claim being there is enough
    assert first({"email": "sam@corp.example.evil"}) is None
    assert set(config.grants) == {"idp/any-group"}


def test_disabled_issuers_are_not_trusted() -> None:
    assert not _config(status="disabled").issuers


def test_audiences_never_come_from_the_host_header() -> None:
    gate = OAuthGate(keys=None, public_url=None)  # type: ignore[arg-type]
    issuer = _config(audiences=["api://lockgate"]).issuers["https://idp.example"]
    scope = {"path": "/mcp/orders", "scheme": "http"}
    assert gate.audiences(scope, issuer) == ["api://lockgate"]
    assert gate.metadata_url(scope, {"host": "gw.internal:8080"}) == (
        "http://gw.internal:8080/.well-known/oauth-protected-resource/mcp/orders"
    )
    public = OAuthGate(keys=None, public_url="https://gw.example/")  # type: ignore[arg-type]
    assert public.audiences(scope, issuer) == [
        "https://gw.example/mcp",
        "https://gw.example/mcp/orders",
        "api://lockgate",
    ]
