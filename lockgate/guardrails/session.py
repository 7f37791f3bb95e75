"""One request's guardrails: input checks on the body, output checks on the answer, verdicts kept.

``GuardSession`` is what the pipeline talks to (DESIGN §2 steps 5 and 8):
``check_input`` refuses or rewrites the request before it goes upstream,
``check_output`` does the same to a non-stream answer, and ``stream_guard``
returns the filter the SSE relay runs every outgoing event through. Verdicts
become the ``x-lockgate-guardrails`` header and the request record's
``guardrails`` list.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import orjson

from lockgate.errors import GuardrailDenied, GuardrailUnavailable
from lockgate.guardrails.attachments import Attached
from lockgate.guardrails.base import CheckInput, Part
from lockgate.guardrails.definition import Guardrail
from lockgate.guardrails.parts import request_parts, response_parts
from lockgate.guardrails.runner import GuardrailOutcome, run_guardrail
from lockgate.guardrails.vault import Vault

if TYPE_CHECKING:
    import aiohttp

    from lockgate.guardrails.stream import StreamGuard

HEADER = b"x-lockgate-guardrails"


class GuardSession:
    __slots__ = ("attached", "http", "metadata", "model", "outcomes", "restored", "vault")

    def __init__(
        self,
        attached: Attached,
        *,
        model: str | None,
        metadata: Mapping[str, str] | None,
        http: aiohttp.ClientSession | None = None,
    ) -> None:
        self.attached = attached
        self.model = model
        self.metadata: Mapping[str, str] = metadata or {}
        self.http = http
        self.vault = Vault()
        self.outcomes: list[GuardrailOutcome] = []
        self.restored = 0  # placeholders put back into the answer

    def input_for(self, stage: str, parts: list[Part]) -> CheckInput:
        return CheckInput(stage, parts, self.metadata, self.model, self.vault, self.http)  # type: ignore[arg-type]

    async def run(self, guardrail: Guardrail, data: CheckInput) -> GuardrailOutcome:
        """Run one guardrail and act on its verdict: raise to refuse, else record."""
        outcome = await run_guardrail(guardrail, data)
        self.outcomes.append(outcome)
        if outcome.verdict == "denied":
            raise GuardrailDenied(guardrail.name, outcome.failed_check or "", outcome.explanation, data.stage)
        if outcome.verdict == "error":
            raise GuardrailUnavailable(guardrail.name, outcome.failed_check or "", outcome.explanation)
        return outcome

    async def check_input(self, endpoint: str, body: dict[str, Any]) -> bool:
        """Run the input guardrails on the request body; True when it was rewritten."""
        if not self.attached.input:
            return False
        parts, setters = request_parts(endpoint, body)
        originals = [p.text for p in parts]
        for guardrail in self.attached.input:
            if guardrail.roles is None:
                await self.run(guardrail, self.input_for("input", parts))
                continue
            chosen = [i for i, p in enumerate(parts) if p.role in guardrail.roles]
            view = [parts[i] for i in chosen]  # the same Part objects: rewrites land in ``parts``
            await self.run(guardrail, self.input_for("input", view))
        changed = False
        for part, original, put in zip(parts, originals, setters, strict=True):
            if part.text != original:
                put(part.text)
                changed = True
        return changed

    @property
    def watches_output(self) -> bool:
        """The answer must be looked at: output guardrails, or placeholders to restore."""
        return bool(self.attached.output) or bool(self.vault)

    async def check_output(self, endpoint: str, raw: bytes) -> bytes:
        """Output guardrails and placeholder restoration on a non-stream answer (client format)."""
        if not self.watches_output:
            return raw
        try:
            payload = orjson.loads(raw)
        except orjson.JSONDecodeError:
            return raw
        if not isinstance(payload, dict):
            return raw
        parts, setters = response_parts(endpoint, payload)
        originals = [p.text for p in parts]
        data = self.input_for("output", parts)
        for guardrail in self.attached.output:
            await self.run(guardrail, data)
        for part in parts:
            part.text, n = self.vault.restore(part.text)
            self.restored += n
        changed = False
        for part, original, put in zip(parts, originals, setters, strict=True):
            if part.text != original:
                put(part.text)
                changed = True
        return orjson.dumps(payload) if changed else raw

    def stream_guard(self, dialect: str, endpoint: str) -> StreamGuard | None:
        if not self.watches_output:
            return None
        from lockgate.guardrails.stream import StreamGuard

        return StreamGuard(self, dialect, endpoint)

    def header(self) -> tuple[bytes, bytes] | None:
        """``input.pii=redacted(2), output.schema=passed``: one entry per guardrail run so far."""
        if not self.outcomes:
            return None
        entries = []
        for o in self.outcomes:
            verdict = f"{o.verdict}({o.redactions})" if o.verdict == "redacted" else o.verdict
            entries.append(f"{o.stage}.{o.name}={verdict}")
        return HEADER, ", ".join(entries).encode()

    def summary(self) -> list[dict[str, Any]] | None:
        if not self.outcomes and not self.restored:
            return None
        rows = [o.to_dict() for o in self.outcomes]
        if self.restored:
            rows.append(
                {
                    "stage": "output",
                    "name": "(placeholders)",
                    "verdict": "restored",
                    "restored": self.restored,
                }
            )
        return rows
