"""A guardrail as data: named checks plus what to do when one fails; compiled once.

    name: pii-redact
    action: redact            # deny | redact | flag
    mode: sequential          # or parallel
    on_error: closed          # open: an erroring check passes; closed: the request is refused (503)
    timeout_ms: 500           # per check, unless a check sets its own
    roles: [user, tool]       # input parts the checks see (unset: all)
    checks:
      - type: pii
        params: {entities: [email, phone], redaction: placeholder}

Validation names the bad field by its path (``checks.0.params.pattern: ...``);
the same model serves ``lockgate.yaml``, the admin API and inline route configs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, model_validator

from lockgate.guardrails.base import REGISTRY, CheckSpec, Params, StreamMode

NAME_PATTERN = r"^[A-Za-z0-9_.-]{1,100}$"
Action = Literal["deny", "redact", "flag"]


class CheckConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: str = Field(description="A registered check type, e.g. pii, regex_match, json_schema, webhook.")
    params: dict[str, Any] = Field(default_factory=dict, description="The check's declared parameters.")
    timeout_ms: int | None = Field(None, ge=1, le=60_000, description="Overrides the guardrail's timeout.")


class GuardrailSpec(BaseModel):
    """Everything but the name and owner: what the store keeps in its columns."""

    model_config = ConfigDict(extra="forbid")

    description: str = Field("", max_length=2000)
    checks: list[CheckConfig] = Field(min_length=1, max_length=50)
    action: Action = Field("deny", description="What a failed check does.")
    mode: Literal["sequential", "parallel"] = "sequential"
    on_error: Literal["open", "closed"] = Field(
        "closed", description="A check that errors or times out: open passes it, closed refuses (503)."
    )
    timeout_ms: int = Field(1000, ge=1, le=60_000, description="Per-check timeout.")
    roles: list[str] | None = Field(
        None, description="Input roles checked (system, user, assistant, tool...)."
    )
    _compiled: tuple[CompiledCheck, ...] = PrivateAttr(())

    @model_validator(mode="after")
    def _checks_compile(self) -> GuardrailSpec:
        self._compiled = compile_checks(self)  # raises ValueError naming the check and field
        return self


class GuardrailConfig(GuardrailSpec):
    name: str = Field(pattern=NAME_PATTERN, description="Referenced from input_guardrails/output_guardrails.")
    workspace: str | None = Field(None, description="lockgate.yaml: owned by this workspace (by name).")


@dataclass(frozen=True, slots=True)
class CompiledCheck:
    spec: CheckSpec
    params: Params
    timeout: float  # seconds
    stream: StreamMode

    @property
    def type(self) -> str:
        return self.spec.type


@dataclass(frozen=True, slots=True)
class Guardrail:
    name: str
    action: Action
    mode: str
    on_error: str
    checks: tuple[CompiledCheck, ...]
    roles: frozenset[str] | None = None
    # Set when the definition could not be compiled on this node: every check errors.
    broken: str | None = None

    @property
    def stages(self) -> frozenset[str]:
        stages = frozenset({"input", "output"})
        for c in self.checks:
            stages &= c.spec.stages
        return stages

    @property
    def window(self) -> int:
        return max((c.spec.window for c in self.checks if c.stream == "window"), default=0)

    @property
    def needs_whole_stream(self) -> bool:
        """A final-mode check that may deny or rewrite: its stream is held until the end."""
        return self.action != "flag" and any(c.stream == "final" for c in self.checks)


def compile_checks(spec: GuardrailSpec) -> tuple[CompiledCheck, ...]:
    compiled = []
    for i, item in enumerate(spec.checks):
        check_spec = REGISTRY.get(item.type)
        if check_spec is None:
            known = ", ".join(sorted(REGISTRY))
            raise ValueError(f"checks.{i}.type: unknown check {item.type!r}; known: {known}")
        try:
            params = check_spec.params.model_validate(item.params)
        except ValidationError as exc:
            problems = "; ".join(
                f"checks.{i}.params.{'.'.join(str(p) for p in e['loc'])}: {e['msg']}".replace(
                    ".params.:", ".params:"
                )
                for e in exc.errors(include_url=False)
            )
            raise ValueError(problems) from None
        timeout = (item.timeout_ms or spec.timeout_ms) / 1000
        compiled.append(CompiledCheck(check_spec, params, timeout, check_spec.stream_mode(params)))
    if spec.action == "redact" and not any(c.spec.mutates for c in compiled):
        mutating = ", ".join(sorted(t for t, s in REGISTRY.items() if s.mutates))
        raise ValueError(f"action: 'redact' needs a check that can rewrite text ({mutating})")
    return tuple(compiled)


def compile_guardrail(name: str, spec: GuardrailSpec) -> Guardrail:
    return Guardrail(
        name=name,
        action=spec.action,
        mode=spec.mode,
        on_error=spec.on_error,
        checks=spec._compiled or compile_checks(spec),
        roles=frozenset(spec.roles) if spec.roles is not None else None,
    )


def broken_guardrail(name: str, message: str) -> Guardrail:
    """Stands in for a stored definition this node cannot compile; its on_error decides (closed)."""
    return Guardrail(name, "deny", "sequential", "closed", (), None, message)


def check_stage(guardrail: Guardrail, stage: str, where: str) -> None:
    """Raise ValueError when ``guardrail`` has a check that cannot run at ``stage``."""
    for c in guardrail.checks:
        if stage not in c.spec.stages:
            raise ValueError(
                f"{where}: the guardrail {guardrail.name!r} has a {c.type!r} check, which runs only on "
                f"{'/'.join(sorted(c.spec.stages))}"
            )


class AttachmentConfig(BaseModel):
    """lockgate.yaml: the guardrail lists of the org, a workspace or a key (by names)."""

    model_config = ConfigDict(extra="forbid")

    scope: Literal["org", "workspace", "key"]
    workspace: str | None = Field(None, description="Workspace name (scope workspace or key).")
    key: str | None = Field(None, description="Key name in that workspace (scope key).")
    input_guardrails: list[str] = Field(default_factory=list, description="Run on requests, in order.")
    output_guardrails: list[str] = Field(default_factory=list, description="Run on answers, in order.")

    @model_validator(mode="after")
    def _target(self) -> AttachmentConfig:
        if self.scope == "org" and (self.workspace or self.key):
            raise ValueError("scope 'org' takes no workspace or key")
        if self.scope != "org" and not self.workspace:
            raise ValueError(f"scope {self.scope!r} needs 'workspace'")
        if (self.scope == "key") != (self.key is not None):
            raise ValueError("'key' is given exactly when scope is 'key'")
        return self

    @property
    def target(self) -> tuple[str, str | None, str | None]:
        return (self.scope, self.workspace, self.key)
