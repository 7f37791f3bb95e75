"""Guardrails on MCP tool calls: the arguments before they go upstream, the result before it goes back.

An MCP server names its guardrails (``guardrails: {input: [...], output: [...]}``, admin
API and lockgate.yaml); they are the same stored definitions the LLM path attaches to
keys and workspaces, with the same actions: deny refuses the call with a JSON-RPC error
naming the guardrail, redact rewrites the arguments (or the result) in place, flag only
leaves a verdict. Every verdict goes on the tool-call record.

What the checks see: every string in the arguments, and in the result every text content
block and every string in ``structuredContent``, each a ``Part`` with role ``tool`` named
``server__tool``. A guardrail's ``roles`` filter is about chat messages and is not applied
here. Reversible placeholders (PII ``redaction: placeholder``) put into the arguments are
restored in the result, as the LLM path restores them in the answer.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from lockgate.errors import GuardrailDenied, GuardrailUnavailable
from lockgate.guardrails import Attached, GuardrailSet, GuardSession, Part
from lockgate.guardrails.definition import Guardrail, broken_guardrail
from lockgate.mcp.jsonrpc import GUARDRAIL_DENIED, GUARDRAIL_ERROR, McpError
from lockgate.mcp.registry import SEPARATOR, McpServer

_MAX_DEPTH = 20
Setter = Callable[[str], None]


def attached(server: McpServer, guardrails: GuardrailSet) -> Attached | None:
    """The server's guardrails from this snapshot; a name it no longer has fails closed."""
    if not (server.input_guardrails or server.output_guardrails):
        return None
    return Attached(
        tuple(_named(guardrails.by_name, n, server) for n in server.input_guardrails),
        tuple(_named(guardrails.by_name, n, server) for n in server.output_guardrails),
    )


def _named(by_name: Mapping[str, Guardrail], name: str, server: McpServer) -> Guardrail:
    found = by_name.get(name)
    return found if found is not None else broken_guardrail(name, f"on {server.name} but undefined")


class ToolGuard:
    """One tools/call's guardrails."""

    def __init__(
        self,
        guardrails: Attached,
        server: McpServer,
        tool: str,
        metadata: Mapping[str, str],
        verdicts: list[dict[str, Any]],
    ) -> None:
        self.session = GuardSession(guardrails, model=None, metadata=metadata)
        self.name = f"{server.name}{SEPARATOR}{tool}"
        self.verdicts = verdicts  # the call's verdict list: each guardrail's outcome is added to it

    async def arguments(self, args: dict[str, Any]) -> None:
        """Input guardrails on ``args``, rewritten in place (the dict is this request's own)."""
        if self.session.attached.input:
            await self._run("input", self.session.attached.input, _strings(args, self.name))

    async def result(self, result: dict[str, Any]) -> None:
        """Output guardrails on the result, and placeholders put back; rewritten in place."""
        if not self.session.watches_output:
            return
        found: list[tuple[Part, Setter]] = []
        for block in result.get("content") or ():
            if isinstance(block, dict) and block.get("type") == "text" and isinstance(block.get("text"), str):
                found.append((Part(block["text"], "tool", self.name), _setter(block, "text")))
        if isinstance(result.get("structuredContent"), dict):
            found.extend(_strings(result["structuredContent"], self.name))
        await self._run("output", self.session.attached.output, found)
        for part, put in found:
            text, restored = self.session.vault.restore(part.text)
            if restored:
                self.session.restored += restored
                put(text)

    async def _run(
        self, stage: str, guardrails: tuple[Guardrail, ...], found: list[tuple[Part, Setter]]
    ) -> None:
        parts = [part for part, _ in found]
        originals = [part.text for part in parts]
        outcomes = self.session.outcomes
        ran = len(outcomes)
        try:
            for guardrail in guardrails:
                await self.session.run(guardrail, self.session.input_for(stage, parts))
        except GuardrailDenied as exc:
            where = "arguments" if stage == "input" else "result"
            why = outcomes[-1].explanation
            raise McpError(
                GUARDRAIL_DENIED,
                f"Guardrail {exc.guardrail!r} refused the tool call's {where} (check {exc.check!r})"
                + (f": {why}" if why else "."),
                {"guardrail": exc.guardrail, "check": exc.check, "stage": stage},
            ) from None
        except GuardrailUnavailable as exc:
            raise McpError(GUARDRAIL_ERROR, exc.message, {"stage": stage}) from None
        finally:
            self.verdicts.extend({"check": "guardrail", **o.to_dict()} for o in outcomes[ran:])
        for (part, put), original in zip(found, originals, strict=True):
            if part.text != original:
                put(part.text)


def _strings(value: Any, name: str, depth: int = 0) -> list[tuple[Part, Setter]]:
    """Every string leaf of a JSON value, with a setter that writes a rewrite back."""
    found: list[tuple[Part, Setter]] = []
    if depth > _MAX_DEPTH:
        return found
    items: Any = (
        value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    )
    for key, item in items:
        if isinstance(item, str):
            found.append((Part(item, "tool", name), _setter(value, key)))
        elif isinstance(item, (dict, list)):
            found.extend(_strings(item, name, depth + 1))
    return found


def _setter(container: Any, key: Any) -> Setter:
    def put(text: str) -> None:
        container[key] = text

    return put
