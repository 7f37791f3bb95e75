"""Streams through a plan: relay, fall back before the first byte, fail over mid-answer.

- Nothing relayed yet when the upstream fails (it sent headers, then broke or sent
  no events): the client has seen nothing, so the plan's walk continues exactly as
  for a failed non-stream attempt, excluding the targets already tried.
- Something relayed: once the first byte is out there is no going back (STYLE 9).
  Without ``stream_failover`` the stream ends with a final SSE error event. With
  it (OpenAI-dialect chat clients, one choice, text only), the walk continues on
  another target with the partial answer appended as an assistant message, and
  the continuation's events are spliced into the same client stream.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from lockgate.errors import LockgateError, UpstreamError
from lockgate.gateway.attempts import Call, Success
from lockgate.gateway.exchange import ANTHROPIC, OPENAI, Exchange
from lockgate.gateway.plan import Plan
from lockgate.gateway.strategies import Engine
from lockgate.gateway.streaming import (
    AnthropicPassthrough,
    OpenAIPassthrough,
    StreamMode,
    TranslatedStream,
    end_with_error,
    relay,
)
from lockgate.gateway.targets import Target
from lockgate.providers.base import Body, StreamDecoder, stream_decoder
from lockgate.server.types import Headers, Send

if TYPE_CHECKING:
    from lockgate.guardrails.stream import StreamGuard


@dataclass(slots=True)
class Segment:
    """What one upstream contributed to the client's stream."""

    target: Target
    usage: dict[str, Any]
    source: str  # "reported" or "estimated"


@dataclass(slots=True)
class StreamOutcome:
    success: Success  # the last target that streamed
    segments: list[Segment] = field(default_factory=list)
    error: LockgateError | None = None
    ttft_ms: float | None = None
    failover: bool = False
    # Every piece sent, when the stream is complete, from one target, and was being tapped.
    pieces: list[bytes] | None = None
    text: str = ""  # the generated text relayed, every segment's (for the record's body)


def stream_mode(exchange: Exchange, target: Target) -> tuple[StreamMode, StreamDecoder | None]:
    """How this target's stream reaches this client, and its framing when it is not SSE."""
    if exchange.is_native(target):
        if target.provider.dialect == OPENAI:
            return OpenAIPassthrough(exchange.wants_usage), None
        return AnthropicPassthrough(), None
    translator = target.provider.stream_translator(exchange.endpoint.canonical, target.model)
    decoder = stream_decoder(target.provider, exchange.endpoint.canonical)
    mode = TranslatedStream(
        translator, exchange.endpoint.dialect, exchange.wants_usage, exchange.body.data["model"]
    )
    return mode, decoder


def continuation(exchange: Exchange, text: str) -> Exchange | None:
    """The request that asks another target to go on from ``text``; None if it cannot."""
    endpoint, data = exchange.endpoint, exchange.body.data
    if endpoint.dialect != OPENAI or endpoint.canonical != "chat" or data.get("n", 1) != 1:
        return None
    if not text:
        return exchange  # only the role chunk went out: ask again from the start
    messages = [*data["messages"], {"role": "assistant", "content": text}]
    return exchange.with_body(Body({**data, "messages": messages}))


async def respond_stream(
    engine: Engine,
    plan: Plan,
    call: Call,
    exchange: Exchange,
    success: Success,
    send: Send,
    headers_for: Callable[[Success], Headers],
    *,
    started: float,
    deadline_s: float,
    builder: Callable[[Exchange], Callable[..., Any]],
    tap: bool,
    new_guard: Callable[[], StreamGuard | None] | None = None,
) -> StreamOutcome:
    """Relay ``success``'s stream to the client, continuing through the plan on failure.

    Raises (for the caller's JSON error) only when nothing has been sent and no
    other target could answer.
    """
    outcome = StreamOutcome(success)
    pieces: list[bytes] | None = [] if tap else None
    current, text, response_started = exchange, "", False
    guard = new_guard() if new_guard is not None else None
    while True:
        target = success.target
        mode, decoder = stream_mode(current, target)
        result = await relay(
            mode,
            success.upstream.response,
            send,
            headers_for(success),
            client_dialect=exchange.endpoint.dialect,
            started=started,
            upstream_name=target.credential.name,
            decoder=decoder,
            guard=guard,
            response_started=response_started,
            end_on_error=False,
            tap=pieces,
        )
        outcome.success = success
        outcome.text += result.text
        if outcome.ttft_ms is None:
            outcome.ttft_ms = result.ttft_ms
        if result.sent:
            usage, source = result.usage, "reported"
            if usage is None or result.error is not None:
                usage, source = await current.estimate_usage(result.text, result.tool_calls), "estimated"
            outcome.segments.append(Segment(target, usage, source))
        if result.error is None:
            outcome.pieces = pieces if not outcome.failover else None
            return outcome
        if not isinstance(result.error, UpstreamError):  # an output guardrail said no: that is final
            outcome.error = result.error
            await end_with_error(send, headers_for(success), result, exchange.endpoint.dialect)
            return outcome
        # The target failed after its headers: that counts against its health.
        success.attempt.error = result.error.message
        engine.health.failure(target.key, success.leaf.policy.breaker)
        call.exclude.add(target.key)
        text += result.text
        policy = success.leaf.policy
        next_exchange = current if not result.sent else None
        if result.sent and policy.stream_failover and not result.tool_calls:
            next_exchange = continuation(exchange, text)
        if next_exchange is None:
            outcome.error = result.error
            await end_with_error(send, headers_for(success), result, exchange.endpoint.dialect)
            return outcome
        build = builder(next_exchange)
        if result.sent and next_exchange is not current and text != text.rstrip():
            # Anthropic refuses a final assistant turn that ends in whitespace; the model
            # writes it again (at worst the client sees it twice), which beats a 400.
            build = _by_dialect(build, builder(continuation(exchange, text.rstrip()) or exchange))
        retry_call = dataclasses.replace(call, build=build, deadline=time.monotonic() + deadline_s)
        tried = len(call.record.attempt_log)
        try:
            call.record.fallbacks += 1
            success = await engine.run(plan, retry_call)
        except LockgateError:
            if not result.sent:
                if len(call.record.attempt_log) == tried:
                    call.record.fallbacks -= 1
                    raise result.error from None  # no other target: the stream's own failure
                raise
            outcome.error = result.error
            await end_with_error(send, headers_for(success), result, exchange.endpoint.dialect)
            return outcome
        finally:
            call.timeouts = retry_call.timeouts
        if result.sent:
            outcome.failover = True
            response_started = True
        elif new_guard is not None:
            guard = new_guard()  # nothing went out: what the old guard held belongs to no answer
        current = next_exchange


def _by_dialect(default: Callable[..., Any], anthropic: Callable[..., Any]) -> Callable[..., Any]:
    def build(target: Target, leaf: Any) -> Any:
        return (anthropic if target.provider.dialect == ANTHROPIC else default)(target, leaf)

    return build
