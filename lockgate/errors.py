"""Lockgate's exception tree.

Every error that can reach a client is a ``LockgateError`` and carries its own
HTTP status and OpenAI-style ``type``/``code``/``param``; ``server/http.py``
turns it into the error envelope in one place.

    LockgateError                       500 api_error
    ├── BadRequest                      400 invalid_request_error
    │   ├── InvalidJSON                 400 invalid_request_error / invalid_json
    │   ├── UnsupportedParameter        400 invalid_request_error / unsupported_parameter
    │   ├── BodyTooLarge                413 invalid_request_error / request_too_large
    │   └── GuardrailDenied             400 guardrail_denied / <check type>
    ├── AuthenticationFailed            401 authentication_error / invalid_api_key
    ├── BudgetExceeded                  402 budget_exceeded / budget_exceeded
    ├── PermissionDenied                403 permission_error / permission_denied
    │   └── PolicyDenied                403 permission_error / (the usage-policy rule)
    ├── NotFound                        404 invalid_request_error
    │   └── ModelNotFound               404 invalid_request_error / model_not_found
    ├── MethodNotAllowed                405 invalid_request_error / method_not_allowed
    ├── Conflict                        409 invalid_request_error / conflict
    ├── GuardrailUnavailable            503 guardrail_error / guardrail_unavailable (fail-closed)
    ├── RateLimited                     429 rate_limit_error / rate_limit_exceeded (+ retry-after)
    ├── LimitsUnavailable               503 api_error / limits_unavailable (shared counters down)
    └── UpstreamError                   502 upstream_error       (carries the last upstream status)
        ├── UpstreamUnreachable         502 upstream_error / upstream_unreachable
        ├── UpstreamTimeout             504 timeout_error / upstream_timeout  (also an asyncio.TimeoutError)
        │   └── DeadlineExceeded        504 timeout_error / deadline_exceeded (the whole request's time)
        ├── UpstreamProtocolError       502 upstream_error / upstream_bad_response
        └── TargetUnavailable           503 upstream_error / circuit_open (skipped, not called)

Third-party errors (aiohttp, orjson) are translated at the boundary where they
happen (``gateway/attempts.py``, ``server/http.py``), never by matching strings.
"""

from __future__ import annotations

import asyncio


class LockgateError(Exception):
    status = 500
    type = "api_error"
    code: str | None = None

    def __init__(self, message: str, *, param: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        if code is not None:
            self.code = code

    def to_dict(self) -> dict:
        return {"error": {"message": self.message, "type": self.type, "code": self.code, "param": self.param}}


class BadRequest(LockgateError):
    status = 400
    type = "invalid_request_error"


class InvalidJSON(BadRequest):
    code = "invalid_json"


class UnsupportedParameter(BadRequest):
    """A parameter the target provider cannot honour and that must not be dropped silently."""

    code = "unsupported_parameter"


class BodyTooLarge(BadRequest):
    status = 413
    code = "request_too_large"


class GuardrailDenied(BadRequest):
    """A guardrail refused the request (or, mid-stream, the answer). ``code`` is the failed check."""

    type = "guardrail_denied"

    def __init__(self, guardrail: str, check: str, explanation: str, stage: str = "input") -> None:
        what = "The request was refused" if stage == "input" else "The response was withheld"
        reason = f": {explanation}" if explanation else ""
        super().__init__(f"{what} by guardrail {guardrail!r} (check {check!r}){reason}", code=check or None)
        self.guardrail, self.check, self.stage = guardrail, check, stage

    def to_dict(self) -> dict:
        body = super().to_dict()
        body["error"]["guardrail"] = {"name": self.guardrail, "check": self.check, "stage": self.stage}
        return body


class GuardrailUnavailable(LockgateError):
    """A fail-closed guardrail could not give a verdict (its check erred or timed out)."""

    status = 503
    type = "guardrail_error"
    code = "guardrail_unavailable"

    def __init__(self, guardrail: str, check: str, problem: str) -> None:
        super().__init__(
            f"The guardrail {guardrail!r} could not check this request (check {check!r}: {problem}); "
            "it is configured to fail closed."
        )
        self.guardrail, self.check = guardrail, check


class BudgetExceeded(LockgateError):
    """The request's worst-case cost does not fit a hard budget (or the budget is spent)."""

    status = 402
    type = "budget_exceeded"
    code = "budget_exceeded"


class RateLimited(LockgateError):
    """A Lockgate rate limit (not the provider's) refused the request."""

    status = 429
    type = "rate_limit_error"
    code = "rate_limit_exceeded"

    def __init__(self, message: str, *, retry_after: float, code: str | None = None) -> None:
        super().__init__(message, code=code)
        self.retry_after = retry_after
        # retry-after and x-ratelimit-* for the response, set by whoever refused.
        self.headers: list[tuple[bytes, bytes]] = []


class LimitsUnavailable(LockgateError):
    """Limits and budgets apply but their shared counters cannot be reached (fail-closed)."""

    status = 503
    type = "api_error"
    code = "limits_unavailable"


class AuthenticationFailed(LockgateError):
    status = 401
    type = "authentication_error"
    code = "invalid_api_key"


class PermissionDenied(LockgateError):
    """Authenticated, but not allowed: a model outside the key's list, another workspace's object."""

    status = 403
    type = "permission_error"
    code = "permission_denied"


class PolicyDenied(PermissionDenied):
    """A usage policy forbids the request (a model on a deny list, one off the allow list)."""

    code = "policy_denied"


class Conflict(LockgateError):
    """The change clashes with stored state: a taken name, or a stale ``If-Match`` version."""

    status = 409
    type = "invalid_request_error"
    code = "conflict"


class NotFound(LockgateError):
    status = 404
    type = "invalid_request_error"
    code = "not_found"


class ModelNotFound(NotFound):
    code = "model_not_found"


class MethodNotAllowed(LockgateError):
    status = 405
    type = "invalid_request_error"
    code = "method_not_allowed"


class UpstreamError(LockgateError):
    """The provider answered with an error, or could not be used, after every attempt.

    ``upstream_status`` is the provider's own status when it answered; the gateway
    answers 502 unless the provider's status is a client error the caller caused
    (4xx other than 408/429), which is passed through unchanged.
    """

    status = 502
    type = "upstream_error"
    code = "upstream_error"
    # The provider's Retry-After, passed on to the client with a 429.
    retry_after: str | None = None

    def __init__(
        self,
        message: str,
        *,
        upstream_status: int | None = None,
        provider: str | None = None,
        param: str | None = None,
        code: str | None = None,
        type: str | None = None,
    ) -> None:
        super().__init__(message, param=param, code=code)
        self.upstream_status = upstream_status
        self.provider = provider
        if type is not None:
            self.type = type
        if upstream_status is not None and 400 <= upstream_status < 500 and upstream_status not in (408, 429):
            self.status = upstream_status
        elif upstream_status == 429:
            self.status = 429
            self.type = type or "rate_limit_error"


class UpstreamUnreachable(UpstreamError):
    code = "upstream_unreachable"


class UpstreamTimeout(UpstreamError, asyncio.TimeoutError):
    status = 504
    type = "timeout_error"
    code = "upstream_timeout"


class DeadlineExceeded(UpstreamTimeout):
    """The request's total deadline passed: no further attempt, retry or fallback."""

    code = "deadline_exceeded"


class UpstreamProtocolError(UpstreamError):
    code = "upstream_bad_response"


class TargetUnavailable(UpstreamError):
    """A target was skipped without a call: its circuit is open, or it was already tried."""

    status = 503
    code = "circuit_open"
