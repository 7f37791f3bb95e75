"""Conditional routing queries: Portkey's Mongo-style operators, compiled once per config.

A query is a JSON object. Each key is either a field path whose value is an
operator object (``{"metadata.tier": {"$eq": "pro"}}``) or a bare value
(implicit ``$eq``), or a logical operator (``$and``/``$or``) over a list of
queries. All keys of one object must match.

Fields: ``metadata.<key>`` (the ``x-lockgate-metadata`` header), ``params.<path>``
(the request body; dots walk nested objects, digits index lists) and ``url.pathname``.

Comparison rules, chosen for metadata being strings: when the query holds a number
and the field a numeric string (or the other way round), both compare as numbers;
otherwise values compare only with their own kind. A missing field matches only
``$ne`` and ``$nin``. ``$regex`` is Python ``re.search``, compiled here.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(slots=True)
class MatchContext:
    metadata: Mapping[str, str]
    params: Mapping[str, Any]
    path: str


Predicate = Callable[[MatchContext], bool]
Getter = Callable[[MatchContext], Any]


class ConditionError(ValueError):
    """A query that cannot be compiled; ``path`` locates it inside the query."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path}: {message}")
        self.path = path
        self.message = message


_MISSING: Any = object()
_ORDER = {"$gt": operator.gt, "$gte": operator.ge, "$lt": operator.lt, "$lte": operator.le}


def compile_query(query: Any, path: str = "query") -> Predicate:
    if not isinstance(query, dict):
        raise ConditionError(path, "a query must be a JSON object")
    parts: list[Predicate] = []
    for key, value in query.items():
        where = f"{path}.{key}"
        if key in ("$and", "$or"):
            if not isinstance(value, list) or not value:
                raise ConditionError(where, f"{key} needs a non-empty list of queries")
            subs = tuple(compile_query(q, f"{where}.{i}") for i, q in enumerate(value))
            parts.append(_all(subs) if key == "$and" else _any(subs))
        elif key.startswith("$"):
            raise ConditionError(where, f"unknown operator {key!r} (expected a field or $and/$or)")
        else:
            parts.append(_field(_getter(key, where), value, where))
    if not parts:
        raise ConditionError(path, "an empty query matches nothing useful; give at least one field")
    return parts[0] if len(parts) == 1 else _all(tuple(parts))


def _all(subs: tuple[Predicate, ...]) -> Predicate:
    return lambda ctx: all(p(ctx) for p in subs)


def _any(subs: tuple[Predicate, ...]) -> Predicate:
    return lambda ctx: any(p(ctx) for p in subs)


def _getter(field: str, where: str) -> Getter:
    root, _, rest = field.partition(".")
    if root == "metadata" and rest:
        return lambda ctx: ctx.metadata.get(rest, _MISSING)
    if root == "params" and rest:
        steps = tuple(rest.split("."))
        return lambda ctx: _walk(ctx.params, steps)
    if field == "url.pathname":
        return lambda ctx: ctx.path
    raise ConditionError(where, "fields are metadata.<key>, params.<path> or url.pathname")


def _walk(value: Any, steps: tuple[str, ...]) -> Any:
    for step in steps:
        if isinstance(value, Mapping):
            value = value.get(step, _MISSING)
        elif isinstance(value, list) and step.isdigit() and int(step) < len(value):
            value = value[int(step)]
        else:
            return _MISSING
        if value is _MISSING:
            return value
    return value


def _field(get: Getter, spec: Any, where: str) -> Predicate:
    if not (isinstance(spec, dict) and spec and all(isinstance(k, str) and k.startswith("$") for k in spec)):
        return lambda ctx: _equal(get(ctx), spec)  # a bare value means $eq
    tests: list[Callable[[Any], bool]] = [_operator(op, arg, f"{where}.{op}") for op, arg in spec.items()]
    return lambda ctx: all(test(v) for v in (get(ctx),) for test in tests)


def _operator(op: str, arg: Any, where: str) -> Callable[[Any], bool]:
    if op == "$eq":
        return lambda v: _equal(v, arg)
    if op == "$ne":
        return lambda v: not _equal(v, arg)
    if op in _ORDER:
        if isinstance(arg, bool) or not isinstance(arg, int | float | str):
            raise ConditionError(where, f"{op} compares with a number or a string")
        compare = _ORDER[op]
        return lambda v: _ordered(v, arg, compare)
    if op in ("$in", "$nin"):
        if not isinstance(arg, list):
            raise ConditionError(where, f"{op} needs a list")
        options = tuple(arg)
        if op == "$in":
            return lambda v: any(_equal(v, o) for o in options)
        return lambda v: not any(_equal(v, o) for o in options)
    if op == "$regex":
        if not isinstance(arg, str):
            raise ConditionError(where, "$regex needs a string pattern")
        try:
            pattern = re.compile(arg)
        except re.error as exc:
            raise ConditionError(where, f"invalid regular expression: {exc}") from exc
        return lambda v: isinstance(v, str) and pattern.search(v) is not None
    raise ConditionError(where, f"unknown operator {op!r}")


def _as_number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    return None


def _equal(value: Any, expected: Any) -> bool:
    if value is _MISSING:
        return False
    if type(value) is type(expected) or (_numeric(value) and _numeric(expected)):
        return bool(value == expected)
    if _numeric(expected) or _numeric(value):
        a, b = _as_number(value), _as_number(expected)
        return a is not None and a == b
    return False


def _numeric(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _ordered(value: Any, bound: Any, compare: Callable[[Any, Any], bool]) -> bool:
    if value is _MISSING:
        return False
    if isinstance(bound, str) and isinstance(value, str) and _as_number(bound) is None:
        return compare(value, bound)
    a, b = _as_number(value), _as_number(bound)
    return a is not None and b is not None and compare(a, b)
