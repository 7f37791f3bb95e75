"""Inbound OAuth 2.1 on ``/mcp``: the gateway as a resource server (MCP authorization, RFC 9728).

A bearer shaped like a JWT whose ``iss`` is a trusted issuer goes this way; anything else
(``lg-`` keys, the master key) keeps the key path, so Lockgate keys work on ``/mcp`` as
before. A token is checked against its issuer's JWKS (governance/jwks.py), for an audience
that is this resource (RFC 8707: ``{public}/mcp``, or ``{public}/mcp/{server}`` on that
server's path) or one the issuer config names, and for the scopes it needs. Claim rules then
map it to a workspace (and narrow what it may reach), giving a Principal that every MCP
check downstream treats like a key's: access rules, action policies, per-tool limits.

The inbound token never leaves the gateway: upstream calls carry only the server's own
credential (mcp/registry.py), built without the request's headers.

Refusals carry the ``WWW-Authenticate`` challenge an MCP client needs to find the
authorization server: ``resource_metadata`` points at the protected-resource metadata
served from ``/.well-known/oauth-protected-resource{/mcp[/server]}``.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from lockgate.errors import AuthenticationFailed
from lockgate.governance.auth import KEY_PREFIX, Authenticator, Principal
from lockgate.governance.jwks import (
    InsufficientScope,
    JwksCache,
    JwtPolicy,
    KeysUnavailable,
    TokenRejected,
    unverified_claims,
    verify,
)
from lockgate.mcp.jsonrpc import FORBIDDEN, INVALID_REQUEST, UPSTREAM_ERROR
from lockgate.mcp.registry import AccessRule
from lockgate.store.control import Row

if TYPE_CHECKING:
    from lockgate.admin.snapshot import Snapshot
    from lockgate.server.types import Scope

log = logging.getLogger("lockgate.oauth")

METADATA_PATH = "/.well-known/oauth-protected-resource"
_KEY_ID_MAX = 64  # tool_calls.key_id
_UNSAFE = re.compile(r'["\\\x00-\x1f\x7f]')  # what may not stand inside a quoted challenge value


@dataclass(frozen=True, slots=True)
class ClaimRule:
    name: str
    path: tuple[str, ...]
    equals: str | None
    contains: str | None
    workspace_id: str
    scopes: tuple[str, ...]

    def matches(self, claims: Mapping[str, Any]) -> bool:
        value = claim(claims, self.path)
        if value is None:
            return False
        if self.equals is not None:
            return value == self.equals
        if self.contains is not None:
            if isinstance(value, str):
                return self.contains in value.split()
            return isinstance(value, list) and self.contains in value
        return True


@dataclass(frozen=True, slots=True)
class TrustedIssuer:
    name: str
    policy: JwtPolicy
    audiences: tuple[str, ...]
    required_scopes: tuple[str, ...]
    subject_path: tuple[str, ...]
    default_workspace_id: str | None
    rules: tuple[ClaimRule, ...]


@dataclass(frozen=True, slots=True)
class OAuthConfig:
    """The snapshot's part: trusted issuers by ``iss``, and each rule's access limits."""

    issuers: Mapping[str, TrustedIssuer] = field(default_factory=dict)
    grants: Mapping[str, tuple[AccessRule, ...]] = field(default_factory=dict)  # "issuer/rule"

    @property
    def scopes_supported(self) -> list[str]:
        scopes = {s for i in self.issuers.values() for s in i.required_scopes}
        scopes |= {s for i in self.issuers.values() for r in i.rules for s in r.scopes}
        return sorted(scopes)

    def rules_for(self, principal: Principal) -> tuple[AccessRule, ...]:
        """The access limits of the claim rule that admitted an OAuth caller (none for keys)."""
        if not principal.key_id.startswith("oauth:"):
            return ()
        meta = principal.metadata
        return self.grants.get(f"{meta.get('issuer')}/{meta.get('oauth_rule')}", ())


def build_oauth(rows: list[Row]) -> OAuthConfig:
    issuers: dict[str, TrustedIssuer] = {}
    grants: dict[str, tuple[AccessRule, ...]] = {}
    # Creation order: metadata lists the first-configured issuer first, and clients pick the first.
    for row in sorted(rows, key=lambda r: (r["created_at"], r["id"])):
        if row["status"] != "enabled":
            continue
        rules = []
        for stored in row["rules"]:
            rules.append(
                ClaimRule(
                    name=stored["name"],
                    path=tuple(stored["claim"].split(".")),
                    equals=stored.get("equals"),
                    contains=stored.get("contains"),
                    workspace_id=stored["workspace_id"],
                    scopes=tuple(stored.get("scopes") or ()),
                )
            )
            limits = {
                k: stored.get(k) for k in ("allow_servers", "deny_servers", "allow_tools", "deny_tools")
            }
            if any(v is not None for v in limits.values()):
                grants[f"{row['name']}/{stored['name']}"] = (
                    AccessRule(
                        name=f"oauth:{row['name']}/{stored['name']}",
                        scope_type="oauth",
                        scope_id=row["name"],
                        allow_servers=_tuple(limits["allow_servers"]),
                        deny_servers=_tuple(limits["deny_servers"]) or (),
                        allow_tools=_tuple(limits["allow_tools"]),
                        deny_tools=_tuple(limits["deny_tools"]) or (),
                    ),
                )
        issuers[row["issuer"]] = TrustedIssuer(
            name=row["name"],
            policy=JwtPolicy(
                row["issuer"], row["jwks_uri"], tuple(row["algorithms"]), float(row["leeway_s"])
            ),
            audiences=tuple(row["audiences"]),
            required_scopes=tuple(row["required_scopes"]),
            subject_path=tuple(row["subject_claim"].split(".")),
            default_workspace_id=row["default_workspace_id"],
            rules=tuple(rules),
        )
    return OAuthConfig(MappingProxyType(issuers), MappingProxyType(grants))


def _tuple(value: list[str] | None) -> tuple[str, ...] | None:
    return tuple(value) if value is not None else None


def claim(claims: Mapping[str, Any], path: tuple[str, ...]) -> Any:
    value: Any = claims
    for part in path:
        if not isinstance(value, Mapping):
            return None
        value = value.get(part)
    return value


def token_scopes(claims: Mapping[str, Any]) -> frozenset[str]:
    """``scope`` (RFC 8693/9068: space-separated), or ``scp`` (Entra, Okta: a list or a string)."""
    found: set[str] = set()
    for name in ("scope", "scp"):
        value = claims.get(name)
        if isinstance(value, str):
            found.update(value.split())
        elif isinstance(value, list):
            found.update(v for v in value if isinstance(v, str))
    return frozenset(found)


class OAuthRefused(AuthenticationFailed):
    """A refusal on /mcp with its status, JSON-RPC code and WWW-Authenticate challenge."""

    def __init__(self, message: str, *, status: int, challenge: str | None, rpc_code: int) -> None:
        super().__init__(message)
        self.status = status
        self.challenge = challenge
        self.rpc_code = rpc_code


def challenge(
    metadata_url: str, error: str | None = None, description: str | None = None, scope: str | None = None
) -> str:
    """An RFC 6750 ``Bearer`` challenge with RFC 9728's ``resource_metadata``."""
    parts = []
    if error is not None:
        parts.append(f'error="{error}"')
    if description is not None:
        parts.append(f'error_description="{_UNSAFE.sub("", description)[:300]}"')
    if scope:
        parts.append(f'scope="{scope}"')
    parts.append(f'resource_metadata="{metadata_url}"')
    return "Bearer " + ", ".join(parts)


class OAuthGate:
    """Per worker: the issuers' keys (fetched off the request path) and the checks."""

    def __init__(self, keys: JwksCache, *, public_url: str | None) -> None:
        self.keys = keys
        self.public_url = public_url.rstrip("/") if public_url else None
        self._warned: set[str] = set()  # issuers whose misconfiguration was logged (once each)

    def on_snapshot(self, config: OAuthConfig) -> None:
        """Raises RuntimeError outside a running loop (the caller tolerates that)."""
        self.keys.sync((i.policy.issuer, i.policy.jwks_uri) for i in config.issuers.values())

    # -- URLs ---------------------------------------------------------------------------------

    def base_url(self, scope: Scope, headers: Mapping[str, str]) -> str:
        """LOCKGATE_PUBLIC_URL, else what the caller dialled (only for URLs we hand out)."""
        if self.public_url is not None:
            return self.public_url
        host = headers.get("host")
        if not host:
            server = scope.get("server") or ("127.0.0.1", 80)
            host = f"{server[0]}:{server[1]}"
        return f"{scope.get('scheme', 'http')}://{host}"

    @staticmethod
    def resource_path(path: str) -> str:
        """``/mcp`` or ``/mcp/{server}``: the protected resource a request addresses."""
        return path.rstrip("/") or "/mcp"

    def metadata_url(self, scope: Scope, headers: Mapping[str, str]) -> str:
        return self.base_url(scope, headers) + METADATA_PATH + self.resource_path(scope["path"])

    def audiences(self, scope: Scope, issuer: TrustedIssuer) -> list[str]:
        """RFC 8707: this resource (the aggregate's token is good on every server path too), or
        what the issuer config names. Never derived from the Host header: a caller could point
        it at the audience of a token meant for another service."""
        own = []
        if self.public_url is not None:
            path = self.resource_path(scope["path"])
            own = [self.public_url + "/mcp"] + ([self.public_url + path] if path != "/mcp" else [])
        return [*own, *issuer.audiences]

    # -- authentication -----------------------------------------------------------------------

    async def authenticate(
        self, scope: Scope, headers: Mapping[str, str], snapshot: Snapshot, keys_auth: Authenticator
    ) -> Principal:
        config: OAuthConfig = snapshot.oauth
        token = _bearer(headers)
        claims = unverified_claims(token) if token and not token.startswith(KEY_PREFIX) else None
        if claims is None:  # a Lockgate key, or nothing: the key path, with our challenge on 401
            try:
                return keys_auth.authenticate(dict(headers), snapshot)
            except AuthenticationFailed as exc:
                error = "invalid_token" if token else None
                raise self._unauthorized(scope, headers, exc.message, error, config) from None
        issuer = config.issuers.get(claims.get("iss")) if isinstance(claims.get("iss"), str) else None
        if issuer is None:
            raise self._unauthorized(
                scope, headers, "The token's issuer is not trusted here.", "invalid_token", config
            )
        audiences = self.audiences(scope, issuer)
        try:
            if not audiences:
                if issuer.name not in self._warned:
                    self._warned.add(issuer.name)
                    log.error(
                        "OAuth issuer %s has no audiences and LOCKGATE_PUBLIC_URL is unset", issuer.name
                    )
                raise TokenRejected("No audience is configured for this resource.")
            verified = await verify(token or "", issuer.policy, audiences, self.keys)
            principal = self._principal(snapshot, issuer, verified)
        except InsufficientScope as exc:
            wanted = " ".join(exc.scopes)
            raise OAuthRefused(
                exc.description,
                status=403,
                challenge=challenge(
                    self.metadata_url(scope, headers), "insufficient_scope", exc.description, wanted
                ),
                rpc_code=FORBIDDEN,
            ) from None
        except TokenRejected as exc:
            raise self._unauthorized(scope, headers, exc.description, "invalid_token", config) from None
        except KeysUnavailable as exc:
            raise OAuthRefused(str(exc), status=503, challenge=None, rpc_code=UPSTREAM_ERROR) from None
        return principal

    def _principal(self, snapshot: Snapshot, issuer: TrustedIssuer, claims: dict[str, Any]) -> Principal:
        subject = claim(claims, issuer.subject_path)
        if not isinstance(subject, str) or not subject:
            raise TokenRejected(f"The token has no {'.'.join(issuer.subject_path)!r} claim.")
        scopes = token_scopes(claims)
        missing = tuple(s for s in issuer.required_scopes if s not in scopes)
        if missing:
            raise InsufficientScope(
                f"The token lacks the scope(s) {' '.join(missing)}.", issuer.required_scopes
            )
        rule = next((r for r in issuer.rules if r.matches(claims)), None)
        if rule is not None:
            if any(s not in scopes for s in rule.scopes):
                needed = tuple(dict.fromkeys((*issuer.required_scopes, *rule.scopes)))
                raise InsufficientScope(
                    f"The rule {rule.name!r} needs the scope(s) {' '.join(rule.scopes)}.", needed
                )
            workspace_id = rule.workspace_id
        elif issuer.default_workspace_id is not None:
            workspace_id = issuer.default_workspace_id
        else:
            raise OAuthRefused(
                f"No rule of the issuer {issuer.name!r} admits this token's claims.",
                status=403,
                challenge=None,
                rpc_code=FORBIDDEN,
            )
        ident = f"oauth:{issuer.name}:{subject}"
        if len(ident) > _KEY_ID_MAX:  # a stable stand-in; the subject itself is in the metadata
            ident = f"oauth:{issuer.name}:{hashlib.sha256(subject.encode()).hexdigest()[:24]}"
        metadata = {"auth": "oauth", "issuer": issuer.name, "subject": subject}
        if rule is not None:
            metadata["oauth_rule"] = rule.name
        client = claims.get("azp") or claims.get("client_id")
        if isinstance(client, str):
            metadata["client_id"] = client
        return Principal(snapshot.org_id, workspace_id, ident, subject, (), MappingProxyType(metadata))

    def _unauthorized(
        self, scope: Scope, headers: Mapping[str, str], message: str, error: str | None, config: OAuthConfig
    ) -> OAuthRefused:
        url = self.metadata_url(scope, headers)
        scopes = " ".join(config.scopes_supported) or None
        description = message if error is not None else None
        return OAuthRefused(
            message,
            status=401,
            challenge=challenge(url, error, description, scopes if error is None else None),
            rpc_code=INVALID_REQUEST,
        )

    # -- RFC 9728 metadata --------------------------------------------------------------------

    def metadata(
        self, scope: Scope, headers: Mapping[str, str], config: OAuthConfig
    ) -> dict[str, Any] | None:
        """The protected-resource metadata for ``/.well-known/oauth-protected-resource[/mcp[/x]]``."""
        rest = scope["path"][len(METADATA_PATH) :].rstrip("/")
        if rest == "":
            rest = "/mcp"
        if not config.issuers or not (rest == "/mcp" or re.fullmatch(r"/mcp/[A-Za-z0-9._@+-]{1,130}", rest)):
            return None
        name = rest[len("/mcp/") :] if rest != "/mcp" else None
        return {
            "resource": self.base_url(scope, headers) + rest,
            "authorization_servers": list(config.issuers),
            "scopes_supported": config.scopes_supported,
            "bearer_methods_supported": ["header"],
            "resource_name": f"Lockgate MCP server {name}" if name else "Lockgate MCP gateway",
        }


def _bearer(headers: Mapping[str, str]) -> str | None:
    scheme, _, token = headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer":
        return None
    return token.strip() or None
