"""Provider secrets at rest: Fernet encryption keyed by ``LOCKGATE_SECRET_KEY``, and masking.

``LOCKGATE_SECRET_KEY`` is one or more comma-separated keys; the first encrypts,
all decrypt (``MultiFernet``), so a key can be rotated by prepending the new one.
Each key is a Fernet key (urlsafe base64 of 32 bytes) or any passphrase, which is
stretched to one with SHA-256.

Unset: with SQLite, Lockgate generates a key into ``secret.key`` beside the
database (mode 0600) and warns once, so a laptop install works and a restart
can still decrypt. With PostgreSQL it refuses to start: replicas sharing one
database must share the key, and a per-machine file would silently break them.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import logging
import os
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

log = logging.getLogger("lockgate.secrets")

KEY_FILE = "secret.key"


class SecretKeyError(RuntimeError):
    """No usable encryption key, or a stored secret that the key cannot decrypt."""


def _fernet(material: str) -> Fernet:
    material = material.strip()
    try:
        if len(base64.urlsafe_b64decode(material.encode())) == 32:
            return Fernet(material.encode())
    except (binascii.Error, ValueError):
        pass
    return Fernet(base64.urlsafe_b64encode(hashlib.sha256(material.encode()).digest()))


class SecretBox:
    def __init__(self, keys: str) -> None:
        parts = [k for k in keys.split(",") if k.strip()]
        if not parts:
            raise SecretKeyError("LOCKGATE_SECRET_KEY is empty")
        self._fernet = MultiFernet([_fernet(k) for k in parts])
        # The sealing key, for derived keys (the MCP session codec derives its own with HKDF).
        self.primary = parts[0].strip()

    def encrypt(self, secret: str) -> str:
        return self._fernet.encrypt(secret.encode()).decode()

    def decrypt(self, token: str) -> str:
        try:
            return self._fernet.decrypt(token.encode()).decode()
        except InvalidToken as exc:
            raise SecretKeyError(
                "a stored secret cannot be decrypted with LOCKGATE_SECRET_KEY (was the key changed?)"
            ) from exc


def load_secret_box(configured: str | None, *, data_dir: Path | None) -> SecretBox:
    if configured:
        return SecretBox(configured)
    if data_dir is None:
        raise SecretKeyError(
            "LOCKGATE_SECRET_KEY must be set when the database is not a local SQLite file: every "
            "replica needs the same key to read provider secrets. Generate one with "
            "`python -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())'`."
        )
    return SecretBox(_key_file(data_dir))


def _key_file(data_dir: Path) -> str:
    path = data_dir / KEY_FILE
    if path.exists():
        return path.read_text()
    data_dir.mkdir(parents=True, exist_ok=True)
    # Written to a private temp file and linked into place, so concurrent starts agree on one key.
    tmp = data_dir / f".{KEY_FILE}.{os.getpid()}"
    fd = os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(Fernet.generate_key().decode())
    try:
        os.link(tmp, path)
        log.warning(
            "LOCKGATE_SECRET_KEY is not set: generated %s (mode 0600) to encrypt provider secrets. "
            "Back it up, or set LOCKGATE_SECRET_KEY.",
            path,
        )
    except FileExistsError:
        pass  # another process won the race; use its key
    finally:
        tmp.unlink()
    return path.read_text()


def mask(secret: str | None) -> str | None:
    """``sk-proj-abc…wxyz`` -> ``sk-...wxyz``; short secrets reveal nothing."""
    if not secret:
        return None
    if len(secret) < 12:
        return "****"
    head = secret[:3]
    return f"{head}...{secret[-4:]}"
