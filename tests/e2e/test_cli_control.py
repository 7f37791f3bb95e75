"""`lockgate db upgrade`, `lockgate admin create` and `lockgate apply` as users run them."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx
import yaml

from lockgate.store.migrate import head_revision
from lockgate.testing.mock_provider import MockProviderThread
from tests.admin_harness import admin_gateway
from tests.gateway_harness import demo_config

ROOT = Path(__file__).resolve().parents[2]


def lockgate(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "lockgate", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, "COLUMNS": "200", **env},
        timeout=60,
        check=False,
    )


def test_admin_create_and_apply(tmp_path: Path, mock: MockProviderThread) -> None:
    env = {"LOCKGATE_DATABASE_URL": f"sqlite:///{tmp_path / 'lockgate.db'}"}
    upgraded = lockgate("db", "upgrade", env=env)
    assert upgraded.returncode == 0 and f"revision {head_revision()}" in upgraded.stdout, upgraded.stderr
    created = lockgate("admin", "create", "--name", "root", env=env)
    assert created.returncode == 0, created.stderr
    admin_key = next(w for w in created.stdout.split() if w.startswith("lga-"))
    refused = lockgate(
        "admin", "create", "--name", "x", "--role", "owner", "--workspace-id", "ws_default", env=env
    )
    assert refused.returncode != 0

    with admin_gateway(tmp_path, demo_config(mock.url)) as gw:
        me = httpx.get(gw.url + "/admin/v1/me", headers={"authorization": f"Bearer {admin_key}"})
        assert me.json()["org_role"] == "owner"
        desired = tmp_path / "desired.yaml"
        desired.write_text(
            yaml.safe_dump(
                {"workspaces": [{"name": "from-cli"}], "keys": [{"name": "ci", "workspace": "from-cli"}]}
            )
        )
        cli_env = {**env, "LOCKGATE_URL": gw.url, "LOCKGATE_ADMIN_KEY": admin_key}
        plan = lockgate("apply", str(desired), "--dry-run", env=cli_env)
        assert plan.returncode == 0 and "create" in plan.stdout and "from-cli" in plan.stdout, plan.stdout
        applied = lockgate("apply", str(desired), env=cli_env)
        assert "generated API key from-cli/ci" in applied.stdout
        assert "no changes" in lockgate("apply", str(desired), env=cli_env).stdout
        bad = tmp_path / "bad.yaml"
        bad.write_text("workspaces: [{name: 'no spaces allowed'}]")
        failed = lockgate("apply", str(bad), env=cli_env)
        assert failed.returncode == 1 and "workspaces.0.name" in failed.stderr
