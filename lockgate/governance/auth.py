"""Authentication: who is calling.

Until virtual keys land (control-plane issue), one master key guards the data
plane: when ``LOCKGATE_MASTER_KEY`` is set every request must present it, as
``Authorization: Bearer …`` or, for Anthropic-style clients, ``x-api-key``.
Unset, the gateway runs open (demo mode) and says so at start.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass

from lockgate.errors import AuthenticationFailed


@dataclass(frozen=True, slots=True)
class Principal:
    key_id: str


ANONYMOUS = Principal(key_id="anonymous")
MASTER = Principal(key_id="master")


def presented_key(headers: dict[str, str]) -> str | None:
    auth = headers.get("authorization")
    if auth:
        scheme, _, token = auth.partition(" ")
        if scheme.lower() == "bearer" and token.strip():
            return token.strip()
    return headers.get("x-api-key") or None


class MasterKeyAuth:
    def __init__(self, master_key: str | None) -> None:
        self._master = master_key.encode() if master_key else None

    @property
    def open(self) -> bool:
        return self._master is None

    def authenticate(self, headers: dict[str, str]) -> Principal:
        if self._master is None:
            return ANONYMOUS
        key = presented_key(headers)
        if key is None:
            raise AuthenticationFailed(
                "No API key provided. Send 'Authorization: Bearer <key>' (or 'x-api-key: <key>').",
                code="missing_api_key",
            )
        if not hmac.compare_digest(key.encode(), self._master):
            raise AuthenticationFailed("Invalid API key.")
        return MASTER
