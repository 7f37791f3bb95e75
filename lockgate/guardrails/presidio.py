"""Optional: Microsoft Presidio's analyzer as a PII check, when ``presidio-analyzer`` is installed.

Presidio runs NLP models, so it is far slower than the built-in ``pii`` check;
it runs in a worker thread (the event loop never waits on it) and under the
guardrail's timeout. A config naming it without the package installed is
refused when the snapshot is built, with a message that says so.
"""

from __future__ import annotations

import asyncio
import functools
from typing import Any

from pydantic import Field, PrivateAttr

from lockgate.guardrails.base import CheckInput, Finding, Params, Verdict, check


@functools.cache
def _analyzer() -> Any:
    from presidio_analyzer import AnalyzerEngine

    return AnalyzerEngine()


class PresidioParams(Params):
    entities: tuple[str, ...] | None = Field(None, description="Presidio entity names; unset: all.")
    language: str = "en"
    score_threshold: float = Field(0.5, ge=0, le=1)
    _ready: bool = PrivateAttr(False)

    def model_post_init(self, _context: Any) -> None:
        try:
            import presidio_analyzer  # noqa: F401
        except ImportError as exc:
            raise ValueError(
                "the presidio check needs the presidio-analyzer package (pip install 'lockgate[presidio]')"
            ) from exc
        self._ready = True


def _analyze(texts: list[str], params: PresidioParams) -> list[list[Any]]:
    engine = _analyzer()
    return [
        engine.analyze(
            text=t,
            language=params.language,
            entities=list(params.entities) if params.entities else None,
            score_threshold=params.score_threshold,
        )
        for t in texts
    ]


@check(
    "presidio",
    PresidioParams,
    description="PII found by Presidio's analyzer (optional package), replaced by '<ENTITY>'.",
    mutates=True,
)
async def presidio(data: CheckInput, params: PresidioParams) -> Verdict:
    results = await asyncio.to_thread(_analyze, [p.text for p in data.parts], params)
    findings = [
        Finding(i, r.start, r.end, r.entity_type.lower(), f"<{r.entity_type}>")
        for i, found in enumerate(results)
        for r in found
    ]
    if findings:
        kinds = sorted({f.label for f in findings})
        return Verdict(False, f"Presidio found: {', '.join(kinds)}", findings)
    return Verdict(True)
