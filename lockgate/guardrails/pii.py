"""PII and secret detection, local and regex-based, with validators that keep precision up.

Each entity is a compiled pattern plus a validator (Luhn for cards, mod-97 for
IBAN, ``ipaddress`` for IPs, area/group rules for SSNs) and, where a bare
number would be ambiguous, a context rule: a 10-digit run is a phone only near
"phone"/"call"/"tel", a 9-digit run an SSN only near "ssn"/"social security",
and numbers right after "order"/"invoice"/"tracking"/"version" are left alone.
A cheap substring pre-test skips each pattern when its text cannot match.

Overlaps between entities are settled by priority (secrets first, phone last),
then by length.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Literal

from pydantic import Field, field_validator

from lockgate.guardrails.base import CheckInput, Finding, Params, Verdict, check

Entity = Literal[
    "email",
    "phone",
    "credit_card",
    "iban",
    "ssn",
    "ip_address",
    "api_key",
    "aws_key",
    "private_key",
    "jwt",
]
ENTITIES: tuple[Entity, ...] = (
    "private_key",
    "jwt",
    "api_key",
    "aws_key",
    "credit_card",
    "iban",
    "ssn",
    "email",
    "ip_address",
    "phone",
)
_PRIORITY = {name: i for i, name in enumerate(ENTITIES)}

# Words right before a number that make it an identifier, not PII.
_NOT_PII_BEFORE = re.compile(
    r"\b(?:order|invoice|tracking|ticket|ref(?:erence)?|isbn|sku|part|serial|build|version|ver|"
    r"release|v|po|case|booking|confirmation|item|product|model|issue|pr|chapter|section|figure|"
    r"table|page|step|clause|paragraph)"
    r"(?:\s*(?:no\.?|number|num|id|#))?\s*[#:=]?\s*$",
    re.I,
)
_PHONE_CONTEXT = re.compile(r"(?:phone|call|tel|mobile|cell|fax|whatsapp|sms|text me|ring|dial)\b", re.I)
_SSN_CONTEXT = re.compile(r"(?:ssn|social\s+security|tax\s*payer|tin)\b", re.I)
_AWS_SECRET_CONTEXT = re.compile(r"(?:aws|secret)[\w .:=\"'-]{0,30}$", re.I)


def _before(text: str, start: int, n: int = 40) -> str:
    return text[max(0, start - n) : start]


def _identifier_context(text: str, start: int) -> bool:
    return _NOT_PII_BEFORE.search(_before(text, start, 30)) is not None


# --- validators ---------------------------------------------------------------------------


def luhn_ok(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


_CARD_PREFIX = re.compile(
    r"^(?:4|5[1-5]|2(?:2[2-9]|[3-6]\d|7[01]|720)|3[47]|3(?:0[0-5]|[68])|6(?:011|5|4[4-9]|2)|35)"
)


def _card(text: str, m: re.Match[str]) -> bool:
    raw = m.group(0)
    digits = re.sub(r"\D", "", raw)
    if not 13 <= len(digits) <= 19 or not _CARD_PREFIX.match(digits) or not luhn_ok(digits):
        return False
    seps = set(re.findall(r"\D", raw))
    if len(seps) > 1:
        return False
    return not _identifier_context(text, m.start())


# Lengths by country (ISO 13616 registry, the common ones); others need 15-34 characters.
_IBAN_LENGTHS = {
    "AD": 24, "AE": 23, "AL": 28, "AT": 20, "AZ": 28, "BA": 20, "BE": 16, "BG": 22, "BH": 22, "BR": 29,
    "CH": 21, "CR": 22, "CY": 28, "CZ": 24, "DE": 22, "DK": 18, "DO": 28, "EE": 20, "EG": 29, "ES": 24,
    "FI": 18, "FO": 18, "FR": 27, "GB": 22, "GE": 22, "GI": 23, "GL": 18, "GR": 27, "GT": 28, "HR": 21,
    "HU": 28, "IE": 22, "IL": 23, "IS": 26, "IT": 27, "JO": 30, "KW": 30, "KZ": 20, "LB": 28, "LI": 21,
    "LT": 20, "LU": 20, "LV": 21, "MC": 27, "MD": 24, "ME": 22, "MK": 19, "MR": 27, "MT": 31, "MU": 30,
    "NL": 18, "NO": 15, "PK": 24, "PL": 28, "PS": 29, "PT": 25, "QA": 29, "RO": 24, "RS": 22, "SA": 24,
    "SE": 24, "SI": 19, "SK": 24, "SM": 27, "TN": 24, "TR": 26, "UA": 29, "VG": 24, "XK": 20,
}  # fmt: skip


def iban_ok(value: str) -> bool:
    iban = value.replace(" ", "").upper()
    expected = _IBAN_LENGTHS.get(iban[:2])
    if expected is not None and len(iban) != expected:
        return False
    if expected is None and not 15 <= len(iban) <= 34:
        return False
    rearranged = iban[4:] + iban[:4]
    number = "".join(str(int(c, 36)) for c in rearranged)
    return int(number) % 97 == 1


def _iban(text: str, m: re.Match[str]) -> bool:
    return iban_ok(m.group(0))


def _ssn(text: str, m: re.Match[str]) -> bool:
    digits = re.sub(r"\D", "", m.group(0))
    area, group, serial = digits[:3], digits[3:5], digits[5:]
    if area in ("000", "666") or area[0] == "9" or group == "00" or serial == "0000":
        return False
    if m.group(0).isdigit():  # a bare 9-digit run is an SSN only when the text says so
        return _SSN_CONTEXT.search(_before(text, m.start())) is not None
    return not _identifier_context(text, m.start())


def _ip(text: str, m: re.Match[str]) -> bool:
    try:
        ipaddress.ip_address(m.group(0))
    except ValueError:
        return False
    if text.startswith("/", m.end()) and text[m.end() + 1 : m.end() + 2].isdigit():
        return False  # a CIDR block names a network, not a host
    return not _identifier_context(text, m.start())


_DATE = re.compile(r"^(?:\d{4}[-/.]\d{1,2}[-/.]\d{1,2}|\d{1,2}[-/.]\d{1,2}[-/.]\d{2,4})$")


def _phone(text: str, m: re.Match[str]) -> bool:
    raw = m.group(0)
    digits = sum(c.isdigit() for c in raw)
    if _DATE.match(raw) or _identifier_context(text, m.start()):
        return False
    if raw.startswith("+"):
        return 8 <= digits <= 15
    if raw.isdigit():  # a bare run of digits is a phone only when the text says so
        return 10 <= digits <= 11 and _PHONE_CONTEXT.search(_before(text, m.start())) is not None
    return 10 <= digits <= 11


def _always(text: str, m: re.Match[str]) -> bool:
    return True


@dataclass(frozen=True, slots=True)
class Detector:
    entity: Entity
    label: str
    pattern: re.Pattern[str]
    validate: Callable[[str, re.Match[str]], bool]
    # The pattern cannot match unless one of these is in the text (a cheap pre-test).
    needs: tuple[str, ...] = ()
    # A character that may not precede a match (checked here rather than as a leading
    # lookbehind, which would stop the regex engine from skipping ahead to a first character).
    left: re.Pattern[str] | None = None
    # Custom candidate search, for patterns that are best anchored on a rare character.
    find: Callable[[str], Iterator[re.Match[str]]] | None = None
    # Numbers: search only the digit-dense stretches of the text (see ``digit_regions``).
    numeric: bool = False

    def matches(self, text: str, regions: list[tuple[int, int]] | None = None) -> Iterator[re.Match[str]]:
        if self.find is not None:
            found: Iterable[re.Match[str]] = self.find(text)
        elif regions is not None:
            found = (m for start, end in regions for m in self.pattern.finditer(text, start, end))
        else:
            found = self.pattern.finditer(text)
        left = self.left
        for m in found:
            start = m.start()
            if start and left is not None and left.match(text, start - 1):
                continue
            if self.validate(text, m):
                yield m


_LOCAL_CHAR = re.compile(r"[A-Za-z0-9._%+-]")
_EMAIL = re.compile(
    r"[A-Za-z0-9](?:[A-Za-z0-9._%+-]{0,62}[A-Za-z0-9_%+-])?@"
    r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,24}(?![\w-])"
)


def _find_emails(text: str) -> Iterator[re.Match[str]]:
    """Anchor on each '@' (rare in prose), walk back over the local part, match from there."""
    at = text.find("@")
    while at > 0:
        start = at
        while start > 0 and at - start < 64 and _LOCAL_CHAR.match(text, start - 1):
            start -= 1
        while start < at and not text[start].isalnum():  # a local part starts with a letter or digit
            start += 1
        m = _EMAIL.match(text, start)
        if m is not None:
            yield m
            at = text.find("@", m.end())
        else:
            at = text.find("@", at + 1)


_AWS_LABEL = re.compile(r"aws|secret", re.I)
_AWS_SECRET = re.compile(r"[A-Za-z0-9/+]{40}(?![A-Za-z0-9/+=])")
_AWS_ID = re.compile(r"(?:AKIA|ASIA|ABIA|ACCA)[0-9A-Z]{16}(?![A-Za-z0-9/+=])")


def _find_aws(text: str) -> Iterator[re.Match[str]]:
    yield from _AWS_ID.finditer(text)
    # A 40-character secret access key is only told apart from other base64 by its label.
    for label in _AWS_LABEL.finditer(text):
        m = _AWS_SECRET.search(text, label.end(), label.end() + 72)
        if m is not None and _AWS_SECRET_CONTEXT.search(text[max(0, m.start() - 40) : m.start()]):
            yield m


_IPV4 = re.compile(r"\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}(?![\w]|\.\d)")  # a :port may follow
_IPV6_HINT = re.compile(r"[0-9A-Fa-f]:[0-9A-Fa-f:]|::")
_IPV6 = re.compile(
    r"(?:(?:[0-9A-Fa-f]{1,4}:){7}[0-9A-Fa-f]{1,4}"
    r"|(?:[0-9A-Fa-f]{1,4}:){1,6}(?::[0-9A-Fa-f]{1,4}){1,6}"
    r"|(?:[0-9A-Fa-f]{1,4}:){1,7}:|::(?:[0-9A-Fa-f]{1,4}:){0,6}[0-9A-Fa-f]{1,4})(?![\w:])"
)


def _find_ips(text: str) -> Iterator[re.Match[str]]:
    if "." in text:
        for start, end in digit_regions(text):
            yield from _IPV4.finditer(text, start, end)
    if ":" in text and _IPV6_HINT.search(text):
        yield from _IPV6.finditer(text)


def _left(chars: str) -> re.Pattern[str]:
    return re.compile(f"[{chars}]")


DETECTORS: dict[Entity, Detector] = {
    d.entity: d
    for d in (
        Detector(
            "private_key",
            "PRIVATE_KEY",
            re.compile(
                r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY-----[\s\S]*?-----END (?:[A-Z0-9]+ )*PRIVATE KEY-----"
            ),
            _always,
            needs=("-----BEGIN",),
        ),
        Detector(
            "jwt",
            "JWT",
            re.compile(r"eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}(?![\w-])"),
            _always,
            needs=("eyJ",),
            left=_left(r"\w-"),
        ),
        Detector(
            "api_key",
            "API_KEY",
            re.compile(
                r"(?:sk-(?:ant-(?:api|admin)\d\d-|proj-|svcacct-|admin-|or-v1-|live-)?"
                r"[A-Za-z0-9_-]{20,}"
                r"|(?:sk|rk|pk)_(?:live|test)_[A-Za-z0-9]{16,}"
                r"|gh[pousr]_[A-Za-z0-9]{36,}|github_pat_[A-Za-z0-9_]{40,}"
                r"|xox[abprs]-[A-Za-z0-9-]{10,}"
                r"|AIza[0-9A-Za-z_-]{35}"
                r"|glpat-[A-Za-z0-9_-]{20,}"
                r"|hf_[A-Za-z0-9]{30,})(?![\w-])"
            ),
            _always,
            needs=(
                "sk-",
                "sk_",
                "rk_",
                "pk_",
                "ghp_",
                "gho_",
                "ghu_",
                "ghs_",
                "ghr_",
                "github_pat_",
                "xox",
                "AIza",
                "glpat-",
                "hf_",
            ),
            left=_left(r"\w-"),
        ),
        Detector(
            "aws_key",
            "AWS_KEY",
            _AWS_ID,
            _always,
            needs=("AKIA", "ASIA", "ABIA", "ACCA", "aws", "AWS", "Aws", "secret", "Secret", "SECRET"),
            left=_left(r"A-Za-z0-9/+"),
            find=_find_aws,
        ),
        Detector(
            "credit_card",
            "CREDIT_CARD",
            re.compile(r"(?:\d{4}[ -]?\d{6}[ -]?\d{5}|\d(?:[ -]?\d){12,18})(?![\w-]|\.\d)"),
            _card,
            numeric=True,
            left=_left(r"\w.-"),
        ),
        Detector(
            "iban",
            "IBAN",
            # Capitals, unspaced or in groups of four, so a following word is never swallowed.
            re.compile(r"[A-Z]{2}\d{2}(?:[A-Z0-9]{11,30}|(?: [A-Z0-9]{4}){2,7}(?: [A-Z0-9]{1,3})?)(?![\w-])"),
            _iban,
            left=_left(r"\w-"),
        ),
        Detector(
            "ssn",
            "SSN",
            re.compile(r"\d{3}(?:-\d{2}-\d{4}| \d{2} \d{4}|\d{6})(?![\w-]|\.\d)"),
            _ssn,
            numeric=True,
            left=_left(r"\w.-"),
        ),
        Detector("email", "EMAIL", _EMAIL, _always, needs=("@",), find=_find_emails),
        Detector(
            "ip_address",
            "IP_ADDRESS",
            _IPV4,
            _ip,
            needs=(".", ":"),
            left=_left(r"\w.:"),
            find=_find_ips,
        ),
        Detector(
            "phone",
            "PHONE",
            re.compile(
                r"(?:"
                r"\+\d{1,3}[ .-]?(?:\(\d{1,4}\)|\d{1,4})(?:[ .-]?\d{2,4}){1,5}"  # +44 20 7946 0958
                r"|(?:1[ .-]?)?\(\d{3}\)[ .-]?\d{3}[ .-]\d{4}"  # (415) 555-2671
                r"|(?:1([ .-]))?\d{3}([ .-])\d{3}\2\d{4}"  # 415-555-2671, 1 415 555 2671
                r"|0\d{2,4}[ -]\d{3,4}[ -]?\d{3,4}"  # 020 7946 0958, 07700 900123
                r"|\d{10,11}"  # bare: only with context (see _phone)
                r")(?![\w-]|\.\d)"
            ),
            _phone,
            numeric=True,
            left=_left(r"\w+.-"),
        ),
    )
}

# Stretches of digits and number punctuation, 7+ characters: every number-shaped PII value lies
# inside one, and prose has few, so the number patterns run on a few short spans, not the text.
_DIGIT_RUN = re.compile(r"[+(]?\d[\d ().+/-]{5,}\d")


def digit_regions(text: str) -> list[tuple[int, int]]:
    # One character past the end, so a pattern's lookahead still sees what follows the span.
    return [(m.start(), min(len(text), m.end() + 1)) for m in _DIGIT_RUN.finditer(text)]


def detect(text: str, entities: tuple[Entity, ...] = ENTITIES) -> list[tuple[int, int, Entity, str]]:
    """(start, end, entity, label) of every PII value in ``text``, non-overlapping, in order."""
    regions: list[tuple[int, int]] | None = None
    found: list[tuple[int, int, Entity, str]] = []
    for entity in entities:
        d = DETECTORS[entity]
        if d.needs and not any(n in text for n in d.needs):
            continue
        if d.numeric:
            if regions is None:
                regions = digit_regions(text)
            if not regions:
                continue
        for m in d.matches(text, regions if d.numeric else None):
            found.append((m.start(), m.end(), entity, d.label))
    if len(found) < 2:
        return found
    found.sort(key=lambda f: (f[0], _PRIORITY[f[2]], -(f[1] - f[0])))
    kept: list[tuple[int, int, Entity, str]] = []
    for f in found:
        if kept and f[0] < kept[-1][1]:
            prev = kept[-1]
            if _PRIORITY[f[2]] < _PRIORITY[prev[2]] or (
                _PRIORITY[f[2]] == _PRIORITY[prev[2]] and f[1] - f[0] > prev[1] - prev[0]
            ):
                kept[-1] = f
            continue
        kept.append(f)
    return kept


_BEGIN_KEY = re.compile(r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY-----")
_END_KEY = re.compile(r"-----END (?:[A-Z0-9]+ )*PRIVATE KEY-----")


class PIIParams(Params):
    entities: tuple[Entity, ...] = Field(ENTITIES, min_length=1, description="What to look for.")
    redaction: Literal["label", "placeholder"] = Field(
        "label",
        description="label: '[EMAIL]'. placeholder: '<EMAIL_1>', restored to the original in the "
        "answer (streams included) so the model never sees the value but the user gets it back.",
    )
    allow: tuple[str, ...] = Field((), description="Values never flagged, e.g. a support address.")

    @field_validator("entities")
    @classmethod
    def _ordered(cls, value: tuple[Entity, ...]) -> tuple[Entity, ...]:
        return tuple(e for e in ENTITIES if e in set(value))


def _hold_pem(text: str, params: PIIParams) -> int | None:
    """A private key block still open at the end of a stream window stays held until it ends."""
    if "private_key" not in params.entities or "-----BEGIN" not in text:
        return None
    last = None
    for m in _BEGIN_KEY.finditer(text):
        last = m
    if last is not None and _END_KEY.search(text, last.end()) is None:
        return last.start()
    tail = text.rfind("-----BEGIN")
    return tail if tail >= 0 and "PRIVATE KEY-----" not in text[tail:] else None


@check(
    "pii",
    PIIParams,
    description="Detects (and with action 'redact', replaces) emails, phone numbers, credit cards "
    "(Luhn), IBANs (mod 97), US SSNs, IP addresses, API keys, AWS keys, private keys and JWTs.",
    mutates=True,
    stream="window",
    window=64,
    hold=_hold_pem,
)
def pii_check(data: CheckInput, params: PIIParams) -> Verdict:
    findings: list[Finding] = []
    counts: dict[str, int] = {}
    for i, part in enumerate(data.parts):
        for start, end, entity, label in detect(part.text, params.entities):
            value = part.text[start:end]
            if value in params.allow:
                continue
            if params.redaction == "placeholder" and data.vault is not None:
                replacement = data.vault.placeholder(label, value)
            else:
                replacement = f"[{label}]"
            findings.append(Finding(i, start, end, entity, replacement))
            counts[entity] = counts.get(entity, 0) + 1
    if not findings:
        return Verdict(True)
    summary = ", ".join(f"{n} {e}" for e, n in counts.items())
    return Verdict(False, f"found PII: {summary}", findings, {"entities": counts})
