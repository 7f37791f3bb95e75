"""Azure paths of the mock provider, and the two OAuth token endpoints cloud auth needs.

- Azure OpenAI: ``POST /openai/deployments/{model}/{chat/completions|completions|embeddings}``
  needs ``?api-version=`` and an ``api-key`` header or a bearer token; the deployment name
  stands in for the model (OpenAI handlers answer).
- Azure AI Foundry: ``POST /models/{chat/completions|embeddings}?api-version=...``.
- Entra ID: ``POST /{tenant}/oauth2/v2.0/token`` (client credentials) and Google:
  ``POST /oauth2/token`` (JWT-bearer assertion; its shape and claims are checked, not its
  signature). Both issue ``mock-<kind>-token-<n>`` tokens that live an hour.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web

from lockgate.testing import mock_provider_openai as openai
from lockgate.testing.mock_provider_common import Call, json_response, openai_error
from lockgate.testing.mock_provider_gemini import check_jwt_assertion

Handler = Callable[[Call], Awaitable[web.StreamResponse]]
TOKEN_LIFETIME = 3599


def check_auth(request: web.Request) -> web.Response | None:
    if not request.query.get("api-version"):
        return openai_error(404, "Resource not found")  # what Azure answers without api-version
    if request.headers.get("api-key") or request.headers.get("Authorization", "").startswith("Bearer "):
        return None
    return openai_error(
        401,
        "Access denied due to invalid subscription key or wrong API endpoint. Make sure to provide a "
        "valid key for an active subscription and use a correct regional API endpoint for your resource.",
    )


def deployment(handler: Handler) -> Handler:
    """An OpenAI handler behind a deployment URL: the body's model defaults to the deployment."""

    async def serve(call: Call) -> web.StreamResponse:
        call.body.setdefault("model", call.request.match_info["model"])
        return await handler(call)

    return serve


CHAT = deployment(openai.chat_completions)
COMPLETIONS = deployment(openai.completions)
EMBEDDINGS = deployment(openai.embeddings)


def _oauth_error(status: int, error: str, description: str) -> web.Response:
    return json_response({"error": error, "error_description": description}, status)


async def entra_token(request: web.Request) -> web.Response:
    from lockgate.testing.mock_provider import STATE_KEY

    form = await request.post()
    if form.get("grant_type") != "client_credentials":
        return _oauth_error(400, "unsupported_grant_type", "grant_type must be client_credentials")
    if not form.get("client_id") or not form.get("client_secret") or not form.get("scope"):
        return _oauth_error(400, "invalid_request", "client_id, client_secret and scope are required")
    if form.get("client_secret") == "wrong":
        return _oauth_error(401, "invalid_client", "AADSTS7000215: Invalid client secret provided.")
    token = request.app[STATE_KEY].issue_token("mock-entra-token", request.match_info["tenant"])
    return json_response({"token_type": "Bearer", "expires_in": TOKEN_LIFETIME, "access_token": token})


async def google_token(request: web.Request) -> web.Response:
    from lockgate.testing.mock_provider import STATE_KEY

    form = await request.post()
    if form.get("grant_type") != "urn:ietf:params:oauth:grant-type:jwt-bearer":
        return _oauth_error(400, "unsupported_grant_type", "Invalid grant_type")
    problem = check_jwt_assertion(str(form.get("assertion") or ""), str(request.url.with_query(None)))
    if problem is not None:
        return _oauth_error(400, "invalid_grant", problem)
    token = request.app[STATE_KEY].issue_token("mock-google-token", "google")
    return json_response({"access_token": token, "expires_in": TOKEN_LIFETIME, "token_type": "Bearer"})
