"""SSE relay: upstream events to the client as they arrive, usage captured on the way.

Once the first byte has gone out there is no going back: a failure after that
point ends the client's stream with a final SSE error event (never a silent
clean end), and the caller records the partial usage.

Three modes, picked by dialect:
- ``OpenAIPassthrough``: OpenAI client, OpenAI-compatible provider. Events are
  relayed byte for byte; only events carrying usage or an error are decoded.
- ``AnthropicPassthrough``: Anthropic client, Anthropic provider. Same, with
  usage read from ``message_start``/``message_delta``.
- ``TranslatedStream``: anything else, through canonical chat chunks. Its events come
  from SSE or, for a provider with its own framing (Bedrock's binary event stream),
  from the provider's ``stream_decoder`` as ``(name, payload)`` pairs.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import aiohttp
import orjson

from lockgate.errors import LockgateError, UpstreamError, UpstreamProtocolError, UpstreamTimeout
from lockgate.providers import anthropic
from lockgate.providers.base import StreamDecoder, StreamTranslator
from lockgate.server.sse import DONE, DONE_EVENT, SSEDecoder, SSEEvent, encode_data, encode_event
from lockgate.server.types import Headers, Send

if TYPE_CHECKING:
    from lockgate.guardrails.stream import StreamGuard


@dataclass(slots=True)
class StreamResult:
    usage: dict[str, Any] | None = None
    ttft_ms: float | None = None
    error: LockgateError | None = None
    sent: bool = False  # the client's response has started
    # Generated text and tool calls seen, for local counting when no usage came.
    text: str = ""
    tool_calls: list[dict[str, Any]] = field(default_factory=list)


def _load(data: bytes) -> dict[str, Any]:
    try:
        payload = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise UpstreamProtocolError(f"The upstream sent an event that is not JSON: {exc}") from exc
    if not isinstance(payload, dict):
        raise UpstreamProtocolError("The upstream sent an event that is not a JSON object.")
    return payload


def error_event(exc: LockgateError, dialect: str) -> bytes:
    if dialect == "anthropic":
        return encode_event("error", anthropic.error_to_anthropic(exc.status, exc.to_dict()))
    return encode_data(exc.to_dict())


class _ChunkText:
    """Collects text and tool-call arguments from canonical chunks."""

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.calls: dict[int, dict[str, Any]] = {}

    def add(self, chunk: dict[str, Any]) -> None:
        for choice in chunk.get("choices") or ():
            delta = choice.get("delta") if isinstance(choice, dict) else None
            if not isinstance(delta, dict):
                text = choice.get("text") if isinstance(choice, dict) else None
                if isinstance(text, str):
                    self.parts.append(text)
                continue
            if isinstance(delta.get("content"), str):
                self.parts.append(delta["content"])
            for call in delta.get("tool_calls") or ():
                if not isinstance(call, dict):
                    continue
                slot = self.calls.setdefault(
                    call.get("index", 0), {"function": {"name": "", "arguments": ""}}
                )
                fn = call.get("function") or {}
                slot["function"]["name"] += fn.get("name") or ""
                slot["function"]["arguments"] += fn.get("arguments") or ""

    def result(self, into: StreamResult) -> None:
        into.text = "".join(self.parts)
        into.tool_calls = list(self.calls.values())


class OpenAIPassthrough:
    def __init__(self, wants_usage: bool) -> None:
        self.wants_usage = wants_usage
        self.ended = False
        self.usage: dict[str, Any] | None = None
        self._content: list[bytes] = []

    def on_event(self, event: SSEEvent) -> bytes | None:
        data = event.data
        if data == DONE:
            self.ended = True
            return event.raw
        if b'"usage"' in data and b'"usage":null' not in data and b'"usage": null' not in data:
            chunk = _load(data)
            if isinstance(chunk.get("usage"), dict):
                self.usage = chunk["usage"]
            if not chunk.get("choices") and not self.wants_usage:
                return None  # the usage chunk Lockgate asked for on its own account
        elif b'"error"' in data:
            chunk = _load(data)
            if "error" in chunk and not chunk.get("choices"):
                err = chunk["error"] if isinstance(chunk["error"], dict) else {"message": str(chunk["error"])}
                raise UpstreamError(str(err.get("message", "upstream stream error")), type=err.get("type"))
        self._content.append(data)
        return event.raw

    def tail(self) -> bytes:
        return b""

    def collect(self, into: StreamResult) -> None:
        text = _ChunkText()
        for data in self._content:
            try:
                text.add(orjson.loads(data))
            except (orjson.JSONDecodeError, AttributeError, TypeError):
                continue
        text.result(into)


class AnthropicPassthrough:
    def __init__(self) -> None:
        self.ended = False
        self._native_usage: dict[str, Any] = {}
        self._text: list[str] = []

    @property
    def usage(self) -> dict[str, Any] | None:
        return anthropic.usage_to_chat(self._native_usage) if self._native_usage else None

    def on_event(self, event: SSEEvent) -> bytes | None:
        name = event.event
        if name == "message_start":
            usage = _load(event.data).get("message", {}).get("usage")
            if isinstance(usage, dict):
                self._native_usage.update(usage)
        elif name == "message_delta":
            usage = _load(event.data).get("usage")
            if isinstance(usage, dict):
                self._native_usage.update({k: v for k, v in usage.items() if v is not None})
        elif name == "content_block_delta":
            delta = _load(event.data).get("delta") or {}
            piece = delta.get("text") or delta.get("partial_json")
            if isinstance(piece, str):
                self._text.append(piece)
        elif name == "message_stop":
            self.ended = True
        elif name == "error":
            err = _load(event.data).get("error") or {}
            raise UpstreamError(str(err.get("message", "upstream stream error")), type=err.get("type"))
        return event.raw

    def tail(self) -> bytes:
        return b""

    def collect(self, into: StreamResult) -> None:
        into.text = "".join(self._text)


class TranslatedStream:
    """Upstream events -> canonical chunks -> the client's dialect."""

    def __init__(
        self, translator: StreamTranslator, client_dialect: str, wants_usage: bool, model: str
    ) -> None:
        self._translator = translator
        self._client_dialect = client_dialect
        self._wants_usage = wants_usage
        self._to_messages = (
            anthropic.ChatStreamToMessages(model=model) if client_dialect == "anthropic" else None
        )
        self._text = _ChunkText()
        self.ended = False

    @property
    def usage(self) -> dict[str, Any] | None:
        return self._translator.usage

    def on_event(self, event: SSEEvent | tuple[str | None, dict[str, Any]]) -> bytes | None:
        if isinstance(event, tuple):  # already decoded by the provider's stream decoder
            name, payload = event
        else:
            if event.data == DONE:
                self.ended = True
                return None
            if event.event == "message_stop":
                self.ended = True
            if event.event == "ping" or not event.data:
                return None
            name, payload = event.event, _load(event.data)
        out = self._emit(self._translator.feed(name, payload))
        # Streams without a terminator of their own end when the translator says so.
        if getattr(self._translator, "done", False):
            self.ended = True
        return out

    def _emit(self, chunks: list[dict[str, Any]]) -> bytes | None:
        out: list[bytes] = []
        for chunk in chunks:
            self._text.add(chunk)
            if self._to_messages is not None:
                out.extend(encode_event(name, payload) for name, payload in self._to_messages.feed(chunk))
            elif chunk.get("choices") or self._wants_usage:
                out.append(encode_data(chunk))
        return b"".join(out) if out else None

    def tail(self) -> bytes:
        out = self._emit(self._translator.finish()) or b""
        if self._to_messages is not None:
            return out + b"".join(encode_event(name, payload) for name, payload in self._to_messages.finish())
        return out + DONE_EVENT

    def collect(self, into: StreamResult) -> None:
        self._text.result(into)


StreamMode = OpenAIPassthrough | AnthropicPassthrough | TranslatedStream


async def relay(
    mode: StreamMode,
    upstream: aiohttp.ClientResponse,
    send: Send,
    headers: Headers,
    *,
    client_dialect: str,
    started: float,
    upstream_name: str,
    decoder: StreamDecoder | None = None,
    guard: StreamGuard | None = None,
    response_started: bool = False,
    end_on_error: bool = True,
    tap: list[bytes] | None = None,
) -> StreamResult:
    """Relay one stream to the client; never raises for upstream failures (they end the stream).

    ``decoder`` is the provider's own framing (only with ``TranslatedStream``); SSE by default.
    ``guard`` (output guardrails) sees every outgoing piece first and may hold, rewrite or
    refuse it; without one, events go out exactly as the mode made them.
    The response starts with the first bytes relayed, so a stream that fails before
    producing anything can still be answered otherwise (``result.sent`` is False).
    ``response_started``: splice into a response already under way (stream failover).
    ``end_on_error=False``: leave a failed stream open for the caller to continue or end.
    ``tap`` collects every body piece sent, for the response cache.
    """
    result = StreamResult(sent=response_started)
    events: SSEDecoder | StreamDecoder = decoder if decoder is not None else SSEDecoder()

    async def emit(body: bytes, more: bool) -> None:
        if not result.sent:
            await send({"type": "http.response.start", "status": 200, "headers": headers})
            result.sent = True
        if tap is not None:
            tap.append(body)
        await send({"type": "http.response.body", "body": body, "more_body": more})

    clean = False
    try:
        async for chunk in upstream.content.iter_any():
            out = [piece for event in events.feed(chunk) if (piece := mode.on_event(event))]  # type: ignore[arg-type]
            body = b"".join(out)
            if guard is not None and body:
                body = await guard.feed(body)
            if body:
                if result.ttft_ms is None:
                    result.ttft_ms = (time.perf_counter() - started) * 1000.0
                await emit(body, True)
        if not mode.ended:
            raise UpstreamProtocolError(
                f"The upstream {upstream_name} closed the stream before the answer was complete.",
                code="stream_interrupted",
            )
        tail = mode.tail()
        if guard is not None:
            tail = await guard.feed(tail) + await guard.finish()
        await emit(tail, False)
        clean = True
    except LockgateError as exc:
        result.error = exc
    except TimeoutError:
        result.error = UpstreamTimeout(f"The upstream {upstream_name} stopped sending mid-stream.")
    except aiohttp.ClientError as exc:
        result.error = UpstreamProtocolError(
            f"The upstream {upstream_name} connection failed mid-stream: {exc}", code="stream_interrupted"
        )
    finally:
        if clean:
            upstream.release()
        else:
            upstream.close()
    if result.error is not None:
        if isinstance(result.error, UpstreamError) and result.error.provider is None:
            result.error.provider = upstream_name
        if end_on_error:
            await end_with_error(send, headers, result, client_dialect)
    result.usage = mode.usage
    mode.collect(result)
    return result


async def end_with_error(send: Send, headers: Headers, result: StreamResult, client_dialect: str) -> None:
    """End a failed stream with a final SSE error event (starting the response if need be)."""
    assert result.error is not None
    if not result.sent:
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        result.sent = True
    body = error_event(result.error, client_dialect)
    await send({"type": "http.response.body", "body": body, "more_body": False})
