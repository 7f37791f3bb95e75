"""AWS Bedrock: Converse / ConverseStream for every model family, InvokeModel for embeddings.

Pure translation, no I/O, split by concept: ``bedrock_converse`` (chat <-> Converse,
streams, embeddings bodies), ``bedrock_eventstream`` (the binary stream framing). This
module holds the provider: URLs, SigV4 signing (botocore's signer, imported on first use
so the OpenAI path never loads botocore) and errors. The rules below are the contract.

Endpoints and auth
- ``{base}/model/{modelId}/converse``, ``/converse-stream`` and ``/invoke`` (embeddings),
  base ``https://bedrock-runtime.{region}.amazonaws.com``; the model id is percent-encoded
  (``anthropic.claude-3-haiku-20240307-v1:0`` -> ``...-v1%3A0``) and signed as sent.
- ``options.region`` (default ``us-east-1``), ``options.access_key_id``,
  ``options.secret_access_key``, ``options.session_token`` -> SigV4 (service ``bedrock``)
  over the method, URL, body and headers, computed per request (a clock read, no I/O).
  With no access key, ``api_key`` is a Bedrock API key sent as ``Authorization: Bearer``.
- Streams use ``application/vnd.amazon.eventstream`` (``stream_decoder``), not SSE.

Chat -> Converse
- ``system``/``developer`` -> ``system`` text blocks. Turns of one role are merged (Converse
  requires alternation); tool results lead their user turn.
- User parts: text; ``image_url`` base64 data URL (png, jpeg, gif, webp) -> ``image`` bytes,
  ``s3://`` URL -> ``image`` s3Location, web URLs -> ``UnsupportedParameter`` (Bedrock does
  not fetch them); ``file`` base64 (pdf, csv, txt, html, md, doc(x), xls(x)) -> ``document``
  (name sanitised to Bedrock's allowed characters); other parts -> ``UnsupportedParameter``.
- Assistant ``tool_calls`` -> ``toolUse`` (input = parsed arguments); ``tool`` messages ->
  ``toolResult`` with ``json`` content when the text is a JSON object, else ``text``.
- ``max_completion_tokens``/``max_tokens`` -> ``inferenceConfig.maxTokens``; ``temperature``,
  ``top_p`` -> topP, ``stop`` -> stopSequences; ``top_k`` -> ``additionalModelRequestFields``.
- ``tools`` -> ``toolConfig.tools[].toolSpec`` (``inputSchema.json``); ``tool_choice`` auto ->
  ``{"auto": {}}``, required -> ``{"any": {}}``, a named function -> ``{"tool": {"name"}}``;
  none -> the tools are not offered (refused when the history already holds tool blocks,
  since Converse then requires ``toolConfig``); ``allowed_tools`` with several names ->
  ``UnsupportedParameter``.
- ``response_format`` json_object/json_schema -> an instruction appended to the system
  prompt (Converse has no JSON mode; same wording as the Anthropic rule).
- ``reasoning_effort`` -> ``additionalModelRequestFields.thinking`` for Claude models (the
  Anthropic budgets, capped below ``max_tokens``); other families: dropped and reported.
- ``options.guardrail`` -> ``guardrailConfig``.
- ``n`` > 1 -> ``UnsupportedParameter``. Dropped and reported: ``seed``, penalties,
  ``logprobs``, ``top_logprobs``, ``logit_bias``, ``user``, ``parallel_tool_calls: false``,
  ``service_tier``, ``store``, ``metadata`` and unknown keys (defaults and nulls quietly).

Converse -> chat
- Text blocks -> ``content``; ``toolUse`` -> ``tool_calls``; ``reasoningContent`` ->
  ``reasoning_content``. ``stopReason``: end_turn/stop_sequence -> stop, max_tokens and
  model_context_window_exceeded -> length, tool_use -> tool_calls,
  guardrail_intervened/content_filtered -> content_filter.
- Usage: ``prompt_tokens = inputTokens + cacheReadInputTokens + cacheWriteInputTokens``,
  reads -> ``cached_tokens``, writes -> ``cache_creation_tokens``.
- Streams: messageStart -> role chunk; contentBlockStart(toolUse) -> a tool-call chunk;
  deltas -> content / arguments / reasoning; messageStop -> finish chunk (``done``);
  metadata -> usage; exception messages -> ``UpstreamError`` with their type as ``code``.
- Embeddings (InvokeModel): Titan text (``amazon.titan-embed-text-*``: one input per
  request, more -> ``UnsupportedParameter``; ``dimensions`` passes; v2 normalises) and
  Cohere embed (``cohere.embed-*``: ``texts``, ``input_type`` from
  ``options.embed_input_type`` or ``search_document``); other models refused.
- Errors: ``{"message"}`` with the ``x-amzn-errortype`` header -> the upstream status and
  message, the exception name as ``code`` and its OpenAI type (ValidationException ->
  invalid_request_error, AccessDenied -> permission_error, ResourceNotFound ->
  not_found_error, Throttling/ServiceQuotaExceeded -> rate_limit_error, ModelTimeout ->
  timeout_error, signature/token errors -> authentication_error, others -> api_error).
"""

from __future__ import annotations

import logging
import re
from typing import Any
from urllib.parse import quote

import orjson

from lockgate.errors import BadRequest, UnsupportedParameter, UpstreamError
from lockgate.providers.base import (
    CHAT,
    EMBEDDINGS,
    Body,
    Credential,
    CredentialProblem,
    UpstreamRequest,
    register,
)
from lockgate.providers.bedrock_converse import (
    EXCEPTIONS,
    ConverseStreamToChat,
    chat_to_converse,
    converse_to_chat,
    embeddings_request,
    embeddings_response,
)
from lockgate.providers.bedrock_eventstream import EventStreamDecoder

DEFAULT_REGION = "us-east-1"
EVENT_STREAM = "application/vnd.amazon.eventstream"


def region_of(cred: Credential) -> str:
    return str(cred.options.get("region") or DEFAULT_REGION)


class _RedactSessionToken(logging.Filter):
    """botocore.auth logs each canonical request at DEBUG, and it holds the session token."""

    _TOKEN = re.compile(r"(x-amz-security-token:)[^\n]*", re.IGNORECASE)

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(
                self._TOKEN.sub(r"\1<redacted>", a) if isinstance(a, str) else a for a in record.args
            )
        if isinstance(record.msg, str):
            record.msg = self._TOKEN.sub(r"\1<redacted>", record.msg)
        return True


_REDACT = _RedactSessionToken()


def sign_v4(
    method: str,
    url: str,
    headers: dict[str, str],
    body: bytes,
    *,
    access_key: str,
    secret_key: str,
    session_token: str | None,
    region: str,
    service: str = "bedrock",
) -> dict[str, str]:
    """Headers with SigV4 ``Authorization``, ``X-Amz-Date`` (and token) added, by botocore."""
    from botocore.auth import SigV4Auth  # lazy: only Bedrock users pay for botocore
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    botocore_auth = logging.getLogger("botocore.auth")
    if _REDACT not in botocore_auth.filters:
        botocore_auth.addFilter(_REDACT)
    request = AWSRequest(method=method, url=url, data=body, headers=headers)
    SigV4Auth(Credentials(access_key, secret_key, session_token), service, region).add_auth(request)
    return dict(request.headers.items())


class BedrockProvider:
    name = "bedrock"
    dialect = "bedrock"
    default_base_url = "https://bedrock-runtime.{region}.amazonaws.com"
    endpoints = frozenset({CHAT, EMBEDDINGS})
    error_headers = ("x-amzn-errortype",)
    # The access key id is an identifier, not a secret, but it names the account: kept with the rest.
    secret_options = frozenset({"access_key_id", "secret_access_key", "session_token"})

    def check_credential(self, cred: Credential) -> CredentialProblem | None:
        """What an integration lacks to be usable (checked when it is written), or None."""
        options = cred.options
        if options.get("access_key_id") and not options.get("secret_access_key"):
            return CredentialProblem(
                "options.secret_access_key", "options.access_key_id needs options.secret_access_key"
            )
        if options.get("secret_access_key") and not options.get("access_key_id"):
            return CredentialProblem(
                "options.access_key_id", "options.secret_access_key needs options.access_key_id"
            )
        if not (options.get("access_key_id") or cred.api_key):
            return CredentialProblem(
                "api_key",
                "bedrock needs options.access_key_id + secret_access_key, or a Bedrock API key in api_key",
            )
        return None

    def build_request(self, endpoint: str, body: Body, cred: Credential) -> UpstreamRequest:
        data = body.data
        model = data.get("model")
        if not isinstance(model, str) or not model:
            raise BadRequest("'model' is required", param="model")
        region = region_of(cred)
        base = (cred.base_url or self.default_base_url).rstrip("/").replace("{region}", region)
        model_path = f"{base}/model/{quote(model, safe='')}"
        options = dict(cred.options)
        headers = {"content-type": "application/json"}
        dropped: list[str] = []
        if endpoint == CHAT:
            payload, dropped = chat_to_converse(data, options)
            stream = data.get("stream") is True
            url = f"{model_path}/converse-stream" if stream else f"{model_path}/converse"
            headers["accept"] = EVENT_STREAM if stream else "application/json"
        elif endpoint == EMBEDDINGS:
            payload = embeddings_request(data, model, options)
            url = f"{model_path}/invoke"
            headers["accept"] = "application/json"
        else:
            raise UnsupportedParameter(f"bedrock does not serve the {endpoint} endpoint")
        raw = orjson.dumps(payload)
        access_key = options.get("access_key_id")
        if access_key:
            secret = options.get("secret_access_key")
            if not secret:
                raise BadRequest(f"The bedrock integration {cred.name!r} has an access key but no secret.")
            headers = sign_v4(
                "POST", url, headers, raw,
                access_key=str(access_key), secret_key=str(secret),
                session_token=options.get("session_token") or None, region=region,
            )  # fmt: skip
        elif cred.api_key:
            headers["authorization"] = f"Bearer {cred.api_key}"
        elif "authorization" not in {k.lower() for k in cred.headers}:
            raise BadRequest(
                f"The bedrock integration {cred.name!r} has no credentials: {self.check_credential(cred)}."
            )
        # Extra headers are added after signing: they are sent but not signed.
        headers.update(cred.headers)
        return UpstreamRequest(url, headers, raw, dropped_params=dropped)

    def parse_response(self, endpoint: str, raw: bytes) -> dict[str, Any]:
        payload = orjson.loads(raw)
        return embeddings_response(payload) if endpoint == EMBEDDINGS else converse_to_chat(payload)

    def parse_error(self, status: int, raw: bytes, headers: dict[str, str] | None = None) -> UpstreamError:
        try:
            payload = orjson.loads(raw)
        except orjson.JSONDecodeError:
            payload = None
        message = None
        if isinstance(payload, dict):
            message = payload.get("message") or payload.get("Message")
        # "ValidationException:http://internal.amazon.com/coral/..." -> "ValidationException"
        name = ((headers or {}).get("x-amzn-errortype") or "").split(":", 1)[0] or None
        if name is None and isinstance(payload, dict) and isinstance(payload.get("__type"), str):
            name = payload["__type"].rsplit("#", 1)[-1]
        if not isinstance(message, str):
            snippet = raw[:200].decode("utf-8", "replace").strip()
            message = f"bedrock returned HTTP {status}" + (f": {snippet}" if snippet else "")
        _, kind = EXCEPTIONS.get((name or "").lower(), (status, "api_error" if status >= 500 else None))
        return UpstreamError(message, upstream_status=status, provider="bedrock", type=kind, code=name)

    def stream_translator(self, endpoint: str, model: str) -> ConverseStreamToChat:
        return ConverseStreamToChat(model)

    def stream_decoder(self, endpoint: str) -> EventStreamDecoder:
        return EventStreamDecoder()


BEDROCK = register(BedrockProvider())
