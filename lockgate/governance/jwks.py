"""Bearer JWTs from an external IdP: the issuer's signing keys (JWKS, cached and rotated) and the checks.

Keys live in memory per issuer and are refreshed in the background every ``ttl_s``. A token
whose ``kid`` is not in the cache triggers one refetch, at most once per ``refetch_s`` per
issuer (that is how a key rotation is picked up), so a stream of made-up key ids never turns
into a fetch per request. The request path waits on the network only then, or while an
issuer's very first fetch is still under way.

    TokenRejected           the token is not acceptable: 401 invalid_token
    └── InsufficientScope   valid, but without a scope it needs: 403 insufficient_scope
    KeysUnavailable         the issuer's keys cannot be fetched: 503, the token may be fine
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from typing import Any

import aiohttp
import jwt
import orjson

log = logging.getLogger("lockgate.oauth")

_MAX_DOCUMENT = 1024 * 1024
# Which key type (and curve) each accepted algorithm verifies with.
_KEY_TYPES = {
    **dict.fromkeys(("RS256", "RS384", "RS512", "PS256", "PS384", "PS512"), ("RSA", None)),
    "ES256": ("EC", "P-256"),
    "ES384": ("EC", "P-384"),
    "ES512": ("EC", "P-521"),
    "EdDSA": ("OKP", None),
}


class TokenRejected(Exception):
    def __init__(self, description: str) -> None:
        super().__init__(description)
        self.description = description


class InsufficientScope(TokenRejected):
    def __init__(self, description: str, scopes: tuple[str, ...]) -> None:
        super().__init__(description)
        self.scopes = scopes


class KeysUnavailable(Exception):
    pass


@dataclass(frozen=True, slots=True)
class JwtPolicy:
    """What a token from one issuer is checked against (audiences come per request: the path)."""

    issuer: str
    jwks_uri: str | None
    algorithms: tuple[str, ...]
    leeway_s: float


@dataclass(frozen=True, slots=True)
class _Key:
    kid: str | None
    kty: str
    crv: str | None
    alg: str | None
    public: Any  # a cryptography public key

    def fits(self, alg: str) -> bool:
        kty, crv = _KEY_TYPES.get(alg, (None, None))
        if self.kty != kty or (crv is not None and self.crv != crv):
            return False
        return self.alg is None or self.alg == alg


class _IssuerKeys:
    """One issuer's key set and the bookkeeping of its fetches."""

    __slots__ = ("failures", "fetched_at", "fetching", "forced_at", "issuer", "jwks_uri", "keys", "task")

    def __init__(self, issuer: str, jwks_uri: str | None) -> None:
        self.issuer = issuer
        self.jwks_uri = jwks_uri
        self.keys: tuple[_Key, ...] = ()
        self.fetched_at: float | None = None
        self.forced_at = -math.inf
        self.failures = 0
        self.fetching: asyncio.Task[None] | None = None
        self.task: asyncio.Task[None] | None = None

    def find(self, kid: str | None, alg: str) -> _Key | None:
        fitting = [k for k in self.keys if k.fits(alg)]
        if kid is None:  # only unambiguous: an issuer with one key of this type
            return fitting[0] if len(fitting) == 1 else None
        return next((k for k in fitting if k.kid == kid), None)


class JwksCache:
    def __init__(self, *, ttl_s: float = 300.0, refetch_s: float = 30.0, timeout_s: float = 5.0) -> None:
        self.ttl_s = ttl_s
        self.refetch_s = refetch_s
        self.timeout_s = timeout_s
        self.fetches = 0  # JWKS documents fetched, for tests and metrics
        self._issuers: dict[tuple[str, str | None], _IssuerKeys] = {}
        self._session: aiohttp.ClientSession | None = None

    def sync(self, sources: Iterable[tuple[str, str | None]]) -> None:
        """Keep keys for exactly these (issuer, jwks_uri); new ones start fetching now.
        Raises RuntimeError outside a running loop (before changing anything)."""
        asyncio.get_running_loop()
        wanted = set(sources)
        for ident in [i for i in self._issuers if i not in wanted]:
            self._stop(self._issuers.pop(ident))
        for ident in wanted:
            self._entry(*ident)

    async def signing_key(self, issuer: str, jwks_uri: str | None, kid: str | None, alg: str) -> Any:
        entry = self._entry(issuer, jwks_uri)
        if entry.fetched_at is None:  # cold: wait for the fetch under way, never start a stampede
            if entry.fetching is None:
                raise KeysUnavailable(f"The signing keys of {issuer} cannot be fetched right now.")
            with contextlib.suppress(KeysUnavailable):
                await asyncio.shield(entry.fetching)
            if entry.fetched_at is None:
                raise KeysUnavailable(f"The signing keys of {issuer} cannot be fetched right now.")
        key = entry.find(kid, alg)
        now = time.monotonic()
        if key is None and now - entry.forced_at >= self.refetch_s:
            entry.forced_at = now  # a rotation, or a made-up kid: one refetch either way
            with contextlib.suppress(KeysUnavailable):
                await self._refresh(entry)
            key = entry.find(kid, alg)
        if key is None:
            raise TokenRejected(f"No signing key {kid!r} ({alg}) is published by this issuer.")
        return key.public

    async def close(self) -> None:
        for entry in self._issuers.values():
            self._stop(entry)
        self._issuers.clear()
        if self._session is not None:
            await self._session.close()
            self._session = None

    # -- fetching ----------------------------------------------------------------------------

    def _entry(self, issuer: str, jwks_uri: str | None) -> _IssuerKeys:
        entry = self._issuers.get((issuer, jwks_uri))
        if entry is None:
            entry = self._issuers[(issuer, jwks_uri)] = _IssuerKeys(issuer, jwks_uri)
            entry.fetching = asyncio.ensure_future(self._fetch(entry))
            entry.task = asyncio.ensure_future(self._refresh_loop(entry))
        return entry

    @staticmethod
    def _stop(entry: _IssuerKeys) -> None:
        for task in (entry.task, entry.fetching):
            if task is not None:
                task.cancel()

    async def _refresh_loop(self, entry: _IssuerKeys) -> None:
        """Refetch every ttl; after a failure sooner, backing off (the old keys stay in use)."""
        while True:
            if entry.fetching is not None:
                with contextlib.suppress(KeysUnavailable):
                    await asyncio.shield(entry.fetching)
            wait = self.ttl_s if entry.failures == 0 else min(self.ttl_s, 2.0 ** min(entry.failures, 8))
            await asyncio.sleep(wait)
            with contextlib.suppress(KeysUnavailable):
                await self._refresh(entry)

    async def _refresh(self, entry: _IssuerKeys) -> None:
        """One fetch at a time per issuer: callers that arrive meanwhile share it."""
        if entry.fetching is None or entry.fetching.done():
            entry.fetching = asyncio.ensure_future(self._fetch(entry))
        await asyncio.shield(entry.fetching)

    async def _fetch(self, entry: _IssuerKeys) -> None:
        try:
            jwks_uri = entry.jwks_uri or await self._discover(entry.issuer)
            document = await self._get_json(jwks_uri)
            keys = _parse_keys(document)
        except KeysUnavailable as exc:
            entry.failures += 1
            log.warning("JWKS of %s not refreshed (keeping %d keys): %s", entry.issuer, len(entry.keys), exc)
            raise
        self.fetches += 1
        entry.keys, entry.fetched_at, entry.failures = keys, time.monotonic(), 0

    async def _discover(self, issuer: str) -> str:
        """OIDC discovery, then RFC 8414 metadata; the document must name this very issuer."""
        base = issuer.rstrip("/")
        problem = "no discovery document"
        for suffix in ("/.well-known/openid-configuration", "/.well-known/oauth-authorization-server"):
            try:
                meta = await self._get_json(base + suffix)
            except KeysUnavailable as exc:
                problem = str(exc)
                continue
            if meta.get("issuer") != issuer or not isinstance(meta.get("jwks_uri"), str):
                raise KeysUnavailable(f"{base + suffix} names issuer {meta.get('issuer')!r} or no jwks_uri")
            return str(meta["jwks_uri"])
        raise KeysUnavailable(problem)

    async def _get_json(self, url: str) -> dict[str, Any]:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.timeout_s))
        try:
            async with self._session.get(url, headers={"accept": "application/json"}) as response:
                if response.status != 200:
                    raise KeysUnavailable(f"GET {url} answered {response.status}")
                body = await response.content.read(_MAX_DOCUMENT + 1)
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise KeysUnavailable(f"GET {url} failed: {exc!r}") from None
        if len(body) > _MAX_DOCUMENT:
            raise KeysUnavailable(f"GET {url}: the document is over {_MAX_DOCUMENT} bytes")
        try:
            document = orjson.loads(body)
        except orjson.JSONDecodeError:
            raise KeysUnavailable(f"GET {url}: not JSON") from None
        if not isinstance(document, dict):
            raise KeysUnavailable(f"GET {url}: not a JSON object")
        return document


def _parse_keys(document: dict[str, Any]) -> tuple[_Key, ...]:
    raw = document.get("keys")
    if not isinstance(raw, list):
        raise KeysUnavailable("the JWKS has no keys list")
    keys = []
    for jwk in raw:
        # Signing keys only, public parts only: a private key published by mistake is not used.
        if not isinstance(jwk, dict) or jwk.get("use", "sig") != "sig" or "d" in jwk:
            continue
        try:
            public = jwt.PyJWK(jwk).key
        except (jwt.PyJWKError, jwt.InvalidKeyError, ValueError, TypeError) as exc:
            log.info("JWKS key %r skipped: %s", jwk.get("kid"), exc)
            continue
        kid = jwk.get("kid")
        keys.append(
            _Key(
                kid if isinstance(kid, str) else None, jwk.get("kty"), jwk.get("crv"), jwk.get("alg"), public
            )
        )
    return tuple(keys)


def unverified_claims(token: str) -> dict[str, Any] | None:
    """The payload of something shaped like a JWS compact JWT, unverified (to pick the issuer)."""
    parts = token.split(".")
    if len(parts) != 3 or not parts[0] or not parts[1]:  # an empty signature is alg "none": ours to refuse
        return None
    try:
        payload = orjson.loads(jwt.utils.base64url_decode(parts[1]))
    except (ValueError, orjson.JSONDecodeError):
        return None
    return payload if isinstance(payload, dict) else None


async def verify(
    token: str, policy: JwtPolicy, audiences: Collection[str], keys: JwksCache
) -> dict[str, Any]:
    """The verified claims, or TokenRejected saying what is wrong (in words safe to send back)."""
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError:
        raise TokenRejected("The token is not a well-formed JWT.") from None
    alg = header.get("alg")
    if not isinstance(alg, str) or alg not in policy.algorithms:
        raise TokenRejected(
            f"Tokens signed with {alg!r} are not accepted; use one of {list(policy.algorithms)}."
        )
    kid = header.get("kid")
    public = await keys.signing_key(
        policy.issuer, policy.jwks_uri, kid if isinstance(kid, str) else None, alg
    )
    try:
        return jwt.decode(
            token,
            public,
            algorithms=[alg],
            audience=list(audiences),
            issuer=policy.issuer,
            leeway=policy.leeway_s,
            options={"require": ["exp", "iss", "aud"]},
        )
    except jwt.ExpiredSignatureError:
        raise TokenRejected("The token has expired.") from None
    except jwt.ImmatureSignatureError:
        raise TokenRejected("The token is not valid yet.") from None
    except jwt.InvalidAudienceError:
        raise TokenRejected("The token was not issued for this resource (aud).") from None
    except jwt.InvalidIssuerError:
        raise TokenRejected("The token's issuer does not match.") from None
    except jwt.InvalidSignatureError:
        raise TokenRejected("The token's signature does not verify.") from None
    except jwt.MissingRequiredClaimError as exc:
        raise TokenRejected(f"The token has no {exc.claim!r} claim.") from None
    except jwt.PyJWTError as exc:
        raise TokenRejected(f"The token is not valid: {exc}.") from None
