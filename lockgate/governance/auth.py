"""Authentication: who is calling the data plane.

A virtual key (``lg-…``) is looked up by its SHA-256 hash in the config
snapshot: a dict hit, no I/O. ``LOCKGATE_MASTER_KEY`` stays as a bootstrap key
for the default workspace. Requests without a key are accepted only in demo
mode (``lockgate serve --demo`` / ``LOCKGATE_DEMO=1``); secure by default.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Protocol

from lockgate.errors import AuthenticationFailed

KEY_PREFIX = "lg-"


@dataclass(frozen=True, slots=True)
class Principal:
    org_id: str
    workspace_id: str
    key_id: str
    key_name: str
    # None: every model; otherwise fnmatch patterns over the requested model name.
    allowed_models: tuple[str, ...] | None = None
    metadata: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class KeyEntry:
    """A virtual key as the snapshot holds it (never the key itself)."""

    id: str
    name: str
    workspace_id: str
    status: str  # "active" | "revoked"
    expires_at: float | None
    allowed_models: tuple[str, ...] | None
    metadata: Mapping[str, str]


class KeySource(Protocol):
    org_id: str
    default_workspace_id: str
    keys: Mapping[str, KeyEntry]


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def generate_key(prefix: str = KEY_PREFIX) -> str:
    return prefix + secrets.token_urlsafe(32)


def key_hint(key: str) -> str:
    """What lists show: the prefix and the last four characters."""
    return f"{key[: key.index('-') + 1]}...{key[-4:]}"


def presented_key(headers: dict[str, str]) -> str | None:
    auth = headers.get("authorization")
    if auth:
        scheme, _, token = auth.partition(" ")
        if scheme.lower() == "bearer" and token.strip():
            return token.strip()
    return headers.get("x-api-key") or None


class Authenticator:
    def __init__(self, *, master_key: str | None, demo: bool) -> None:
        self._master = master_key.encode() if master_key else None
        self.demo = demo

    def authenticate(self, headers: dict[str, str], source: KeySource) -> Principal:
        key = presented_key(headers)
        entry = source.keys.get(hash_key(key)) if key is not None else None
        if entry is not None:
            return _principal(source, entry)
        if key is not None and self._master is not None and hmac.compare_digest(key.encode(), self._master):
            return Principal(source.org_id, source.default_workspace_id, "master", "master")
        if self.demo:  # SDKs send some key even when none is needed: unknown keys are demo users too
            return Principal(source.org_id, source.default_workspace_id, "anonymous", "anonymous")
        if key is None:
            raise AuthenticationFailed(
                "No API key provided. Send 'Authorization: Bearer <key>' (or 'x-api-key: <key>').",
                code="missing_api_key",
            )
        raise AuthenticationFailed("Invalid API key.")


def _principal(source: KeySource, entry: KeyEntry) -> Principal:
    if entry.status != "active":
        raise AuthenticationFailed(f"This API key ({entry.name}) has been revoked.", code="key_revoked")
    if entry.expires_at is not None and entry.expires_at <= time.time():
        when = datetime.fromtimestamp(entry.expires_at, UTC).isoformat(timespec="seconds")
        raise AuthenticationFailed(f"This API key ({entry.name}) expired at {when}.", code="key_expired")
    return Principal(
        source.org_id, entry.workspace_id, entry.id, entry.name, entry.allowed_models, entry.metadata
    )
