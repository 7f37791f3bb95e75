"""Runs one guardrail's checks over a ``CheckInput``, in sequence or in parallel.

Sequential: checks run in order; with action 'redact' each sees the text the
previous ones rewrote, and with 'deny' the first failure stops the rest.
Parallel: every check sees the same text; their rewrites are merged (earliest,
then longest span wins) and applied once.

Timeouts: a coroutine check (webhook, Presidio) runs under ``asyncio.wait_for``
with its timeout, so a slow service never hangs a request. Plain-function
checks run inline: they are linear-time regex passes over bounded text, and
handing them to a thread would cost more than they do. An exception or a
timeout is an error verdict; the guardrail's ``on_error`` decides what it means.

Verdicts: passed, flagged (failed, action flag), redacted (failed, every
failure rewritten), denied (failed with action deny, or with action redact
where a failure could not be rewritten), error (a check erred and on_error is
closed; the caller refuses the request).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable
from dataclasses import dataclass, field
from typing import Any, cast

from lockgate.guardrails.base import CheckInput, Finding, Verdict, apply_findings, non_overlapping
from lockgate.guardrails.definition import CompiledCheck, Guardrail

log = logging.getLogger("lockgate.guardrails")


@dataclass(slots=True)
class CheckOutcome:
    type: str
    passed: bool
    latency_ms: float = 0.0
    explanation: str = ""
    error: str | None = None
    redactions: int = 0

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "type": self.type,
            "passed": self.passed,
            "latency_ms": round(self.latency_ms, 4),
        }
        if self.explanation:
            out["explanation"] = self.explanation
        if self.error:
            out["error"] = self.error
        if self.redactions:
            out["redactions"] = self.redactions
        return out


@dataclass(slots=True)
class GuardrailOutcome:
    name: str
    stage: str
    verdict: str = "passed"  # passed | flagged | redacted | denied | error
    checks: list[CheckOutcome] = field(default_factory=list)
    failed_check: str | None = None
    explanation: str = ""

    @property
    def redactions(self) -> int:
        return sum(c.redactions for c in self.checks)

    @property
    def latency_ms(self) -> float:
        return sum(c.latency_ms for c in self.checks)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "stage": self.stage,
            "name": self.name,
            "verdict": self.verdict,
            "latency_ms": round(self.latency_ms, 4),
            "redactions": self.redactions,
            "checks": [c.to_dict() for c in self.checks],
        }
        if self.failed_check:
            out["failed_check"] = self.failed_check
        return out


async def run_check(check: CompiledCheck, data: CheckInput) -> tuple[Verdict | None, CheckOutcome]:
    """One check, timed; (None, outcome with error) when it raised or timed out."""
    started = time.perf_counter()
    outcome = CheckOutcome(check.type, False)
    verdict: Verdict | None = None
    try:
        result = check.spec.fn(data, check.params)
        if check.spec.is_async:
            verdict = await asyncio.wait_for(cast(Awaitable[Verdict], result), check.timeout)
        else:
            verdict = cast(Verdict, result)
    except TimeoutError:
        outcome.error = f"timed out after {check.timeout * 1000:.0f} ms"
    except Exception as exc:  # a check is third-party-ish code: any failure is its verdict
        log.warning("guardrail check %s failed: %s", check.type, exc)
        outcome.error = f"{type(exc).__name__}: {exc}"[:300]
    outcome.latency_ms = (time.perf_counter() - started) * 1000.0
    if verdict is not None:
        outcome.passed = verdict.passed
        outcome.explanation = verdict.explanation
    return verdict, outcome


def rewrite(data: CheckInput, findings: list[Finding]) -> int:
    """Apply findings that carry replacements to ``data.parts``; returns how many were applied."""
    chosen = non_overlapping([f for f in findings if f.replacement is not None])
    by_part: dict[int, list[Finding]] = {}
    for f in chosen:
        by_part.setdefault(f.part, []).append(f)
    for index, found in by_part.items():
        part = data.parts[index]
        part.text = apply_findings(part.text, found)
    return len(chosen)


def rewritable(verdict: Verdict) -> bool:
    return bool(verdict.findings) and all(f.replacement is not None for f in verdict.findings)


async def run_guardrail(guardrail: Guardrail, data: CheckInput) -> GuardrailOutcome:
    """Run ``guardrail`` on ``data``; with action 'redact' the parts are rewritten in place."""
    outcome = GuardrailOutcome(guardrail.name, data.stage)
    if guardrail.broken is not None:
        outcome.checks.append(CheckOutcome("(definition)", False, error=guardrail.broken))
        outcome.verdict = "error" if guardrail.on_error == "closed" else "passed"
        return outcome
    if guardrail.mode == "parallel" and len(guardrail.checks) > 1:
        results = await asyncio.gather(*(run_check(c, data) for c in guardrail.checks))
        failures = _settle(guardrail, results, outcome)
        if outcome.verdict == "redacted":
            merged = [f for verdict, _ in failures for f in verdict.findings]
            _count(outcome, failures, rewrite(data, merged))
        return outcome
    for check in guardrail.checks:
        verdict, checked = await run_check(check, data)
        outcome.checks.append(checked)
        if checked.error is not None:
            if guardrail.on_error == "closed":
                outcome.verdict, outcome.failed_check = "error", check.type
                outcome.explanation = checked.error
                return outcome
            continue
        assert verdict is not None
        if verdict.passed:
            continue
        _fail(guardrail, outcome, check.type, verdict)
        if outcome.verdict == "denied":
            return outcome
        if guardrail.action == "redact":
            checked.redactions = rewrite(data, verdict.findings)
    return outcome


def _fail(guardrail: Guardrail, outcome: GuardrailOutcome, check_type: str, verdict: Verdict) -> None:
    if outcome.failed_check is None:
        outcome.failed_check, outcome.explanation = check_type, verdict.explanation
    if guardrail.action == "deny" or (guardrail.action == "redact" and not rewritable(verdict)):
        outcome.verdict, outcome.failed_check, outcome.explanation = "denied", check_type, verdict.explanation
    elif guardrail.action == "redact":
        outcome.verdict = "redacted"
    elif outcome.verdict == "passed":
        outcome.verdict = "flagged"


def _settle(
    guardrail: Guardrail,
    results: list[tuple[Verdict | None, CheckOutcome]],
    outcome: GuardrailOutcome,
) -> list[tuple[Verdict, CheckOutcome]]:
    failures: list[tuple[Verdict, CheckOutcome]] = []
    for verdict, checked in results:
        outcome.checks.append(checked)
        if checked.error is not None:
            if guardrail.on_error == "closed" and outcome.verdict != "error":
                outcome.verdict, outcome.failed_check, outcome.explanation = (
                    "error",
                    checked.type,
                    checked.error,
                )
            continue
        assert verdict is not None
        if not verdict.passed:
            failures.append((verdict, checked))
    if outcome.verdict == "error":
        return failures
    for verdict, checked in failures:
        _fail(guardrail, outcome, checked.type, verdict)
        if outcome.verdict == "denied":
            break
    return failures


def _count(outcome: GuardrailOutcome, failures: list[tuple[Verdict, CheckOutcome]], applied: int) -> None:
    # Merged rewrites are credited to the checks that asked for them, in order, up to what was applied.
    for verdict, checked in failures:
        n = min(applied, sum(1 for f in verdict.findings if f.replacement is not None))
        checked.redactions = n
        applied -= n
