"""Gemini and Vertex AI: requests, responses, streams, embeddings and errors on recorded payloads."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import openai
import orjson
import pytest
from anthropic_fixtures import openai_sdk_final_completion, parse_sse, zero_created

from lockgate.errors import BadRequest, UnsupportedParameter
from lockgate.providers.base import CHAT, EMBEDDINGS, Body, Credential, CredentialProblem, get_provider
from lockgate.providers.gemini_request import chat_to_gemini, gemini_schema
from lockgate.providers.gemini_response import GeminiStreamToChat, response_to_chat

FIXTURES = Path(__file__).parent / "fixtures" / "gemini"
GEMINI = get_provider("gemini")
VERTEX = get_provider("vertex")
GENERATED_ID = re.compile(r"^call_[0-9a-f]{24}$")


def load(name: str) -> Any:
    return orjson.loads((FIXTURES / name).read_bytes())


def feed_all(translator: GeminiStreamToChat, sse: str) -> list[dict[str, Any]]:
    chunks: list[dict[str, Any]] = []
    for name, data in parse_sse(sse):
        chunks.extend(translator.feed(name, data))
    return chunks + translator.finish()


def to_sse(chunks: list[dict[str, Any]]) -> bytes:
    return b"".join(b"data: " + orjson.dumps(c) + b"\n\n" for c in chunks) + b"data: [DONE]\n\n"


@pytest.mark.parametrize("name", ["request_text_images.json", "request_tools_parallel.json"])
def test_chat_to_gemini_golden(name: str) -> None:
    case = load(name)
    before = orjson.dumps(case["chat"])
    body, dropped = chat_to_gemini(case["chat"])
    assert body == case["gemini"]
    assert dropped == case["dropped"]
    assert orjson.dumps(case["chat"]) == before  # the input is not mutated


@pytest.mark.parametrize("name", ["response_thinking_cached.json", "response_parallel_calls.json"])
def test_response_to_chat_golden(name: str) -> None:
    case = load(name)
    out = response_to_chat(case["gemini"])
    assert zero_created(out) == case["chat"]
    openai.types.chat.ChatCompletion.model_validate(out)


def test_calls_without_ids_get_stable_unique_ids() -> None:
    payload = load("response_parallel_calls.json")["gemini"]
    for part in payload["candidates"][0]["content"]["parts"]:
        del part["functionCall"]["id"]
        part.pop("thoughtSignature", None)
    first = response_to_chat(payload)["choices"][0]["message"]["tool_calls"]
    again = response_to_chat(payload)["choices"][0]["message"]["tool_calls"]
    ids = [c["id"] for c in first]
    assert all(GENERATED_ID.match(i) for i in ids) and len(set(ids)) == 2
    assert ids == [c["id"] for c in again]


def test_thought_signature_round_trips_through_the_call_id() -> None:
    response = response_to_chat(load("response_parallel_calls.json")["gemini"])
    calls = response["choices"][0]["message"]["tool_calls"]
    request = {
        "model": "gemini-3-pro-preview",
        "messages": [
            {"role": "user", "content": "go"},
            {"role": "assistant", "content": None, "tool_calls": calls},
            *({"role": "tool", "tool_call_id": c["id"], "content": "ok"} for c in calls),
        ],
    }
    body, _ = chat_to_gemini(request)
    model_parts = body["contents"][1]["parts"]
    assert model_parts[0]["thoughtSignature"] == "c2lnLTE/+w=="
    assert "thoughtSignature" not in model_parts[1]
    assert [p["functionResponse"]["name"] for p in body["contents"][2]["parts"]] == [
        "get_weather",
        "get_time",
    ]


@pytest.mark.parametrize(
    ("reason", "has_calls", "expected"),
    [
        ("STOP", False, "stop"),
        ("STOP", True, "tool_calls"),
        ("MAX_TOKENS", False, "length"),
        ("SAFETY", False, "content_filter"),
        ("RECITATION", False, "content_filter"),
        ("BLOCKLIST", False, "content_filter"),
        ("PROHIBITED_CONTENT", False, "content_filter"),
        ("SPII", False, "content_filter"),
        ("MALFORMED_FUNCTION_CALL", False, "stop"),
        ("OTHER", False, "stop"),
    ],
)
def test_finish_reasons(reason: str, has_calls: bool, expected: str) -> None:
    parts = [{"functionCall": {"name": "f", "args": {}}}] if has_calls else [{"text": "x"}]
    payload = {"candidates": [{"content": {"parts": parts}, "finishReason": reason}], "responseId": "r"}
    assert response_to_chat(payload)["choices"][0]["finish_reason"] == expected


def test_blocked_prompt_is_an_empty_content_filter_choice() -> None:
    payload = {"promptFeedback": {"blockReason": "SAFETY"}, "usageMetadata": {"promptTokenCount": 7}}
    out = response_to_chat(payload, model="gemini-2.5-flash")
    assert out["choices"] == [
        {
            "index": 0,
            "message": {"role": "assistant", "content": None},
            "finish_reason": "content_filter",
            "logprobs": None,
        }
    ]
    assert out["usage"]["prompt_tokens"] == 7 and out["model"] == "gemini-2.5-flash"


def test_several_candidates_become_choices() -> None:
    payload = {
        "candidates": [
            {"content": {"parts": [{"text": "a"}]}, "finishReason": "STOP", "index": 0},
            {"content": {"parts": [{"text": "b"}]}, "finishReason": "MAX_TOKENS", "index": 1},
        ],
        "responseId": "r",
    }
    choices = response_to_chat(payload)["choices"]
    assert [(c["message"]["content"], c["finish_reason"]) for c in choices] == [
        ("a", "stop"),
        ("b", "length"),
    ]
    body, _ = chat_to_gemini({"model": "m", "messages": [{"role": "user", "content": "x"}], "n": 2})
    assert body["generationConfig"]["candidateCount"] == 2


def test_stream_text_golden_and_sdk() -> None:
    translator = GeminiStreamToChat("gemini-2.5-flash")
    chunks = feed_all(translator, (FIXTURES / "stream_text.sse").read_text())
    assert translator.done
    assert zero_created(chunks) == load("stream_text.chunks.json")
    final = openai_sdk_final_completion(to_sse(chunks))
    assert final.choices[0].message.content == "Le chat est roux."
    assert final.usage is not None and final.usage.completion_tokens_details.reasoning_tokens == 8


def test_stream_parallel_tool_calls() -> None:
    translator = GeminiStreamToChat("gemini-2.5-pro")
    chunks = feed_all(translator, (FIXTURES / "stream_tools.sse").read_text())
    final = openai_sdk_final_completion(to_sse(chunks))
    calls = final.choices[0].message.tool_calls
    assert [(c.function.name, c.function.arguments) for c in calls] == [
        ("get_weather", '{"city":"Rome"}'),
        ("get_time", "{}"),
    ]
    assert GENERATED_ID.match(calls[0].id) and calls[1].id == "fc-9"
    assert final.choices[0].finish_reason == "tool_calls"
    assert translator.usage == {
        "prompt_tokens": 40,
        "completion_tokens": 10,
        "total_tokens": 50,
        "prompt_tokens_details": {"cached_tokens": 0},
    }


def test_stream_is_not_done_before_a_finish_reason() -> None:
    translator = GeminiStreamToChat("m")
    first = parse_sse((FIXTURES / "stream_text.sse").read_text())[0][1]
    translator.feed(None, first)
    assert not translator.done


def test_stream_error_event_raises() -> None:
    translator = GeminiStreamToChat("m")
    with pytest.raises(Exception) as err:
        translator.feed(None, {"error": {"code": 503, "message": "overloaded", "status": "UNAVAILABLE"}})
    assert err.value.message == "overloaded" and err.value.code == "UNAVAILABLE"


# --- URLs, auth, embeddings -----------------------------------------------------------------


def _cred(provider: str, **kwargs: Any) -> Credential:
    return Credential(name=f"t-{provider}", provider=provider, base_url=kwargs.pop("base_url", ""), **kwargs)


def test_ai_studio_urls_and_key() -> None:
    cred = _cred("gemini", api_key="g-key")
    body = Body({"model": "models/gemini-2.5-flash", "messages": [{"role": "user", "content": "hi"}]})
    request = GEMINI.build_request(CHAT, body, cred)
    assert (
        request.url
        == "https://generativelanguage.googleapis.com/v1beta/models/gemini-2.5-flash:generateContent"
    )
    assert request.headers["x-goog-api-key"] == "g-key" and "authorization" not in request.headers
    body.data["stream"] = True
    assert GEMINI.build_request(CHAT, body, cred).url.endswith(":streamGenerateContent?alt=sse")


@pytest.mark.parametrize(
    ("options", "url"),
    [
        (
            {"project": "p-1", "region": "europe-west4"},
            "https://europe-west4-aiplatform.googleapis.com/v1/projects/p-1/locations/europe-west4"
            "/publishers/google/models/gemini-2.5-pro:generateContent",
        ),
        (
            {"project": "p-1", "region": "global"},
            "https://aiplatform.googleapis.com/v1/projects/p-1/locations/global"
            "/publishers/google/models/gemini-2.5-pro:generateContent",
        ),
        (
            {"project": "p-1"},
            "https://us-central1-aiplatform.googleapis.com/v1/projects/p-1/locations/us-central1"
            "/publishers/google/models/gemini-2.5-pro:generateContent",
        ),
    ],
)
def test_vertex_urls(options: dict[str, str], url: str) -> None:
    cred = _cred("vertex", api_key="ya29.token", options=options)
    body = Body({"model": "gemini-2.5-pro", "messages": [{"role": "user", "content": "hi"}]})
    request = VERTEX.build_request(CHAT, body, cred)
    assert request.url == url
    assert request.headers["authorization"] == "Bearer ya29.token"


def test_vertex_minted_token_comes_in_headers() -> None:
    cred = _cred("vertex", options={"project": "p"}, headers={"authorization": "Bearer minted"})
    body = Body({"model": "gemini-2.5-pro", "messages": [{"role": "user", "content": "hi"}]})
    assert VERTEX.build_request(CHAT, body, cred).headers["authorization"] == "Bearer minted"


def test_vertex_check_credential() -> None:
    assert VERTEX.check_credential(_cred("vertex", api_key="t")) == CredentialProblem(
        "options.project", "vertex needs options.project"
    )
    unauthenticated = VERTEX.check_credential(_cred("vertex", options={"project": "p"}))
    assert unauthenticated is not None and unauthenticated.param == "options.service_account"
    assert (
        VERTEX.check_credential(
            _cred("vertex", options={"project": "p"}, headers={"Authorization": "Bearer t"})
        )
        is None
    )
    express = VERTEX.check_credential(_cred("vertex", options={"express_mode": True}))
    assert express is not None and express.param == "api_key"
    assert (
        VERTEX.check_credential(
            _cred("vertex", options={"project": "p", "service_account": {"client_email": "x"}})
        )
        is None
    )
    assert VERTEX.check_credential(_cred("vertex", api_key="k", options={"express_mode": True})) is None


def test_embeddings_requests_and_responses() -> None:
    data = {"model": "gemini-embedding-001", "input": ["a", "b"], "dimensions": 256}
    studio = GEMINI.build_request(EMBEDDINGS, Body(dict(data)), _cred("gemini", api_key="k"))
    assert studio.url.endswith("/models/gemini-embedding-001:batchEmbedContents")
    assert orjson.loads(studio.body) == {
        "requests": [
            {
                "model": "models/gemini-embedding-001",
                "outputDimensionality": 256,
                "content": {"parts": [{"text": t}]},
            }
            for t in ("a", "b")
        ]
    }
    out = GEMINI.parse_response(
        EMBEDDINGS, b'{"embeddings": [{"values": [0.1, 0.2]}, {"values": [0.3, 0.4]}]}'
    )
    assert [d["embedding"] for d in out["data"]] == [[0.1, 0.2], [0.3, 0.4]] and "usage" not in out
    cred = _cred("vertex", api_key="t", options={"project": "p", "embedding_task_type": "RETRIEVAL_QUERY"})
    vertex = VERTEX.build_request(EMBEDDINGS, Body(dict(data)), cred)
    assert vertex.url.endswith("/models/gemini-embedding-001:predict")
    assert orjson.loads(vertex.body) == {
        "instances": [
            {"content": "a", "task_type": "RETRIEVAL_QUERY"},
            {"content": "b", "task_type": "RETRIEVAL_QUERY"},
        ],
        "parameters": {"outputDimensionality": 256},
    }
    predicted = {
        "predictions": [
            {"embeddings": {"values": [1.0], "statistics": {"token_count": 3, "truncated": False}}},
            {"embeddings": {"values": [2.0], "statistics": {"token_count": 4, "truncated": False}}},
        ]
    }
    out = VERTEX.parse_response(EMBEDDINGS, orjson.dumps(predicted))
    assert out["usage"] == {"prompt_tokens": 7, "total_tokens": 7}


def test_token_array_embeddings_are_refused() -> None:
    with pytest.raises(UnsupportedParameter) as err:
        GEMINI.build_request(
            EMBEDDINGS, Body({"model": "m", "input": [[1, 2, 3]]}), _cred("gemini", api_key="k")
        )
    assert err.value.param == "input[0]"


# --- refusals and errors --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("message", "param", "error"),
    [
        ({"role": "user", "content": [{"type": "image_url", "image_url": {"url": "https://x.test/img"}}]},
         "messages[0].content[0].image_url.url", UnsupportedParameter),
        ({"role": "user", "content": [{"type": "file", "file": {"file_id": "file-1"}}]},
         "messages[0].content[0]", UnsupportedParameter),
        ({"role": "user", "content": [{"type": "image_url", "image_url": {"url": "ftp://x/y.png"}}]},
         "messages[0].content[0].image_url.url", BadRequest),
    ],
)  # fmt: skip
def test_refused_content(message: dict, param: str, error: type) -> None:
    with pytest.raises(error) as err:
        chat_to_gemini({"model": "m", "messages": [message]})
    assert err.value.param == param


def test_tool_result_without_a_matching_call_is_a_bad_request() -> None:
    with pytest.raises(BadRequest) as err:
        chat_to_gemini({"model": "m", "messages": [{"role": "tool", "tool_call_id": "nope", "content": "x"}]})
    assert err.value.param == "messages[0].tool_call_id"


def test_schema_subset_keeps_nested_structure() -> None:
    schema = {
        "type": "object",
        "$defs": {},
        "properties": {"a": {"anyOf": [{"type": "integer", "minimum": 1}]}},
    }
    assert gemini_schema(schema) == {
        "type": "object",
        "properties": {"a": {"anyOf": [{"type": "integer", "minimum": 1}]}},
    }


@pytest.mark.parametrize(
    ("status", "body", "message", "type_", "code"),
    [
        (400, {"error": {"code": 400, "message": "Invalid JSON payload", "status": "INVALID_ARGUMENT"}},
         "Invalid JSON payload", "invalid_request_error", "INVALID_ARGUMENT"),
        (429, [{"error": {"code": 429, "message": "Quota exceeded", "status": "RESOURCE_EXHAUSTED"}}],
         "Quota exceeded", "rate_limit_error", "RESOURCE_EXHAUSTED"),
        (403, {"error": {"code": 403, "message": "Permission denied", "status": "PERMISSION_DENIED"}},
         "Permission denied", "permission_error", "PERMISSION_DENIED"),
        (503, {"error": {"code": 503, "message": "The model is overloaded.", "status": "UNAVAILABLE"}},
         "The model is overloaded.", "api_error", "UNAVAILABLE"),
    ],
)  # fmt: skip
def test_parse_error(status: int, body: Any, message: str, type_: str, code: str) -> None:
    err = GEMINI.parse_error(status, orjson.dumps(body))
    assert (err.message, err.type, err.code, err.upstream_status) == (message, type_, code, status)
    envelope = err.to_dict()["error"]
    assert envelope["message"] == message and envelope["type"] == type_


def test_parse_error_on_a_non_json_body_keeps_the_status() -> None:
    err = VERTEX.parse_error(502, b"<html>Bad Gateway</html>")
    assert err.upstream_status == 502 and "vertex returned HTTP 502" in err.message
