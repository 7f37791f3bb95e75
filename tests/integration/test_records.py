"""Every request, streamed or not, produces exactly one record with tokens and cost."""

from __future__ import annotations

import httpx
import openai
import pytest

from tests.gateway_harness import GatewayThread

CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Tell me something"}]}


def only_record(gateway: GatewayThread, request_id: str) -> dict:
    matching = [r for r in gateway.records() if r["id"] == request_id]
    assert len(matching) == 1, matching
    return matching[0]


@pytest.mark.parametrize("model", ["gpt-4o-mini", "claude-sonnet"])
@pytest.mark.parametrize("stream", [False, True])
def test_one_record_with_reported_usage_and_cost(gateway: GatewayThread, model: str, stream: bool) -> None:
    with httpx.Client(base_url=gateway.url) as http:
        response = http.post(
            "/v1/chat/completions",
            json={**CHAT, "model": model, "stream": stream},
            headers={"x-lockgate-metadata": '{"feature": "records-test"}'},
        )
        assert response.status_code == 200
        record = only_record(gateway, response.headers["x-lockgate-request-id"])
    assert record["stream"] is stream
    assert record["status"] == 200
    assert record["usage_source"] == "reported"
    assert record["prompt_tokens"] > 0 and record["completion_tokens"] > 0
    # Streams are never recorded at $0 when the upstream reported usage.
    assert record["cost_usd"] > 0
    assert record["metadata"] == {"feature": "records-test"}
    assert record["requested_model"] == model
    assert record["attempts"] == 1


def test_stream_usage_matches_non_stream(gateway: GatewayThread) -> None:
    client = openai.OpenAI(base_url=gateway.url + "/v1", api_key="x", max_retries=0)
    plain = client.chat.completions.with_raw_response.create(**CHAT)
    streamed = client.chat.completions.with_raw_response.create(**CHAT, stream=True)
    list(streamed.parse())
    a = only_record(gateway, plain.headers["x-lockgate-request-id"])
    b = only_record(gateway, streamed.headers["x-lockgate-request-id"])
    assert (a["prompt_tokens"], a["completion_tokens"]) == (b["prompt_tokens"], b["completion_tokens"])
    assert a["cost_usd"] == pytest.approx(b["cost_usd"])


@pytest.mark.parametrize("stream", [False, True])
def test_missing_usage_is_counted_locally(gateway: GatewayThread, mock, stream: bool) -> None:
    mock.add_fault(no_usage=True, match_model="gpt-4o-mini")
    with httpx.Client(base_url=gateway.url) as http:
        response = http.post("/v1/chat/completions", json={**CHAT, "stream": stream})
        assert response.status_code == 200
        record = only_record(gateway, response.headers["x-lockgate-request-id"])
    assert record["usage_source"] == "estimated"
    assert record["prompt_tokens"] > 0 and record["completion_tokens"] > 0
    assert record["cost_usd"] > 0


@pytest.mark.parametrize(
    ("model", "path", "body_extra"),
    [
        ("gpt-4o-mini", "/v1/chat/completions", {}),
        ("claude-sonnet", "/v1/chat/completions", {}),
        ("claude-sonnet", "/v1/messages", {"max_tokens": 100}),
        ("gpt-4o-mini", "/v1/messages", {"max_tokens": 100}),
    ],
)
def test_stream_cut_mid_answer_ends_with_error_event(
    gateway: GatewayThread, mock, model: str, path: str, body_extra: dict
) -> None:
    upstream_model = "gpt-4o-mini" if model == "gpt-4o-mini" else "claude-sonnet-4-5"
    mock.add_fault(cut_after_chunks=3, match_model=upstream_model)
    body = {**CHAT, "model": model, "stream": True, **body_extra}
    with httpx.Client(base_url=gateway.url) as http:
        with http.stream("POST", path, json=body, headers={"anthropic-version": "2023-06-01"}) as response:
            assert response.status_code == 200
            text = b"".join(response.iter_raw()).decode()
        record = only_record(gateway, response.headers["x-lockgate-request-id"])
    # Never a clean end: no [DONE] / message_stop, a final error event instead.
    assert "[DONE]" not in text and "message_stop" not in text
    last_event = text.rsplit("\n\n", 2)[-2]
    if path == "/v1/messages":
        assert last_event.startswith("event: error\n") and '"type":"error"' in last_event
    else:
        assert '"code":"stream_interrupted"' in last_event
    assert record["status"] == 502 and record["error_type"] == "upstream_error"
    assert record["usage_source"] == "estimated"
    assert record["completion_tokens"] > 0 and record["cost_usd"] > 0


def test_anthropic_ingress_records(gateway: GatewayThread) -> None:
    with httpx.Client(base_url=gateway.url) as http:
        response = http.post(
            "/v1/messages",
            json={
                "model": "claude-sonnet",
                "max_tokens": 50,
                "messages": [{"role": "user", "content": "hi"}],
            },
            headers={"anthropic-version": "2023-06-01"},
        )
        assert response.status_code == 200
        record = only_record(gateway, response.headers["x-lockgate-request-id"])
    assert record["endpoint"] == "messages" and record["provider"] == "mock-anthropic"
    assert record["prompt_tokens"] > 0 and record["cost_usd"] > 0


def test_errors_are_recorded_once(gateway: GatewayThread) -> None:
    with httpx.Client(base_url=gateway.url) as http:
        response = http.post("/v1/chat/completions", json={**CHAT, "model": "nope"})
        record = only_record(gateway, response.headers["x-lockgate-request-id"])
    assert record["status"] == 404 and record["cost_usd"] is None and record["attempts"] == 0
