"""Curl-style requests to every endpoint, checked on the wire."""

from __future__ import annotations

import httpx
import orjson
import pytest

from tests.gateway_harness import GatewayThread


@pytest.fixture
def http(gateway: GatewayThread) -> httpx.Client:
    with httpx.Client(base_url=gateway.url, timeout=10) as client:
        yield client


def test_chat(http: httpx.Client) -> None:
    reply = http.post(
        "/v1/chat/completions", json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "a"}]}
    )
    assert reply.status_code == 200 and reply.headers["content-type"] == "application/json"
    assert reply.json()["object"] == "chat.completion"


def test_chat_stream_is_sse_ending_with_done(http: httpx.Client) -> None:
    body = {"model": "gpt-4o-mini", "stream": True, "messages": [{"role": "user", "content": "a"}]}
    with http.stream("POST", "/v1/chat/completions", json=body) as reply:
        assert reply.headers["content-type"].startswith("text/event-stream")
        raw = b"".join(reply.iter_raw())
    events = [e for e in raw.split(b"\n\n") if e]
    assert events[-1] == b"data: [DONE]"
    assert all(e.startswith(b"data: ") for e in events)
    assert all(orjson.loads(e[6:])["object"] == "chat.completion.chunk" for e in events[:-1])


def test_completions(http: httpx.Client) -> None:
    reply = http.post("/v1/completions", json={"model": "gpt-4o-mini", "prompt": "Say"})
    assert reply.status_code == 200 and reply.json()["object"] == "text_completion"


def test_embeddings(http: httpx.Client) -> None:
    reply = http.post("/v1/embeddings", json={"model": "text-embedding-3-small", "input": ["x", "y"]})
    assert reply.status_code == 200
    assert [d["index"] for d in reply.json()["data"]] == [0, 1]
    assert float(reply.headers["x-lockgate-cost-usd"]) > 0


def test_embeddings_on_an_anthropic_target_is_refused(http: httpx.Client) -> None:
    reply = http.post("/v1/embeddings", json={"model": "claude-sonnet", "input": "x"})
    assert reply.status_code == 400 and reply.json()["error"]["code"] == "unsupported_endpoint"


def test_models(http: httpx.Client) -> None:
    reply = http.get("/v1/models")
    assert reply.status_code == 200 and reply.json()["object"] == "list"


def test_messages_native_and_translated(http: httpx.Client) -> None:
    for model in ("claude-sonnet", "gpt-4o-mini"):
        reply = http.post(
            "/v1/messages",
            json={"model": model, "max_tokens": 20, "messages": [{"role": "user", "content": "a"}]},
            headers={"anthropic-version": "2023-06-01"},
        )
        assert reply.status_code == 200
        body = reply.json()
        assert body["type"] == "message" and body["content"][0]["type"] == "text"


def test_messages_stream_event_sequence(http: httpx.Client) -> None:
    body = {
        "model": "gpt-4o-mini",
        "max_tokens": 20,
        "stream": True,
        "messages": [{"role": "user", "content": "a"}],
    }
    with http.stream("POST", "/v1/messages", json=body, headers={"anthropic-version": "2023-06-01"}) as reply:
        raw = b"".join(reply.iter_raw()).decode()
    names = [line[7:] for line in raw.splitlines() if line.startswith("event: ")]
    assert names[0] == "message_start" and names[-2:] == ["message_delta", "message_stop"]
    assert "content_block_delta" in names
