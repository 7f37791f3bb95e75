"""Azure OpenAI and Azure AI Foundry: the OpenAI wire format behind Azure's URLs and auth.

Both speak OpenAI's request and response bodies, so the client's bytes are forwarded
(with the family's usual adjustments); only the URL and the auth header differ.

Azure OpenAI (``azure``), ``base_url`` = the resource endpoint
(``https://<resource>.openai.azure.com``):
- ``{endpoint}/openai/deployments/{deployment}/{chat/completions|completions|embeddings}
  ?api-version={api_version}``. ``options.deployments`` maps a model name to its
  deployment name (default: the model name is the deployment name);
  ``options.api_version`` defaults to ``2024-10-21`` (the current GA version).
- ``options.api_version: v1`` selects Azure's v1 API instead: ``{endpoint}/openai/v1/...``,
  no ``api-version``, the deployment name sent as ``model``.
- Auth: ``api_key`` -> ``api-key`` header; or an Entra ID bearer token, minted by the
  gateway from ``options.entra`` (client credentials) and passed in
  ``Credential.headers["authorization"]``, or a static one in ``headers``.

Azure AI Foundry model inference (``azure-foundry``), ``base_url`` =
``https://<resource>.services.ai.azure.com`` (``/models`` optional):
- ``{endpoint}/models/{chat/completions|embeddings}?api-version={api_version}``
  (default ``2024-05-01-preview``); the model is named in the body.
- ``options.extra_parameters`` (``pass-through``, ``drop`` or ``error``) is sent as the
  ``extra-parameters`` header: what Foundry does with parameters a model does not know.
- Auth as for Azure OpenAI.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from lockgate.errors import UnsupportedParameter, UpstreamError
from lockgate.providers.base import (
    CHAT,
    COMPLETIONS,
    EMBEDDINGS,
    Body,
    Credential,
    CredentialProblem,
    UpstreamRequest,
    register,
)
from lockgate.providers.openai_compat import OpenAICompatProvider, OpenAIStreamReader

AZURE_API_VERSION = "2024-10-21"
FOUNDRY_API_VERSION = "2024-05-01-preview"
_PATHS = {CHAT: "chat/completions", COMPLETIONS: "completions", EMBEDDINGS: "embeddings"}
ENTRA_FIELDS = ("tenant_id", "client_id", "client_secret")
_ENTRA = ", ".join(ENTRA_FIELDS)


@dataclass(frozen=True, slots=True)
class _AzureBase:
    name: str
    compat: OpenAICompatProvider
    endpoints: frozenset[str]
    default_base_url: str = ""
    dialect: str = "openai"
    secret_options = frozenset({"entra.client_secret"})

    def check_credential(self, cred: Credential) -> CredentialProblem | None:
        """What an integration lacks to be usable (checked when it is written), or None."""
        entra = cred.options.get("entra")
        if entra is not None:
            if not isinstance(entra, Mapping):
                return CredentialProblem("options.entra", f"options.entra must be an object with {_ENTRA}")
            missing = [k for k in ENTRA_FIELDS if not entra.get(k)]
            if missing:
                return CredentialProblem(f"options.entra.{missing[0]}", f"options.entra needs {_ENTRA}")
            return None
        if not (cred.api_key or "authorization" in {k.lower() for k in cred.headers}):
            return CredentialProblem(
                "api_key", f"{self.name} needs an api_key, options.entra or headers.authorization"
            )
        return None

    def _headers(self, cred: Credential) -> dict[str, str]:
        headers = {"content-type": "application/json", "accept-encoding": "identity"}
        if cred.api_key:
            headers["api-key"] = cred.api_key
        headers.update(cred.headers)
        return headers

    def parse_response(self, endpoint: str, raw: bytes) -> dict[str, Any]:
        return self.compat.parse_response(endpoint, raw)

    def parse_error(self, status: int, raw: bytes) -> UpstreamError:
        return self.compat.parse_error(status, raw)

    def stream_translator(self, endpoint: str, model: str) -> OpenAIStreamReader:
        return self.compat.stream_translator(endpoint, model)


@dataclass(frozen=True, slots=True)
class AzureOpenAIProvider(_AzureBase):
    def build_request(self, endpoint: str, body: Body, cred: Credential) -> UpstreamRequest:
        if endpoint not in _PATHS:
            raise UnsupportedParameter(f"azure does not serve the {endpoint} endpoint")
        adapted = self.compat.adapt_body(endpoint, body)
        model = str(adapted.data.get("model") or "")
        deployments = cred.options.get("deployments") or {}
        deployment = str(deployments.get(model, model)) if isinstance(deployments, dict) else model
        base = cred.base_url.rstrip("/")
        version = str(cred.options.get("api_version") or AZURE_API_VERSION)
        if version == "v1":
            adapted.set("model", deployment)
            url = f"{base}/openai/v1/{_PATHS[endpoint]}"
        else:
            url = (
                f"{base}/openai/deployments/{quote(deployment, safe='')}/{_PATHS[endpoint]}"
                f"?api-version={quote(version, safe='')}"
            )
        return UpstreamRequest(url, self._headers(cred), adapted.encode(), dropped_params=adapted.dropped)


@dataclass(frozen=True, slots=True)
class AzureFoundryProvider(_AzureBase):
    def build_request(self, endpoint: str, body: Body, cred: Credential) -> UpstreamRequest:
        if endpoint not in (CHAT, EMBEDDINGS):
            raise UnsupportedParameter(f"azure-foundry does not serve the {endpoint} endpoint")
        adapted = self.compat.adapt_body(endpoint, body)
        base = cred.base_url.rstrip("/").removesuffix("/models")
        version = str(cred.options.get("api_version") or FOUNDRY_API_VERSION)
        url = f"{base}/models/{_PATHS[endpoint]}?api-version={quote(version, safe='')}"
        headers = self._headers(cred)
        extra = cred.options.get("extra_parameters")
        if extra is not None:
            headers["extra-parameters"] = str(extra)
        return UpstreamRequest(url, headers, adapted.encode(), dropped_params=adapted.dropped)


AZURE = register(
    AzureOpenAIProvider(
        "azure",
        OpenAICompatProvider("azure", "", "AZURE_OPENAI_API_KEY"),
        frozenset({CHAT, COMPLETIONS, EMBEDDINGS}),
    )
)
AZURE_FOUNDRY = register(
    AzureFoundryProvider(
        "azure-foundry",
        # The model inference API does not take OpenAI's newest sampling extras.
        OpenAICompatProvider(
            "azure-foundry", "", "AZURE_AI_API_KEY", unsupported_params=frozenset({"logit_bias", "store"})
        ),
        frozenset({CHAT, EMBEDDINGS}),
    )
)
