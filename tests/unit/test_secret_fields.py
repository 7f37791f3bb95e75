"""Which integration options and headers are secrets, and how they are sealed, opened and masked."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from lockgate.governance import secret_fields
from lockgate.governance.secret_fields import is_secret_name, is_secret_path, open_fields, seal
from lockgate.governance.secrets import SecretBox, SecretKeyError
from lockgate.providers.bedrock import BEDROCK

BOX = SecretBox("unit-test-key")
AWS_SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
AWS_OPTIONS = {"region": "us-west-2", "access_key_id": "AKIDEXAMPLE00001", "secret_access_key": AWS_SECRET}


@pytest.mark.parametrize(
    "name",
    ["client_secret", "session_token", "password", "db_passwd", "x-api-key", "Authorization", "api_key",
     "apiKey", "secretAccessKey", "private_key", "service_account", "access_key_id", "credentials",
     "Cookie", "x-goog-api-key", "refresh-token"],
)  # fmt: skip
def test_secret_names(name: str) -> None:
    assert is_secret_name(name)


@pytest.mark.parametrize(
    "name",
    ["region", "project", "max_tokens", "default_max_tokens", "tokenizer", "api_version", "deployments",
     "embed_input_type", "tenant_id", "client_id", "authority_host", "scope", "key", "keywords"],
)  # fmt: skip
def test_names_that_are_not_secrets(name: str) -> None:
    assert not is_secret_name(name)


# Every option the providers and the token minter read (grep cred.options / options.get):
# the secret ones, and the rest, which stay readable in responses and exports.
SECRET_OPTIONS = {
    "bedrock": ["access_key_id", "secret_access_key", "session_token"],
    "vertex": ["service_account"],
    "azure": ["entra.client_secret"],
    "azure-foundry": ["entra.client_secret"],
}
PLAIN_OPTIONS = {
    "bedrock": ["region", "guardrail", "embed_input_type"],
    "vertex": ["project", "region", "location", "express_mode", "scope", "safety_settings"],
    "gemini": ["safety_settings", "embedding_task_type"],
    "azure": ["api_version", "deployments", "entra.tenant_id", "entra.client_id", "entra.authority_host"],
    "azure-foundry": ["api_version", "extra_parameters", "entra.scope"],
    "anthropic": ["anthropic_version", "default_max_tokens", "structured_outputs"],
    "cohere": ["embed_input_type"],
}


def _path(dotted: str) -> tuple[str, ...]:
    return ("options", *dotted.split("."))


@pytest.mark.parametrize(("provider", "option"), [(p, o) for p, opts in SECRET_OPTIONS.items() for o in opts])
def test_every_secret_option_a_provider_reads_is_secret(provider: str, option: str) -> None:
    assert is_secret_path(provider, _path(option))


@pytest.mark.parametrize(("provider", "option"), [(p, o) for p, opts in PLAIN_OPTIONS.items() for o in opts])
def test_plain_options_stay_plain(provider: str, option: str) -> None:
    assert not is_secret_path(provider, _path(option))


def test_a_declared_path_is_secret_whatever_its_name(monkeypatch: pytest.MonkeyPatch) -> None:
    assert not is_secret_path("bedrock", ("options", "guardrail", "identifier"))
    monkeypatch.setattr(BEDROCK, "secret_options", frozenset({"guardrail.identifier"}), raising=False)
    assert is_secret_path("bedrock", ("options", "guardrail", "identifier"))


def _stored_text(values: dict[str, Any]) -> str:
    return orjson.dumps({k: values[k] for k in ("options", "headers")}).decode()


def test_sealed_columns_hold_masks_and_the_token_holds_the_values() -> None:
    headers = {"X-Api-Key": "hk-0123456789abcdef", "X-Trace": "on"}
    stored = seal(BOX, "bedrock", {**AWS_OPTIONS, "session_token": ""}, headers)
    assert stored["options"] == {
        "region": "us-west-2",
        "access_key_id": "AKI...0001",
        "secret_access_key": "wJa...EKEY",
        "session_token": "",  # empty: nothing to keep secret
    }
    assert stored["headers"] == {"X-Api-Key": "hk-...cdef", "X-Trace": "on"}
    for secret in (AWS_SECRET, "AKIDEXAMPLE00001", "hk-0123456789abcdef"):
        assert secret[4:-4] not in _stored_text(stored) and secret not in stored["sealed_ciphertext"]
    assert open_fields(BOX, stored) == ({**AWS_OPTIONS, "session_token": ""}, headers)
    with pytest.raises(SecretKeyError):
        open_fields(SecretBox("another-key"), stored)


def test_nested_secrets_and_whole_secret_objects() -> None:
    entra = {"tenant_id": "t-1", "client_id": "app", "client_secret": "entra-secret-value-123"}
    stored = seal(BOX, "azure", {"entra": entra, "deployments": {"gpt-4o": "prod"}}, {})
    assert stored["options"]["entra"] == {**entra, "client_secret": "ent...-123"}
    account = {
        "client_email": "a@p.iam",
        "private_key": "-----BEGIN PRIVATE KEY-----\nMIIE",
        "token_uri": "u",
    }
    vertex = seal(BOX, "vertex", {"project": "p", "service_account": account}, {})
    assert vertex["options"] == {"project": "p", "service_account": "****"}
    assert open_fields(BOX, vertex)[0]["service_account"] == account
    listed = seal(BOX, "openai", {"extra": [{"name": "a", "token": "tok-0123456789abc"}]}, {})
    assert listed["options"] == {"extra": [{"name": "a", "token": "tok...9abc"}]}
    assert open_fields(BOX, listed)[0] == {"extra": [{"name": "a", "token": "tok-0123456789abc"}]}


def test_a_mask_written_back_keeps_the_secret_and_an_unchanged_write_keeps_the_token() -> None:
    stored = seal(BOX, "bedrock", AWS_OPTIONS, {})
    read_back = {**stored["options"], "region": "eu-west-1"}  # a client edits what it read
    updated = seal(BOX, "bedrock", read_back, {}, previous=stored)
    assert open_fields(BOX, updated)[0] == {**AWS_OPTIONS, "region": "eu-west-1"}
    assert updated["sealed_ciphertext"] == stored["sealed_ciphertext"]  # no secret changed
    assert updated["options"] == {**stored["options"], "region": "eu-west-1"}
    assert seal(BOX, "bedrock", AWS_OPTIONS, {}, previous=stored) == stored
    rotated = seal(BOX, "bedrock", {**AWS_OPTIONS, "secret_access_key": "new-secret-0123456"}, {}, stored)
    assert rotated["sealed_ciphertext"] != stored["sealed_ciphertext"]
    assert open_fields(BOX, rotated)[0]["secret_access_key"] == "new-secret-0123456"
    dropped = seal(BOX, "bedrock", {"region": "us-west-2"}, {}, previous=stored)
    assert dropped["sealed_ciphertext"] is None and open_fields(BOX, dropped)[0] == {"region": "us-west-2"}


def test_export_references_name_the_integration_and_the_path() -> None:
    stored = seal(
        BOX, "azure", {"entra": {"tenant_id": "t", "client_secret": "x" * 20}}, {"api-key": "k" * 16}
    )
    assert secret_fields.with_references("azure", "options", stored["options"], "az.prod") == {
        "entra": {"tenant_id": "t", "client_secret": "${LOCKGATE_SECRET_AZ_PROD_ENTRA_CLIENT_SECRET}"}
    }
    assert secret_fields.with_references("azure", "headers", stored["headers"], "az.prod") == {
        "api-key": "${LOCKGATE_SECRET_AZ_PROD_HEADER_API_KEY}"
    }
