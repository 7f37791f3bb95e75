"""Shared helpers for the routing tests over real HTTP (gateway thread + mock provider)."""

from __future__ import annotations

import json
from typing import Any

import httpx

from tests.gateway_harness import GatewayThread

PROMPT = [{"role": "user", "content": "Tell me about resilient gateways"}]


def leaf(model: str, integration: str = "mock-openai", **extra: Any) -> dict[str, Any]:
    return {"provider": f"@{integration}", "override_params": {"model": model}, **extra}


def fallback(*targets: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"strategy": {"mode": "fallback"}, "targets": list(targets), **extra}


def post(
    gw: GatewayThread,
    config: dict[str, Any] | str | None,
    *,
    stream: bool = False,
    metadata: dict[str, str] | None = None,
    body: dict[str, Any] | None = None,
    path: str = "/v1/chat/completions",
    headers: dict[str, str] | None = None,
) -> httpx.Response:
    sent = dict(headers or {})
    if config is not None:
        sent["x-lockgate-config"] = config if isinstance(config, str) else json.dumps(config)
    if metadata is not None:
        sent["x-lockgate-metadata"] = json.dumps(metadata)
    payload = body or {"model": "gpt-4o-mini", "messages": PROMPT}
    with httpx.Client(base_url=gw.url, timeout=20) as http:
        response = http.post(path, json={**payload, "stream": stream}, headers=sent)
        response.read()
    return response


def record_of(gw: GatewayThread, response: httpx.Response) -> dict[str, Any]:
    request_id = response.headers["x-lockgate-request-id"]
    matching = [r for r in gw.records() if r["id"] == request_id]
    assert len(matching) == 1, matching
    return matching[0]


def sse_events(text: str) -> list[str]:
    return [block for block in text.split("\n\n") if block.strip()]


def streamed_text(text: str) -> str:
    """The content of an OpenAI chat stream, joined; asserts every event but [DONE] is JSON."""
    parts = []
    for block in sse_events(text):
        data = block.removeprefix("data: ")
        if data == "[DONE]":
            continue
        chunk = json.loads(data)
        for choice in chunk.get("choices") or []:
            parts.append(choice["delta"].get("content") or "")
    return "".join(parts)


def assert_envelope(response: httpx.Response, status: int, code: str | None = None) -> dict[str, Any]:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) == {"message", "type", "code", "param"} and error["message"]
    if code is not None:
        assert error["code"] == code, error
    return error


def upstream_models(mock: Any) -> list[str]:
    return [r["json"]["model"] for r in mock.requests if isinstance(r["json"], dict) and "model" in r["json"]]
