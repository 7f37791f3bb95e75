"""The composite ``Mcp-Session-Id``: a legacy session's whole state, sealed, carried by the client.

Nothing about a session lives in a worker: the id holds the principal, the endpoint,
the negotiated protocol version, the upstream session ids opened for this client and
the tool-definition pins, encrypted and authenticated with AES-256-GCM under a key
derived (HKDF) from ``LOCKGATE_SECRET_KEY``. Any worker of any replica that shares
the secret key decodes it, so a second replica never loses a session; a forged or
altered id fails authentication and is answered 404 (the spec's "start a new session").
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import time
from dataclasses import dataclass, field
from typing import Any

import orjson
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

_PREFIX = "lgs1."  # format version: a later codec can read old ids or reject them cleanly
_NONCE = 12
_AAD = b"lockgate-mcp-session-v1"


@dataclass(slots=True)
class SessionState:
    key_id: str
    workspace_id: str
    endpoint: str  # "" for the aggregate /mcp, else the server address
    protocol_version: str
    upstream: dict[str, str] = field(default_factory=dict)  # server address -> upstream session id
    pins: dict[str, str] = field(default_factory=dict)  # "server__tool" -> definition hash
    issued_at: float = field(default_factory=time.time)

    def to_json(self) -> bytes:
        return orjson.dumps(
            {
                "k": self.key_id,
                "w": self.workspace_id,
                "e": self.endpoint,
                "v": self.protocol_version,
                "u": self.upstream,
                "p": self.pins,
                "t": round(self.issued_at, 3),
            }
        )

    @classmethod
    def from_json(cls, raw: bytes) -> SessionState:
        data: dict[str, Any] = orjson.loads(raw)
        return cls(data["k"], data["w"], data["e"], data["v"], data["u"], data["p"], data["t"])


class InvalidSession(ValueError):
    pass


class SessionCodec:
    def __init__(self, secret_key: str, *, max_age_s: float = 7 * 24 * 3600) -> None:
        # ``SecretBox.primary``: a key rotation ends open sessions (clients re-initialize).
        material = secret_key.encode()
        key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"lockgate mcp session").derive(
            hashlib.sha256(material).digest()
        )
        self._aead = AESGCM(key)
        self.max_age_s = max_age_s

    def encode(self, state: SessionState) -> str:
        nonce = os.urandom(_NONCE)
        sealed = self._aead.encrypt(nonce, state.to_json(), _AAD)
        return _PREFIX + base64.urlsafe_b64encode(nonce + sealed).decode().rstrip("=")

    def decode(self, token: str) -> SessionState:
        if not token.startswith(_PREFIX):
            raise InvalidSession("not a Lockgate session id")
        try:
            body = token[len(_PREFIX) :]
            raw = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
            plain = self._aead.decrypt(raw[:_NONCE], raw[_NONCE:], _AAD)
            state = SessionState.from_json(plain)
        except (binascii.Error, ValueError, InvalidTag, KeyError, TypeError) as exc:
            raise InvalidSession("the session id failed authentication") from exc
        if time.time() - state.issued_at > self.max_age_s:
            raise InvalidSession("the session has expired")
        return state
