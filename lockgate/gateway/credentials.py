"""Bearer tokens the gateway mints for integrations: Vertex AI service accounts, Entra ID.

Providers are pure and cannot fetch tokens, so token minting lives here. An integration
needs one when it is

- ``vertex`` with ``options.service_account`` (the service-account JSON as an object, a
  JSON string or a file path): an RS256 JWT assertion signed with the account's key
  (``cryptography``) is exchanged at the account's ``token_uri`` (RFC 7523);
- ``azure`` or ``azure-foundry`` with ``options.entra`` (``tenant_id``, ``client_id``,
  ``client_secret``; optional ``authority_host``, ``scope``): the OAuth client-credentials
  grant at ``{authority_host}/{tenant_id}/oauth2/v2.0/token``.

How the provider receives it: ``CredentialTokens.apply`` returns a copy of the
``Credential`` whose ``headers`` carry ``authorization: Bearer <token>``, and every provider
sends ``cred.headers``. Tokens are minted at startup and refreshed in the background
``REFRESH_MARGIN`` seconds before they expire (failures retried with backoff), so a
request never waits on a token endpoint; a request whose integration has no valid token
fails with a 502 naming the last minting error.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Protocol

import aiohttp
import orjson

from lockgate.errors import UpstreamError
from lockgate.providers.base import Credential

log = logging.getLogger("lockgate.credentials")

REFRESH_MARGIN = 300.0  # seconds before expiry at which a token is replaced
MIN_RETRY, MAX_RETRY = 2.0, 60.0
TOKEN_TIMEOUT = 10.0
GOOGLE_SCOPE = "https://www.googleapis.com/auth/cloud-platform"
AZURE_SCOPE = "https://cognitiveservices.azure.com/.default"
AZURE_AUTHORITY = "https://login.microsoftonline.com"
JWT_LIFETIME = 3600


class CredentialConfigError(ValueError):
    """An integration's token options are unusable (raised when written or loaded, never per request).

    ``param`` names the option at fault, e.g. ``options.entra.client_secret``.
    """

    def __init__(self, message: str, *, param: str = "options") -> None:
        super().__init__(message)
        self.param = param


class TokenSource(Protocol):
    async def fetch(self, session: aiohttp.ClientSession, now: float) -> tuple[str, float]:
        """Mint a token: (token, absolute expiry time)."""
        ...


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _load_service_account(value: Any) -> dict[str, Any]:
    param = "options.service_account"
    if isinstance(value, Mapping):
        info = dict(value)
    elif isinstance(value, str) and value.lstrip().startswith("{"):
        try:
            info = json.loads(value)
        except ValueError:  # the text holds the private key: keep it out of the error
            raise CredentialConfigError("the service account is not valid JSON", param=param) from None
    elif isinstance(value, str):
        try:
            info = json.loads(Path(value).expanduser().read_text())
        except (OSError, ValueError) as exc:
            raise CredentialConfigError(
                f"cannot read the service account file {value}: {exc}", param=param
            ) from exc
    else:
        raise CredentialConfigError(
            "service_account must be an object, a JSON string or a file path", param=param
        )
    if not isinstance(info, dict):
        raise CredentialConfigError("the service account JSON is not an object", param=param)
    missing = [k for k in ("client_email", "private_key", "token_uri") if not info.get(k)]
    if missing:
        raise CredentialConfigError(f"the service account JSON lacks {', '.join(missing)}", param=param)
    return info


@dataclass
class ServiceAccountSource:
    """Google's JWT-bearer grant, signed locally with the service account's RSA key."""

    info: dict[str, Any]
    scope: str = GOOGLE_SCOPE

    def assertion(self, now: float) -> str:
        from cryptography.hazmat.primitives import hashes, serialization  # lazy: Vertex users only
        from cryptography.hazmat.primitives.asymmetric import padding, rsa

        header = {"alg": "RS256", "typ": "JWT"}
        if self.info.get("private_key_id"):
            header["kid"] = self.info["private_key_id"]
        issued = int(now)
        claims = {
            "iss": self.info["client_email"],
            "scope": self.scope,
            "aud": self.info["token_uri"],
            "iat": issued,
            "exp": issued + JWT_LIFETIME,
        }
        signing_input = f"{_b64url(orjson.dumps(header))}.{_b64url(orjson.dumps(claims))}".encode()
        key = serialization.load_pem_private_key(self.info["private_key"].encode(), password=None)
        if not isinstance(key, rsa.RSAPrivateKey):
            raise CredentialConfigError("the service account key is not an RSA key")
        signature = key.sign(signing_input, padding.PKCS1v15(), hashes.SHA256())
        return f"{signing_input.decode()}.{_b64url(signature)}"

    async def fetch(self, session: aiohttp.ClientSession, now: float) -> tuple[str, float]:
        form = {"grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer", "assertion": self.assertion(now)}
        return await _token_request(session, self.info["token_uri"], form, now)


@dataclass
class EntraClientCredentials:
    """Microsoft Entra ID client-credentials grant."""

    tenant_id: str
    client_id: str
    client_secret: str
    authority_host: str = AZURE_AUTHORITY
    scope: str = AZURE_SCOPE

    @property
    def token_url(self) -> str:
        return f"{self.authority_host.rstrip('/')}/{self.tenant_id}/oauth2/v2.0/token"

    async def fetch(self, session: aiohttp.ClientSession, now: float) -> tuple[str, float]:
        form = {
            "grant_type": "client_credentials",
            "client_id": self.client_id,
            "client_secret": self.client_secret,
            "scope": self.scope,
        }
        return await _token_request(session, self.token_url, form, now)


async def _token_request(
    session: aiohttp.ClientSession, url: str, form: dict[str, str], now: float
) -> tuple[str, float]:
    async with session.post(url, data=form, timeout=aiohttp.ClientTimeout(total=TOKEN_TIMEOUT)) as response:
        raw = await response.read()
    try:
        payload = orjson.loads(raw)
    except orjson.JSONDecodeError:
        payload = {}
    if response.status != 200 or not isinstance(payload, dict) or not payload.get("access_token"):
        detail = (
            payload.get("error_description") or payload.get("error") if isinstance(payload, dict) else None
        )
        raise RuntimeError(f"token endpoint {url} answered HTTP {response.status}: {detail or raw[:200]!r}")
    expires_in = float(payload.get("expires_in") or 3600)
    return str(payload["access_token"]), now + expires_in


def source_for(cred: Credential) -> TokenSource | None:
    """The token source an integration needs, or None when it authenticates otherwise."""
    options = cred.options
    if cred.provider == "vertex" and options.get("service_account") and not cred.api_key:
        scope = str(options.get("scope") or GOOGLE_SCOPE)
        return ServiceAccountSource(_load_service_account(options["service_account"]), scope)
    entra = options.get("entra")
    if cred.provider in ("azure", "azure-foundry") and isinstance(entra, Mapping):
        missing = [k for k in ("tenant_id", "client_id", "client_secret") if not entra.get(k)]
        if missing:
            raise CredentialConfigError(
                f"integration {cred.name!r}: options.entra lacks {', '.join(missing)}",
                param=f"options.entra.{missing[0]}",
            )
        return EntraClientCredentials(
            str(entra["tenant_id"]),
            str(entra["client_id"]),
            str(entra["client_secret"]),
            str(entra.get("authority_host") or AZURE_AUTHORITY),
            str(entra.get("scope") or AZURE_SCOPE),
        )
    return None


@dataclass
class _Token:
    value: str
    expires_at: float


class CredentialTokens:
    """Minted bearer tokens by integration name; ``apply`` is a dict hit on the request path.

    ``sync`` is called with every new config snapshot's credentials (off the request path):
    it registers integrations that need tokens, forgets removed ones, replaces a source
    whose token settings changed, and wakes the refresh loop so new ones are minted at once.
    """

    def __init__(
        self,
        credentials: Iterable[Credential] = (),
        *,
        clock: Callable[[], float] = time.time,
        refresh_margin: float = REFRESH_MARGIN,
    ) -> None:
        self._sources: dict[str, TokenSource] = {}
        self._fingerprints: dict[str, bytes] = {}
        self._clock = clock
        self._margin = refresh_margin
        self._tokens: dict[str, _Token] = {}
        self._errors: dict[str, str] = {}
        self._failures: dict[str, int] = {}
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.sync(credentials)

    @property
    def names(self) -> list[str]:
        return list(self._sources)

    def sync(self, credentials: Iterable[Credential]) -> None:
        seen: set[str] = set()
        for cred in credentials:
            fingerprint = _fingerprint(cred)
            if fingerprint is None:
                continue
            seen.add(cred.name)
            if self._fingerprints.get(cred.name) == fingerprint:
                continue
            self._forget(cred.name)
            self._fingerprints[cred.name] = fingerprint
            try:
                source = source_for(cred)
            except CredentialConfigError as exc:
                # A bad integration must not stop the others: requests to it say why.
                self._errors[cred.name] = str(exc)
                log.error("integration %s: %s", cred.name, exc)
                continue
            if source is not None:
                self._sources[cred.name] = source
        for name in set(self._fingerprints) - seen:
            self._forget(name)
            del self._fingerprints[name]
        self._wakeup.set()

    def _forget(self, name: str) -> None:
        for table in (self._sources, self._tokens, self._errors, self._failures):
            table.pop(name, None)

    def apply(self, cred: Credential) -> Credential:
        """``cred`` with its current bearer token in ``headers`` (unchanged if it needs none)."""
        if cred.name not in self._fingerprints:
            return cred
        token = self._tokens.get(cred.name)
        if token is None or token.expires_at <= self._clock():
            reason = self._errors.get(cred.name, "not minted yet")
            raise UpstreamError(
                f"No valid access token for the integration {cred.name!r}: {reason}",
                provider=cred.name,
                code="credential_unavailable",
            )
        return replace(cred, headers={**cred.headers, "authorization": f"Bearer {token.value}"})

    async def refresh_due(self, session: aiohttp.ClientSession) -> float:
        """Mint every token that is missing or within the margin of expiry; seconds until next due."""
        now = self._clock()
        due = [
            name
            for name in self._sources
            if (tok := self._tokens.get(name)) is None or tok.expires_at - self._margin <= now
        ]
        await asyncio.gather(*(self._mint(name, session, now) for name in due))
        return self._next_wait()

    async def _mint(self, name: str, session: aiohttp.ClientSession, now: float) -> None:
        source = self._sources[name]
        try:
            value, expires_at = await source.fetch(session, now)
        except (aiohttp.ClientError, TimeoutError, RuntimeError, ValueError) as exc:
            if self._sources.get(name) is source:
                self._errors[name] = str(exc) or type(exc).__name__
                self._failures[name] = self._failures.get(name, 0) + 1
            log.warning("minting a token for integration %s failed: %s", name, exc)
            return
        if self._sources.get(name) is source:  # not replaced or removed meanwhile
            self._tokens[name] = _Token(value, expires_at)
            self._errors.pop(name, None)
            self._failures.pop(name, None)

    def _next_wait(self) -> float:
        now = self._clock()
        waits = [MAX_RETRY * 60]
        for name in self._sources:
            failures = self._failures.get(name)
            if failures:
                waits.append(min(MIN_RETRY * 2 ** (failures - 1), MAX_RETRY))
            elif (tok := self._tokens.get(name)) is not None:
                waits.append(max(tok.expires_at - self._margin - now, MIN_RETRY))
        return min(waits)

    async def start(self, session: aiohttp.ClientSession) -> None:
        """Mint every token once (failures are logged, not fatal), then refresh in the background."""
        self._wakeup.clear()
        wait = await self.refresh_due(session)
        self._task = asyncio.create_task(self._refresh_loop(session, wait), name="lockgate-token-refresh")

    async def _refresh_loop(self, session: aiohttp.ClientSession, wait: float) -> None:
        while True:
            # Sleep until the next token is due, or until sync() registered a new integration.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wakeup.wait(), wait)
            self._wakeup.clear()
            wait = await self.refresh_due(session)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None


def _fingerprint(cred: Credential) -> bytes | None:
    """What a minted token depends on, or None when the integration needs no minting."""
    options = cred.options
    if cred.provider == "vertex" and options.get("service_account") and not cred.api_key:
        return orjson.dumps([cred.provider, options["service_account"], options.get("scope")])
    if cred.provider in ("azure", "azure-foundry") and isinstance(options.get("entra"), Mapping):
        return orjson.dumps([cred.provider, dict(options["entra"])])
    return None
