"""`lockgate budgets|rate-limits|policies|usage` against a real gateway, and the workers rule of serve."""

from __future__ import annotations

from pathlib import Path

import httpx
import orjson

from lockgate.testing.mock_provider import MockProviderThread
from tests.admin_harness import ADMIN_KEY, admin_gateway
from tests.e2e.test_cli_control import lockgate
from tests.gateway_harness import demo_config, free_port


def test_budgets_limits_policies_and_usage_from_the_cli(tmp_path: Path, mock: MockProviderThread) -> None:
    config = {**demo_config(mock.url), "keys": [{"name": "cli", "key": "lg-cli-limits-key-0123456789"}]}
    with admin_gateway(tmp_path, config) as gw:
        env = {"LOCKGATE_URL": gw.url, "LOCKGATE_ADMIN_KEY": ADMIN_KEY}
        keys = httpx.get(gw.url + "/admin/v1/keys", headers={"authorization": f"Bearer {ADMIN_KEY}"}).json()
        scope = f"key:{keys['data'][0]['id']}"
        made = lockgate("budgets", "create", "cli-b", "--scope", scope, "--amount", "2", "--json", env=env)
        assert made.returncode == 0, made.stdout + made.stderr
        budget = orjson.loads(made.stdout)
        assert budget["amount_usd"] == 2 and budget["scope"] == scope and budget["mode"] == "hard"
        limit = lockgate("rate-limits", "create", "cli-rl", "--scope", scope, "--rpm", "5", "--json", env=env)
        assert orjson.loads(limit.stdout)["requests_per_minute"] == 5
        policy = lockgate(
            "policies",
            "create",
            "cli-p",
            "--scope",
            "workspace:ws_default",
            "--deny-model",
            "claude-*",
            env=env,
        )
        assert policy.returncode == 0 and "cli-p" in policy.stdout
        bad = lockgate("rate-limits", "create", "cli-none", "--scope", scope, env=env)
        assert bad.returncode == 1 and "at least one of" in bad.stderr
        listed = lockgate("budgets", "list", env=env)
        assert "cli-b" in listed.stdout and scope in listed.stdout

        reply = httpx.post(
            gw.url + "/v1/chat/completions",
            headers={"authorization": "Bearer lg-cli-limits-key-0123456789"},
            json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]},
        )
        assert reply.status_code == 200 and reply.headers["x-ratelimit-remaining-requests"] == "4"
        usage = lockgate("usage", scope, env=env)
        assert usage.returncode == 0, usage.stdout
        assert "cli-b" in usage.stdout and "cli-rl" in usage.stdout and "requests_per_minute" in usage.stdout

        assert "cli-b" in lockgate("budgets", "get", "cli-b", env=env).stdout  # by name
        assert lockgate("budgets", "delete", budget["id"], env=env).returncode == 0
        assert "cli-b" not in lockgate("budgets", "list", env=env).stdout


def test_serve_refuses_several_workers_without_redis_and_says_why(tmp_path: Path) -> None:
    env = {"LOCKGATE_DATABASE_URL": f"sqlite:///{tmp_path / 'w.db'}", "LOCKGATE_REDIS_URL": ""}
    refused = lockgate("serve", "--port", str(free_port()), "--workers", "3", env=env)
    assert refused.returncode == 2
    message = " ".join(refused.stdout.split())
    assert "LOCKGATE_REDIS_URL" in message and "--approximate-limits" in message
    assert "exact only inside one process" in message
