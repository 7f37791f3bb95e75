"""The mock provider's Gemini, Bedrock, Cohere and Azure dialects: auth checks and error shapes."""

from __future__ import annotations

import httpx
import pytest

from lockgate.providers.bedrock_eventstream import EventStreamDecoder
from lockgate.testing.mock_provider import MockProviderThread

CONVERSE = {"messages": [{"role": "user", "content": [{"text": "hi"}]}]}
SIGV4 = (
    "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20250101/us-east-1/bedrock/aws4_request, "
    "SignedHeaders=content-type;host;x-amz-date, Signature=" + "a" * 64
)


def post(mock: MockProviderThread, path: str, json: object, **headers: str) -> httpx.Response:
    return httpx.post(mock.url + path, json=json, headers=headers, timeout=5)


@pytest.mark.parametrize(
    ("headers", "status", "error_type"),
    [
        ({}, 403, "MissingAuthenticationTokenException"),
        ({"Authorization": "AWS4-HMAC-SHA256 garbage", "X-Amz-Date": "20250101T000000Z"}, 403,
         "InvalidSignatureException"),
        ({"Authorization": SIGV4}, 403, "InvalidSignatureException"),  # no X-Amz-Date
    ],
)  # fmt: skip
def test_bedrock_checks_the_sigv4_shape(
    mock: MockProviderThread, headers: dict[str, str], status: int, error_type: str
) -> None:
    response = post(mock, "/model/amazon.nova-lite-v1:0/converse", CONVERSE, **headers)
    assert response.status_code == status
    assert response.headers["x-amzn-errortype"].startswith(error_type + ":")
    assert set(response.json()) == {"message"}


def test_bedrock_accepts_a_sigv4_shaped_request_and_streams_binary_frames(mock: MockProviderThread) -> None:
    ok = post(mock, "/model/amazon.nova-lite-v1:0/converse", CONVERSE, Authorization=SIGV4,
              **{"X-Amz-Date": "20250101T000000Z"})  # fmt: skip
    assert ok.status_code == 200 and ok.json()["stopReason"] == "end_turn"
    stream = post(mock, "/model/amazon.nova-lite-v1:0/converse-stream", CONVERSE, Authorization="Bearer ABSK")
    assert stream.headers["content-type"] == "application/vnd.amazon.eventstream"
    names = [name for name, _ in EventStreamDecoder().feed(stream.content)]
    assert names[0] == "messageStart" and names[-2:] == ["messageStop", "metadata"]


def test_gemini_auth_and_error_shape(mock: MockProviderThread) -> None:
    body = {"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}
    denied = post(mock, "/v1beta/models/gemini-2.5-flash:generateContent", body)
    assert denied.status_code == 401 and denied.json()["error"]["status"] == "UNAUTHENTICATED"
    ok = post(mock, "/v1beta/models/gemini-2.5-flash:generateContent", body, **{"x-goog-api-key": "k"})
    assert ok.json()["candidates"][0]["finishReason"] == "STOP"
    bad = post(
        mock, "/v1beta/models/gemini-2.5-flash:generateContent", {"contents": []}, **{"x-goog-api-key": "k"}
    )
    assert bad.status_code == 400 and bad.json()["error"]["status"] == "INVALID_ARGUMENT"


def test_cohere_auth_and_error_shape(mock: MockProviderThread) -> None:
    denied = post(mock, "/v2/chat", {"model": "command-a", "messages": [{"role": "user", "content": "hi"}]})
    assert denied.status_code == 401 and denied.json()["message"] == "no api key supplied"
    bad = post(mock, "/v2/embed", {"model": "embed-v4.0", "texts": ["x"]}, Authorization="Bearer k")
    assert bad.status_code == 400 and "input_type" in bad.json()["message"]


def test_azure_needs_api_version_and_a_key(mock: MockProviderThread) -> None:
    body = {"messages": [{"role": "user", "content": "hi"}]}
    path = "/openai/deployments/prod-mini/chat/completions"
    assert post(mock, path, body, **{"api-key": "k"}).status_code == 404
    assert post(mock, path + "?api-version=2024-10-21", body).status_code == 401
    ok = post(mock, path + "?api-version=2024-10-21", body, **{"api-key": "k"})
    assert ok.status_code == 200 and ok.json()["model"] == "prod-mini"


def test_oauth_token_endpoints(mock: MockProviderThread) -> None:
    entra = httpx.post(
        mock.url + "/tenant-9/oauth2/v2.0/token",
        data={
            "grant_type": "client_credentials",
            "client_id": "c",
            "client_secret": "s",
            "scope": "x/.default",
        },
    )
    assert entra.json()["access_token"] == "mock-entra-token-1"
    wrong = httpx.post(
        mock.url + "/tenant-9/oauth2/v2.0/token",
        data={"grant_type": "client_credentials", "client_id": "c", "client_secret": "wrong", "scope": "x"},
    )
    assert wrong.status_code == 401 and wrong.json()["error"] == "invalid_client"
    google = httpx.post(
        mock.url + "/oauth2/token",
        data={"grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer", "assertion": "not.a-jwt"},
    )
    assert google.status_code == 400 and google.json()["error"] == "invalid_grant"
    assert mock.tokens == [("mock-entra-token-1", "tenant-9")]
