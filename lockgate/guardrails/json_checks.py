"""JSON checks on generated output: schema validation (``jsonschema``) and required keys.

The answer may wrap its JSON in a Markdown code fence or put prose around it; the
check looks at the fenced block, else the outermost ``{...}`` / ``[...]``.
"""

from __future__ import annotations

import re
from typing import Any, Literal

import orjson
from jsonschema import exceptions as schema_errors
from jsonschema.validators import validator_for
from pydantic import Field, PrivateAttr

from lockgate.guardrails.base import CheckInput, Params, Verdict, check

_FENCE = re.compile(r"```(?:json)?\s*\n(.*?)```", re.S)


def extract_json(text: str) -> tuple[bool, Any]:
    """(found, value) for the JSON document in ``text``."""
    candidates = [m.group(1) for m in _FENCE.finditer(text)] or [text]
    for candidate in candidates:
        stripped = candidate.strip()
        for opener, closer in (("{", "}"), ("[", "]")):
            start, end = stripped.find(opener), stripped.rfind(closer)
            if start < 0 or end <= start:
                continue
            try:
                return True, orjson.loads(stripped[start : end + 1])
            except orjson.JSONDecodeError:
                continue
    return False, None


class JsonSchemaParams(Params):
    json_schema: dict[str, Any] = Field(
        alias="schema", description="A JSON Schema (any draft; 2020-12 default)."
    )
    _validator: Any = PrivateAttr()

    def model_post_init(self, _context: Any) -> None:
        cls = validator_for(self.json_schema)
        try:
            cls.check_schema(self.json_schema)
        except schema_errors.SchemaError as exc:
            raise ValueError(f"not a valid JSON Schema: {exc.message}") from exc
        self._validator = cls(self.json_schema)


@check(
    "json_schema",
    JsonSchemaParams,
    description="The output holds JSON that validates against a JSON Schema.",
    stages=("output",),
)
def json_schema(data: CheckInput, params: JsonSchemaParams) -> Verdict:
    found, value = extract_json(data.joined())
    if not found:
        return Verdict(False, "the output holds no JSON document")
    error = schema_errors.best_match(params._validator.iter_errors(value))
    if error is not None:
        where = "/".join(str(p) for p in error.absolute_path) or "(root)"
        return Verdict(False, f"JSON does not match the schema at {where}: {error.message}")
    return Verdict(True)


class JsonKeysParams(Params):
    keys: tuple[str, ...] = Field(min_length=1, description="Top-level keys of the JSON object.")
    operator: Literal["any", "all", "none"] = "all"


@check(
    "json_keys",
    JsonKeysParams,
    description="The output's JSON object has any / all / none of the given top-level keys.",
    stages=("output",),
)
def json_keys(data: CheckInput, params: JsonKeysParams) -> Verdict:
    found, value = extract_json(data.joined())
    if not found or not isinstance(value, dict):
        return Verdict(False, "the output holds no JSON object")
    present = [k for k in params.keys if k in value]
    if params.operator == "all" and len(present) < len(params.keys):
        missing = [k for k in params.keys if k not in value]
        return Verdict(False, f"JSON is missing key(s): {', '.join(missing)}")
    if params.operator == "any" and not present:
        return Verdict(False, f"JSON has none of: {', '.join(params.keys)}")
    if params.operator == "none" and present:
        return Verdict(False, f"JSON has forbidden key(s): {', '.join(present)}")
    return Verdict(True)
