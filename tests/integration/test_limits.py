"""Budgets, rate limits and usage policies through a real gateway (memory counters, one process)."""

from __future__ import annotations

import concurrent.futures
import http.server
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from lockgate.testing.mock_provider import MockProviderThread
from tests.gateway_harness import GatewayThread, demo_config

KEY = "lg-limits-ci-key-0123456789"
OTHER = "lg-limits-other-key-0123456789"
STREAMER = "lg-limits-streamer-key-0123456789"
SECRET = "test-secret-key-for-fernet"


def chat(text: str = "Hello", **extra: Any) -> dict[str, Any]:
    return {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": text}], **extra}


def governed(mock_url: str, **sections: Any) -> dict[str, Any]:
    config = demo_config(mock_url)
    config["workspaces"] = [{"name": "team-a"}]
    config["keys"] = [
        {"name": "ci", "workspace": "default", "key": KEY},
        {"name": "other", "workspace": "team-a", "key": OTHER},
        {"name": "streamer", "workspace": "default", "key": STREAMER},
    ]
    config.update(sections)
    return config


def client(gw: GatewayThread, key: str = KEY, **headers: str) -> httpx.Client:
    return httpx.Client(base_url=gw.url, headers={"authorization": f"Bearer {key}", **headers}, timeout=10)


@pytest.fixture(scope="module")
def gw(mock: MockProviderThread, tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayThread]:
    config = governed(
        mock.url,
        rate_limits=[
            {"name": "ci-rpm", "scope": "key:default/ci", "requests_per_minute": 3},
            {"name": "team-a-concurrency", "scope": "workspace:team-a", "concurrent": 1},
        ],
        policies=[
            {
                "name": "team-a-rules",
                "scope": "workspace:team-a",
                "denied_models": ["claude-*"],
                "max_tokens": 50,
                "max_n": 2,
                "temperature_min": 0.0,
                "temperature_max": 1.0,
                "required_metadata": ["user"],
            }
        ],
        budgets=[
            {"name": "per-user", "scope": "metadata:user", "amount_usd": 0.0001, "period": "day"},
            {"name": "streamer", "scope": "key:default/streamer", "amount_usd": 1, "period": "week"},
        ],
    )
    with GatewayThread(tmp_path_factory.mktemp("limits"), config, secret_key=SECRET) as gateway:
        yield gateway


def test_requests_per_minute_with_headers_then_429(gw: GatewayThread) -> None:
    with client(gw) as http:
        seen = []
        for _ in range(3):
            reply = http.post("/v1/chat/completions", json=chat())
            assert reply.status_code == 200, reply.text
            assert reply.headers["x-ratelimit-limit-requests"] == "3"
            seen.append(reply.headers["x-ratelimit-remaining-requests"])
        assert seen == ["2", "1", "0"]
        refused = http.post("/v1/chat/completions", json=chat())
        assert refused.status_code == 429
        error = refused.json()["error"]
        assert error["type"] == "rate_limit_error" and error["code"] == "rate_limit_exceeded"
        assert "ci-rpm" in error["message"]
        assert 1 <= int(refused.headers["retry-after"]) <= 61
        assert refused.headers["x-ratelimit-remaining-requests"] == "0"
        # The same limit on the Anthropic endpoint answers in Anthropic's error shape.
        message = http.post(
            "/v1/messages",
            json={
                "model": "claude-sonnet",
                "max_tokens": 10,
                "messages": [{"role": "user", "content": "Hi"}],
            },
        )
        assert message.status_code == 429
        assert message.json()["type"] == "error" and message.json()["error"]["type"] == "rate_limit_error"


@pytest.mark.parametrize(
    ("body", "headers", "status", "code", "param"),
    [
        (chat(), {}, 400, "policy_metadata_required", "x-lockgate-metadata"),
        ({**chat(), "model": "claude-sonnet"}, {"user": "u1"}, 403, "model_denied", "model"),
        (chat(max_tokens=51), {"user": "u1"}, 400, "policy_max_tokens", "max_tokens"),
        (chat(n=3), {"user": "u1"}, 400, "policy_max_n", "n"),
        (chat(temperature=1.5), {"user": "u1"}, 400, "policy_temperature", "temperature"),
    ],
)
def test_usage_policy_violations_name_the_rule(
    gw: GatewayThread, body: dict[str, Any], headers: dict[str, str], status: int, code: str, param: str
) -> None:
    extra = {"x-lockgate-metadata": orjson.dumps(headers).decode()} if headers else {}
    with client(gw, OTHER, **extra) as http:
        reply = http.post("/v1/chat/completions", json=body)
    assert reply.status_code == status, reply.text
    error = reply.json()["error"]
    assert error["code"] == code and error["param"] == param
    assert "team-a-rules" in error["message"]


def test_a_max_tokens_cap_is_sent_when_the_request_has_none(
    gw: GatewayThread, mock: MockProviderThread
) -> None:
    with client(gw, OTHER, **{"x-lockgate-metadata": '{"user": "cap"}'}) as http:
        assert http.post("/v1/chat/completions", json=chat("cap me")).status_code == 200
    assert mock.requests[-1]["json"]["max_completion_tokens"] == 50


def test_concurrent_requests_beyond_the_limit_get_429(gw: GatewayThread, mock: MockProviderThread) -> None:
    mock.add_fault(delay_ms=400, match_model="gpt-4o-mini", times=2)
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        replies = list(
            pool.map(
                lambda n: client(gw, OTHER, **{"x-lockgate-metadata": f'{{"user": "c{n}"}}'}).post(
                    "/v1/chat/completions", json=chat()
                ),
                range(2),
            )
        )
    assert sorted(r.status_code for r in replies) == [200, 429]
    refused = next(r for r in replies if r.status_code == 429)
    assert "concurrent" in refused.json()["error"]["message"]
    with client(gw, OTHER, **{"x-lockgate-metadata": '{"user": "c2"}'}) as http:  # the slot came back
        assert http.post("/v1/chat/completions", json=chat()).status_code == 200


def test_per_user_budget_holds_each_value_apart(gw: GatewayThread) -> None:
    statuses = []
    with client(gw, OTHER, **{"x-lockgate-metadata": '{"user": "alice"}'}) as http:
        for _ in range(30):
            reply = http.post("/v1/chat/completions", json=chat(max_tokens=20))
            statuses.append(reply.status_code)
            if reply.status_code == 402:
                error = reply.json()["error"]
                assert error["type"] == "budget_exceeded" and "per-user" in error["message"]
                break
    assert statuses[-1] == 402 and statuses.count(200) >= 2
    records = [r for r in gw.records() if (r["metadata"] or {}).get("user") == "alice"]
    spent = sum(r["cost_usd"] or 0 for r in records)
    assert 0 < spent <= 0.0001  # the reservation keeps spend under the budget, not near-misses past it
    assert all(r["limits"] == "exact" for r in records)
    with client(gw, OTHER, **{"x-lockgate-metadata": '{"user": "bob"}'}) as http:
        assert http.post("/v1/chat/completions", json=chat(max_tokens=20)).status_code == 200


class _Hooks(http.server.BaseHTTPRequestHandler):
    received: list[dict[str, Any]] = []

    def do_POST(self) -> None:
        length = int(self.headers["content-length"])
        type(self).received.append(orjson.loads(self.rfile.read(length)))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def webhook() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    received: list[dict[str, Any]] = []
    handler = type("Hooks", (_Hooks,), {"received": received})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hook", received
    server.shutdown()
    server.server_close()


def test_alerts_fire_once_per_threshold_and_auto_revoke_stops_the_key(
    mock: MockProviderThread, tmp_path: Path, webhook: tuple[str, list[dict[str, Any]]]
) -> None:
    url, received = webhook
    config = governed(
        mock.url,
        budgets=[
            {
                "name": "ci-soft",
                "scope": "key:default/ci",
                "amount_usd": 0.00005,
                "mode": "soft",
                "alert_webhook": url,
            },
            {"name": "ci-hard", "scope": "key:default/ci", "amount_usd": 0.0001, "auto_revoke": True},
        ],
    )
    with GatewayThread(tmp_path, config, secret_key=SECRET) as gw, client(gw) as http:
        statuses = [
            http.post("/v1/chat/completions", json=chat(max_tokens=20)).status_code for _ in range(25)
        ]
        assert 402 in statuses and statuses.index(402) >= 2
        gw.run(gw.app.alerts.drain())
        later = http.post("/v1/chat/completions", json=chat()).status_code
    soft = [(a["budget_name"], a["threshold"]) for a in received if a["budget_name"] == "ci-soft"]
    assert soft == [("ci-soft", 50), ("ci-soft", 80), ("ci-soft", 100)]  # each once, in order
    assert all(a["type"] == "budget.threshold" and a["scope"].startswith("key:") for a in received)
    assert later == 401  # revoked at its limit


def test_spend_survives_a_restart(mock: MockProviderThread, tmp_path: Path) -> None:
    config = governed(mock.url, budgets=[{"name": "ci-day", "scope": "key:default/ci", "amount_usd": 0.0001}])
    with GatewayThread(tmp_path, config, secret_key=SECRET) as gw, client(gw) as http:
        while http.post("/v1/chat/completions", json=chat(max_tokens=20)).status_code == 200:
            pass
        spent = sum(r["cost_usd"] or 0 for r in gw.records() if r["status"] == 200)
    with GatewayThread(tmp_path, config, secret_key=SECRET) as gw, client(gw) as http:
        reply = http.post("/v1/chat/completions", json=chat(max_tokens=20))
        assert reply.status_code == 402  # the ledger brought the spend back
        live = gw.run(gw.app.counters.read(("key:" + _key_id(gw, "ci"),)))
    assert abs(next(iter(live.values()))["m:" + _month()] - spent) < 1e-12


def _key_id(gw: GatewayThread, name: str) -> str:
    snapshot = gw.app.snapshots.current
    return next(entry.id for entry in snapshot.keys.values() if entry.name == name)


def _month() -> str:
    return time.strftime("%Y%m", time.gmtime())


@pytest.mark.parametrize("mode", ["closed", "open"])
def test_unreachable_redis_fails_closed_or_open_without_hanging(
    mock: MockProviderThread, tmp_path: Path, mode: str
) -> None:
    from tests.gateway_harness import free_port

    config = governed(
        mock.url, rate_limits=[{"name": "ci-rpm", "scope": "key:default/ci", "requests_per_minute": 100}]
    )
    with GatewayThread(
        tmp_path,
        config,
        secret_key=SECRET,
        redis_url=f"redis://127.0.0.1:{free_port()}/0",
        limits_on_redis_failure=mode,
    ) as gw:
        with client(gw) as http:
            limited = [http.post("/v1/chat/completions", json=chat()) for _ in range(3)]
        with client(gw, OTHER) as http:  # nothing limits this key: no counters needed
            assert http.post("/v1/chat/completions", json=chat()).status_code == 200
        records = gw.records()
    if mode == "closed":
        assert {r.status_code for r in limited} == {503}
        assert limited[0].json()["error"]["code"] == "limits_unavailable"
    else:
        assert {r.status_code for r in limited} == {200}
        assert [r["limits"] for r in records if r["key_id"] and r["status"] == 200][:3] == ["local"] * 3


def test_streams_settle_their_usage_broken_ones_their_estimate(
    gw: GatewayThread, mock: MockProviderThread
) -> None:
    mock.add_fault(cut_after_chunks=2, match_model="gpt-4o-mini")
    body = chat("stream me", max_tokens=20, stream=True)
    with client(gw, STREAMER) as http:
        for _ in range(2):  # the first breaks after two chunks, the second completes
            with http.stream("POST", "/v1/chat/completions", json=body) as reply:
                assert reply.status_code == 200
                reply.read()
    scope = "key:" + _key_id(gw, "streamer")
    # The server finishes a request (settles, queues its record) just after the client's last byte.
    for _ in range(100):
        records = [r for r in gw.records() if r["key_id"] == scope[4:]]
        live = gw.run(gw.app.counters.read((scope,)))[scope]
        if len(records) == 2 and "r" not in live:
            break
        time.sleep(0.05)
    broken, whole = records
    assert broken["usage_source"] == "estimated" and broken["cost_usd"] > 0
    assert whole["usage_source"] == "reported" and whole["cost_usd"] > broken["cost_usd"]
    assert live["a"] == pytest.approx(broken["cost_usd"] + whole["cost_usd"], abs=1e-15)
    assert "r" not in live  # both reservations were given back


def test_approximate_mode_gives_each_worker_its_share(mock: MockProviderThread, tmp_path: Path) -> None:
    config = governed(
        mock.url, rate_limits=[{"name": "ci-rpm", "scope": "key:default/ci", "requests_per_minute": 4}]
    )
    with (
        GatewayThread(tmp_path, config, secret_key=SECRET, workers=2, approximate_limits=True) as gw,
        client(gw) as http,
    ):
        statuses = [http.post("/v1/chat/completions", json=chat()).status_code for _ in range(3)]
        assert statuses == [200, 200, 429]  # this worker's half of 4
        assert {r["limits"] for r in gw.records() if r["status"] == 200} == {"approximate"}
