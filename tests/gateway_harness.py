"""Runs a real Lockgate on loopback in a background thread, for tests that talk HTTP to it."""

from __future__ import annotations

import asyncio
import socket
import threading
from pathlib import Path
from typing import Any

import uvicorn
import yaml

from lockgate.app import Lockgate
from lockgate.settings import Settings


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def demo_config(mock_url: str, extra_models: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {
        "integrations": [
            {"name": "mock-openai", "provider": "openai", "base_url": f"{mock_url}/v1", "api_key": "sk-mock"},
            {
                "name": "mock-anthropic",
                "provider": "anthropic",
                "base_url": mock_url,
                "api_key": "sk-ant-mock",
            },
        ],
        "models": [
            {"alias": "gpt-4o-mini", "targets": ["@mock-openai/gpt-4o-mini"]},
            {"alias": "claude-sonnet", "targets": ["@mock-anthropic/claude-sonnet-4-5"]},
            {"alias": "text-embedding-3-small", "targets": ["@mock-openai/text-embedding-3-small"]},
            {
                "alias": "resilient",
                "targets": ["@mock-openai/gpt-4o-mini", "@mock-anthropic/claude-sonnet-4-5"],
            },
            *(extra_models or []),
        ],
    }


class GatewayThread:
    """A Lockgate app served by uvicorn on its own event loop in a thread."""

    def __init__(self, tmp: Path, config: dict[str, Any], **settings: Any) -> None:
        config_path = tmp / "lockgate.yaml"
        config_path.write_text(yaml.safe_dump(config))
        # A port chosen up front (``port=``) lets a test put the gateway's URL in its config.
        self.port = settings.pop("port", None) or free_port()
        self.settings = Settings(
            port=self.port,
            config=str(config_path),
            database_url=f"sqlite:///{tmp / 'lockgate.db'}",
            log_flush_interval=0.05,
            **settings,
        )
        self.app = Lockgate(self.settings)
        self.url = f"http://127.0.0.1:{self.port}"
        self._loop = asyncio.new_event_loop()
        self._server = uvicorn.Server(
            uvicorn.Config(
                self.app,
                host="127.0.0.1",
                port=self.port,
                lifespan="on",
                log_level="warning",
                loop="none",
                http="httptools",
            )
        )
        self._thread = threading.Thread(
            target=self._loop.run_until_complete, args=(self._server.serve(),), daemon=True
        )

    def __enter__(self) -> GatewayThread:
        self._thread.start()
        for _ in range(500):
            if self._server.started:
                return self
            self._thread.join(0.01)
            if not self._thread.is_alive():
                break
        raise RuntimeError("gateway did not start")

    def __exit__(self, *exc: object) -> None:
        self._server.should_exit = True
        self._thread.join(10)
        self._loop.close()

    def run(self, coro: Any, timeout: float = 10) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    def records(self) -> list[dict[str, Any]]:
        """Every request record, oldest first, after flushing the writer's queue."""
        self.run(self.app.writer.flush())
        return self.run(self.app.store.recent_request_records(10_000))
