"""Cohere v2: chat and embed requests, responses, streams and errors on recorded payloads."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import openai
import orjson
import pytest
from anthropic_fixtures import openai_sdk_final_completion, parse_sse, zero_created

from lockgate.errors import UnsupportedParameter, UpstreamError
from lockgate.providers.base import CHAT, EMBEDDINGS, Body, Credential, get_provider
from lockgate.providers.cohere import CohereStreamToChat, chat_to_cohere, response_to_chat

FIXTURES = Path(__file__).parent / "fixtures" / "cohere"
COHERE = get_provider("cohere")
CRED = Credential("co", "cohere", "https://api.cohere.com", api_key="co-key")


def load(name: str) -> Any:
    return orjson.loads((FIXTURES / name).read_bytes())


def translate_stream(name: str) -> tuple[CohereStreamToChat, list[dict[str, Any]]]:
    translator = CohereStreamToChat("command-a-03-2025")
    chunks: list[dict[str, Any]] = []
    for event, data in parse_sse((FIXTURES / name).read_text()):
        chunks.extend(translator.feed(event, data))
    return translator, chunks + translator.finish()


def to_sse(chunks: list[dict[str, Any]]) -> bytes:
    return b"".join(b"data: " + orjson.dumps(c) + b"\n\n" for c in chunks) + b"data: [DONE]\n\n"


def test_chat_to_cohere_golden() -> None:
    case = load("request_tools.json")
    body, dropped = chat_to_cohere(case["chat"])
    assert body == case["cohere"]
    assert dropped == case["dropped"]


def test_response_to_chat_golden() -> None:
    case = load("response_tools.json")
    out = response_to_chat(case["cohere"])
    assert zero_created(out) == case["chat"]
    openai.types.chat.ChatCompletion.model_validate({**out, "model": "command-a"})


def test_text_response_with_thinking_and_citations() -> None:
    payload = {
        "id": "r1",
        "finish_reason": "COMPLETE",
        "message": {
            "role": "assistant",
            "content": [
                {"type": "thinking", "thinking": "Check the doc."},
                {"type": "text", "text": "It is 42."},
            ],
            "citations": [
                {"start": 6, "end": 8, "text": "42", "sources": [{"type": "document", "id": "doc:0"}]}
            ],
        },
        "usage": {"billed_units": {"input_tokens": 10, "output_tokens": 4}, "cached_tokens": 6},
    }
    message = response_to_chat(payload)["choices"][0]["message"]
    assert message["content"] == "It is 42." and message["reasoning_content"] == "Check the doc."
    assert message["citations"][0]["text"] == "42"
    assert response_to_chat(payload)["usage"]["prompt_tokens_details"] == {"cached_tokens": 6}


@pytest.mark.parametrize(
    ("reason", "finish"),
    [("COMPLETE", "stop"), ("STOP_SEQUENCE", "stop"), ("MAX_TOKENS", "length"), ("TOOL_CALL", "tool_calls"),
     ("ERROR", "stop")],
)  # fmt: skip
def test_finish_reasons(reason: str, finish: str) -> None:
    payload = {"id": "r", "finish_reason": reason, "message": {"role": "assistant", "content": []}}
    assert response_to_chat(payload)["choices"][0]["finish_reason"] == finish


def test_stream_tools_parallel_through_the_sdk() -> None:
    translator, chunks = translate_stream("stream_tools.sse")
    assert translator.done
    final = openai_sdk_final_completion(to_sse(chunks))
    calls = final.choices[0].message.tool_calls
    assert [(c.id, c.function.name) for c in calls] == [
        ("get_weather_nsz5zm3w56q3", "get_weather"),
        ("get_time_j0sebjt1x2p3", "get_time"),
    ]
    assert [orjson.loads(c.function.arguments) for c in calls] == [{"city": "Rome"}, {}]
    assert final.choices[0].finish_reason == "tool_calls"
    assert not final.choices[0].message.content  # the tool plan is not answer text
    assert chunks[-1]["usage"] == {
        "prompt_tokens": 37,
        "completion_tokens": 28,
        "total_tokens": 65,
        "prompt_tokens_details": {"cached_tokens": 512},
    }


def test_stream_text() -> None:
    translator, chunks = translate_stream("stream_text.sse")
    assert translator.done
    assert [c["choices"][0]["delta"] for c in chunks if c["choices"]] == [
        {"role": "assistant", "content": ""},
        {"content": "Bonjour"},
        {"content": " !"},
        {},
    ]
    assert chunks[-2]["choices"][0]["finish_reason"] == "length"
    assert {c["id"] for c in chunks} == {"a1"}
    assert zero_created(chunks[-1])["usage"]["prompt_tokens"] == 5


def test_stream_without_message_end_is_not_done() -> None:
    translator = CohereStreamToChat("m")
    translator.feed("message-start", {"type": "message-start", "id": "x"})
    assert not translator.done and translator.finish() == []


def test_build_request_urls_and_auth() -> None:
    body = Body({"model": "command-r", "messages": [{"role": "user", "content": "hi"}], "stream": True})
    request = COHERE.build_request(CHAT, body, CRED)
    assert request.url == "https://api.cohere.com/v2/chat"
    assert request.headers["authorization"] == "Bearer co-key"
    assert request.headers["accept"] == "text/event-stream"
    base_v2 = Credential("co", "cohere", "https://proxy.example/v2", api_key="k")
    assert COHERE.build_request(CHAT, body, base_v2).url == "https://proxy.example/v2/chat"


def test_embeddings() -> None:
    body = Body({"model": "embed-v4.0", "input": ["a", "b"], "dimensions": 256})
    cred = Credential(
        "co", "cohere", "https://api.cohere.com", api_key="k", options={"embed_input_type": "search_query"}
    )
    request = COHERE.build_request(EMBEDDINGS, body, cred)
    assert request.url == "https://api.cohere.com/v2/embed"
    assert orjson.loads(request.body) == {
        "model": "embed-v4.0",
        "texts": ["a", "b"],
        "input_type": "search_query",
        "embedding_types": ["float"],
        "output_dimension": 256,
    }
    response = {
        "id": "e1",
        "embeddings": {"float": [[0.1, 0.2], [0.3, 0.4]]},
        "texts": ["a", "b"],
        "meta": {"api_version": {"version": "2"}, "billed_units": {"input_tokens": 2}},
        "response_type": "embeddings_by_type",
    }
    out = COHERE.parse_response(EMBEDDINGS, orjson.dumps(response))
    assert [d["embedding"] for d in out["data"]] == [[0.1, 0.2], [0.3, 0.4]]
    assert out["usage"] == {"prompt_tokens": 2, "total_tokens": 2}


@pytest.mark.parametrize(
    ("data", "param"),
    [
        ({"n": 3}, "n"),
        ({"messages": [{"role": "user", "content": [{"type": "input_audio", "input_audio": {}}]}]},
         "messages[0].content[0]"),
        ({"tools": [{"type": "web_search"}]}, "tools[0]"),
        ({"functions": [{"name": "f"}]}, "functions"),
    ],
)  # fmt: skip
def test_refusals(data: dict, param: str) -> None:
    with pytest.raises(UnsupportedParameter) as err:
        chat_to_cohere({"model": "command-a", "messages": [{"role": "user", "content": "hi"}], **data})
    assert err.value.param == param


@pytest.mark.parametrize(
    ("status", "raw", "message", "type_"),
    [
        (400, b'{"id":"5d5b","message":"invalid request: message must be at least 1 token long"}',
         "invalid request: message must be at least 1 token long", "invalid_request_error"),
        (401, b'{"message":"invalid api token"}', "invalid api token", "authentication_error"),
        (429, b'{"message":"You are using a Trial key, which is limited to 10 API calls / minute."}',
         "You are using a Trial key, which is limited to 10 API calls / minute.", "rate_limit_error"),
        (500, b'{"message":"internal server error, this has been reported to our developers"}',
         "internal server error, this has been reported to our developers", "api_error"),
    ],
)  # fmt: skip
def test_parse_error(status: int, raw: bytes, message: str, type_: str) -> None:
    err = COHERE.parse_error(status, raw)
    assert isinstance(err, UpstreamError)
    assert (err.upstream_status, err.message, err.type) == (status, message, type_)
