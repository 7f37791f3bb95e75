"""Optional request/response bodies in records: off by default, per workspace, capped, redacted.

The request path only slices the bytes (``capture``); decoding and redaction
happen when the writer turns the record into a row, off the response's path.
Redaction removes what must never sit in a log table: credentials (provider
and Lockgate keys, bearer tokens, AWS access keys, values of secret-looking
JSON fields), e-mail addresses and card-like numbers. Prompts themselves are
what the workspace asked to keep.
"""

from __future__ import annotations

import re
from typing import Any

REDACTED = "[REDACTED]"
_PATTERNS = (
    re.compile(r"\b(?:sk|lg|lga|pk|rk)-[A-Za-z0-9_\-]{8,}"),  # OpenAI/Anthropic/Lockgate-style keys
    re.compile(r"\bAKIA[0-9A-Z]{16}\b"),  # AWS access key ids
    re.compile(r"(?i)\bbearer\s+[A-Za-z0-9._~+/\-]+=*"),
    re.compile(r"\b[A-Za-z0-9._%+\-]+@[A-Za-z0-9.\-]+\.[A-Za-z]{2,}\b"),  # e-mail
    re.compile(r"\b(?:\d[ \-]?){13,19}\b"),  # card-like digit runs
)
_SECRET_FIELD = re.compile(
    r'("(?:[^"]*(?:api[_-]?key|authorization|password|secret|token)[^"]*)"\s*:\s*)"(?:[^"\\]|\\.)*"',
    re.IGNORECASE,
)


def capture(raw: bytes | str, max_bytes: int) -> tuple[bytes, bool]:
    """What the request path keeps: at most ``max_bytes``, and whether it was cut."""
    data = raw.encode() if isinstance(raw, str) else raw
    return (data[:max_bytes], True) if len(data) > max_bytes else (data, False)


def redact(text: str) -> str:
    text = _SECRET_FIELD.sub(lambda m: f'{m.group(1)}"{REDACTED}"', text)
    for pattern in _PATTERNS:
        text = pattern.sub(REDACTED, text)
    return text


def render(captured: tuple[bytes, bool] | None) -> dict[str, Any] | None:
    if captured is None:
        return None
    data, truncated = captured
    return {"text": redact(data.decode("utf-8", "replace")), "truncated": truncated}
