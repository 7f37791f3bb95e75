"""Secrets inside an integration's ``options`` and ``headers``: which values are, and how they are kept.

The rule: a value is a secret when

- its provider declares the option's dotted path in ``secret_options`` (Bedrock
  ``access_key_id``, ``secret_access_key``, ``session_token``; Vertex ``service_account``;
  Azure ``entra.client_secret``), or
- its key names one. Keys are split into words at ``_``, ``-``, ``.``, spaces and camelCase;
  a key is secret when a word is ``secret``, ``password``, ``passwd``, ``token``,
  ``credential(s)``, ``authorization``, ``cookie``, ``apikey`` or ``privatekey``, or two
  neighbouring words are ``api key``, ``private key``, ``access key`` or ``service account``.
  So ``client_secret``, ``session_token``, ``x-api-key`` and ``Authorization`` are secrets,
  and ``max_tokens``, ``tokenizer`` and ``api_version`` are not. The name rule covers
  options at any depth and header names, for providers and options nobody declared.

The whole value under a secret key is the secret (a service-account object too); an empty
value (null, "", {}, []) is not one.

How they are kept: the clear JSON columns hold a mask at each secret path (``mask()``:
``wJa...MDENG``, ``****`` for short or non-string values), and ``sealed_ciphertext`` holds
the Fernet token (``SecretBox``) of ``[[column, *path], value]`` pairs. Whatever reads the
columns (API responses, audit before/after, apply diffs, export) therefore sees masks, and
only the snapshot (``open_fields``) puts the secrets back. Writing a mask back (a client
that read an integration and sends its options again) keeps the stored secret.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Mapping
from typing import Any

import orjson

from lockgate.governance.secrets import SecretBox, SecretKeyError, mask
from lockgate.providers.base import get_provider, secret_option_paths

Path = tuple[str | int, ...]  # ("options", "entra", "client_secret")
COLUMNS = ("options", "headers")

_SECRET_WORDS = frozenset(
    {"secret", "password", "passwd", "token", "credential", "credentials", "authorization", "cookie"}
    | {"apikey", "privatekey"}
)
_SECRET_PAIRS = frozenset({("api", "key"), ("private", "key"), ("access", "key"), ("service", "account")})
_CAMEL = re.compile(r"([a-z0-9])([A-Z])")


def _words(name: str) -> list[str]:
    return [w for w in re.split(r"[^a-z0-9]+", _CAMEL.sub(r"\1_\2", name).lower()) if w]


def is_secret_name(name: str) -> bool:
    words = _words(name)
    return any(w in _SECRET_WORDS for w in words) or any(
        p in _SECRET_PAIRS for p in itertools.pairwise(words)
    )


def is_secret_path(provider: str, path: Path) -> bool:
    """``path`` starts with its column: ("options", "secret_access_key"), ("headers", "api-key")."""
    column, *rest = path
    if column == "options" and ".".join(str(p) for p in rest) in secret_option_paths(get_provider(provider)):
        return True
    return isinstance(rest[-1], str) and is_secret_name(rest[-1])


def _empty(value: Any) -> bool:
    return value is None or value == "" or value == {} or value == []


def mask_value(value: Any) -> str:
    return (mask(value) or "****") if isinstance(value, str) else "****"


def split(provider: str, column: str, value: Any) -> tuple[Any, dict[Path, Any]]:
    """``value`` with every secret replaced by its mask, and the secrets by path."""
    found: dict[Path, Any] = {}

    def walk(node: Any, path: Path) -> Any:
        if isinstance(node, Mapping):
            out = {}
            for key, item in node.items():
                here = (*path, str(key))
                if not _empty(item) and is_secret_path(provider, here):
                    found[here] = item
                    out[key] = mask_value(item)
                else:
                    out[key] = walk(item, here)
            return out
        if isinstance(node, list):
            return [walk(item, (*path, i)) for i, item in enumerate(node)]
        return node

    return walk(value, (column,)), found


def masked(provider: str, column: str, value: Any) -> Any:
    return split(provider, column, value)[0]


def with_references(provider: str, column: str, value: Any, integration: str) -> Any:
    """``value`` with each secret a ``${LOCKGATE_SECRET_<INTEGRATION>_<PATH>}`` reference (export)."""
    shown, found = split(provider, column, value)
    for path in found:
        var = env_var_name(integration, *(["header"] if column == "headers" else []), *path[1:])
        _put(shown, path[1:], "${" + var + "}")
    return shown


def env_var_name(integration: str, *path: str | int) -> str:
    """Where ``lockgate.yaml`` export and the importers tell you to put a secret."""
    return "LOCKGATE_SECRET_" + re.sub(r"[^A-Za-z0-9]", "_", "_".join([integration, *map(str, path)])).upper()


def open_secrets(box: SecretBox, ciphertext: str | None) -> dict[Path, Any]:
    if not ciphertext:
        return {}
    return {tuple(path): value for path, value in orjson.loads(box.decrypt(ciphertext))}


def seal(
    box: SecretBox,
    provider: str,
    options: Mapping[str, Any],
    headers: Mapping[str, str],
    previous: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Column values for an integration row: masked ``options`` and ``headers``, and the sealed secrets.

    ``previous`` (the stored row) keeps its secret wherever the new value is that secret's mask,
    and keeps its ciphertext when no secret changed, so an unchanged write changes nothing.
    """
    try:
        before = open_secrets(box, previous.get("sealed_ciphertext")) if previous else {}
    except SecretKeyError:
        before = {}  # unreadable under the current key: the new values replace it
    shown_options, secrets = split(provider, "options", options)
    shown_headers, header_secrets = split(provider, "headers", headers)
    secrets.update(header_secrets)
    shown = {"options": shown_options, "headers": shown_headers}
    for path, value in secrets.items():
        if path in before and value == mask_value(before[path]):
            secrets[path] = before[path]
            _put(shown[str(path[0])], path[1:], value)  # its mask, not the mask of a mask
    if not secrets:
        ciphertext = None
    elif secrets == before and previous is not None:
        ciphertext = previous["sealed_ciphertext"]
    else:
        ciphertext = box.encrypt(orjson.dumps([[list(p), v] for p, v in secrets.items()]).decode())
    return {"options": shown_options, "headers": shown_headers, "sealed_ciphertext": ciphertext}


def open_fields(box: SecretBox, row: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
    """The clear ``options`` and ``headers`` of a stored row; raises SecretKeyError if the key cannot."""
    columns = {c: orjson.loads(orjson.dumps(row.get(c) or {})) for c in COLUMNS}  # a deep copy
    for path, value in open_secrets(box, row.get("sealed_ciphertext")).items():
        _put(columns[str(path[0])], path[1:], value)
    return columns["options"], columns["headers"]


def _put(node: Any, path: Path, value: Any) -> None:
    for step in path[:-1]:
        node = node[step]
    node[path[-1]] = value
