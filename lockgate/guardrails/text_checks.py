"""Text checks: regex match and replace, length limits, required and denied words, topics, URLs.

Patterns are compiled once, when the parameters are validated (snapshot build).
"""

from __future__ import annotations

import re
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import Field, PrivateAttr, field_validator, model_validator

from lockgate.guardrails.base import CheckInput, Finding, Params, Verdict, check

_MAX_PATTERN = 2000


def _valid_pattern(value: str) -> str:
    _compile(value, False)  # a bad pattern is an error on the ``pattern`` field itself
    return value


def _compile(pattern: str, ignore_case: bool) -> re.Pattern[str]:
    if len(pattern) > _MAX_PATTERN:
        raise ValueError(f"the pattern is longer than {_MAX_PATTERN} characters")
    try:
        return re.compile(pattern, re.IGNORECASE if ignore_case else 0)
    except re.error as exc:
        raise ValueError(f"not a valid regular expression: {exc}") from exc


def _words_pattern(words: tuple[str, ...], ignore_case: bool) -> re.Pattern[str]:
    # Whole words or phrases; longest first so "credit card number" beats "credit card".
    alternatives = "|".join(re.escape(w) for w in sorted(words, key=len, reverse=True))
    return re.compile(rf"(?<!\w)(?:{alternatives})(?!\w)", re.IGNORECASE if ignore_case else 0)


def _findings(
    data: CheckInput, pattern: re.Pattern[str], label: str, replacement: str | None
) -> list[Finding]:
    return [
        Finding(i, m.start(), m.end(), label, m.expand(replacement) if replacement is not None else None)
        for i, part in enumerate(data.parts)
        for m in pattern.finditer(part.text)
    ]


# --- regex ---------------------------------------------------------------------------------


class RegexMatchParams(Params):
    pattern: str = Field(description="A Python regular expression.")
    ignore_case: bool = False
    fail_on: Literal["match", "no_match"] = Field(
        "match", description="match: fail when the text matches; no_match: fail when it does not."
    )
    _compiled: re.Pattern[str] = PrivateAttr()
    _check_pattern = field_validator("pattern")(_valid_pattern)

    def model_post_init(self, _context: Any) -> None:
        self._compiled = _compile(self.pattern, self.ignore_case)


def _regex_stream(params: RegexMatchParams) -> Literal["window", "final"]:
    return "window" if params.fail_on == "match" else "final"


@check(
    "regex_match",
    RegexMatchParams,
    description="Fails when the text matches a pattern (or, with fail_on: no_match, when it does not).",
    stream=_regex_stream,
    window=128,
)
def regex_match(data: CheckInput, params: RegexMatchParams) -> Verdict:
    findings = _findings(data, params._compiled, "regex", None)
    if params.fail_on == "match":
        if findings:
            return Verdict(False, f"matched the pattern {params.pattern!r}", findings)
        return Verdict(True)
    if findings:
        return Verdict(True)
    return Verdict(False, f"did not match the required pattern {params.pattern!r}")


class RegexReplaceParams(Params):
    pattern: str = Field(description="A Python regular expression.")
    replacement: str = Field(
        "[REDACTED]", description=r"What a match becomes; \1 and \g<name> refer to groups."
    )
    ignore_case: bool = False
    _compiled: re.Pattern[str] = PrivateAttr()
    _check_pattern = field_validator("pattern")(_valid_pattern)

    def model_post_init(self, _context: Any) -> None:
        self._compiled = _compile(self.pattern, self.ignore_case)
        try:
            self._compiled.sub(self.replacement, "")
        except (re.error, IndexError) as exc:
            raise ValueError(f"replacement: {exc}") from exc


@check(
    "regex_replace",
    RegexReplaceParams,
    description="Replaces every match of a pattern (fails, so action 'redact' rewrites the text).",
    mutates=True,
    stream="window",
    window=128,
)
def regex_replace(data: CheckInput, params: RegexReplaceParams) -> Verdict:
    findings = _findings(data, params._compiled, "regex", params.replacement)
    if findings:
        return Verdict(False, f"{len(findings)} match(es) of {params.pattern!r}", findings)
    return Verdict(True)


# --- limits --------------------------------------------------------------------------------

_WORD = re.compile(r"\w+(?:[-'\u2019]\w+)*")
# Latin and CJK (ideographic full stop, full-width ! and ?) sentence ends.
_SENTENCE_END = re.compile(r"[.!?\u3002\uff01\uff1f]+(?=\s|$)")


class LimitsParams(Params):
    min_words: int | None = Field(None, ge=0)
    max_words: int | None = Field(None, ge=0)
    min_sentences: int | None = Field(None, ge=0)
    max_sentences: int | None = Field(None, ge=0)
    min_characters: int | None = Field(None, ge=0)
    max_characters: int | None = Field(None, ge=0)

    @model_validator(mode="after")
    def _some_limit(self) -> LimitsParams:
        if all(v is None for v in self.model_dump().values()):
            raise ValueError("set at least one limit (min_/max_ words, sentences or characters)")
        for unit in ("words", "sentences", "characters"):
            low, high = getattr(self, f"min_{unit}"), getattr(self, f"max_{unit}")
            if low is not None and high is not None and low > high:
                raise ValueError(f"min_{unit} is larger than max_{unit}")
        return self


def sentence_count(text: str) -> int:
    stripped = text.strip()
    if not stripped:
        return 0
    ends = len(_SENTENCE_END.findall(stripped))
    return ends + (0 if _SENTENCE_END.search(stripped[-1:] + " ") else 1)


@check(
    "limits",
    LimitsParams,
    description="Word, sentence and character counts within bounds.",
)
def limits(data: CheckInput, params: LimitsParams) -> Verdict:
    text = data.joined()
    counts = {
        "words": len(_WORD.findall(text)),
        "sentences": sentence_count(text),
        "characters": len(text),
    }
    for unit, n in counts.items():
        low, high = getattr(params, f"min_{unit}"), getattr(params, f"max_{unit}")
        if low is not None and n < low:
            return Verdict(False, f"{n} {unit}, fewer than the minimum {low}", data=counts)
        if high is not None and n > high:
            return Verdict(False, f"{n} {unit}, more than the maximum {high}", data=counts)
    return Verdict(True, data=counts)


# --- words and topics ----------------------------------------------------------------------


class ContainsParams(Params):
    words: tuple[str, ...] = Field(min_length=1, description="Words or phrases (whole-word match).")
    operator: Literal["any", "all", "none"] = Field(
        "any", description="any/all: the text must contain any/all of them; none: must contain none."
    )
    ignore_case: bool = True
    _compiled: re.Pattern[str] = PrivateAttr()

    def model_post_init(self, _context: Any) -> None:
        self._compiled = _words_pattern(self.words, self.ignore_case)


def _contains_stream(params: ContainsParams) -> Literal["window", "final"]:
    return "window" if params.operator == "none" else "final"


@check(
    "contains",
    ContainsParams,
    description="The text contains any / all / none of the given words or phrases.",
    stream=_contains_stream,
    window=64,
)
def contains(data: CheckInput, params: ContainsParams) -> Verdict:
    findings = _findings(data, params._compiled, "word", None)
    seen = {data.parts[f.part].text[f.start : f.end].lower() for f in findings}
    if params.operator == "none":
        if findings:
            return Verdict(False, f"contains {', '.join(sorted(seen))}", findings)
        return Verdict(True)
    wanted = {w.lower() for w in params.words}
    if params.operator == "any" and not seen:
        return Verdict(False, "contains none of the required words")
    missing = wanted - seen
    if params.operator == "all" and missing:
        return Verdict(False, f"missing required words: {', '.join(sorted(missing))}")
    return Verdict(True)


class DeniedKeywordsParams(Params):
    keywords: tuple[str, ...] = Field(min_length=1, description="Words or phrases (whole-word match).")
    ignore_case: bool = True
    mask: str = Field("[REDACTED]", description="What a keyword becomes when the guardrail redacts.")
    _compiled: re.Pattern[str] = PrivateAttr()

    def model_post_init(self, _context: Any) -> None:
        self._compiled = _words_pattern(self.keywords, self.ignore_case)


@check(
    "denied_keywords",
    DeniedKeywordsParams,
    description="Fails on any of the keywords; with action 'redact' they are masked.",
    mutates=True,
    stream="window",
    window=64,
)
def denied_keywords(data: CheckInput, params: DeniedKeywordsParams) -> Verdict:
    findings = _findings(data, params._compiled, "keyword", params.mask)
    if findings:
        words = sorted({data.parts[f.part].text[f.start : f.end].lower() for f in findings})
        return Verdict(False, f"denied keyword(s): {', '.join(words)}", findings)
    return Verdict(True)


# Small, deliberately conservative keyword sets; teams add their own with ``custom``.
TOPICS: dict[str, tuple[str, ...]] = {
    "weapons": ("assault rifle", "build a bomb", "pipe bomb", "explosive device", "ghost gun", "silencer"),
    "self_harm": ("kill myself", "suicide", "self-harm", "end my life", "cut myself"),
    "drugs": ("cook meth", "methamphetamine", "fentanyl synthesis", "buy cocaine", "heroin"),
    "medical_advice": ("diagnose", "dosage", "prescription", "symptoms of", "medication"),
    "legal_advice": ("lawsuit", "sue my", "legal advice", "attorney", "custody"),
    "financial_advice": (
        "stock tip",
        "which stock",
        "investment advice",
        "crypto to buy",
        "guaranteed returns",
    ),
    "politics": ("election", "democrat", "republican", "vote for", "political party"),
}


class DeniedTopicsParams(Params):
    topics: tuple[str, ...] = Field((), description=f"Built-in topics: {', '.join(TOPICS)}.")
    custom: dict[str, tuple[str, ...]] = Field(
        default_factory=dict, description="More topics: name -> keywords or phrases."
    )
    min_hits: int = Field(1, ge=1, description="Keyword hits of one topic before it counts.")
    _patterns: dict[str, re.Pattern[str]] = PrivateAttr()

    @field_validator("topics")
    @classmethod
    def _known(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        unknown = [t for t in value if t not in TOPICS]
        if unknown:
            raise ValueError(f"unknown topic(s) {unknown}; built in: {', '.join(TOPICS)}")
        return value

    def model_post_init(self, _context: Any) -> None:
        merged = {t: TOPICS[t] for t in self.topics} | dict(self.custom)
        self._patterns = {name: _words_pattern(words, True) for name, words in merged.items() if words}
        if not self._patterns:
            raise ValueError("name at least one topic with keywords (topics or custom)")


def _topics_stream(params: DeniedTopicsParams) -> Literal["window", "final"]:
    return "window" if params.min_hits == 1 else "final"


@check(
    "denied_topics",
    DeniedTopicsParams,
    description="Fails when the text touches a denied topic (keyword sets, local).",
    stream=_topics_stream,
    window=64,
)
def denied_topics(data: CheckInput, params: DeniedTopicsParams) -> Verdict:
    hit: list[str] = []
    findings: list[Finding] = []
    for name, pattern in params._patterns.items():
        found = _findings(data, pattern, f"topic:{name}", None)
        if len(found) >= params.min_hits:
            hit.append(name)
            findings.extend(found)
    if hit:
        return Verdict(False, f"denied topic(s): {', '.join(hit)}", findings)
    return Verdict(True)


# --- URLs ----------------------------------------------------------------------------------

_URL = re.compile(r"\b(?:https?|ftp|file|javascript|data)://[^\s<>\"'`)\]]+|\bwww\.[^\s<>\"'`)\]]+", re.I)
_HOST = re.compile(r"^(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63}$|^localhost$")


class ValidUrlsParams(Params):
    schemes: tuple[str, ...] = Field(("https", "http"), description="Allowed URL schemes.")
    allowed_domains: tuple[str, ...] | None = Field(
        None, description="Only these domains (and their subdomains); unset: any valid domain."
    )
    denied_domains: tuple[str, ...] = Field((), description="Never these domains or their subdomains.")


def _domain_in(host: str, domains: tuple[str, ...]) -> bool:
    return any(host == d or host.endswith("." + d) for d in domains)


def url_problem(url: str, params: ValidUrlsParams) -> str | None:
    candidate = url.rstrip(".,;:!?")
    if candidate.lower().startswith("www."):
        candidate = "https://" + candidate
    try:
        parts = urlsplit(candidate)
        host = (parts.hostname or "").lower()
        parts.port  # noqa: B018 - raises on a bad port
    except ValueError:
        return "malformed"
    if parts.scheme.lower() not in params.schemes:
        return f"scheme {parts.scheme!r} not allowed"
    if not host:
        return "no host"
    if not _HOST.match(host):
        import ipaddress

        try:
            ipaddress.ip_address(host)
        except ValueError:
            return f"invalid host {host!r}"
    if _domain_in(host, params.denied_domains):
        return f"denied domain {host!r}"
    if params.allowed_domains is not None and not _domain_in(host, params.allowed_domains):
        return f"domain {host!r} not allowed"
    return None


@check(
    "valid_urls",
    ValidUrlsParams,
    description="Every URL in the text is well formed, uses an allowed scheme and an allowed domain.",
    stream="window",
    window=32,
)
def valid_urls(data: CheckInput, params: ValidUrlsParams) -> Verdict:
    findings: list[Finding] = []
    problems: list[str] = []
    for i, part in enumerate(data.parts):
        if "://" not in part.text and "www." not in part.text.lower():
            continue
        for m in _URL.finditer(part.text):
            problem = url_problem(m.group(0), params)
            if problem is not None:
                findings.append(Finding(i, m.start(), m.end(), "url"))
                problems.append(f"{m.group(0)[:80]} ({problem})")
    if findings:
        return Verdict(False, "bad URL(s): " + "; ".join(problems[:5]), findings)
    return Verdict(True)
