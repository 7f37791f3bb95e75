"""Request translation: canonical chat -> Anthropic Messages, and Messages clients -> chat."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
from anthropic_fixtures import case_files, load

from lockgate.errors import BadRequest, UnsupportedParameter
from lockgate.providers.anthropic import chat_to_messages_request, messages_request_to_chat
from lockgate.providers.anthropic_upstream import JSON_OBJECT_INSTRUCTION


def user(content: Any = "hi") -> dict[str, Any]:
    return {"role": "user", "content": content}


def chat(**params: Any) -> dict[str, Any]:
    return {"model": "claude-sonnet-4-5", "messages": [user()], **params}


def to_messages(**params: Any) -> dict[str, Any]:
    return chat_to_messages_request(chat(**params))[0]


TOOLS = [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}]

# --- golden files -------------------------------------------------------------------------


@pytest.mark.parametrize("path", case_files("chat_to_messages"), ids=lambda p: p.stem)
def test_chat_to_messages_golden(path: Path) -> None:
    case = load(f"chat_to_messages/{path.name}")
    original = copy.deepcopy(case["chat"])
    body, dropped = chat_to_messages_request(case["chat"])
    assert body == case["messages"]
    assert dropped == case["dropped"]
    assert case["chat"] == original, "the canonical request must not be mutated"


@pytest.mark.parametrize("path", case_files("messages_to_chat"), ids=lambda p: p.stem)
def test_messages_to_chat_golden(path: Path) -> None:
    case = load(f"messages_to_chat/{path.name}")
    original = copy.deepcopy(case["messages"])
    dropped: list[str] = []
    assert messages_request_to_chat(case["messages"], dropped=dropped) == case["chat"]
    assert dropped == case["dropped"]
    assert case["messages"] == original


# --- chat -> messages: parameters ---------------------------------------------------------


@pytest.mark.parametrize(
    ("tool_choice", "parallel", "expected"),
    [
        ("auto", None, {"type": "auto"}),
        ("required", None, {"type": "any"}),
        ("none", None, {"type": "none"}),
        (
            {"type": "function", "function": {"name": "get_weather"}},
            None,
            {"type": "tool", "name": "get_weather"},
        ),
        (None, False, {"type": "auto", "disable_parallel_tool_use": True}),
        ("auto", False, {"type": "auto", "disable_parallel_tool_use": True}),
        (
            {"type": "function", "function": {"name": "x"}},
            False,
            {"type": "tool", "name": "x", "disable_parallel_tool_use": True},
        ),
        ("none", False, {"type": "none"}),  # "none" accepts no parallel flag
        (None, True, None),
    ],
)
def test_tool_choice_variants(
    tool_choice: Any, parallel: bool | None, expected: dict[str, Any] | None
) -> None:
    body = to_messages(tools=TOOLS, tool_choice=tool_choice, parallel_tool_calls=parallel)
    assert body.get("tool_choice") == expected


def test_tool_choice_is_not_sent_without_tools() -> None:
    body = to_messages(tool_choice="auto", parallel_tool_calls=False)
    assert "tool_choice" not in body and "tools" not in body


def test_allowed_tools_choice_is_refused() -> None:
    with pytest.raises(UnsupportedParameter) as err:
        to_messages(tools=TOOLS, tool_choice={"type": "allowed_tools", "allowed_tools": {}})
    assert err.value.param == "tool_choice"


def test_stop_sequences_from_string_and_list() -> None:
    assert to_messages(stop="###")["stop_sequences"] == ["###"]
    assert to_messages(stop=["a", "b"])["stop_sequences"] == ["a", "b"]
    assert "stop_sequences" not in to_messages(stop=[])


@pytest.mark.parametrize(("given", "sent"), [(0, 0), (0.7, 0.7), (1, 1), (1.3, 1.0), (2, 1.0)])
def test_temperature_is_clamped_to_anthropic_range(given: float, sent: float) -> None:
    assert to_messages(temperature=given)["temperature"] == sent


def test_max_tokens_precedence_and_default() -> None:
    assert to_messages()["max_tokens"] == 4096
    assert chat_to_messages_request(chat(), default_max_tokens=1000)[0]["max_tokens"] == 1000
    assert to_messages(max_tokens=100)["max_tokens"] == 100
    assert to_messages(max_tokens=100, max_completion_tokens=200)["max_tokens"] == 200
    with pytest.raises(BadRequest) as err:
        to_messages(max_tokens=0)
    assert err.value.param == "max_tokens"


def test_n_greater_than_one_is_refused() -> None:
    assert to_messages(n=1)  # the default is fine
    with pytest.raises(UnsupportedParameter) as err:
        to_messages(n=2)
    assert err.value.param == "n"
    assert err.value.message == "anthropic does not support n > 1"


def test_dropped_params_listed_unless_default() -> None:
    _, dropped = chat_to_messages_request(
        chat(
            logprobs=True,
            top_logprobs=3,
            logit_bias={"50256": -100},
            presence_penalty=0,
            frequency_penalty=0.2,
            seed=7,
            store=False,
            metadata={"team": "a"},
            web_search_options={},
            verbosity=None,
        )
    )
    assert dropped == [
        "logprobs",
        "top_logprobs",
        "logit_bias",
        "frequency_penalty",
        "seed",
        "metadata",
        "web_search_options",
    ]


def test_consumed_params_are_not_forwarded() -> None:
    body = to_messages(stream=True, stream_options={"include_usage": True}, n=1, user="u1", top_k=5)
    assert body["stream"] is True and body["metadata"] == {"user_id": "u1"} and body["top_k"] == 5
    assert "stream_options" not in body and "n" not in body and "user" not in body


def test_legacy_functions_are_refused() -> None:
    with pytest.raises(UnsupportedParameter):
        to_messages(functions=[{"name": "f"}])
    with pytest.raises(UnsupportedParameter) as err:
        chat_to_messages_request(chat(messages=[{"role": "function", "name": "f", "content": "x"}]))
    assert err.value.param == "messages[0].role"


# --- chat -> messages: response_format and reasoning ---------------------------------------


def test_json_object_appends_instruction_to_each_system_shape() -> None:
    fmt = {"type": "json_object"}
    assert to_messages(response_format=fmt)["system"] == JSON_OBJECT_INSTRUCTION
    body = chat_to_messages_request(
        chat(messages=[{"role": "system", "content": "Be brief."}, user()], response_format=fmt)
    )
    assert body[0]["system"] == "Be brief.\n\n" + JSON_OBJECT_INSTRUCTION
    assert body[1] == []  # translated, not dropped
    parts = [{"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}}]
    body = chat_to_messages_request(
        chat(messages=[{"role": "system", "content": parts}, user()], response_format=fmt)
    )
    assert body[0]["system"] == [*parts, {"type": "text", "text": JSON_OBJECT_INSTRUCTION}]


def test_json_schema_native_structured_outputs() -> None:
    schema = {"type": "object", "properties": {"a": {"type": "integer"}}}
    fmt = {"type": "json_schema", "json_schema": {"name": "x", "schema": schema, "strict": True}}
    body, dropped = chat_to_messages_request(chat(response_format=fmt), native_structured_outputs=True)
    assert body["output_config"] == {"format": {"type": "json_schema", "schema": schema}}
    assert "system" not in body and dropped == []


def test_response_format_text_is_consumed_and_bad_formats_rejected() -> None:
    assert "system" not in to_messages(response_format={"type": "text"})
    with pytest.raises(BadRequest):
        to_messages(response_format={"type": "json_schema", "json_schema": {"name": "x"}})
    with pytest.raises(BadRequest):
        to_messages(response_format={"type": "grammar"})


@pytest.mark.parametrize(
    ("effort", "max_tokens", "thinking", "dropped"),
    [
        ("low", 8000, {"type": "enabled", "budget_tokens": 1024}, []),
        ("medium", 8000, {"type": "enabled", "budget_tokens": 4096}, []),
        ("high", 32000, {"type": "enabled", "budget_tokens": 16384}, []),
        ("high", 2000, {"type": "enabled", "budget_tokens": 1999}, []),
        ("low", 1000, None, ["reasoning_effort"]),  # no room for Anthropic's 1024 minimum
        ("minimal", 8000, None, []),
        ("none", 8000, None, []),
    ],
)
def test_reasoning_effort_to_thinking(
    effort: str, max_tokens: int, thinking: dict[str, Any] | None, dropped: list[str]
) -> None:
    body, got_dropped = chat_to_messages_request(chat(reasoning_effort=effort, max_tokens=max_tokens))
    assert body.get("thinking") == thinking
    assert got_dropped == dropped


def test_native_thinking_wins_and_bad_effort_rejected() -> None:
    native = {"type": "adaptive"}
    assert to_messages(thinking=native, reasoning_effort="high")["thinking"] == native
    with pytest.raises(BadRequest) as err:
        to_messages(reasoning_effort="extreme")
    assert err.value.param == "reasoning_effort"


# --- chat -> messages: messages ----------------------------------------------------------


def test_invalid_tool_arguments_name_the_param() -> None:
    call = {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{not json"}}
    messages = [user(), {"role": "assistant", "content": None, "tool_calls": [call]}]
    with pytest.raises(BadRequest) as err:
        chat_to_messages_request(chat(messages=messages))
    assert err.value.param == "messages[1].tool_calls[0].function.arguments"
    call["function"]["arguments"] = "[1, 2]"
    with pytest.raises(BadRequest, match="JSON object"):
        chat_to_messages_request(chat(messages=messages))


def test_tool_result_before_user_text_in_a_merged_turn() -> None:
    call = {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
    messages = [
        user("go"),
        {"role": "assistant", "content": None, "tool_calls": [call]},
        user("also, hurry"),  # a client that put its follow-up before the tool result
        {"role": "tool", "tool_call_id": "c1", "content": "done"},
    ]
    body, _ = chat_to_messages_request(chat(messages=messages))
    assert body["messages"][2] == {
        "role": "user",
        "content": [
            {"type": "tool_result", "tool_use_id": "c1", "content": "done"},
            {"type": "text", "text": "also, hurry"},
        ],
    }


def test_consecutive_messages_merge_and_empty_assistant_is_skipped() -> None:
    messages = [
        user("a"),
        user([{"type": "text", "text": "b"}]),
        {"role": "assistant", "content": ""},
        {"role": "assistant", "content": "c"},
        {"role": "assistant", "content": "d"},
    ]
    body, _ = chat_to_messages_request(chat(messages=messages))
    assert body["messages"] == [
        {"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]},
        {"role": "assistant", "content": [{"type": "text", "text": "c"}, {"type": "text", "text": "d"}]},
    ]


def test_system_messages_anywhere_are_hoisted() -> None:
    messages = [user("a"), {"role": "system", "content": "late rule"}, {"role": "assistant", "content": "b"}]
    body, _ = chat_to_messages_request(chat(messages=messages))
    assert body["system"] == "late rule"
    assert [m["role"] for m in body["messages"]] == ["user", "assistant"]


@pytest.mark.parametrize(
    ("part", "error", "param"),
    [
        (
            {"type": "input_audio", "input_audio": {"data": "xx", "format": "wav"}},
            UnsupportedParameter,
            "messages[0].content[0]",
        ),
        (
            {"type": "image_url", "image_url": {"url": "data:image/png,rawbytes"}},
            BadRequest,
            "messages[0].content[0].image_url.url",
        ),
        (
            {"type": "image_url", "image_url": {"url": "ftp://x/y.png"}},
            BadRequest,
            "messages[0].content[0].image_url.url",
        ),
        (
            {"type": "file", "file": {"file_id": "file-abc"}},
            UnsupportedParameter,
            "messages[0].content[0].file",
        ),
        (
            {"type": "file", "file": {"file_data": "data:text/csv;base64,YQ=="}},
            UnsupportedParameter,
            "messages[0].content[0].file.file_data",
        ),
        ({"text": "no type"}, BadRequest, "messages[0].content[0]"),
    ],
)
def test_unsupported_user_parts(part: dict[str, Any], error: type[Exception], param: str) -> None:
    with pytest.raises(error) as err:
        chat_to_messages_request(chat(messages=[user([part])]))
    assert err.value.param == param  # type: ignore[attr-defined]


def test_image_url_given_as_plain_string() -> None:
    body = to_messages(messages=[user([{"type": "image_url", "image_url": "https://x.test/a.png"}])])
    assert body["messages"][0]["content"][0]["source"] == {"type": "url", "url": "https://x.test/a.png"}


@pytest.mark.parametrize(
    ("messages", "param"),
    [
        ([], "messages"),
        ("hi", "messages"),
        (["hi"], "messages[0]"),
        ([{"role": "robot", "content": "x"}], "messages[0].role"),
        ([{"role": "tool", "content": "x"}], "messages[0].tool_call_id"),
        (
            [user(), {"role": "assistant", "tool_calls": [{"type": "function", "function": {"name": "f"}}]}],
            "messages[1].tool_calls[0]",
        ),
    ],
)
def test_malformed_messages(messages: Any, param: str) -> None:
    with pytest.raises(BadRequest) as err:
        chat_to_messages_request(chat(messages=messages))
    assert err.value.param == param


def test_non_function_tools_are_refused() -> None:
    with pytest.raises(UnsupportedParameter) as err:
        to_messages(tools=[*TOOLS, {"type": "custom", "custom": {"name": "x"}}])
    assert err.value.param == "tools[1]"


# --- messages -> chat (ingress) -----------------------------------------------------------


def anthropic_request(**params: Any) -> dict[str, Any]:
    return {"model": "claude-sonnet", "max_tokens": 256, "messages": [user()], **params}


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"max_tokens": 1, "messages": [user()]}, "model"),
        ({"model": "m", "messages": [user()]}, "max_tokens"),
        ({"model": "m", "max_tokens": True, "messages": [user()]}, "max_tokens"),
        ({"model": "m", "max_tokens": 1}, "messages"),
        (
            anthropic_request(messages=[user(), {"role": "assistant", "content": "x"}, user(42)]),
            "messages[2].content",
        ),
        (anthropic_request(messages=[{"role": "system", "content": "x"}]), "messages[0].role"),
        (anthropic_request(messages=[user([{"type": "text"}])]), "messages[0].content[0].text"),
        (anthropic_request(messages=[user([{"type": "tool_result"}])]), "messages[0].content[0].tool_use_id"),
        (anthropic_request(system=[{"type": "image"}]), "system[0]"),
        (anthropic_request(system=5), "system"),
        (anthropic_request(temperature="hot"), "temperature"),
        (anthropic_request(stop_sequences="END"), "stop_sequences"),
        (anthropic_request(stream="yes"), "stream"),
        (anthropic_request(tools={"name": "x"}), "tools"),
        (anthropic_request(tools=[{"description": "no name"}]), "tools[0].name"),
        (anthropic_request(tool_choice={"type": "tool"}), "tool_choice"),
        (anthropic_request(metadata="u1"), "metadata"),
    ],
)
def test_ingress_validation_names_the_param(body: Any, param: str) -> None:
    with pytest.raises(BadRequest) as err:
        messages_request_to_chat(body)
    assert err.value.param == param


@pytest.mark.parametrize(
    ("block", "param"),
    [
        (
            {"type": "document", "source": {"type": "url", "url": "https://x.test/a.pdf"}},
            "messages[0].content[0].source",
        ),
        ({"type": "image", "source": {"type": "file", "file_id": "file_1"}}, "messages[0].content[0].source"),
        ({"type": "search_result", "source": "s", "title": "t", "content": []}, "messages[0].content[0]"),
        (
            {"type": "tool_result", "tool_use_id": "t1", "content": [{"type": "image", "source": {}}]},
            "messages[0].content[0].content[0]",
        ),
    ],
)
def test_ingress_unsupported_blocks(block: dict[str, Any], param: str) -> None:
    with pytest.raises(UnsupportedParameter) as err:
        messages_request_to_chat(anthropic_request(messages=[user([block])]))
    assert err.value.param == param


def test_ingress_server_tools_are_refused() -> None:
    with pytest.raises(UnsupportedParameter) as err:
        messages_request_to_chat(
            anthropic_request(tools=[{"type": "web_search_20250305", "name": "web_search"}])
        )
    assert err.value.param == "tools[0]"


def test_ingress_documents() -> None:
    text_doc = {
        "type": "document",
        "source": {"type": "text", "media_type": "text/plain", "data": "Clause 1."},
    }
    pdf_doc = {
        "type": "document",
        "title": "a.pdf",
        "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBERi0="},
    }
    out = messages_request_to_chat(anthropic_request(messages=[user([text_doc, pdf_doc])]))
    assert out["messages"][0]["content"] == [
        {"type": "text", "text": "Clause 1."},
        {"type": "file", "file": {"file_data": "data:application/pdf;base64,JVBERi0=", "filename": "a.pdf"}},
    ]


@pytest.mark.parametrize(
    ("choice", "expected"),
    [
        ({"type": "auto"}, {"tool_choice": "auto"}),
        ({"type": "any"}, {"tool_choice": "required"}),
        ({"type": "none"}, {"tool_choice": "none"}),
        ({"type": "tool", "name": "f"}, {"tool_choice": {"type": "function", "function": {"name": "f"}}}),
        (
            {"type": "auto", "disable_parallel_tool_use": True},
            {"tool_choice": "auto", "parallel_tool_calls": False},
        ),
    ],
)
def test_ingress_tool_choice(choice: dict[str, Any], expected: dict[str, Any]) -> None:
    out = messages_request_to_chat(anthropic_request(tool_choice=choice))
    assert {k: out[k] for k in ("tool_choice", "parallel_tool_calls") if k in out} == expected


def test_ingress_output_config_and_drops() -> None:
    schema = {"type": "object", "properties": {}}
    dropped: list[str] = []
    out = messages_request_to_chat(
        anthropic_request(
            output_config={"format": {"type": "json_schema", "schema": schema}, "effort": "high"},
            service_tier="auto",
            container=None,
        ),
        dropped=dropped,
    )
    assert out["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "output", "schema": schema},
    }
    assert dropped == ["output_config.effort", "service_tier"]
    assert "stream" not in out and "stream_options" not in out


def test_ingress_error_tool_result_with_blocks() -> None:
    block = {
        "type": "tool_result",
        "tool_use_id": "t1",
        "is_error": True,
        "content": [{"type": "text", "text": "boom"}, {"type": "text", "text": "!"}],
    }
    out = messages_request_to_chat(anthropic_request(messages=[user([block])]))
    assert out["messages"] == [{"role": "tool", "tool_call_id": "t1", "content": "Error: boom!"}]


def test_ingress_assistant_shapes() -> None:
    messages = [
        user(),
        {"role": "assistant", "content": [{"type": "thinking", "thinking": "hm", "signature": "s"}]},
        user("again"),
        {"role": "assistant", "content": "plain"},
    ]
    out = messages_request_to_chat(anthropic_request(messages=messages))
    assert out["messages"][1] == {"role": "assistant", "content": ""}
    assert out["messages"][3] == {"role": "assistant", "content": "plain"}
    with pytest.raises(UnsupportedParameter) as err:
        messages_request_to_chat(
            anthropic_request(
                messages=[user(), {"role": "assistant", "content": [{"type": "server_tool_use"}]}]
            )
        )
    assert err.value.param == "messages[1].content[0]"
