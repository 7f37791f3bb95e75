"""Which guardrails a request meets: the org's, its workspace's, its key's, then its route config's.

A ``GuardrailSet`` is snapshot data: built (and every definition compiled) when
the config version changes, then only read. Lists are concatenated in that
order, outermost first, and a guardrail named twice runs once, where it first
appears. A set with nothing attached answers every request with the shared
empty pair, so requests pay nothing for guardrails they do not have.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import orjson
from pydantic import ValidationError

from lockgate.guardrails.definition import (
    Guardrail,
    GuardrailSpec,
    broken_guardrail,
    check_stage,
    compile_guardrail,
)

log = logging.getLogger("lockgate.guardrails")

_INLINE_MEMO_LIMIT = 256


@dataclass(frozen=True, slots=True)
class Attached:
    input: tuple[Guardrail, ...] = ()
    output: tuple[Guardrail, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.input or self.output)

    def then(self, other: Attached) -> Attached:
        if not other:
            return self
        if not self:
            return other
        return Attached(_dedupe(self.input + other.input), _dedupe(self.output + other.output))


NONE = Attached()


def _dedupe(items: tuple[Guardrail, ...]) -> tuple[Guardrail, ...]:
    seen: set[str] = set()
    kept = []
    for g in items:
        if g.name not in seen:
            seen.add(g.name)
            kept.append(g)
    return tuple(kept)


class GuardrailRefError(ValueError):
    """A reference to a guardrail that does not exist or cannot run at that stage."""


@dataclass(slots=True)
class GuardrailSet:
    by_name: Mapping[str, Guardrail] = field(default_factory=dict)
    org: Attached = NONE
    workspaces: Mapping[str, Attached] = field(default_factory=dict)
    keys: Mapping[str, Attached] = field(default_factory=dict)
    # Caches filled on the request path; the set itself is rebuilt with each snapshot.
    _memo: dict[tuple[str, str], Attached] = field(default_factory=dict, init=False, repr=False)
    _inline: dict[bytes, Attached] = field(default_factory=dict, init=False, repr=False)

    @property
    def empty(self) -> bool:
        return not (self.org or self.workspaces or self.keys)

    def for_principal(self, workspace_id: str, key_id: str) -> Attached:
        if self.empty:
            return NONE
        memo_key = (workspace_id, key_id)
        found = self._memo.get(memo_key)
        if found is None:
            found = self.org.then(self.workspaces.get(workspace_id, NONE)).then(self.keys.get(key_id, NONE))
            self._memo[memo_key] = found
        return found

    def for_request(self, workspace_id: str, key_id: str, config: Any = None) -> Attached:
        """``config``: the request's route config (its root ``input_guardrails``/``output_guardrails``)."""
        attached = self.for_principal(workspace_id, key_id)
        if config is None or not (config.input_guardrails or config.output_guardrails):
            return attached
        return attached.then(self.resolve_refs(config.input_guardrails, config.output_guardrails))

    def resolve_refs(self, inputs: Iterable[Any], outputs: Iterable[Any]) -> Attached:
        """Names of stored guardrails, or inline definitions (compiled once, memoised)."""
        inputs, outputs = tuple(inputs), tuple(outputs)
        key = orjson.dumps([inputs, outputs], option=orjson.OPT_SORT_KEYS)
        found = self._inline.get(key)
        if found is None:
            found = Attached(
                tuple(self._ref(r, "input", f"input_guardrails.{i}") for i, r in enumerate(inputs)),
                tuple(self._ref(r, "output", f"output_guardrails.{i}") for i, r in enumerate(outputs)),
            )
            if len(self._inline) < _INLINE_MEMO_LIMIT:
                self._inline[key] = found
        return found

    def _ref(self, ref: Any, stage: str, where: str) -> Guardrail:
        if isinstance(ref, str):
            guardrail = self.by_name.get(ref)
            if guardrail is None:
                raise GuardrailRefError(f"{where}: no guardrail named {ref!r}")
        else:
            body = dict(ref)
            name = str(body.pop("name", None) or f"inline-{stage}-{where.rpartition('.')[2]}")
            try:
                guardrail = compile_guardrail(name, GuardrailSpec.model_validate(body))
            except ValidationError as exc:
                problems = "; ".join(
                    f"{where}.{'.'.join(str(p) for p in e['loc'])}: {e['msg']}".rstrip(".")
                    for e in exc.errors(include_url=False)
                )
                raise GuardrailRefError(problems) from None
        try:
            check_stage(guardrail, stage, where)
        except ValueError as exc:
            raise GuardrailRefError(str(exc)) from None
        return guardrail


def build_guardrail_set(
    definitions: Iterable[Mapping[str, Any]], attachments: Iterable[Mapping[str, Any]]
) -> GuardrailSet:
    """From stored rows: ``guardrails`` (name + spec columns) and ``guardrail_attachments``."""
    by_name: dict[str, Guardrail] = {}
    for row in definitions:
        spec_fields = {k: row[k] for k in GuardrailSpec.model_fields if k in row and row[k] is not None}
        try:
            by_name[row["name"]] = compile_guardrail(row["name"], GuardrailSpec.model_validate(spec_fields))
        except (ValidationError, ValueError) as exc:
            # Fail closed: a stored definition this node cannot compile refuses the requests it guards.
            log.error("guardrail %r cannot be compiled here; it will refuse requests: %s", row["name"], exc)
            by_name[row["name"]] = broken_guardrail(row["name"], f"cannot be compiled: {exc}"[:300])
    guardrails = GuardrailSet(by_name=MappingProxyType(by_name))
    workspaces: dict[str, Attached] = {}
    keys: dict[str, Attached] = {}
    for row in attachments:
        attached = Attached(
            _named(by_name, row.get("input_guardrails"), "input", row),
            _named(by_name, row.get("output_guardrails"), "output", row),
        )
        if row["scope"] == "org":
            guardrails.org = attached
        elif row["scope"] == "workspace":
            workspaces[row["target_id"]] = attached
        elif row["scope"] == "key":
            keys[row["target_id"]] = attached
    guardrails.workspaces = MappingProxyType(workspaces)
    guardrails.keys = MappingProxyType(keys)
    return guardrails


def _named(
    by_name: Mapping[str, Guardrail], names: Iterable[str] | None, stage: str, row: Mapping[str, Any]
) -> tuple[Guardrail, ...]:
    found = []
    for name in names or ():
        guardrail = by_name.get(name)
        if guardrail is None:
            # The admin API refuses such references; a hand-edited store still fails closed.
            guardrail = broken_guardrail(
                name, f"attached to {row['scope']} {row.get('target_id')} but undefined"
            )
        found.append(guardrail)
    return _dedupe(tuple(found))
