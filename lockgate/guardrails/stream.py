"""Output guardrails on streams: every outgoing SSE event passes through here before the client.

The relay hands over the events it is about to send, already in the client's
format (OpenAI chunks or Anthropic events, whatever the provider spoke). Text
deltas go into a buffer per channel (a choice's content, a tool call's
arguments, an Anthropic content block) and come out only once they are safe:

- window checks (PII, regexes, keywords, injection) run over the channel's
  unreleased text plus a little released context; text is released up to a
  boundary that keeps back the last ``window`` characters, never splits a
  whitespace-free token (a key or JWT still arriving) and never cuts through a
  finding, so a value split across chunks is caught whole;
- findings wholly before the boundary are acted on: rewritten (redact),
  recorded (flag), or the stream ends with a final SSE error event (deny);
- placeholders from input redaction are restored the same way;
- a guardrail with a final-mode check (JSON schema, limits, webhook...) that may
  deny or rewrite needs the whole answer: then every event is held until the
  end, the guardrails run as on a non-stream answer, and the held events go out
  with the text rewritten. Flag-only final checks run at the end without holding.

Invariant: text is released at most once, and never before every window check
has seen it with its full window.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import orjson

from lockgate.errors import GuardrailDenied, GuardrailUnavailable
from lockgate.guardrails.base import Finding, Part, apply_findings, non_overlapping
from lockgate.guardrails.definition import CompiledCheck, Guardrail
from lockgate.guardrails.runner import CheckOutcome, GuardrailOutcome, run_guardrail
from lockgate.server.sse import DONE, SSEDecoder, SSEEvent, encode_data, encode_event

if TYPE_CHECKING:
    from lockgate.guardrails.session import GuardSession

CONTEXT = 64  # released characters kept so patterns see what precedes the window
MAX_TOKEN = 8192  # a whitespace-free run longer than this is released even if unfinished
PLACEHOLDER_WINDOW = 32
_TOKEN_TAIL = re.compile(r"\S+$")
_TEMPLATE_KEYS = ("id", "object", "created", "model", "system_fingerprint", "service_tier")

Key = tuple[Any, ...]


@dataclass(slots=True)
class Channel:
    key: Key
    kind: str  # content | tool | text (completions) | text_delta | input_json_delta (Anthropic)
    pending: str = ""
    context: str = ""
    full: list[str] = field(default_factory=list)  # everything seen, for final checks


class StreamGuard:
    def __init__(self, session: GuardSession, dialect: str, endpoint: str) -> None:
        self.session = session
        self.dialect = dialect
        self.endpoint = endpoint
        outputs = session.attached.output
        self.window_checks: list[tuple[Guardrail, CompiledCheck]] = [
            (g, c) for g in outputs if not g.needs_whole_stream for c in g.checks if c.stream == "window"
        ]
        self.final_flags = [
            g for g in outputs if not g.needs_whole_stream and any(c.stream == "final" for c in g.checks)
        ]
        self.hold_all = any(g.needs_whole_stream for g in outputs)
        self.window = max([c.spec.window for _, c in self.window_checks] + [PLACEHOLDER_WINDOW])
        self.outcomes: dict[str, GuardrailOutcome] = {}
        self.channels: dict[Key, Channel] = {}
        self.held: list[SSEEvent] = []
        self.template: dict[str, Any] = {}
        self.finished = False
        self._decoder = SSEDecoder()

    # --- the relay's side ------------------------------------------------------------------

    async def feed(self, piece: bytes) -> bytes:
        """The events of ``piece`` as they may leave now (possibly none)."""
        out: list[bytes] = []
        for event in self._decoder.feed(piece):
            if self.hold_all and not self.finished:
                self.held.append(event)
                if self._is_end(event):
                    out.extend(await self._release_held())
                continue
            out.extend(await self._event(event))
        return b"".join(out)

    async def finish(self) -> bytes:
        """The stream ended: anything still held goes out (when no end event was seen)."""
        if self.finished:
            return b""
        if self.hold_all:
            return b"".join(await self._release_held())
        out = self._flush(None)
        await self._finish_checks()
        return b"".join(out)

    def _is_end(self, event: SSEEvent) -> bool:
        return event.data == DONE if self.dialect == "openai" else event.event == "message_stop"

    # --- window processing -----------------------------------------------------------------

    def _channel(self, key: Key, kind: str) -> Channel:
        ch = self.channels.get(key)
        if ch is None:
            ch = self.channels[key] = Channel(key, kind)
        return ch

    def _add(self, ch: Channel, text: str, final: bool) -> str:
        ch.pending += text
        if self.final_flags:
            ch.full.append(text)
        return self._advance(ch, final)

    def _advance(self, ch: Channel, final: bool) -> str:
        """Release what is safe from ``ch.pending``, after the window checks and restoration."""
        if not ch.pending:
            return ""
        text = ch.context + ch.pending
        base = len(ch.context)
        boundary = len(text) if final else self._boundary(text, base)
        if boundary <= base:
            return ""
        findings = self._findings(text, base)
        if not final:  # a finding that crosses the boundary may still grow: keep it whole
            moved = True
            while moved:
                moved = False
                for f in findings:
                    if f.start < boundary < f.end:
                        boundary, moved = f.start, True
            if boundary <= base:
                return ""
        self._act(text, base, boundary, findings)
        edits = [
            Finding(0, f.start - base, f.end - base, f.label, f.replacement)
            for f in findings
            if f.end <= boundary and f.replacement is not None
        ]
        released = apply_findings(text[base:boundary], non_overlapping(edits))
        ch.context = text[max(0, boundary - CONTEXT) : boundary]
        ch.pending = text[boundary:]
        return released

    def _boundary(self, text: str, base: int) -> int:
        boundary = len(text) - self.window
        if boundary <= base:
            return base
        if not text[boundary - 1].isspace() and not text[boundary].isspace():
            m = _TOKEN_TAIL.search(text, base, boundary)
            if m is not None and boundary - m.start() < MAX_TOKEN:
                boundary = m.start()
        for _, check in self.window_checks:
            if check.spec.hold is not None:
                held = check.spec.hold(text, check.params)
                if held is not None and held >= base and len(text) - held < MAX_TOKEN:
                    boundary = min(boundary, held)
        return max(boundary, base)

    def _findings(self, text: str, base: int) -> list[Finding]:
        """Window-check findings (label = guardrail index) and placeholders, past the context."""
        found: list[Finding] = []
        if self.window_checks:
            data = self.session.input_for("output", [Part(text, "output")])
            for gi, (guardrail, check) in enumerate(self.window_checks):
                verdict, outcome = _run_sync(check, data)
                self._note(guardrail, outcome)
                if verdict is None:
                    if guardrail.on_error == "closed":
                        self._record_error(guardrail, check, outcome)
                    continue
                for f in verdict.findings:
                    if f.start >= base:
                        replacement = f.replacement if guardrail.action == "redact" else None
                        found.append(Finding(gi, f.start, f.end, f.label, replacement))
        for f in self.session.vault.findings(text):
            if f.start >= base:
                found.append(Finding(-1, f.start, f.end, "restore", f.replacement))
        return found

    def _act(self, text: str, base: int, boundary: int, findings: list[Finding]) -> None:
        for f in findings:
            if f.end > boundary or f.part < 0:
                if f.part < 0 and f.end <= boundary:
                    self.session.restored += 1
                continue
            guardrail, check = self.window_checks[f.part]
            outcome = self.outcomes[guardrail.name]
            checked = next(c for c in outcome.checks if c.type == check.type)
            checked.passed = False
            if guardrail.action == "deny" or (guardrail.action == "redact" and f.replacement is None):
                outcome.verdict, outcome.failed_check = "denied", check.type
                outcome.explanation = f"{f.label} found in the output"
                raise GuardrailDenied(guardrail.name, check.type, _explain(check, text, f), "output")
            if guardrail.action == "redact":
                checked.redactions += 1
                outcome.verdict = "redacted"
            elif outcome.verdict == "passed":
                outcome.verdict = "flagged"
            if not checked.explanation:
                checked.explanation = outcome.explanation = _explain(check, text, f)

    def _note(self, guardrail: Guardrail, checked: CheckOutcome) -> None:
        """Fold one window run into the guardrail's outcome for the whole stream."""
        outcome = self.outcomes.get(guardrail.name)
        if outcome is None:
            outcome = self.outcomes[guardrail.name] = GuardrailOutcome(guardrail.name, "output")
            self.session.outcomes.append(outcome)
        for existing in outcome.checks:
            if existing.type == checked.type:
                existing.latency_ms += checked.latency_ms
                existing.error = existing.error or checked.error
                return
        checked.passed = checked.error is None
        checked.explanation = ""
        outcome.checks.append(checked)

    def _record_error(self, guardrail: Guardrail, check: CompiledCheck, checked: CheckOutcome) -> None:
        outcome = self.outcomes[guardrail.name]
        outcome.verdict, outcome.failed_check, outcome.explanation = "error", check.type, checked.error or ""
        raise GuardrailUnavailable(guardrail.name, check.type, checked.error or "")

    async def _finish_checks(self) -> None:
        """Flag-only final checks, on the whole answer, once the stream is complete."""
        self.finished = True
        if not self.final_flags:
            return
        parts = [
            Part("".join(ch.full), "tool_call" if ch.kind in ("tool", "input_json_delta") else "output")
            for ch in self.channels.values()
        ]
        for guardrail in self.final_flags:
            final_only = Guardrail(
                guardrail.name, guardrail.action, guardrail.mode, guardrail.on_error,
                tuple(c for c in guardrail.checks if c.stream == "final"), guardrail.roles,
            )  # fmt: skip
            outcome = await run_guardrail(final_only, self.session.input_for("output", parts))
            merged = self.outcomes.get(guardrail.name)
            if merged is None:
                self.session.outcomes.append(outcome)
            else:
                merged.checks.extend(outcome.checks)
                if outcome.verdict != "passed" and merged.verdict == "passed":
                    merged.verdict, merged.failed_check = outcome.verdict, outcome.failed_check
                    merged.explanation = outcome.explanation

    # --- events, by dialect ----------------------------------------------------------------

    async def _event(self, event: SSEEvent) -> list[bytes]:
        if self.dialect == "openai":
            if event.data == DONE:
                out = self._flush(None)
                await self._finish_checks()
                return [*out, event.raw]
            return self._openai(event)
        return await self._anthropic(event)

    def _openai(self, event: SSEEvent) -> list[bytes]:
        if b'"choices"' not in event.data:
            return [event.raw]
        chunk = orjson.loads(event.data)
        choices = chunk.get("choices")
        if not isinstance(choices, list) or not choices:
            return [event.raw]
        self.template = {k: chunk[k] for k in _TEMPLATE_KEYS if k in chunk}
        if "usage" in chunk:
            self.template["usage"] = None
        before: list[bytes] = []
        changed = False
        kept = []
        for choice in choices:
            index = choice.get("index", 0)
            finishing = choice.get("finish_reason") is not None
            delta = choice.get("delta")
            if isinstance(delta, dict):
                changed |= self._openai_delta(index, delta, finishing)
                empty = not delta and not finishing and not choice.get("logprobs")
            elif isinstance(choice.get("text"), str) and choice["text"]:
                ch = self._channel((index, "text"), "text")
                choice["text"] = (
                    self._add(ch, choice["text"], False) if not finishing else self._stash(ch, choice["text"])
                )
                changed = True
                empty = not choice["text"] and not finishing
            else:
                empty = False
            if finishing:
                before.extend(self._flush(index))
            if not empty:
                kept.append(choice)
        if not changed:
            return [*before, event.raw]
        if not kept and not chunk.get("usage"):
            return before
        chunk["choices"] = kept
        return [*before, encode_data(chunk)]

    def _stash(self, ch: Channel, text: str) -> str:
        """Text on a finishing chunk joins the pending text, which the flush releases."""
        ch.pending += text
        if self.final_flags:
            ch.full.append(text)
        return ""

    def _openai_delta(self, index: int, delta: dict[str, Any], finishing: bool) -> bool:
        changed = False
        content = delta.get("content")
        if isinstance(content, str) and content:
            ch = self._channel((index, "content"), "content")
            released = self._stash(ch, content) if finishing else self._add(ch, content, False)
            if released:
                delta["content"] = released
            else:
                del delta["content"]
            changed = True
        calls = delta.get("tool_calls")
        if isinstance(calls, list):
            kept = []
            for call in calls:
                fn = call.get("function") if isinstance(call, dict) else None
                args = fn.get("arguments") if isinstance(fn, dict) else None
                if isinstance(args, str) and args:
                    ch = self._channel((index, "tool", call.get("index", 0)), "tool")
                    fn["arguments"] = self._stash(ch, args) if finishing else self._add(ch, args, False)
                    changed = True
                    if (
                        not fn["arguments"]
                        and set(call) <= {"index", "function"}
                        and set(fn) == {"arguments"}
                    ):
                        continue
                kept.append(call)
            if kept:
                delta["tool_calls"] = kept
            else:
                del delta["tool_calls"]
        return changed

    def _flush(self, choice: int | None) -> list[bytes]:
        """Release everything pending (for one choice, or all), as events of the client's format."""
        out: list[bytes] = []
        for ch in self.channels.values():
            if choice is not None and ch.key[0] != choice:
                continue
            text = self._advance(ch, True)
            if text:
                out.append(self._synthetic(ch, text))
        return out

    def _synthetic(self, ch: Channel, text: str) -> bytes:
        if self.dialect == "anthropic":
            delta = {"type": ch.kind, "partial_json" if ch.kind == "input_json_delta" else "text": text}
            return encode_event(
                "content_block_delta", {"type": "content_block_delta", "index": ch.key[0], "delta": delta}
            )
        choice: dict[str, Any] = {"index": ch.key[0], "finish_reason": None, "logprobs": None}
        if ch.kind == "text":
            choice["text"] = text
        elif ch.kind == "tool":
            choice["delta"] = {"tool_calls": [{"index": ch.key[2], "function": {"arguments": text}}]}
        else:
            choice["delta"] = {"content": text}
        return encode_data({**self.template, "choices": [choice]})

    async def _anthropic(self, event: SSEEvent) -> list[bytes]:
        name = event.event
        if name == "content_block_delta":
            payload = orjson.loads(event.data)
            delta = payload.get("delta") or {}
            kind = delta.get("type")
            field_name = (
                "text" if kind == "text_delta" else "partial_json" if kind == "input_json_delta" else None
            )
            if field_name is None or not isinstance(delta.get(field_name), str):
                return [event.raw]
            ch = self._channel((payload.get("index", 0), kind), kind)
            released = self._add(ch, delta[field_name], False)
            if not released:
                return []
            delta[field_name] = released
            return [encode_event(name, payload)]
        if name == "content_block_stop":
            index = orjson.loads(event.data).get("index", 0)
            return [*self._flush(index), event.raw]
        if name in ("message_delta", "message_stop"):
            out = self._flush(None)
            if name == "message_stop":
                await self._finish_checks()
            return [*out, event.raw]
        return [event.raw]

    # --- hold everything, decide at the end --------------------------------------------------

    async def _release_held(self) -> list[bytes]:
        """The whole answer is in: run the output guardrails as on a non-stream answer, then emit."""
        self.finished = True
        texts: dict[Key, list[str]] = {}
        kinds: dict[Key, str] = {}
        for event in self.held:
            for key, kind, text in self._texts(event):
                texts.setdefault(key, []).append(text)
                kinds[key] = kind
        keys = list(texts)
        parts = [
            Part("".join(texts[k]), "tool_call" if kinds[k] in ("tool", "input_json_delta") else "output")
            for k in keys
        ]
        data = self.session.input_for("output", parts)
        for guardrail in self.session.attached.output:
            await self.session.run(guardrail, data)  # raises on deny: the held text never leaves
        final: dict[Key, str] = {}
        for key, part in zip(keys, parts, strict=True):
            final[key], n = self.session.vault.restore(part.text)
            self.session.restored += n
        out: list[bytes] = []
        for event in self.held:
            out.extend(self._rewrite_held(event, final))
        self.held = []
        return out

    def _texts(self, event: SSEEvent) -> list[tuple[Key, str, str]]:
        found: list[tuple[Key, str, str]] = []
        if self.dialect == "openai":
            if event.data == DONE or b'"choices"' not in event.data:
                return found
            for choice in orjson.loads(event.data).get("choices") or ():
                index = choice.get("index", 0)
                delta = choice.get("delta")
                if isinstance(delta, dict):
                    if isinstance(delta.get("content"), str) and delta["content"]:
                        found.append(((index, "content"), "content", delta["content"]))
                    for call in delta.get("tool_calls") or ():
                        args = (call.get("function") or {}).get("arguments")
                        if isinstance(args, str) and args:
                            found.append(((index, "tool", call.get("index", 0)), "tool", args))
                elif isinstance(choice.get("text"), str) and choice["text"]:
                    found.append(((index, "text"), "text", choice["text"]))
        elif event.event == "content_block_delta":
            payload = orjson.loads(event.data)
            delta = payload.get("delta") or {}
            kind = delta.get("type")
            field_name = (
                "text" if kind == "text_delta" else "partial_json" if kind == "input_json_delta" else None
            )
            if field_name and isinstance(delta.get(field_name), str):
                found.append(((payload.get("index", 0), kind), kind, delta[field_name]))
        return found

    def _rewrite_held(self, event: SSEEvent, final: dict[Key, str]) -> list[bytes]:
        """The first text event of a channel carries its whole (checked) text; later ones go."""
        pieces = self._texts(event)
        if not pieces:
            return [event.raw]
        if self.dialect == "anthropic":
            key, kind, _ = pieces[0]
            text = final.pop(key, "")
            if not text:
                return []
            payload = orjson.loads(event.data)
            payload["delta"]["partial_json" if kind == "input_json_delta" else "text"] = text
            return [encode_event("content_block_delta", payload)]
        chunk = orjson.loads(event.data)
        self.template = {k: chunk[k] for k in _TEMPLATE_KEYS if k in chunk}
        for choice in chunk.get("choices") or ():
            index = choice.get("index", 0)
            delta = choice.get("delta")
            if isinstance(delta, dict):
                if isinstance(delta.get("content"), str) and delta["content"]:
                    delta["content"] = final.pop((index, "content"), "")
                for call in delta.get("tool_calls") or ():
                    fn = call.get("function") or {}
                    if isinstance(fn.get("arguments"), str) and fn["arguments"]:
                        fn["arguments"] = final.pop((index, "tool", call.get("index", 0)), "")
            elif isinstance(choice.get("text"), str) and choice["text"]:
                choice["text"] = final.pop((index, "text"), "")
        return [encode_data(chunk)]


def _run_sync(check: CompiledCheck, data: Any) -> tuple[Any, CheckOutcome]:
    """Window checks are plain functions (validated at compile time): run inline, timed."""
    import time

    started = time.perf_counter()
    outcome = CheckOutcome(check.type, True)
    try:
        verdict = check.spec.fn(data, check.params)
    except Exception as exc:
        outcome.error = f"{type(exc).__name__}: {exc}"[:300]
        verdict = None
    outcome.latency_ms = (time.perf_counter() - started) * 1000.0
    return verdict, outcome


def _explain(check: CompiledCheck, text: str, finding: Finding) -> str:
    # The label, never the matched text: it may be the very value the check exists to hide.
    return f"{check.type}: {finding.label} in the output"
