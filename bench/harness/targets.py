"""The things measured against the direct baseline: Lockgate, a reference nginx proxy, and optional peers.

A target knows how to start itself for a scenario (pinned to the gateway core, ready when this returns)
and where each kind of request goes (URL, model name, extra headers).
"""

from __future__ import annotations

import contextlib
import glob
import json
import os
import shlex
import shutil
import sqlite3
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from . import system, upstream
from .scenarios import (
    MASTER_KEY,
    MCP_SERVER,
    MCP_UPSTREAM_TOKEN,
    UPSTREAM_API_KEY,
    Route,
    Scenario,
    deep_merge,
)

REPO = Path(__file__).resolve().parents[2]
UPSTREAM_MODEL_NAME = "gpt-4o-mini"
REQUEST_LOG_TABLE = "request_logs"  # lockgate/store/tables.py; counted to show logging was on
TOOL_CALL_TABLE = "tool_calls"  # ... and for MCP scenarios, the tool-call records


@dataclass
class Context:
    workdir: Path
    up: upstream.Upstream
    gateway_core: int | None
    delay_s: float = 1.0
    extra_env: dict[str, str] = field(default_factory=dict)
    lockgate_args: list[str] = field(default_factory=list)


class Target:
    name = "target"
    ready_path: str | None = "/readyz"
    startup_timeout = 60.0
    translates = True  # answers /v1/messages in Anthropic format

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.port = 0

    def unavailable(self) -> str | None:
        """Why this target cannot run here, or None."""
        return None

    def unsupported(self, scenario: Scenario) -> str | None:
        return "no MCP gateway" if scenario.ingress == "mcp" else None

    def command(self, scenario: Scenario) -> tuple[list[str], dict[str, str]]:
        raise NotImplementedError

    def start(self, scenario: Scenario) -> system.Proc:
        self.port = system.free_port()
        cmd, env = self.command(scenario)
        proc = system.start(
            f"{self.name}-{scenario.key}",
            cmd,
            core=self.ctx.gateway_core,
            logdir=self.ctx.workdir,
            env=env,
            cwd=self.ctx.workdir,
        )
        try:
            system.wait_ready(proc, self.port, self.ready_path, timeout=self.startup_timeout)
        except Exception:
            system.stop(proc)
            raise
        return proc

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def records_logged(self, scenario: Scenario) -> int | None:
        """Request records the target wrote for this scenario (after it stopped), when it keeps any."""
        return None

    def route(self, scenario: Scenario, kind: str) -> Route:
        """kind: chat | stream | messages. Aliases bench-model / bench-stream / bench-slow by default."""
        model = (
            "bench-slow" if scenario.slow_upstream else "bench-stream" if kind == "stream" else "bench-model"
        )
        path = "/v1/messages" if kind == "messages" else "/v1/chat/completions"
        return Route(self.base + path, model)


def _clean_env(extra: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOCKGATE_")}
    env.update(extra)
    return env


def _integrations(up: upstream.Upstream) -> list[tuple[str, str, str]]:
    """(integration name, alias, base_url) for the three upstream endpoints."""
    return [
        ("bench-openai", "bench-model", f"{up.fast_base}/v1"),
        ("bench-openai-sse", "bench-stream", f"{up.fast_base}/sse/v1"),
        ("bench-openai-slow", "bench-slow", f"{up.slow_base}/v1"),
    ]


class Direct(Target):
    """The upstream itself: the baseline. Not started: it is the upstream."""

    name = "direct"

    def route(self, scenario: Scenario, kind: str) -> Route:
        up = self.ctx.up
        if kind == "mcp":
            return Route(up.mcp_url, "", {"Authorization": f"Bearer {MCP_UPSTREAM_TOKEN}"})
        headers = {"Authorization": f"Bearer {UPSTREAM_API_KEY}"}
        if scenario.slow_upstream:
            return Route(f"{up.slow_base}/v1/chat/completions", UPSTREAM_MODEL_NAME, headers)
        prefix = "/sse" if kind == "stream" else ""
        return Route(f"{up.fast_base}{prefix}/v1/chat/completions", UPSTREAM_MODEL_NAME, headers)


class Lockgate(Target):
    name = "lockgate"

    def executable(self) -> list[str]:
        exe = REPO / ".venv" / "bin" / "lockgate"
        return [str(exe)] if exe.exists() else [str(REPO / ".venv" / "bin" / "python"), "-m", "lockgate"]

    def unavailable(self) -> str | None:
        try:
            out = subprocess.run(
                [*self.executable(), "serve", "--help"], capture_output=True, text=True, timeout=60, cwd=REPO
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            return f"`lockgate serve --help` failed: {exc}"
        if out.returncode != 0:
            tail = (out.stderr or out.stdout).strip().splitlines()[-1:] or ["?"]
            return f"`lockgate serve --help` exited {out.returncode}: {tail[0]}"
        return None

    def config(self, scenario: Scenario) -> dict:
        integrations = _integrations(self.ctx.up)
        cfg = {
            "integrations": [
                {"name": name, "provider": "openai", "base_url": url, "api_key": UPSTREAM_API_KEY}
                for name, _, url in integrations
            ],
            "models": [
                {"alias": alias, "targets": [f"@{name}/{UPSTREAM_MODEL_NAME}"]}
                for name, alias, _ in integrations
            ],
        }
        if scenario.ingress == "mcp":
            cfg["mcp_servers"] = [
                {"name": MCP_SERVER, "url": self.ctx.up.mcp_url, "secret": MCP_UPSTREAM_TOKEN}
            ]
        return deep_merge(cfg, scenario.setup.config)

    def unsupported(self, scenario: Scenario) -> str | None:
        return None

    def route(self, scenario: Scenario, kind: str) -> Route:
        if kind == "mcp":
            return Route(f"{self.base}/mcp/{MCP_SERVER}", "")
        return super().route(scenario, kind)

    def command(self, scenario: Scenario) -> tuple[list[str], dict[str, str]]:
        cfg_file = self.ctx.workdir / f"lockgate-{scenario.key}.yaml"
        cfg_file.write_text(yaml.safe_dump(self.config(scenario), sort_keys=False))
        db = self.ctx.workdir / f"lockgate-{scenario.key}.db"
        env = _clean_env(
            {"LOCKGATE_DATABASE_URL": f"sqlite:///{db}", **scenario.setup.env, **self.ctx.extra_env}
        )
        cmd = [*self.executable(), "serve", "--host", "127.0.0.1", "--port", str(self.port)]
        return [*cmd, "--config", str(cfg_file), *self.ctx.lockgate_args], env

    def records_logged(self, scenario: Scenario) -> int | None:
        db = self.ctx.workdir / f"lockgate-{scenario.key}.db"
        if not db.exists():
            return None
        try:
            table = TOOL_CALL_TABLE if scenario.ingress == "mcp" else REQUEST_LOG_TABLE
            with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as conn:
                return conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
        except sqlite3.Error:
            return None


class NginxProxy(Target):
    """nginx as a plain reverse proxy on the gateway core: what one proxy hop costs at the least.

    Used as a reference row (--reference) and as a stand-in to validate the harness before Lockgate runs
    (--stand-in). No translation: /v1/messages is forwarded to the upstream's chat completions as is.
    """

    name = "nginx-proxy"
    ready_path = "/readyz"
    translates = False
    startup_timeout = 10.0

    def command(self, scenario: Scenario) -> tuple[list[str], dict[str, str]]:
        prefix = self.ctx.workdir / f"nginx-proxy-{scenario.key}"
        prefix.mkdir(parents=True, exist_ok=True)
        up = self.ctx.up
        auth = (
            f'    if ($http_authorization != "Bearer {MASTER_KEY}") {{ set $deny 1; }}\n'
            f'    if ($http_x_api_key = "{MASTER_KEY}") {{ set $deny 0; }}\n'
            if scenario.pipeline
            else ""
        )
        deny = "if ($deny) { return 401; }"
        conf = (
            upstream.nginx_prelude(prefix)
            + f"""  upstream fast {{ server 127.0.0.1:{up.fast_port}; keepalive 256; }}
  upstream slow {{ server 127.0.0.1:{up.slow_port}; keepalive 2048; }}
  proxy_http_version 1.1;
  proxy_set_header Connection "";
  proxy_buffering off;
  proxy_read_timeout 60s;
  server {{
    listen 127.0.0.1:{self.port} backlog=4096;
    set $deny 0;
{auth}    location = /readyz {{ return 200 'ok'; }}
    location = /v1/messages {{ {deny} proxy_pass http://fast/v1/chat/completions; }}
    location /slow/ {{ {deny} proxy_pass http://slow/; }}
    location / {{ {deny} proxy_pass http://fast; }}
  }}
}}
"""
        )
        (prefix / "nginx.conf").write_text(conf)
        return ["nginx", "-p", str(prefix), "-c", str(prefix / "nginx.conf"), "-g", "daemon off;"], dict(
            os.environ
        )

    def route(self, scenario: Scenario, kind: str) -> Route:
        if scenario.slow_upstream:
            return Route(f"{self.base}/slow/v1/chat/completions", UPSTREAM_MODEL_NAME)
        path = {
            "chat": "/v1/chat/completions",
            "stream": "/sse/v1/chat/completions",
            "messages": "/v1/messages",
        }
        return Route(self.base + path[kind], UPSTREAM_MODEL_NAME)


class LiteLLM(Target):
    """LiteLLM proxy, if installed (never installed here). Key auth via general_settings.master_key."""

    name = "litellm"
    ready_path = "/health/liveliness"
    startup_timeout = 120.0

    def executable(self) -> str | None:
        local = REPO / ".venv" / "bin" / "litellm"
        return str(local) if local.exists() else shutil.which("litellm")

    def unavailable(self) -> str | None:
        return None if self.executable() else "LiteLLM proxy not installed (`pip install 'litellm[proxy]'`)"

    def command(self, scenario: Scenario) -> tuple[list[str], dict[str, str]]:
        cfg: dict = {
            "model_list": [
                {
                    "model_name": alias,
                    "litellm_params": {
                        "model": f"openai/{UPSTREAM_MODEL_NAME}",
                        "api_base": url,
                        "api_key": UPSTREAM_API_KEY,
                    },
                }
                for _, alias, url in _integrations(self.ctx.up)
            ],
            "litellm_settings": {"telemetry": False},
        }
        if scenario.pipeline:
            cfg["general_settings"] = {"master_key": MASTER_KEY}
        cfg_file = self.ctx.workdir / f"litellm-{scenario.key}.yaml"
        cfg_file.write_text(yaml.safe_dump(cfg, sort_keys=False))
        env = _clean_env({"LITELLM_LOCAL_MODEL_COST_MAP": "True", "LITELLM_LOG": "ERROR"})
        exe = self.executable() or "litellm"
        return [exe, "--config", str(cfg_file), "--host", "127.0.0.1", "--port", str(self.port)], env


class Portkey(Target):
    """Portkey's open-source gateway, if installed with npm (never installed by the harness).

    It has no key auth of its own and no OpenAI-upstream /v1/messages, so it runs scenarios (a) and (d).
    """

    name = "portkey"
    ready_path = "/"
    startup_timeout = 60.0

    def package_dir(self) -> Path | None:
        roots = [REPO / "node_modules", Path.cwd() / "node_modules"]
        npm_root = system.run_quiet(["npm", "root", "-g"]) if shutil.which("npm") else ""
        if npm_root:
            roots.append(Path(npm_root.splitlines()[-1]))
        roots += [Path(p) for p in glob.glob(os.path.expanduser("~/.npm/_npx/*/node_modules"))]
        for root in roots:
            pkg = root / "@portkey-ai" / "gateway"
            if (pkg / "package.json").exists():
                return pkg
        return None

    def unavailable(self) -> str | None:
        if not shutil.which("node"):
            return "node not installed"
        return (
            None
            if self.package_dir()
            else "@portkey-ai/gateway not installed (`npm i -g @portkey-ai/gateway`)"
        )

    def unsupported(self, scenario: Scenario) -> str | None:
        if scenario.ingress == "mcp":
            return super().unsupported(scenario)
        if scenario.pipeline:
            return "the open-source Portkey gateway has no key auth"
        if scenario.ingress == "anthropic":
            return "Portkey's /v1/messages does not translate to OpenAI upstreams"
        return None

    def command(self, scenario: Scenario) -> tuple[list[str], dict[str, str]]:
        pkg = self.package_dir()
        assert pkg is not None
        bin_field = json.loads((pkg / "package.json").read_text()).get("bin", {})
        script = bin_field if isinstance(bin_field, str) else next(iter(bin_field.values()))
        return ["node", str(pkg / script), f"--port={self.port}"], _clean_env({})

    def route(self, scenario: Scenario, kind: str) -> Route:
        up = self.ctx.up
        host = up.slow_base if scenario.slow_upstream else up.fast_base + ("/sse" if kind == "stream" else "")
        headers = {
            "x-portkey-provider": "openai",
            "x-portkey-custom-host": f"{host}/v1",
            "Authorization": f"Bearer {UPSTREAM_API_KEY}",
        }
        return Route(f"{self.base}/v1/chat/completions", UPSTREAM_MODEL_NAME, headers)


def parse_env(pairs: list[str]) -> dict[str, str]:
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise SystemExit(f"--env wants KEY=VALUE, got {pair!r}")
        out[key] = value
    return out


def split_args(text: str) -> list[str]:
    return shlex.split(text) if text else []
