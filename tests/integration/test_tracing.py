"""OpenTelemetry: spans arrive at an in-process OTLP/HTTP receiver with the right parents, and
the upstream gets the attempt's traceparent. Off by default: no tracer, exporter or span."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from lockgate.testing.mock_provider import MockProviderThread
from tests.gateway_harness import GatewayThread, demo_config
from tests.integration.otlp_kit import Receiver, running_receiver

CLIENT_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
CLIENT_SPAN = "00f067aa0ba902b7"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with running_receiver() as server:
        yield server


def test_spans_link_client_request_attempts_and_upstream(
    tmp_path: Path, mock: MockProviderThread, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.url)
    monkeypatch.setenv("OTEL_SERVICE_NAME", "lockgate-under-test")
    mock.add_fault(status=503, match_model="gpt-4o-mini")  # the first target fails: two attempts
    with GatewayThread(tmp_path, demo_config(mock.url), demo=True) as gw:
        reply = httpx.post(
            gw.url + "/v1/chat/completions",
            json={"model": "resilient", "messages": [{"role": "user", "content": "trace me"}]},
            headers={"traceparent": f"00-{CLIENT_TRACE}-{CLIENT_SPAN}-01"},
        )
        assert reply.status_code == 200
        [record] = [r for r in gw.records() if r["id"] == reply.headers["x-lockgate-request-id"]]
    # Shutting the gateway down flushed the batch span processor.
    assert receiver.paths and set(receiver.paths) == {"/v1/traces"}
    [root] = [s for s in receiver.spans if s["parent"] == CLIENT_SPAN]
    assert root["trace_id"] == CLIENT_TRACE == record["trace_id"] and root["span_id"] == record["span_id"]
    assert root["service"] == "lockgate-under-test" and root["name"] == "chat" and root["kind"] == 2  # SERVER
    a = root["attributes"]
    assert a["gen_ai.operation.name"] == "chat" and a["gen_ai.request.model"] == "resilient"
    assert a["gen_ai.response.model"] == "claude-sonnet-4-5"
    assert a["gen_ai.usage.input_tokens"] == record["prompt_tokens"] > 0
    assert a["gen_ai.usage.output_tokens"] == record["completion_tokens"] > 0
    assert a["http.response.status_code"] == 200 and not root["error"]
    attempts = [s for s in receiver.spans if s["parent"] == root["span_id"]]
    assert [s["kind"] for s in attempts] == [3, 3]  # CLIENT
    assert all(s["trace_id"] == CLIENT_TRACE for s in attempts)
    first, second = sorted(attempts, key=lambda s: s["attributes"]["gen_ai.system"] != "openai")
    assert first["attributes"]["gen_ai.system"] == "openai" and first["error"]
    assert first["attributes"]["gen_ai.request.model"] == "gpt-4o-mini"
    assert first["attributes"]["http.response.status_code"] == 503
    assert second["attributes"]["gen_ai.system"] == "anthropic" and not second["error"]
    assert second["attributes"]["gen_ai.request.model"] == "claude-sonnet-4-5"
    # Each upstream call carried its own attempt span as the parent, in the client's trace.
    sent = [r["headers"]["traceparent"] for r in mock.requests if "traceparent" in r["headers"]]
    assert sent == [f"00-{CLIENT_TRACE}-{first['span_id']}-01", f"00-{CLIENT_TRACE}-{second['span_id']}-01"]


def test_off_by_default_and_the_sdk_is_never_imported(tmp_path: Path) -> None:
    probe = f"""
import asyncio, os, sys
for name in [k for k in os.environ if k.startswith("OTEL_")]:
    del os.environ[name]
from lockgate.app import Lockgate
from lockgate.settings import Settings
app = Lockgate(Settings(database_url="sqlite:///{tmp_path / "db.sqlite"}", demo=True))
assert app.telemetry.tracing is None and app.pipeline.tracing is None
# FastAPI and redis-py import the OpenTelemetry API themselves; Lockgate's tracer provider,
# span processor and exporter must not load.
ours = ("opentelemetry.sdk.trace", "opentelemetry.exporter")
leaked = sorted(m for m in sys.modules if m.startswith(ours))
assert not leaked, leaked
print("ok")
"""
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr
