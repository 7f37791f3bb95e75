"""Random bodies never make Lockgate fail: only 4xx, or upstream statuses, never a bare 500."""

from __future__ import annotations

import json

import httpx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.gateway_harness import GatewayThread

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**40), 2**40)
    | st.floats(allow_nan=False)
    | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=20,
)
known_keys = st.sampled_from(
    [
        "model",
        "messages",
        "stream",
        "n",
        "max_tokens",
        "tools",
        "tool_choice",
        "input",
        "prompt",
        "temperature",
        "stream_options",
        "system",
        "response_format",
        "stop",
    ]
)
message = st.fixed_dictionaries(
    {"role": st.sampled_from(["user", "assistant", "system", "tool", "x"]), "content": json_values}
)
bodies = st.one_of(
    json_values,
    st.dictionaries(known_keys, json_values, max_size=6),
    st.fixed_dictionaries(
        {
            "model": st.sampled_from(["gpt-4o-mini", "claude-sonnet", "text-embedding-3-small", "nope"]),
            "messages": st.lists(message, max_size=3),
        },
        optional={
            "stream": json_values,
            "max_tokens": json_values,
            "tools": json_values,
            "input": json_values,
            "prompt": json_values,
            "n": st.integers(-2, 3),
            "tool_choice": json_values,
        },
    ),
)
paths = st.sampled_from(["/v1/chat/completions", "/v1/completions", "/v1/embeddings", "/v1/messages"])
ALLOWED_5XX = {502, 503, 504}


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(path=paths, body=bodies | st.binary(max_size=64))
def test_random_bodies(gateway: GatewayThread, path: str, body: object) -> None:
    # json.dumps writes Infinity/NaN for non-finite floats: not JSON, which Lockgate must refuse cleanly.
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    with httpx.Client(base_url=gateway.url, timeout=10) as http:
        response = http.post(path, content=content, headers={"anthropic-version": "2023-06-01"})
    assert response.status_code < 500 or response.status_code in ALLOWED_5XX, (
        response.status_code,
        response.text,
    )
    if response.status_code >= 400:
        payload = response.json()
        assert "error" in payload
