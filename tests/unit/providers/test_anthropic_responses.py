"""Response, usage and error translation in both directions."""

from __future__ import annotations

from typing import Any

import anthropic
import openai
import pytest
from anthropic_fixtures import load, zero_created

from lockgate.providers.anthropic import (
    chat_response_to_messages,
    error_to_anthropic,
    messages_response_to_chat,
    usage_from_chat,
    usage_to_chat,
)


@pytest.mark.parametrize("name", ["message_tool_use", "message_thinking"])
def test_messages_response_to_chat_golden(name: str) -> None:
    case = load(f"responses/{name}.json")
    anthropic.types.Message.model_validate(case["anthropic"])  # the fixture is a real Message shape
    out = messages_response_to_chat(case["anthropic"])
    assert isinstance(out["created"], int) and out["created"] > 0
    assert zero_created(out) == case["chat"]
    openai.types.chat.ChatCompletion.model_validate(out)


def test_chat_response_to_messages_golden() -> None:
    case = load("responses/chat_tool_calls.json")
    out = chat_response_to_messages(case["chat"], model=case["model"])
    assert out == case["anthropic"]
    anthropic.types.Message.model_validate(out)


@pytest.mark.parametrize(
    ("stop_reason", "finish_reason"),
    [
        ("end_turn", "stop"),
        ("stop_sequence", "stop"),
        ("pause_turn", "stop"),
        ("max_tokens", "length"),
        ("model_context_window_exceeded", "length"),
        ("tool_use", "tool_calls"),
        ("refusal", "content_filter"),
        (None, None),
    ],
)
def test_stop_reason_to_finish_reason(stop_reason: str | None, finish_reason: str | None) -> None:
    msg = {"id": "msg_1", "model": "m", "content": [], "stop_reason": stop_reason, "usage": {}}
    out = messages_response_to_chat(msg)
    assert out["choices"][0]["finish_reason"] == finish_reason
    assert out["choices"][0]["message"] == {"role": "assistant", "content": None}


@pytest.mark.parametrize(
    ("finish_reason", "stop_reason"),
    [
        ("stop", "end_turn"),
        ("length", "max_tokens"),
        ("tool_calls", "tool_use"),
        ("function_call", "tool_use"),
        ("content_filter", "refusal"),
        (None, "end_turn"),
    ],
)
def test_finish_reason_to_stop_reason(finish_reason: str | None, stop_reason: str) -> None:
    completion = {
        "id": "chatcmpl-1",
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": "x"}, "finish_reason": finish_reason}
        ],
    }
    out = chat_response_to_messages(completion, model="claude-sonnet")
    assert out["stop_reason"] == stop_reason
    assert out["usage"] == {
        "input_tokens": 0,
        "output_tokens": 0,
        "cache_read_input_tokens": 0,
        "cache_creation_input_tokens": 0,
    }


def test_chat_refusal_becomes_text_and_ids_are_derived() -> None:
    completion = {
        "id": "msg_already",
        "choices": [
            {
                "message": {"role": "assistant", "content": None, "refusal": "I can't help with that."},
                "finish_reason": "content_filter",
            }
        ],
    }
    out = chat_response_to_messages(completion, model="m")
    assert out["id"] == "msg_already"
    assert out["content"] == [{"type": "text", "text": "I can't help with that."}]
    assert out["stop_reason"] == "refusal"
    no_id = chat_response_to_messages({"choices": []}, model="m")
    assert no_id["id"].startswith("msg_") and no_id["content"] == []


def test_non_object_tool_arguments_are_kept_raw() -> None:
    call = {"id": "c", "type": "function", "function": {"name": "f", "arguments": "[1]"}}
    completion = {
        "choices": [{"message": {"content": None, "tool_calls": [call]}, "finish_reason": "tool_calls"}]
    }
    out = chat_response_to_messages(completion, model="m")
    assert out["content"] == [{"type": "tool_use", "id": "c", "name": "f", "input": {"_raw": "[1]"}}]


def test_usage_conversions_include_cache_tokens() -> None:
    anthropic_usage = {
        "input_tokens": 10,
        "cache_read_input_tokens": 1000,
        "cache_creation_input_tokens": 200,
        "output_tokens": 5,
    }
    canonical = usage_to_chat(anthropic_usage)
    assert canonical == {
        "prompt_tokens": 1210,
        "completion_tokens": 5,
        "total_tokens": 1215,
        "prompt_tokens_details": {"cached_tokens": 1000, "cache_creation_tokens": 200},
    }
    assert usage_from_chat(canonical) == anthropic_usage
    # An OpenAI usage without cache writes, and one with nothing at all.
    assert usage_from_chat({"prompt_tokens": 50, "completion_tokens": 7, "prompt_tokens_details": None}) == {
        "input_tokens": 50,
        "output_tokens": 7,
        "cache_read_input_tokens": 0,
        "cache_creation_input_tokens": 0,
    }
    assert usage_to_chat({})["total_tokens"] == 0


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (400, "invalid_request_error"),
        (401, "authentication_error"),
        (402, "billing_error"),
        (403, "permission_error"),
        (404, "not_found_error"),
        (405, "invalid_request_error"),
        (413, "request_too_large"),
        (429, "rate_limit_error"),
        (500, "api_error"),
        (502, "api_error"),
        (504, "timeout_error"),
        (529, "overloaded_error"),
    ],
)
def test_error_to_anthropic(status: int, kind: str) -> None:
    envelope: dict[str, Any] = {
        "error": {"message": "budget exhausted", "type": "x", "code": "y", "param": None}
    }
    assert error_to_anthropic(status, envelope) == {
        "type": "error",
        "error": {"type": kind, "message": "budget exhausted"},
    }
    if kind != "request_too_large":  # documented by Anthropic (sent by its edge) but absent from SDK types
        anthropic.types.ErrorResponse.model_validate(
            {**error_to_anthropic(status, envelope), "request_id": None}
        )


def test_error_to_anthropic_accepts_the_inner_object() -> None:
    out = error_to_anthropic(400, {"message": "bad", "type": "invalid_request_error"})
    assert out["error"]["message"] == "bad"
