"""A gateway with the admin API on, and small clients for tests that administer it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx

from tests.gateway_harness import GatewayThread

ADMIN_KEY = "lga-test-bootstrap-admin-key"
SECRET_KEY = "test-secret-key-for-fernet"


def admin_gateway(tmp: Path, config: dict[str, Any], **settings: Any) -> GatewayThread:
    return GatewayThread(tmp, config, admin_key=ADMIN_KEY, secret_key=SECRET_KEY, **settings)


def admin_client(gw: GatewayThread, key: str = ADMIN_KEY) -> httpx.Client:
    return httpx.Client(base_url=gw.url + "/admin/v1", headers={"authorization": f"Bearer {key}"}, timeout=10)


def ok(reply: httpx.Response, status: int = 200) -> dict[str, Any]:
    assert reply.status_code == status, reply.text
    return reply.json()
