"""Guardrails: local checks on what goes into and comes out of a model (DESIGN §2 steps 5 and 8).

Importing the package registers every built-in check.
"""

from lockgate.guardrails import (  # noqa: F401  (registration side effect)
    injection,
    json_checks,
    pii,
    policy_checks,
    presidio,
    text_checks,
    webhook,
)
from lockgate.guardrails.attachments import NONE, Attached, GuardrailSet, build_guardrail_set
from lockgate.guardrails.base import REGISTRY, CheckInput, Finding, Part, Verdict
from lockgate.guardrails.definition import Guardrail, GuardrailConfig, GuardrailSpec, compile_guardrail
from lockgate.guardrails.session import GuardSession

__all__ = [
    "NONE",
    "REGISTRY",
    "Attached",
    "CheckInput",
    "Finding",
    "GuardSession",
    "Guardrail",
    "GuardrailConfig",
    "GuardrailSet",
    "GuardrailSpec",
    "Part",
    "Verdict",
    "build_guardrail_set",
    "compile_guardrail",
]
