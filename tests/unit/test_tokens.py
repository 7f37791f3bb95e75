from __future__ import annotations

import subprocess
import sys

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lockgate.catalog import tokens
from lockgate.catalog.tokens import (
    CL100K,
    IMAGE_TOKENS,
    O200K,
    count_chat_completion,
    count_chat_prompt,
    count_text,
    encoding_name_for,
    get_encoding,
    warm_up,
)

# The example conversation from OpenAI's "How to count tokens with tiktoken" cookbook,
# which reports 129 prompt tokens for gpt-3.5-turbo/gpt-4 and 124 for gpt-4o/gpt-4o-mini.
COOKBOOK_MESSAGES = [
    {
        "role": "system",
        "content": "You are a helpful, pattern-following assistant that translates corporate jargon "
        "into plain English.",
    },
    {"role": "system", "name": "example_user", "content": "New synergies will help drive top-line growth."},
    {
        "role": "system",
        "name": "example_assistant",
        "content": "Things working well together will increase revenue.",
    },
    {
        "role": "system",
        "name": "example_user",
        "content": "Let's circle back when we have more bandwidth to touch base on opportunities for "
        "increased leverage.",
    },
    {
        "role": "system",
        "name": "example_assistant",
        "content": "Let's talk later when we're less busy about how to do better.",
    },
    {
        "role": "user",
        "content": "This late pivot means we don't have time to boil the ocean for the client deliverable.",
    },
]


def reference(text: str, encoding: str = O200K) -> int:
    """Cross-check through bpe_openai's public tiktoken-style API."""
    return len(get_encoding(encoding).encode_ordinary(text))


# --- plain text -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "model", "expected"),
    [
        ("hello world", None, 2),
        ("hello world", "gpt-4o", 2),
        ("hello world", "gpt-3.5-turbo", 2),
        ("tiktoken is great!", "gpt-4", 6),
        ("antidisestablishmentarianism", "gpt-4o", 6),
        ("2 + 2 = 4", "gpt-4", 7),
        ("お誕生日おめでとう", "gpt-4", 9),  # cl100k
        ("お誕生日おめでとう", "gpt-4o", 8),  # o200k
        ("", None, 0),
    ],
)
def test_known_counts(text: str, model: str | None, expected: int) -> None:
    assert count_text(text, model) == expected


@pytest.mark.parametrize(
    ("model", "encoding"),
    [
        (None, O200K),
        ("", O200K),
        ("gpt-4o", O200K),
        ("gpt-4o-mini-2024-07-18", O200K),
        ("gpt-4.1-nano", O200K),
        ("gpt-4.5-preview", O200K),
        ("o3", O200K),
        ("o4-mini", O200K),
        ("gpt-5", O200K),
        ("claude-sonnet-4-5", O200K),
        ("llama-3.3-70b-versatile", O200K),
        ("gpt-4", CL100K),
        ("gpt-4-turbo", CL100K),
        ("gpt-4-0613", CL100K),
        ("gpt-3.5-turbo", CL100K),
        ("gpt-3.5-turbo-instruct", CL100K),
        ("text-embedding-3-small", CL100K),
        ("text-embedding-ada-002", CL100K),
        ("openai/gpt-4", CL100K),
        ("GPT-3.5-Turbo", CL100K),
    ],
)
def test_encoding_choice(model: str | None, encoding: str) -> None:
    assert encoding_name_for(model) == encoding


def test_counts_match_the_public_encoder() -> None:
    text = "Lockgate routes every request. 日本語のテキスト, émojis 🎉, code: `x = f(y) ** 2`\n\n\tdone"
    assert count_text(text) == reference(text)
    assert count_text(text, "gpt-4") == reference(text, CL100K)


def test_public_fallback_counter_agrees_and_handles_huge_text() -> None:
    encoding = get_encoding()

    class PublicOnly:  # an Encoding without the private fast path
        def encode_ordinary(self, text: str) -> list[int]:
            return encoding.encode_ordinary(text)

    counter = tokens._make_counter(PublicOnly())
    text = "The quick brown fox jumps over the lazy dog. " * 50
    assert counter(text) == count_text(text)
    huge = "word " * 300_000  # 1.5M chars: over the public encoder's input limit
    assert counter(huge) == pytest.approx(count_text(huge), rel=0.001)


def test_special_token_text_is_counted_as_plain_text() -> None:
    # User text may contain "<|endoftext|>"; it must be counted, not rejected.
    assert count_text("<|endoftext|>") == reference("<|endoftext|>")
    assert count_text("<|endoftext|>") > 1


def test_lone_surrogates_and_odd_types() -> None:
    assert count_text("a\ud800b") > 0
    assert count_text(None) == 0  # type: ignore[arg-type]
    assert count_text(42) == 0  # type: ignore[arg-type]
    assert count_text(b"bytes") == 0  # type: ignore[arg-type]
    assert count_text("hello world", model=123) == 2  # type: ignore[arg-type]


def test_long_text() -> None:
    # "hello" + 299,999 x " hello" + a trailing space.
    assert count_text("hello " * 300_000) == 300_001


def test_warm_up_loads_both_encodings() -> None:
    warm_up()
    assert set(tokens._counters) >= {O200K, CL100K}
    assert get_encoding(CL100K).name == CL100K
    assert get_encoding() is get_encoding(O200K)
    assert get_encoding().encode_ordinary("hello world") == [24912, 2375]


# --- chat prompts ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("model", "expected"),
    [("gpt-3.5-turbo", 129), ("gpt-4", 129), ("gpt-4-0613", 129), ("gpt-4o", 124), ("gpt-4o-mini", 124)],
)
def test_openai_cookbook_example(model: str, expected: int) -> None:
    assert count_chat_prompt(COOKBOOK_MESSAGES, model) == expected


def test_recipe_structure() -> None:
    n = reference
    assert count_chat_prompt([]) == 3
    assert count_chat_prompt([{"role": "user", "content": "hi there"}]) == 3 + 3 + n("user") + n("hi there")
    named = [{"role": "user", "name": "alice", "content": "hi"}]
    assert count_chat_prompt(named) == 3 + 3 + n("user") + n("alice") + 1 + n("hi")


def test_multipart_content() -> None:
    n = reference
    parts = [
        {"type": "text", "text": "What is in this picture?"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA", "detail": "high"}},
        {"type": "text", "text": "Answer briefly."},
    ]
    expected = 3 + 3 + n("user") + n("What is in this picture?") + IMAGE_TOKENS + n("Answer briefly.")
    assert count_chat_prompt([{"role": "user", "content": parts}]) == expected
    # Anthropic-style image blocks and Responses-style input_image count the same.
    for kind in ("image", "input_image"):
        only = [{"role": "user", "content": [{"type": kind, "source": {}}]}]
        assert count_chat_prompt(only) == 3 + 3 + n("user") + IMAGE_TOKENS


def test_tool_calls_and_tool_results() -> None:
    n = reference
    arguments = '{"city": "Paris", "unit": "celsius"}'
    messages = [
        {"role": "user", "content": "Weather in Paris?"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": arguments},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": '{"temp": 21}'},
    ]
    expected = (
        3
        + 3 + n("user") + n("Weather in Paris?")
        + 3 + n("assistant") + n("get_weather") + n(arguments)
        + 3 + n("tool") + n("call_1") + n('{"temp": 21}')
    )  # fmt: skip
    assert count_chat_prompt(messages) == expected


def test_legacy_function_call_and_object_arguments() -> None:
    n = reference
    message = {"role": "assistant", "function_call": {"name": "f", "arguments": {"a": 1}}}
    assert count_chat_prompt([message]) == 3 + 3 + n("assistant") + n("f") + n('{"a":1}')


def test_tool_definitions_count_their_json() -> None:
    tool = {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Get the current weather for a city.",
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string"}},
                "required": ["city"],
            },
        },
    }
    messages = [{"role": "user", "content": "hi"}]
    base = count_chat_prompt(messages)
    assert count_chat_prompt(messages, tools=[tool]) == base + reference(orjson.dumps(tool).decode())
    assert count_chat_prompt(messages, tools=[tool, tool]) == base + 2 * reference(
        orjson.dumps(tool).decode()
    )


def test_model_changes_encoding() -> None:
    messages = [{"role": "user", "content": "お誕生日おめでとう"}]
    assert count_chat_prompt(messages, "gpt-4") == count_chat_prompt(messages, "gpt-4o") + 1


# --- completions ----------------------------------------------------------------


def test_count_chat_completion() -> None:
    n = reference
    assert count_chat_completion("hello world") == 2
    assert count_chat_completion(None) == 0
    calls = [{"id": "c", "type": "function", "function": {"name": "lookup", "arguments": '{"q": "x"}'}}]
    assert count_chat_completion("", calls) == n("lookup") + n('{"q": "x"}')
    assert count_chat_completion("ok", calls, model="gpt-4") == n("ok", CL100K) + n("lookup", CL100K) + n(
        '{"q": "x"}', CL100K
    )


# --- robustness -----------------------------------------------------------------


@pytest.mark.parametrize(
    "messages",
    [
        None,
        "a string",
        {"role": "user"},
        [None, 1, 2.5, True, [], "bare string message"],
        [{"role": None, "content": 5}],
        [{"role": "user", "content": [None, 3, ["nested"], {"type": ["unhashable"]}, {"text": 7}]}],
        [{"role": "user", "content": {"type": "text", "text": "a dict, not a list"}}],
        [{"role": "assistant", "tool_calls": "nope"}],
        [
            {
                "role": "assistant",
                "tool_calls": [None, {"function": None}, {"function": {"name": 1, "arguments": []}}],
            }
        ],
        [{1: "non-string key", "content": "x"}],
    ],
)
def test_odd_shapes_never_raise(messages: object) -> None:
    value = count_chat_prompt(messages, tools=[{1: {2}}, object(), "x"])  # type: ignore[arg-type]
    assert isinstance(value, int) and value >= 3


def test_unserialisable_tool_definitions() -> None:
    deep: object = "leaf"
    for _ in range(300):  # deeper than orjson serialises
        deep = {"n": deep}
    assert count_chat_prompt([], tools=[deep, 2**70]) > 3
    assert count_chat_completion("x", tool_calls=[{"function": {"name": "f", "arguments": deep}}]) > 1


json_scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(st.characters(codec=None))
json_like = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(
            st.sampled_from(
                ["role", "content", "name", "type", "text", "tool_calls", "function", "arguments"]
            )
            | st.text(max_size=5),
            children,
            max_size=4,
        )
    ),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    messages=st.lists(json_like, max_size=5) | json_like,
    tools=st.none() | st.lists(json_like, max_size=3),
    model=st.none() | st.text(max_size=12) | st.sampled_from(["gpt-4", "gpt-4o"]),
)
def test_arbitrary_json_like_messages_never_raise(messages: object, tools: object, model: str | None) -> None:
    value = count_chat_prompt(messages, model, tools)  # type: ignore[arg-type]
    assert isinstance(value, int) and value >= 3


@settings(max_examples=200, deadline=None)
@given(text=json_like, tool_calls=json_like)
def test_arbitrary_completions_never_raise(text: object, tool_calls: object) -> None:
    value = count_chat_completion(text, tool_calls)  # type: ignore[arg-type]
    assert isinstance(value, int) and value >= 0


def test_importing_the_catalog_does_not_load_the_tokenizer() -> None:
    code = "import sys, lockgate.catalog; assert 'bpe_openai' not in sys.modules"
    subprocess.run([sys.executable, "-W", "error", "-c", code], check=True)
