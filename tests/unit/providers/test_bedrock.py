"""Bedrock: Converse translation, the binary event stream, SigV4, embeddings and errors."""

from __future__ import annotations

import hashlib
import hmac
import logging
import struct
import zlib
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import openai
import orjson
import pytest
from anthropic_fixtures import openai_sdk_final_completion, zero_created

from lockgate.errors import BadRequest, UnsupportedParameter, UpstreamError, UpstreamProtocolError
from lockgate.providers.base import CHAT, EMBEDDINGS, Body, Credential, get_provider, parse_upstream_error
from lockgate.providers.bedrock_converse import ConverseStreamToChat, chat_to_converse, converse_to_chat
from lockgate.providers.bedrock_eventstream import EventStreamDecoder

FIXTURES = Path(__file__).parent / "fixtures" / "bedrock"
BEDROCK = get_provider("bedrock")
SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"


def load(name: str) -> Any:
    return orjson.loads((FIXTURES / name).read_bytes())


# --- the event stream framing, against frames built by hand from the spec --------------------


def frame(headers: list[tuple[str, int, bytes]], payload: bytes) -> bytes:
    """A message built straight from the wire spec (independent of the module's encoder)."""
    raw = b""
    for name, kind, value in headers:
        raw += bytes([len(name)]) + name.encode() + bytes([kind])
        raw += struct.pack(">H", len(value)) + value if kind in (6, 7) else value
    total = 12 + len(raw) + len(payload) + 4
    prelude = struct.pack(">II", total, len(raw))
    prelude += struct.pack(">I", zlib.crc32(prelude))
    body = prelude + raw + payload
    return body + struct.pack(">I", zlib.crc32(body))


def event_frame(event: str, payload: dict) -> bytes:
    headers = [(":event-type", 7, event.encode()), (":content-type", 7, b"application/json"),
               (":message-type", 7, b"event")]  # fmt: skip
    return frame(headers, orjson.dumps(payload))


def test_decoder_reassembles_messages_split_anywhere() -> None:
    data = event_frame("messageStart", {"role": "assistant"}) + event_frame(
        "contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": "héllo"}}
    )
    decoder = EventStreamDecoder()
    events = []
    for i in range(len(data)):  # one byte at a time: every split point
        events.extend(decoder.feed(data[i : i + 1]))
    assert events == [
        ("messageStart", {"role": "assistant"}),
        ("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": "héllo"}}),
    ]
    assert decoder.pending == 0


def test_decoder_reads_every_header_type() -> None:
    headers = [
        (":message-type", 7, b"event"),
        (":event-type", 7, b"metadata"),
        ("flag", 0, b""),
        ("byte", 2, b"\x7f"),
        ("short", 3, struct.pack(">h", -2)),
        ("int", 4, struct.pack(">i", 70000)),
        ("long", 5, struct.pack(">q", 2**40)),
        ("blob", 6, b"\x00\x01"),
        ("ts", 8, struct.pack(">q", 1_700_000_000_000)),
        ("uuid", 9, bytes(range(16))),
    ]
    assert EventStreamDecoder().feed(frame(headers, b'{"usage": {}}')) == [("metadata", {"usage": {}})]


def test_decoder_turns_exceptions_into_exception_events() -> None:
    headers = [(":exception-type", 7, b"throttlingException"), (":content-type", 7, b"application/json"),
               (":message-type", 7, b"exception")]  # fmt: skip
    data = frame(headers, b'{"message":"Too many tokens, please wait before trying again."}')
    assert EventStreamDecoder().feed(data) == [
        (
            "exception",
            {"type": "throttlingException", "message": "Too many tokens, please wait before trying again."},
        )
    ]


@pytest.mark.parametrize("where", ["prelude", "message"])
def test_decoder_rejects_bad_crcs(where: str) -> None:
    data = bytearray(event_frame("messageStop", {"stopReason": "end_turn"}))
    data[9 if where == "prelude" else -1] ^= 0xFF
    with pytest.raises(UpstreamProtocolError, match="CRC"):
        EventStreamDecoder().feed(bytes(data))


def test_decoder_rejects_impossible_lengths() -> None:
    prelude = struct.pack(">II", 8, 0)
    with pytest.raises(UpstreamProtocolError, match="length"):
        EventStreamDecoder().feed(prelude + struct.pack(">I", zlib.crc32(prelude)))


# --- Converse translation ------------------------------------------------------------------


def test_chat_to_converse_golden() -> None:
    case = load("request_tools_images.json")
    before = orjson.dumps(case["chat"])
    body, dropped = chat_to_converse(case["chat"])
    assert body == case["converse"]
    assert dropped == case["dropped"]
    assert orjson.dumps(case["chat"]) == before


def test_converse_to_chat_golden() -> None:
    case = load("response_tools_cache.json")
    out = converse_to_chat(case["converse"], model="anthropic.claude-sonnet-4-5-20250929-v1:0")
    assert out.pop("id").startswith("chatcmpl-")
    assert zero_created(out) == case["chat"]
    openai.types.chat.ChatCompletion.model_validate({**out, "id": "x"})


@pytest.mark.parametrize(
    ("stop_reason", "finish"),
    [
        ("end_turn", "stop"),
        ("stop_sequence", "stop"),
        ("max_tokens", "length"),
        ("tool_use", "tool_calls"),
        ("guardrail_intervened", "content_filter"),
        ("content_filtered", "content_filter"),
        ("model_context_window_exceeded", "length"),
    ],
)
def test_stop_reasons(stop_reason: str, finish: str) -> None:
    payload = {
        "output": {"message": {"role": "assistant", "content": [{"text": "x"}]}},
        "stopReason": stop_reason,
    }
    assert converse_to_chat(payload)["choices"][0]["finish_reason"] == finish


def test_stream_golden_through_the_binary_decoder_and_the_sdk() -> None:
    case = load("stream_events.json")
    wire = b"".join(event_frame(name, {**payload, "p": "abcd"}) for name, payload in case["events"])
    translator = ConverseStreamToChat("anthropic.claude-3-5-haiku-20241022-v1:0")
    decoder = BEDROCK.stream_decoder(CHAT)
    chunks = []
    for start in range(0, len(wire), 37):  # arbitrary network-sized pieces
        for name, payload in decoder.feed(wire[start : start + 37]):
            chunks.extend(translator.feed(name, payload))
    chunks.extend(translator.finish())
    assert translator.done
    assert [c["choices"][0]["delta"] for c in chunks if c["choices"]] == case["deltas"]
    assert [c["choices"][0]["finish_reason"] for c in chunks if c["choices"]][-1] == case["finish_reason"]
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"] == case["usage"]
    assert len({c["id"] for c in chunks}) == 1
    sse = b"".join(b"data: " + orjson.dumps(c) + b"\n\n" for c in chunks) + b"data: [DONE]\n\n"
    final = openai_sdk_final_completion(sse)
    assert final.choices[0].message.content == "Checking both."
    assert [c.function.arguments for c in final.choices[0].message.tool_calls] == ['{"city":"Rome"}', "{}"]


def test_stream_exception_raises_with_its_type() -> None:
    translator = ConverseStreamToChat("m")
    with pytest.raises(UpstreamError) as err:
        translator.feed("exception", {"type": "modelStreamErrorException", "message": "The model failed."})
    assert (err.value.message, err.value.code, err.value.type) == (
        "The model failed.",
        "modelStreamErrorException",
        "api_error",
    )


FG_TOOLS = [{"type": "function", "function": {"name": "f"}}, {"type": "function", "function": {"name": "g"}}]


@pytest.mark.parametrize(
    ("change", "param"),
    [
        ({"n": 2}, "n"),
        ({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "https://x/a.png"}}]}]},
         "messages[0].content[0].image_url.url"),
        ({"messages": [{"role": "user", "content": [{"type": "input_audio", "input_audio": {}}]}]},
         "messages[0].content[0]"),
        ({"tools": FG_TOOLS,
          "tool_choice": {"type": "allowed_tools", "allowed_tools": {"mode": "required", "tools": FG_TOOLS}}},
         "tool_choice"),
    ],
)  # fmt: skip
def test_refusals_name_the_parameter(change: dict, param: str) -> None:
    data = {"model": "amazon.nova-pro-v1:0", "messages": [{"role": "user", "content": "hi"}], **change}
    with pytest.raises(UnsupportedParameter) as err:
        chat_to_converse(data)
    assert err.value.param == param


def test_tool_choice_none_withholds_tools_unless_history_used_them() -> None:
    tools = [{"type": "function", "function": {"name": "f"}}]
    fresh = {
        "model": "m",
        "messages": [{"role": "user", "content": "hi"}],
        "tools": tools,
        "tool_choice": "none",
    }
    assert "toolConfig" not in chat_to_converse(fresh)[0]
    used = {
        **fresh,
        "messages": [
            {"role": "user", "content": "hi"},
            {"role": "assistant", "tool_calls": [{"id": "t", "type": "function", "function": {"name": "f"}}]},
            {"role": "tool", "tool_call_id": "t", "content": "ok"},
        ],
    }
    with pytest.raises(UnsupportedParameter):
        chat_to_converse(used)


def test_reasoning_effort_is_dropped_for_non_claude_models() -> None:
    data = {
        "model": "amazon.nova-pro-v1:0",
        "messages": [{"role": "user", "content": "hi"}],
        "reasoning_effort": "high",
    }
    body, dropped = chat_to_converse(data)
    assert dropped == ["reasoning_effort"] and "additionalModelRequestFields" not in body


# --- the provider: URLs and SigV4 ----------------------------------------------------------


def _cred(**options: Any) -> Credential:
    return Credential("aws", "bedrock", BEDROCK.default_base_url, options={"region": "eu-west-1", **options})


def _sigv4(method: str, url: str, headers: dict[str, str], body: bytes, region: str) -> str:
    """The SigV4 signature per AWS's published algorithm (double-encoded path: not S3)."""
    auth = headers["Authorization"]
    signed = auth.split("SignedHeaders=")[1].split(",")[0].split(";")
    parts = urlsplit(url)
    lower = {k.lower(): v for k, v in headers.items()}
    lower["host"] = parts.netloc
    canonical = "\n".join(
        [
            method,
            quote(parts.path, safe="/~"),
            parts.query,
            "".join(f"{h}:{lower[h].strip()}\n" for h in signed),
            ";".join(signed),
            hashlib.sha256(body).hexdigest(),
        ]
    )
    amz_date = lower["x-amz-date"]
    scope = f"{amz_date[:8]}/{region}/bedrock/aws4_request"
    to_sign = f"AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{hashlib.sha256(canonical.encode()).hexdigest()}"
    key = f"AWS4{SECRET}".encode()
    for piece in (amz_date[:8], region, "bedrock", "aws4_request"):
        key = hmac.new(key, piece.encode(), hashlib.sha256).digest()
    return hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()


@pytest.mark.parametrize("session_token", [None, "FwoGZXIvYXdzEXAMPLE"])
def test_requests_are_signed_with_sigv4(session_token: str | None) -> None:
    cred = _cred(access_key_id="AKIDEXAMPLE", secret_access_key=SECRET, session_token=session_token)
    body = Body(
        {"model": "anthropic.claude-3-haiku-20240307-v1:0", "messages": [{"role": "user", "content": "hi"}]}
    )
    request = BEDROCK.build_request(CHAT, body, cred)
    assert request.url == (
        "https://bedrock-runtime.eu-west-1.amazonaws.com/model/anthropic.claude-3-haiku-20240307-v1%3A0/converse"
    )
    auth = request.headers["Authorization"]
    assert auth.startswith("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/")
    assert auth.endswith(
        "Signature=" + _sigv4("POST", request.url, request.headers, request.body, "eu-west-1")
    )
    assert request.headers.get("X-Amz-Security-Token") == session_token
    assert "x-amz-security-token" in auth.lower() if session_token else "security-token" not in auth.lower()


def test_stream_url_and_accept() -> None:
    cred = _cred(access_key_id="AKIDEXAMPLE", secret_access_key=SECRET)
    body = Body(
        {"model": "amazon.nova-lite-v1:0", "messages": [{"role": "user", "content": "hi"}], "stream": True}
    )
    request = BEDROCK.build_request(CHAT, body, cred)
    assert request.url.endswith("/model/amazon.nova-lite-v1%3A0/converse-stream")
    assert request.headers["accept"] == "application/vnd.amazon.eventstream"
    assert "stream" not in orjson.loads(request.body)


def test_bedrock_api_key_is_a_bearer_token() -> None:
    cred = Credential("aws", "bedrock", BEDROCK.default_base_url, api_key="ABSKexample")
    request = BEDROCK.build_request(
        CHAT, Body({"model": "m.x", "messages": [{"role": "user", "content": "hi"}]}), cred
    )
    assert request.headers["authorization"] == "Bearer ABSKexample"
    assert request.url.startswith("https://bedrock-runtime.us-east-1.amazonaws.com/")


def test_botocore_debug_logs_leave_out_the_session_token(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="botocore")
    token = "FwoGZXIvYXdzEXAMPLE-session-token-0123"
    cred = _cred(access_key_id="AKIDEXAMPLE", secret_access_key=SECRET, session_token=token)
    sent = BEDROCK.build_request(
        CHAT, Body({"model": "m.x", "messages": [{"role": "user", "content": "hi"}]}), cred
    )
    assert sent.headers["X-Amz-Security-Token"] == token  # signed and sent
    assert "CanonicalRequest" in caplog.text and "x-amz-security-token:<redacted>" in caplog.text
    assert token not in caplog.text and all(token not in repr(r.__dict__) for r in caplog.records)


def test_an_integration_without_credentials_is_a_bad_request() -> None:
    body = Body({"model": "m.x", "messages": [{"role": "user", "content": "hi"}]})
    with pytest.raises(BadRequest, match="no credentials"):
        BEDROCK.build_request(CHAT, body, _cred())


def test_check_credential_names_the_field_at_fault() -> None:
    def param(cred: Credential) -> str | None:
        problem = BEDROCK.check_credential(cred)
        return problem.param if problem is not None else None

    assert param(_cred()) == "api_key"
    assert param(_cred(access_key_id="A")) == "options.secret_access_key"
    assert param(_cred(secret_access_key="S")) == "options.access_key_id"
    assert param(_cred(access_key_id="A", secret_access_key="S")) is None
    assert param(Credential("aws", "bedrock", BEDROCK.default_base_url, api_key="ABSK")) is None


# --- embeddings and errors ------------------------------------------------------------------


def test_titan_and_cohere_embeddings() -> None:
    cred = Credential("aws", "bedrock", BEDROCK.default_base_url, api_key="k")
    titan = BEDROCK.build_request(
        EMBEDDINGS, Body({"model": "amazon.titan-embed-text-v2:0", "input": "hello", "dimensions": 256}), cred
    )
    assert titan.url.endswith("/model/amazon.titan-embed-text-v2%3A0/invoke")
    assert orjson.loads(titan.body) == {"inputText": "hello", "dimensions": 256, "normalize": True}
    out = BEDROCK.parse_response(EMBEDDINGS, b'{"embedding": [0.5, 0.25], "inputTextTokenCount": 2}')
    assert out["data"][0]["embedding"] == [0.5, 0.25] and out["usage"]["prompt_tokens"] == 2
    cohere = BEDROCK.build_request(
        EMBEDDINGS, Body({"model": "cohere.embed-english-v3", "input": ["a", "b"]}), cred
    )
    assert orjson.loads(cohere.body) == {
        "texts": ["a", "b"],
        "input_type": "search_document",
        "embedding_types": ["float"],
    }
    out = BEDROCK.parse_response(EMBEDDINGS, b'{"embeddings": {"float": [[1.0], [2.0]]}, "id": "x"}')
    assert [d["embedding"] for d in out["data"]] == [[1.0], [2.0]]
    with pytest.raises(UnsupportedParameter):
        BEDROCK.build_request(
            EMBEDDINGS, Body({"model": "amazon.titan-embed-text-v2:0", "input": ["a", "b"]}), cred
        )
    with pytest.raises(UnsupportedParameter):
        BEDROCK.build_request(EMBEDDINGS, Body({"model": "amazon.nova-pro-v1:0", "input": "a"}), cred)


@pytest.mark.parametrize(
    ("status", "error_type", "message", "type_"),
    [
        (400, "ValidationException:http://internal.amazon.com/coral/com.amazon.bedrock/",
         "The provided model identifier is invalid.", "invalid_request_error"),
        (403, "AccessDeniedException:http://internal.amazon.com/coral/com.amazon.coral.service/",
         "You don't have access to the model with the specified model ID.", "permission_error"),
        (429, "ThrottlingException:http://internal.amazon.com/coral/com.amazon.bedrock/",
         "Too many requests, please wait before trying again.", "rate_limit_error"),
        (408, "ModelTimeoutException:http://internal.amazon.com/coral/com.amazon.bedrock/",
         "Model has timed out in processing the request.", "timeout_error"),
        (503, "ServiceUnavailableException:http://internal.amazon.com/coral/com.amazon.bedrock/",
         "Bedrock is unable to process your request.", "api_error"),
    ],
)  # fmt: skip
def test_errors_keep_status_message_and_type(status: int, error_type: str, message: str, type_: str) -> None:
    from multidict import CIMultiDict

    headers = CIMultiDict({"X-Amzn-ErrorType": error_type, "x-amzn-RequestId": "r-1"})
    err = parse_upstream_error(BEDROCK, status, orjson.dumps({"message": message}), headers)
    assert (err.upstream_status, err.message, err.type, err.code) == (
        status,
        message,
        type_,
        error_type.split(":")[0],
    )
    assert err.to_dict()["error"]["message"] == message


def test_error_without_the_header_or_json() -> None:
    err = BEDROCK.parse_error(502, b"upstream connect error")
    assert err.upstream_status == 502 and "upstream connect error" in err.message and err.type == "api_error"
