"""Bad input and upstream failures: always the error envelope, with the right status."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from tests.gateway_harness import GatewayThread, demo_config, free_port

CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}


def assert_envelope(response: httpx.Response, status: int, code: str | None = None) -> dict:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) == {"message", "type", "code", "param"}
    assert error["message"]
    if code is not None:
        assert error["code"] == code
    return error


@pytest.fixture
def http(gateway: GatewayThread) -> httpx.Client:
    with httpx.Client(base_url=gateway.url, timeout=10) as client:
        yield client


def test_invalid_json(http: httpx.Client) -> None:
    assert_envelope(http.post("/v1/chat/completions", content=b"{not json"), 400, "invalid_json")
    assert_envelope(http.post("/v1/chat/completions", content=b""), 400, "invalid_json")


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"messages": [{"role": "user", "content": "hi"}]}, "model"),
        ({"model": "gpt-4o-mini"}, "messages"),
        ({"model": 42, "messages": []}, "model"),
        ({"model": "gpt-4o-mini", "messages": "hi"}, "messages"),
        ({"model": "gpt-4o-mini", "messages": [{"role": "robot", "content": "x"}]}, "messages[0].role"),
        ({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": 5}]}, "messages[0].content"),
        ({**CHAT, "stream": "yes"}, "stream"),
        ({**CHAT, "max_tokens": 0}, "max_tokens"),
        ({**CHAT, "temperature": 9}, "temperature"),
    ],
)
def test_bad_chat_bodies(http: httpx.Client, body: dict, param: str) -> None:
    error = assert_envelope(http.post("/v1/chat/completions", json=body), 400)
    assert error["param"] == param
    assert error["type"] == "invalid_request_error"


def test_body_must_be_an_object(http: httpx.Client) -> None:
    assert_envelope(http.post("/v1/chat/completions", json=[1, 2]), 400, "invalid_type")


def test_embeddings_and_completions_validation(http: httpx.Client) -> None:
    assert (
        assert_envelope(http.post("/v1/embeddings", json={"model": "text-embedding-3-small"}), 400)["param"]
        == "input"
    )
    bad_input = {"model": "text-embedding-3-small", "input": [1, "a"]}
    assert assert_envelope(http.post("/v1/embeddings", json=bad_input), 400)["param"] == "input"
    assert (
        assert_envelope(http.post("/v1/completions", json={"model": "gpt-4o-mini"}), 400)["param"] == "prompt"
    )


def test_messages_validation_uses_anthropic_shape(http: httpx.Client) -> None:
    response = http.post("/v1/messages", json={"model": "claude-sonnet", "messages": []})
    assert response.status_code == 400
    body = response.json()
    assert body["type"] == "error" and body["error"]["type"] == "invalid_request_error"


def test_unknown_model(http: httpx.Client) -> None:
    assert_envelope(
        http.post("/v1/chat/completions", json={**CHAT, "model": "gpt-9-ultra"}), 404, "model_not_found"
    )


def test_unknown_path_and_method(http: httpx.Client) -> None:
    assert_envelope(http.post("/v1/nope", json=CHAT), 404)
    assert_envelope(http.get("/v1/chat/completions"), 405)


def test_bad_metadata_header(http: httpx.Client) -> None:
    error = assert_envelope(
        http.post("/v1/chat/completions", json=CHAT, headers={"x-lockgate-metadata": "[1]"}), 400
    )
    assert error["param"] == "x-lockgate-metadata"


def test_upstream_error_statuses(http: httpx.Client, mock) -> None:
    mock.add_fault(status=500, message="boom", match_model="gpt-4o-mini")
    error = assert_envelope(http.post("/v1/chat/completions", json=CHAT), 502)
    assert "boom" in error["message"]
    mock.add_fault(status=400, message="bad things", match_model="gpt-4o-mini")
    assert "bad things" in assert_envelope(http.post("/v1/chat/completions", json=CHAT), 400)["message"]
    mock.add_fault(status=429, retry_after=7, match_model="gpt-4o-mini")
    response = http.post("/v1/chat/completions", json=CHAT)
    assert_envelope(response, 429)
    assert response.headers["retry-after"] == "7"


def test_upstream_malformed_body(http: httpx.Client, mock) -> None:
    mock.add_fault(malformed=True, match_model="gpt-4o-mini")
    assert_envelope(http.post("/v1/chat/completions", json=CHAT), 502, "upstream_bad_response")


def test_upstream_connection_reset(http: httpx.Client, mock) -> None:
    mock.add_fault(reset=True, match_model="gpt-4o-mini")
    assert_envelope(http.post("/v1/chat/completions", json=CHAT), 502, "upstream_unreachable")


def test_upstream_timeout(http: httpx.Client, mock) -> None:
    # The gateway fixture's request timeout is 2 s.
    mock.add_fault(delay_ms=3000, match_model="gpt-4o-mini")
    assert_envelope(http.post("/v1/chat/completions", json=CHAT), 504, "upstream_timeout")


def test_upstream_unreachable(tmp_path: Path) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    with GatewayThread(tmp_path, demo_config(dead), demo=True) as gw, httpx.Client(base_url=gw.url) as http:
        assert_envelope(http.post("/v1/chat/completions", json=CHAT), 502, "upstream_unreachable")
        records = gw.records()
    assert records[-1]["status"] == 502 and records[-1]["error_type"] == "upstream_error"


def test_oversized_body(tmp_path: Path, mock) -> None:
    with (
        GatewayThread(tmp_path, demo_config(mock.url), max_body_bytes=1024, demo=True) as gw,
        httpx.Client(base_url=gw.url) as http,
    ):
        big = {**CHAT, "messages": [{"role": "user", "content": "x" * 4096}]}
        assert_envelope(http.post("/v1/chat/completions", json=big), 413, "request_too_large")
        assert http.post("/v1/chat/completions", json=CHAT).status_code == 200


def test_master_key(keyed_gateway: GatewayThread) -> None:
    with httpx.Client(base_url=keyed_gateway.url) as http:
        assert_envelope(http.post("/v1/chat/completions", json=CHAT), 401, "missing_api_key")
        wrong = http.post("/v1/chat/completions", json=CHAT, headers={"authorization": "Bearer nope"})
        assert_envelope(wrong, 401, "invalid_api_key")
        ok = http.post("/v1/chat/completions", json=CHAT, headers={"authorization": "Bearer lg-test-master"})
        assert ok.status_code == 200
        anthropic_style = http.post(
            "/v1/messages",
            json={
                "model": "claude-sonnet",
                "max_tokens": 10,
                "messages": [{"role": "user", "content": "hi"}],
            },
            headers={"x-api-key": "lg-test-master", "anthropic-version": "2023-06-01"},
        )
        assert anthropic_style.status_code == 200
        assert http.get("/v1/models").status_code == 401
        assert http.get("/healthz").status_code == 200


def test_health_and_readiness(http: httpx.Client) -> None:
    assert http.get("/healthz").json() == {"status": "ok"}
    ready = http.get("/readyz")
    assert ready.status_code == 200 and ready.json()["status"] == "ready"


def test_provider_key_never_leaves_the_gateway(http: httpx.Client, mock) -> None:
    response = http.post("/v1/chat/completions", json=CHAT)
    assert "sk-mock" not in response.text and "sk-mock" not in str(response.headers)
    # The provider got the gateway's credential, not the client's.
    assert mock.requests[-1]["headers"]["authorization"] == "Bearer sk-mock"
