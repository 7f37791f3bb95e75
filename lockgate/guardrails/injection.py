"""Prompt-injection heuristics: instruction overrides, known jailbreaks, hidden unicode.

Heuristics, not a classifier: phrases that try to replace the operator's
instructions ("ignore all previous instructions"), well-known jailbreak
personas and framings ("DAN", "developer mode"), requests to reveal the system
prompt, and characters a human cannot see but a model reads (the Unicode tags
block, zero-width characters, bidirectional overrides). With action 'redact',
hidden characters are removed and phrases are left to deny or flag.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import Field, PrivateAttr

from lockgate.guardrails.base import CheckInput, Finding, Params, Verdict, check

_OVERRIDE = (
    r"(?:ignore|disregard|forget|skip|override|bypass)\s+(?:all\s+|any\s+|the\s+|your\s+|my\s+)*"
    r"(?:previous|prior|above|earlier|preceding|initial|original|system|existing)\s+"
    r"(?:instructions?|prompts?|rules|directions|guidelines|context|messages?)",
    r"(?:forget|ignore)\s+(?:everything|all)\s+(?:you\s+(?:were|have\s+been)\s+told|above|before)",
    r"(?:new|updated|real)\s+(?:system\s+)?instructions?\s*:",
    r"you\s+(?:are|will)\s+no\s+longer\s+(?:bound|restricted|limited)",
    r"from\s+now\s+on,?\s+you\s+(?:will|must|are\s+going\s+to)\s+(?:ignore|answer\s+without|disregard)",
    r"(?:reveal|print|show|repeat|output|leak|tell\s+me)\s+(?:me\s+)?(?:your|the)\s+"
    r"(?:system|hidden|initial|original|secret)\s+(?:prompt|instructions|message)",
    r"\[\s*system\s*\]|<\s*/?\s*system\s*>|###\s*system\s*:",
)
_JAILBREAK = (
    r"\bDAN\b.{0,40}\b(?:do\s+anything\s+now|mode)",
    r"do\s+anything\s+now",
    r"(?:developer|god|jailbreak|unrestricted|dev)\s+mode\s+(?:enabled|on|activated)",
    r"(?:enable|activate|enter)\s+(?:developer|god|jailbreak|unrestricted)\s+mode",
    r"pretend\s+(?:that\s+)?you\s+(?:are|have)\s+(?:no|an?\s+(?:ai|model)\s+(?:with(?:out)?))\s*"
    r"(?:restrictions|rules|filters|limits|guidelines|content\s+polic)",
    r"act\s+as\s+(?:an?\s+)?(?:unfiltered|uncensored|unrestricted|evil)",
    r"without\s+(?:any\s+)?(?:ethical|moral|content)\s+(?:restrictions|guidelines|filters|limits)",
    r"(?:hypothetically|in\s+a\s+fictional\s+world).{0,60}(?:no\s+rules|anything\s+goes)",
    r"stay\s+in\s+character\s+no\s+matter\s+what",
)
# Tags block (invisible ASCII smuggling), zero-width, word joiner, BOM, bidi embeddings/overrides/isolates.
HIDDEN = re.compile(
    "[\U000e0000-\U000e007f\u200b-\u200f\u2060-\u2064\ufeff\u202a-\u202e\u2066-\u2069\u00ad]+"
)
Detect = Literal["instruction_override", "jailbreak", "hidden_unicode"]


class InjectionParams(Params):
    detect: tuple[Detect, ...] = Field(
        ("instruction_override", "jailbreak", "hidden_unicode"), min_length=1, description="Which heuristics."
    )
    extra_patterns: tuple[str, ...] = Field((), description="More regular expressions (case-insensitive).")
    _phrases: re.Pattern[str] | None = PrivateAttr(None)

    def model_post_init(self, _context: Any) -> None:
        patterns: list[str] = []
        if "instruction_override" in self.detect:
            patterns += _OVERRIDE
        if "jailbreak" in self.detect:
            patterns += _JAILBREAK
        for extra in self.extra_patterns:
            try:
                re.compile(extra)
            except re.error as exc:
                raise ValueError(
                    f"extra_patterns: {extra!r} is not a valid regular expression: {exc}"
                ) from exc
            patterns.append(extra)
        if patterns:
            self._phrases = re.compile("|".join(f"(?:{p})" for p in patterns), re.IGNORECASE | re.DOTALL)


@check(
    "prompt_injection",
    InjectionParams,
    description="Instruction-override phrases, known jailbreak patterns and hidden unicode characters.",
    mutates=True,
    stream="window",
    window=160,
)
def prompt_injection(data: CheckInput, params: InjectionParams) -> Verdict:
    findings: list[Finding] = []
    kinds: set[str] = set()
    hidden = "hidden_unicode" in params.detect
    for i, part in enumerate(data.parts):
        text = part.text
        if hidden and not text.isascii():
            for m in HIDDEN.finditer(text):
                findings.append(Finding(i, m.start(), m.end(), "hidden_unicode", ""))
                kinds.add("hidden unicode")
        if params._phrases is not None:
            for m in params._phrases.finditer(text):
                # Phrases are not rewritten: a redacting guardrail removes only hidden characters.
                findings.append(Finding(i, m.start(), m.end(), "injection"))
                kinds.add(f"injection phrase {m.group(0)[:60]!r}")
    if findings:
        return Verdict(False, "; ".join(sorted(kinds)), findings)
    return Verdict(True)
