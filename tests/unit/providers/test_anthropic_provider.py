"""The AnthropicProvider: registry, request building, response and error parsing."""

from __future__ import annotations

import orjson
import pytest
from anthropic_fixtures import load

from lockgate.errors import UnsupportedParameter, UpstreamError
from lockgate.providers.anthropic import AnthropicProvider, MessagesStreamToChat, messages_url
from lockgate.providers.base import CHAT, EMBEDDINGS, MESSAGES, Body, Credential, get_provider, provider_names

PROVIDER = AnthropicProvider()


def cred(
    *,
    base_url: str = "",
    api_key: str | None = "sk-ant-x",
    headers: dict[str, str] | None = None,
    options: dict[str, object] | None = None,
) -> Credential:
    return Credential(
        name="anthropic-prod",
        provider="anthropic",
        base_url=base_url,
        api_key=api_key,
        headers=headers or {},
        options=options or {},
    )


def test_registered_with_its_attributes() -> None:
    provider = get_provider("anthropic")
    assert provider is not None and "anthropic" in provider_names()
    assert (provider.name, provider.dialect, provider.default_base_url) == (
        "anthropic",
        "anthropic",
        "https://api.anthropic.com",
    )
    assert provider.endpoints == frozenset({CHAT, MESSAGES})


@pytest.mark.parametrize(
    ("base_url", "url"),
    [
        ("https://api.anthropic.com", "https://api.anthropic.com/v1/messages"),
        ("https://proxy.internal/anthropic/", "https://proxy.internal/anthropic/v1/messages"),
        ("http://localhost:9090/v1", "http://localhost:9090/v1/messages"),
        ("http://localhost:9090/v1/", "http://localhost:9090/v1/messages"),
    ],
)
def test_messages_url(base_url: str, url: str) -> None:
    assert messages_url(base_url) == url


def test_messages_passthrough_forwards_client_bytes() -> None:
    raw = (
        b'{"model": "claude-sonnet-4-5",  "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]}'
    )
    body = Body(orjson.loads(raw), raw)
    req = PROVIDER.build_request(
        MESSAGES, body, cred(headers={"anthropic-beta": "prompt-caching-2024-07-31"})
    )
    assert req.url == "https://api.anthropic.com/v1/messages"
    assert req.method == "POST"
    assert req.body is raw
    assert req.headers == {
        "content-type": "application/json",
        "anthropic-version": "2023-06-01",
        "x-api-key": "sk-ant-x",
        "anthropic-beta": "prompt-caching-2024-07-31",
    }
    assert req.dropped_params == []


def test_messages_passthrough_after_model_rewrite_reencodes() -> None:
    body = Body({"model": "alias", "max_tokens": 1, "messages": []}, b"{}")
    body.set("model", "claude-sonnet-4-5")
    req = PROVIDER.build_request(MESSAGES, body, cred())
    assert orjson.loads(req.body)["model"] == "claude-sonnet-4-5"


def test_headers_version_override_and_no_key() -> None:
    body = Body({"model": "m", "messages": [{"role": "user", "content": "x"}]})
    req = PROVIDER.build_request(
        CHAT,
        body,
        cred(api_key=None, base_url="http://mock:9090", options={"anthropic_version": "2024-01-01"}),
    )
    assert "x-api-key" not in req.headers
    assert req.headers["anthropic-version"] == "2024-01-01"
    assert req.url == "http://mock:9090/v1/messages"


def test_chat_request_is_translated_with_dropped_params() -> None:
    data = load("chat_to_messages/system_images_params.json")
    body = Body(data["chat"])
    before = orjson.dumps(body.data)
    req = PROVIDER.build_request(CHAT, body, cred())
    assert orjson.loads(req.body) == data["messages"]
    assert req.dropped_params == data["dropped"]
    assert orjson.dumps(body.data) == before


def test_chat_request_uses_credential_options() -> None:
    schema = {"type": "object"}
    body = Body(
        {
            "model": "m",
            "messages": [{"role": "user", "content": "x"}],
            "response_format": {"type": "json_schema", "json_schema": {"name": "n", "schema": schema}},
        }
    )
    req = PROVIDER.build_request(
        CHAT, body, cred(options={"default_max_tokens": 64000, "structured_outputs": True})
    )
    sent = orjson.loads(req.body)
    assert sent["max_tokens"] == 64000
    assert sent["output_config"] == {"format": {"type": "json_schema", "schema": schema}}


def test_other_endpoints_are_refused() -> None:
    with pytest.raises(UnsupportedParameter):
        PROVIDER.build_request(EMBEDDINGS, Body({"input": "x"}), cred())


def test_parse_response() -> None:
    case = load("responses/message_tool_use.json")
    raw = orjson.dumps(case["anthropic"])
    assert PROVIDER.parse_response(MESSAGES, raw) == case["anthropic"]
    out = PROVIDER.parse_response(CHAT, raw)
    assert out["object"] == "chat.completion"
    assert out["usage"] == case["chat"]["usage"]


@pytest.mark.parametrize(
    ("status", "anthropic_type", "openai_type", "gateway_status"),
    [
        (400, "invalid_request_error", "invalid_request_error", 400),
        (401, "authentication_error", "authentication_error", 401),
        (403, "permission_error", "permission_error", 403),
        (404, "not_found_error", "not_found_error", 404),
        (429, "rate_limit_error", "rate_limit_error", 429),
        (500, "api_error", "api_error", 502),
        (529, "overloaded_error", "api_error", 502),
    ],
)
def test_parse_error(status: int, anthropic_type: str, openai_type: str, gateway_status: int) -> None:
    raw = orjson.dumps(
        {
            "type": "error",
            "error": {"type": anthropic_type, "message": "Nope."},
            "request_id": "req_011CSHoEeqs5C35K2UUqR7Fy",
        }
    )
    err = PROVIDER.parse_error(status, raw)
    assert isinstance(err, UpstreamError)
    assert (err.message, err.type, err.code, err.provider, err.upstream_status) == (
        "Nope.",
        openai_type,
        anthropic_type,
        "anthropic",
        status,
    )
    assert err.status == gateway_status


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"<html>502 Bad Gateway</html>", "anthropic returned HTTP 529 with a non-JSON body"),
        (b'{"detail": "?"}', "anthropic returned HTTP 529 with an unrecognised error body"),
    ],
)
def test_parse_error_without_an_anthropic_body(raw: bytes, message: str) -> None:
    err = PROVIDER.parse_error(529, raw)
    assert err.message == message
    assert err.upstream_status == 529 and err.provider == "anthropic"


def test_stream_translator_is_fresh_per_call() -> None:
    first = PROVIDER.stream_translator(CHAT, "claude-sonnet")
    assert isinstance(first, MessagesStreamToChat)
    assert first is not PROVIDER.stream_translator(CHAT, "claude-sonnet")
    assert isinstance(PROVIDER.stream_translator(MESSAGES, "claude-sonnet"), MessagesStreamToChat)
