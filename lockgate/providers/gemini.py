"""Google Gemini: the Gemini API (AI Studio) and Vertex AI <-> Lockgate's canonical chat.

Pure translation, no I/O, split by concept: ``gemini_request`` (chat/embeddings requests
-> Gemini bodies) and ``gemini_response`` (responses, streams, usage, errors -> canonical).
This module holds the two providers and their URLs and auth. The rules below are the
documented contract; tests pin them.

Endpoints and auth
------------------
- ``gemini`` (AI Studio): ``{base}/models/{model}:generateContent``,
  ``:streamGenerateContent?alt=sse`` and ``:batchEmbedContents``, base
  ``https://generativelanguage.googleapis.com/v1beta``; ``api_key`` -> ``x-goog-api-key``.
- ``vertex`` (Vertex AI): ``{base}/projects/{project}/locations/{region}/publishers/google/
  models/{model}:generateContent`` (``:streamGenerateContent?alt=sse``, embeddings via
  ``:predict``), base ``https://{region}-aiplatform.googleapis.com/v1`` (the ``global``
  region uses ``https://aiplatform.googleapis.com/v1``). ``options.project`` is required,
  ``options.region`` defaults to ``us-central1``. Auth is an OAuth bearer token: a static
  access token in ``api_key``, or one the gateway mints from ``options.service_account``
  (a service-account JSON object or file path) and passes in
  ``Credential.headers["authorization"]`` (``gateway/credentials.py``: cached, refreshed
  before expiry). ``options.express_mode: true`` uses a Vertex API key instead
  (``x-goog-api-key``, no project in the path).
- A model may be given as ``models/gemini-2.5-flash``; the prefix is removed.

Chat -> generateContent
- ``system``/``developer`` messages (text) -> one ``systemInstruction`` (joined with a
  blank line). ``user`` -> role ``user``, ``assistant`` -> role ``model``; consecutive turns
  of one role are merged (parallel function responses must share a turn).
- User parts: ``text`` -> text; ``image_url`` data URL -> ``inlineData``; http(s) or gs://
  URL -> ``fileData`` with the media type named by its extension (.png .jpg .jpeg .webp
  .gif .heic .heif .pdf), any other URL -> ``UnsupportedParameter`` (send a data URL);
  ``input_audio`` (wav, mp3) -> ``inlineData``; ``file`` with base64 ``file_data`` ->
  ``inlineData``; file ids and other parts -> ``UnsupportedParameter``.
- Assistant ``tool_calls`` -> ``functionCall`` parts (``args`` = parsed arguments; invalid
  JSON -> ``BadRequest``). ``tool`` messages -> ``functionResponse`` parts named after the
  matching assistant tool call (an unknown ``tool_call_id`` -> ``BadRequest``); content
  that is a JSON object is the response, anything else becomes ``{"content": text}``.
- Thought signatures: a ``functionCall`` part's ``thoughtSignature`` travels inside the
  tool call id (``<id>__ts_<url-safe base64>``) and is restored on the way back, as
  Gemini 3 requires it echoed.
- ``tools`` (function only) -> one ``functionDeclarations`` tool; ``parameters`` are cut to
  Gemini's Schema subset (``additionalProperties``, ``$schema``, ``strict`` ... removed;
  ``["T", "null"]`` -> ``T`` + ``nullable``); parameterless functions declare none.
  ``tool_choice`` auto/none/required -> AUTO/NONE/ANY; a named function -> ANY +
  ``allowedFunctionNames``; ``allowed_tools`` -> its mode + ``allowedFunctionNames``.
- ``generationConfig``: ``temperature``, ``top_p`` -> topP, ``top_k`` -> topK,
  ``max_completion_tokens``/``max_tokens`` -> maxOutputTokens, ``stop`` -> stopSequences,
  ``n`` -> candidateCount, ``seed``, ``presence_penalty``/``frequency_penalty``;
  ``response_format`` json_object -> ``responseMimeType: application/json``, json_schema ->
  that + ``responseSchema`` (Schema subset); ``reasoning_effort`` -> ``thinkingConfig``
  (``thinkingBudget`` none/minimal 0, low 1024, medium 8192, high 24576, xhigh 32768;
  Gemini 3 models: ``thinkingLevel`` low or high). ``options.safety_settings`` ->
  ``safetySettings``. ``stream_options`` is consumed (Gemini always reports usage).
- ``modalities`` other than ``["text"]`` -> ``UnsupportedParameter``.
- Dropped and reported: ``logprobs``, ``top_logprobs``, ``logit_bias``, ``user``,
  ``parallel_tool_calls: false`` (no Gemini switch), ``service_tier``, ``store``,
  ``metadata`` and unknown keys; OpenAI defaults and nulls are consumed silently.

generateContent -> chat
- Each candidate -> a choice: text parts joined -> ``content``; ``thought`` parts ->
  ``reasoning_content``; ``functionCall`` -> ``tool_calls`` (Gemini's ``id`` when given,
  else a deterministic ``call_...`` id).
- ``finishReason``: STOP -> stop (tool_calls when the candidate called functions),
  MAX_TOKENS -> length, SAFETY/RECITATION/BLOCKLIST/PROHIBITED_CONTENT/SPII/IMAGE_SAFETY/
  LANGUAGE -> content_filter, anything else -> stop. A blocked prompt
  (``promptFeedback.blockReason``, no candidates) -> one empty choice, content_filter.
- Usage: ``prompt_tokens = promptTokenCount + toolUsePromptTokenCount`` (cached tokens
  included), ``cached_tokens = cachedContentTokenCount``, ``completion_tokens =
  candidatesTokenCount + thoughtsTokenCount``, ``reasoning_tokens = thoughtsTokenCount``.
- Streams: every chunk is a partial response; text -> content deltas, thoughts ->
  reasoning deltas, each function call -> one complete tool-call delta; the first
  ``finishReason`` ends the answer and the last ``usageMetadata`` is the usage.
- Embeddings: vectors in input order; Vertex's ``statistics.token_count`` -> usage (AI
  Studio reports none, so usage is counted locally). ``dimensions`` ->
  ``outputDimensionality``; ``options.embedding_task_type`` -> ``taskType``.
- Errors: ``{"error": {"code", "message", "status"}}`` -> the upstream status and message,
  with the google.rpc status as ``code`` and an OpenAI type (INVALID_ARGUMENT ->
  invalid_request_error, UNAUTHENTICATED -> authentication_error, PERMISSION_DENIED ->
  permission_error, NOT_FOUND -> not_found_error, RESOURCE_EXHAUSTED -> rate_limit_error,
  DEADLINE_EXCEEDED -> timeout_error, others -> api_error).
"""

from __future__ import annotations

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
from lockgate.providers.gemini_request import chat_to_gemini, embeddings_to_gemini, embeddings_to_vertex
from lockgate.providers.gemini_response import (
    GeminiStreamToChat,
    gemini_embeddings_to_openai,
    parse_error,
    response_to_chat,
    usage_to_chat,
    vertex_embeddings_to_openai,
)

__all__ = ["GeminiProvider", "GeminiStreamToChat", "VertexProvider", "response_to_chat", "usage_to_chat"]

VERTEX_DEFAULT_REGION = "us-central1"


def _model_path(model: str) -> str:
    return quote(model.removeprefix("models/"), safe="@.-_")


class _GeminiDialect:
    name: str
    dialect = "gemini"
    endpoints = frozenset({CHAT, EMBEDDINGS})

    def _url(self, cred: Credential, model: str, method: str) -> str:
        raise NotImplementedError

    def _auth(self, cred: Credential) -> dict[str, str]:
        raise NotImplementedError

    def _embeddings_body(self, data: dict[str, Any], model: str, options: dict[str, Any]) -> dict[str, Any]:
        raise NotImplementedError

    _embed_method: str

    def build_request(self, endpoint: str, body: Body, cred: Credential) -> UpstreamRequest:
        data = body.data
        model = data.get("model")
        if not isinstance(model, str) or not model:
            raise BadRequest("'model' is required", param="model")
        options = dict(cred.options)
        headers = {"content-type": "application/json", **self._auth(cred), **cred.headers}
        if endpoint == CHAT:
            payload, dropped = chat_to_gemini(data, options)
            stream = data.get("stream") is True
            method = "streamGenerateContent?alt=sse" if stream else "generateContent"
            return UpstreamRequest(
                self._url(cred, model, method), headers, orjson.dumps(payload), dropped_params=dropped
            )
        if endpoint == EMBEDDINGS:
            payload = self._embeddings_body(data, model.removeprefix("models/"), options)
            return UpstreamRequest(self._url(cred, model, self._embed_method), headers, orjson.dumps(payload))
        raise UnsupportedParameter(f"{self.name} does not serve the {endpoint} endpoint")

    def parse_response(self, endpoint: str, raw: bytes) -> dict[str, Any]:
        payload = orjson.loads(raw)
        if endpoint == EMBEDDINGS:
            return self._embeddings_response(payload)
        return response_to_chat(payload)

    def _embeddings_response(self, payload: dict[str, Any]) -> dict[str, Any]:
        raise NotImplementedError

    def parse_error(self, status: int, raw: bytes) -> UpstreamError:
        return parse_error(status, raw, self.name)

    def stream_translator(self, endpoint: str, model: str) -> GeminiStreamToChat:
        return GeminiStreamToChat(model)


class GeminiProvider(_GeminiDialect):
    name = "gemini"
    default_base_url = "https://generativelanguage.googleapis.com/v1beta"
    _embed_method = "batchEmbedContents"

    def _url(self, cred: Credential, model: str, method: str) -> str:
        base = (cred.base_url or self.default_base_url).rstrip("/")
        return f"{base}/models/{_model_path(model)}:{method}"

    def _auth(self, cred: Credential) -> dict[str, str]:
        return {"x-goog-api-key": cred.api_key} if cred.api_key else {}

    def _embeddings_body(self, data: dict[str, Any], model: str, options: dict[str, Any]) -> dict[str, Any]:
        return embeddings_to_gemini(data, model, options)

    def _embeddings_response(self, payload: dict[str, Any]) -> dict[str, Any]:
        return gemini_embeddings_to_openai(payload, "")


class VertexProvider(_GeminiDialect):
    name = "vertex"
    default_base_url = "https://{region}-aiplatform.googleapis.com/v1"
    _embed_method = "predict"

    def _url(self, cred: Credential, model: str, method: str) -> str:
        region = str(cred.options.get("region") or cred.options.get("location") or VERTEX_DEFAULT_REGION)
        base = (cred.base_url or self.default_base_url).rstrip("/")
        if region == "global" and "{region}-" in base:
            base = base.replace("{region}-", "")
        base = base.replace("{region}", region)
        if cred.options.get("express_mode"):
            return f"{base}/publishers/google/models/{_model_path(model)}:{method}"
        project = cred.options.get("project")
        if not project:
            raise BadRequest(f"The vertex integration {cred.name!r} needs options.project.", param="model")
        return (
            f"{base}/projects/{quote(str(project), safe='')}/locations/{quote(region, safe='')}"
            f"/publishers/google/models/{_model_path(model)}:{method}"
        )

    secret_options = frozenset({"service_account"})

    def check_credential(self, cred: Credential) -> CredentialProblem | None:
        """What an integration lacks to be usable (checked when it is written), or None."""
        if cred.options.get("express_mode"):
            if cred.api_key:
                return None
            return CredentialProblem("api_key", "express_mode needs an api_key (a Vertex API key)")
        if not cred.options.get("project"):
            return CredentialProblem("options.project", "vertex needs options.project")
        headers = {k.lower() for k in cred.headers}
        if not (cred.api_key or cred.options.get("service_account") or "authorization" in headers):
            return CredentialProblem(
                "options.service_account",
                "vertex needs options.service_account, an access token in api_key, or headers.authorization",
            )
        return None

    def _auth(self, cred: Credential) -> dict[str, str]:
        if not cred.api_key:
            return {}  # a minted token arrives in cred.headers
        if cred.options.get("express_mode"):
            return {"x-goog-api-key": cred.api_key}
        return {"authorization": f"Bearer {cred.api_key}"}

    def _embeddings_body(self, data: dict[str, Any], model: str, options: dict[str, Any]) -> dict[str, Any]:
        return embeddings_to_vertex(data, options)

    def _embeddings_response(self, payload: dict[str, Any]) -> dict[str, Any]:
        return vertex_embeddings_to_openai(payload, "")


GEMINI = register(GeminiProvider())
VERTEX = register(VertexProvider())
