"""A gateway with guardrails attached per key, and a webhook service to test the webhook check."""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from lockgate.guardrails.webhook import SIGNATURE_HEADER, verify
from tests.gateway_harness import demo_config

WEBHOOK_TOKEN = "Bearer hook-service-token"
WEBHOOK_SECRET = "whsec-test-secret"
PII_ALL = {"type": "pii"}

GUARDRAILS: list[dict[str, Any]] = [
    {
        "name": "no-secrets",
        "action": "deny",
        "checks": [{"type": "pii", "params": {"entities": ["api_key", "aws_key"]}}],
    },
    {
        "name": "pii-placeholder",
        "action": "redact",
        "checks": [{"type": "pii", "params": {"redaction": "placeholder"}}],
    },
    {"name": "pii-label", "action": "redact", "checks": [PII_ALL]},
    {"name": "pii-flag", "action": "flag", "checks": [PII_ALL]},
    {
        "name": "no-mock-word",
        "action": "deny",
        "checks": [{"type": "denied_keywords", "params": {"keywords": ["mock response"]}}],
    },
    {
        "name": "reply-is-json",
        "action": "deny",
        "checks": [{"type": "json_schema", "params": {"schema": {"type": "object"}}}],
    },
    {"name": "short-answer", "action": "flag", "checks": [{"type": "limits", "params": {"max_words": 3}}]},
    {"name": "jailbreak", "action": "deny", "checks": [{"type": "prompt_injection"}], "roles": ["user"]},
]


def webhook_guardrail(name: str, url: str, on_error: str, timeout_ms: int = 300) -> dict[str, Any]:
    params = {
        "url": url,
        "secret_env": "LOCKGATE_TEST_WEBHOOK_SECRET",
        "headers_env": {"authorization": "LOCKGATE_TEST_WEBHOOK_TOKEN"},
    }
    check = {"type": "webhook", "params": params, "timeout_ms": timeout_ms}
    return {"name": name, "action": "redact", "on_error": on_error, "checks": [check]}


KEYS = {
    "deny-in": ("lg-test-deny-in-0001", ["no-secrets", "jailbreak"], []),
    "redact-in": ("lg-test-redact-in-0001", ["pii-placeholder"], []),
    "label-in": ("lg-test-label-in-00001", ["pii-label"], []),
    "flag": ("lg-test-flag-000000001", ["pii-flag"], ["pii-flag", "short-answer"]),
    "redact-out": ("lg-test-redact-out-001", [], ["pii-label"]),
    "deny-out": ("lg-test-deny-out-00001", [], ["no-mock-word"]),
    "json-out": ("lg-test-json-out-00001", [], ["reply-is-json"]),
    "hook": ("lg-test-webhook-000001", ["hook"], []),
    "hook-down-closed": ("lg-test-hook-closed-01", ["hook-down-closed"], []),
    "hook-slow-open": ("lg-test-hook-open-0001", ["hook-slow-open"], []),
    "hook-slow-closed": ("lg-test-hook-slowcl-01", ["hook-slow-closed"], []),
}


def gateway_config(mock_url: str, hook_url: str) -> dict[str, Any]:
    config = demo_config(mock_url)
    config["guardrails"] = [
        *GUARDRAILS,
        webhook_guardrail("hook", hook_url, "closed"),
        webhook_guardrail("hook-down-closed", "http://127.0.0.1:9/unreachable", "closed"),
        webhook_guardrail("hook-slow-open", hook_url + "/slow", "open"),
        webhook_guardrail("hook-slow-closed", hook_url + "/slow", "closed"),
    ]
    config["keys"] = [{"name": name, "key": key} for name, (key, _, _) in KEYS.items()]
    config["guardrail_attachments"] = [
        {
            "scope": "key",
            "workspace": "default",
            "key": name,
            "input_guardrails": ins,
            "output_guardrails": outs,
        }
        for name, (_, ins, outs) in KEYS.items()
    ]
    return config


class _Hook(BaseHTTPRequestHandler):
    calls: list[dict[str, Any]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["content-length"]))
        signed = verify(WEBHOOK_SECRET, body, self.headers.get(SIGNATURE_HEADER, ""))
        payload = json.loads(body)
        call = {"signed": signed, "payload": payload, "path": self.path}
        type(self).calls.append(call | {"authorization": self.headers.get("authorization")})
        if self.path.endswith("/slow"):
            time.sleep(1.0)
        texts = [p["text"] for p in payload["parts"]]
        verdict = signed and not any("forbidden" in t for t in texts)
        answer = {"verdict": verdict, "explanation": "says forbidden" if not verdict else ""}
        if any("rewrite-me" in t for t in texts):
            answer = {"verdict": False, "parts": [t.replace("rewrite-me", "rewritten") for t in texts]}
        out = json.dumps(answer).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(out)))
        self.end_headers()
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):  # the gateway gave up waiting
            self.wfile.write(out)

    def log_message(self, *args: Any) -> None:
        return


@contextmanager
def webhook_server() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Hook)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/check", _Hook.calls
    finally:
        server.shutdown()
        server.server_close()
