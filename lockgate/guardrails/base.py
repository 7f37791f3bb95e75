"""The check interface: what a check sees, what it answers, and how it declares itself.

A check is one function with a fixed signature, ``fn(input, params) -> Verdict``
(or an awaitable of one), plus a pydantic model of its parameters. Both are
registered under a type name with ``@check(...)``; a guardrail definition names
the type and gives the parameters, which are validated (and regexes compiled)
once, when the config snapshot is built. Nothing here runs per request except
the check functions themselves.

Invariants:
- A check never mutates its input; a mutation is a list of ``Finding`` with a
  ``replacement``, applied by the runner.
- Finding offsets index ``input.parts[finding.part].text``.
- ``stream="window"`` checks must report what they object to as findings: the
  stream guard only acts on findings that lie wholly in the text it may release.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict

if TYPE_CHECKING:
    import aiohttp

    from lockgate.guardrails.vault import Vault

Stage = Literal["input", "output"]
StreamMode = Literal["window", "final"]


@dataclass(slots=True)
class Part:
    """One piece of text a check looks at.

    ``role``: system, user, assistant, tool (a tool result), prompt (completions and
    embeddings input), output (generated text), or tool_call (the arguments of a
    tool call, JSON text; ``name`` is the tool's).
    """

    text: str
    role: str
    name: str | None = None


@dataclass(slots=True)
class CheckInput:
    stage: Stage
    parts: list[Part]
    metadata: Mapping[str, str] = field(default_factory=dict)
    model: str | None = None
    # Reversible placeholders of this request (PII ``redaction: placeholder``).
    vault: Vault | None = None
    # The worker's shared HTTP session, for checks that call out (webhook).
    http: aiohttp.ClientSession | None = None

    @property
    def tool_calls(self) -> list[Part]:
        return [p for p in self.parts if p.role == "tool_call"]

    def joined(self) -> str:
        """All text parts (not tool-call arguments), one per line."""
        return "\n".join(p.text for p in self.parts if p.role != "tool_call")


@dataclass(frozen=True, slots=True)
class Finding:
    part: int
    start: int
    end: int
    label: str
    # Set by mutating checks: what the span becomes when the guardrail redacts.
    replacement: str | None = None


@dataclass(slots=True)
class Verdict:
    passed: bool
    explanation: str = ""
    findings: list[Finding] = field(default_factory=list)
    data: dict[str, Any] | None = None


PASS = Verdict(True)


class Params(BaseModel):
    """Base of every check's parameter model: unknown parameters are refused by name."""

    model_config = ConfigDict(extra="forbid", frozen=True)


CheckFn = Callable[[CheckInput, Any], "Verdict | Awaitable[Verdict]"]


@dataclass(frozen=True, slots=True)
class CheckSpec:
    type: str
    fn: CheckFn
    params: type[Params]
    description: str
    stages: frozenset[str]
    # The check can redact: its failing findings carry replacements.
    mutates: bool
    is_async: bool
    # How it runs on a stream: "window" (incrementally, over a sliding window) or "final"
    # (on the whole answer). A function when it depends on the parameters.
    stream: StreamMode | Callable[[Any], StreamMode]
    # Characters a stream window holds back so a match split across chunks is still whole.
    window: int = 0
    # Earliest offset of ``text`` that must stay held (e.g. an unterminated PEM block), or None.
    hold: Callable[[str, Any], int | None] | None = None

    def stream_mode(self, params: Any) -> StreamMode:
        return self.stream(params) if callable(self.stream) else self.stream


REGISTRY: dict[str, CheckSpec] = {}


def check(
    type_name: str,
    params: type[Params],
    *,
    description: str,
    stages: tuple[str, ...] = ("input", "output"),
    mutates: bool = False,
    stream: StreamMode | Callable[[Any], StreamMode] = "final",
    window: int = 0,
    hold: Callable[[str, Any], int | None] | None = None,
) -> Callable[[CheckFn], CheckFn]:
    """Register ``fn`` as the check ``type_name`` with its declared parameters."""

    def register(fn: CheckFn) -> CheckFn:
        import inspect

        if type_name in REGISTRY:
            raise ValueError(f"guardrail check {type_name!r} is registered twice")
        REGISTRY[type_name] = CheckSpec(
            type=type_name,
            fn=fn,
            params=params,
            description=description,
            stages=frozenset(stages),
            mutates=mutates,
            is_async=inspect.iscoroutinefunction(fn),
            stream=stream,
            window=window,
            hold=hold,
        )
        return fn

    return register


def apply_findings(text: str, findings: list[Finding]) -> str:
    """``text`` with each finding's span replaced; findings must not overlap and be sorted."""
    out: list[str] = []
    last = 0
    for f in findings:
        if f.replacement is None:
            continue
        out.append(text[last : f.start])
        out.append(f.replacement)
        last = f.end
    out.append(text[last:])
    return "".join(out)


def non_overlapping(findings: list[Finding]) -> list[Finding]:
    """Per part, sorted by start; of overlapping findings the earliest (then longest) wins."""
    ordered = sorted(findings, key=lambda f: (f.part, f.start, -(f.end - f.start)))
    kept: list[Finding] = []
    for f in ordered:
        if kept and kept[-1].part == f.part and f.start < kept[-1].end:
            continue
        kept.append(f)
    return kept
