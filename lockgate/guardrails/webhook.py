"""Bring-your-own check: POST the text to your HTTP service, signed, and obey its verdict.

Request (JSON): ``{"stage", "model", "metadata", "parts": [{"role", "name", "text"}]}``.
Signature: ``x-lockgate-signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">``
with the secret read from the environment variable ``secret_env`` names (the
Stripe scheme: the timestamp stops replays). The secret itself is never stored
in the config store nor shown by the admin API; a missing variable is an error.
Credentials for your service go the same way: ``headers_env`` maps a header to the
variable holding its value, and a literal ``headers`` entry whose name says it is a
secret (``authorization``, ``x-api-key``, ``cookie``…) is refused, because guardrail
configs are stored, exported and audited in clear.
Answer: ``{"verdict": true|false, "explanation": "...", "parts": ["new text", ...]}``;
``parts`` (optional, same length) rewrites the text when the guardrail redacts.
The call runs under the check's timeout (``timeout_ms`` of the check or the guardrail);
timeouts and transport errors raise, and the runner applies the guardrail's on_error.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import time
from typing import Any

import aiohttp
import orjson
from pydantic import Field, field_validator

from lockgate.governance.secret_fields import is_secret_name
from lockgate.guardrails.base import CheckInput, Finding, Params, Verdict, check

SIGNATURE_HEADER = "x-lockgate-signature"


class WebhookError(Exception):
    """The webhook could not give a verdict (status, body or transport)."""


class WebhookParams(Params):
    url: str = Field(pattern=r"^https?://", description="Your service's endpoint.")
    secret_env: str | None = Field(
        None, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$", description="Environment variable holding the HMAC key."
    )
    headers: dict[str, str] = Field(default_factory=dict, description="Extra request headers (no secrets).")
    headers_env: dict[str, str] = Field(
        default_factory=dict,
        description="Header name -> environment variable holding its value (credentials).",
    )

    @field_validator("headers")
    @classmethod
    def _no_secret_headers(cls, value: dict[str, str]) -> dict[str, str]:
        for name in value:
            if is_secret_name(name):
                raise ValueError(
                    f"the header {name!r} carries a credential and would be stored in clear; "
                    f"put it in an environment variable and name it in headers_env: {{{name!r}: 'VAR'}}"
                )
        return value

    @field_validator("headers_env")
    @classmethod
    def _variable_names(cls, value: dict[str, str]) -> dict[str, str]:
        for name, var in value.items():
            if not var or not (var[0].isalpha() or var[0] == "_") or not var.replace("_", "").isalnum():
                raise ValueError(f"headers_env.{name}: {var!r} is not an environment variable name")
        return value


def sign(secret: str, body: bytes, timestamp: int) -> str:
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"


def verify(
    secret: str, body: bytes, header: str, *, tolerance_s: int = 300, now: float | None = None
) -> bool:
    """For webhook authors (and tests): is ``header`` a valid signature of ``body``?"""
    fields = dict(item.split("=", 1) for item in header.split(",") if "=" in item)
    try:
        timestamp = int(fields["t"])
    except (KeyError, ValueError):
        return False
    if abs((now if now is not None else time.time()) - timestamp) > tolerance_s:
        return False
    expected = sign(secret, body, timestamp).rpartition("v1=")[2]
    return hmac.compare_digest(expected, fields.get("v1", ""))


@check(
    "webhook",
    WebhookParams,
    description="Your own HTTP service decides (signed request, timeout).",
    mutates=True,
)
async def webhook(data: CheckInput, params: WebhookParams) -> Verdict:
    payload = {
        "stage": data.stage,
        "model": data.model,
        "metadata": dict(data.metadata),
        "parts": [{"role": p.role, "name": p.name, "text": p.text} for p in data.parts],
    }
    body = orjson.dumps(payload)
    headers = {"content-type": "application/json", **params.headers}
    for name, var in params.headers_env.items():
        value = os.environ.get(var)
        if not value:
            raise WebhookError(f"the header variable {var} (for {name}) is not set")
        headers[name] = value
    if params.secret_env is not None:
        secret = os.environ.get(params.secret_env)
        if not secret:
            raise WebhookError(f"the signing secret variable {params.secret_env} is not set")
        headers[SIGNATURE_HEADER] = sign(secret, body, int(time.time()))
    try:
        if data.http is not None:
            answer = await _post(data.http, params.url, body, headers)
        else:
            async with aiohttp.ClientSession() as session:
                answer = await _post(session, params.url, body, headers)
    except aiohttp.ClientError as exc:
        raise WebhookError(f"webhook {params.url} failed: {exc}") from exc
    return _verdict(answer, data)


async def _post(session: aiohttp.ClientSession, url: str, body: bytes, headers: dict[str, str]) -> Any:
    # No timeout of its own: the runner's wait_for bounds the whole call and cancels it.
    async with session.post(url, data=body, headers=headers) as response:
        raw = await response.read()
        if response.status != 200:
            raise WebhookError(f"webhook {url} answered {response.status}: {raw[:200]!r}")
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise WebhookError(f"webhook {url} answered with a body that is not JSON") from exc


def _verdict(answer: Any, data: CheckInput) -> Verdict:
    if not isinstance(answer, dict) or not isinstance(answer.get("verdict"), bool):
        raise WebhookError("webhook answer must be a JSON object with a boolean 'verdict'")
    explanation = str(answer.get("explanation") or "")
    new_parts = answer.get("parts")
    findings: list[Finding] = []
    if new_parts is not None:
        if not isinstance(new_parts, list) or len(new_parts) != len(data.parts):
            raise WebhookError("webhook 'parts' must be a list with one text per part sent")
        for i, (part, text) in enumerate(zip(data.parts, new_parts, strict=True)):
            if not isinstance(text, str):
                raise WebhookError("webhook 'parts' must hold strings")
            if text != part.text:
                findings.append(Finding(i, 0, len(part.text), "webhook", text))
    return Verdict(answer["verdict"], explanation, findings)
