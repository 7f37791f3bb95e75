"""The zero-delay upstream (nginx serving fixed OpenAI-shaped bodies) and the 1 s delayed one.

One nginx master + one worker serves, on the fast port:
  POST /v1/chat/completions      a fixed chat.completion with usage (application/json)
  POST /sse/v1/chat/completions  a fixed SSE stream: role, content, finish and usage chunks, then [DONE]
and, on the slow port, the same JSON after `echo_sleep 1` (the echo module, Debian's libnginx-mod-http-echo).
Without the echo module the slow port is served by `slow_upstream.py` (asyncio) instead.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path

from . import system
from .scenarios import MCP_UPSTREAM_TOKEN

ECHO_MODULE = Path("/usr/lib/nginx/modules/ngx_http_echo_module.so")
UPSTREAM_MODEL = "gpt-4o-mini-2024-07-18"
CREATED = 1732377600

CHAT_COMPLETION = {
    "id": "chatcmpl-bench0000000000000000000001",
    "object": "chat.completion",
    "created": CREATED,
    "model": UPSTREAM_MODEL,
    "choices": [
        {
            "index": 0,
            "message": {
                "role": "assistant",
                "content": "Hello! I'm a fixed benchmark answer. How can I help you today?",
                "refusal": None,
                "annotations": [],
            },
            "logprobs": None,
            "finish_reason": "stop",
        }
    ],
    "usage": {
        "prompt_tokens": 11,
        "completion_tokens": 16,
        "total_tokens": 27,
        "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": 0,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    },
    "service_tier": "default",
    "system_fingerprint": "fp_bench0001",
}

STREAM_WORDS = [
    "Hello",
    "!",
    "I",
    "'m",
    "a",
    "fixed",
    "benchmark",
    "answer",
    ",",
    "streamed",
    "in",
    "sixteen",
]
STREAM_WORDS += ["small", "chunks", "today", "."]


def _chunk(delta: dict, finish: str | None = None, usage: dict | None = None, choices: bool = True) -> dict:
    return {
        "id": "chatcmpl-bench0000000000000000000002",
        "object": "chat.completion.chunk",
        "created": CREATED,
        "model": UPSTREAM_MODEL,
        "service_tier": "default",
        "system_fingerprint": "fp_bench0001",
        "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]
        if choices
        else [],
        "usage": usage,
    }


def sse_events() -> list[str]:
    """The `data:` payloads of the fixed stream, in order, [DONE] included."""
    chunks = [_chunk({"role": "assistant", "content": "", "refusal": None})]
    chunks += [_chunk({"content": (" " if i else "") + word}) for i, word in enumerate(STREAM_WORDS)]
    chunks.append(_chunk({}, finish="stop"))
    usage = {
        "prompt_tokens": 11,
        "completion_tokens": len(STREAM_WORDS),
        "total_tokens": 11 + len(STREAM_WORDS),
    }
    chunks.append(_chunk({}, usage=usage, choices=False))
    return [json.dumps(c, separators=(",", ":")) for c in chunks] + ["[DONE]"]


def sse_body() -> str:
    return "".join(f"data: {event}\n\n" for event in sse_events())


def json_body() -> str:
    return json.dumps(CHAT_COMPLETION, separators=(",", ":"))


def _nginx_string(text: str) -> str:
    if "$" in text:  # nginx would read it as a variable
        raise ValueError("fixed bodies must not contain '$'")
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def nginx_prelude(prefix: Path, worker_connections: int = 8192) -> str:
    """Config head shared by every nginx the harness runs: foreground-friendly, logs off, temp dirs local."""
    temps = "\n".join(
        f"  {kind}_temp_path {prefix}/tmp/{kind};"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    (prefix / "tmp").mkdir(parents=True, exist_ok=True)
    return f"""worker_processes 1;
worker_rlimit_nofile {worker_connections * 2};
error_log stderr warn;
pid {prefix}/nginx.pid;
events {{ worker_connections {worker_connections}; multi_accept on; }}
http {{
  access_log off;
  server_tokens off;
  keepalive_requests 10000000;
  keepalive_timeout 120s;
{temps}
"""


@dataclass
class Upstream:
    fast_port: int
    slow_port: int
    slow_kind: str  # "nginx-echo" or "python-asyncio"
    procs: list[system.Proc]
    mcp_port: int = 0  # the mock MCP server (lockgate mock-mcp), started for MCP scenarios only

    @property
    def mcp_url(self) -> str:
        return f"http://127.0.0.1:{self.mcp_port}/mcp"

    @property
    def fast_base(self) -> str:
        return f"http://127.0.0.1:{self.fast_port}"

    @property
    def slow_base(self) -> str:
        return f"http://127.0.0.1:{self.slow_port}"


def start_upstreams(workdir: Path, core: int | None, delay_s: float) -> Upstream:
    prefix = workdir / "nginx-upstream"
    prefix.mkdir(parents=True, exist_ok=True)
    fast, slow = system.free_port(), system.free_port()
    echo = ECHO_MODULE.exists()
    slow_server = (
        f"""  server {{
    listen 127.0.0.1:{slow} backlog=4096;
    location = /v1/chat/completions {{ echo_sleep {delay_s}; echo_exec @json; }}
    location @json {{ default_type application/json; return 200 {_nginx_string(json_body())}; }}
  }}
"""
        if echo
        else ""
    )
    sse_file = prefix / "sse.txt"
    sse_file.write_text(sse_body())
    conf = (
        (f"load_module {ECHO_MODULE};\n" if echo else "")
        + nginx_prelude(prefix)
        + f"""  server {{
    listen 127.0.0.1:{fast} backlog=4096;
    location = /v1/chat/completions {{
      default_type application/json;
      return 200 {_nginx_string(json_body())};
    }}
    # A `return` string is capped at 4 KB, so the stream is a file. A POST to a file is a 405; error_page
    # turns that into an internal GET of the file, with a 200.
    location = /sse/v1/chat/completions {{ error_page 405 =200 /_sse; return 405; }}
    location = /_sse {{
      internal;
      default_type text/event-stream;
      add_header Cache-Control no-cache;
      alias {sse_file};
    }}
    location = /healthz {{ return 200 'ok'; }}
  }}
{slow_server}}}
"""
    )
    (prefix / "nginx.conf").write_text(conf)
    procs = [start_nginx("upstream-nginx", prefix, core, workdir)]
    system.wait_ready(procs[0], fast, "/healthz", timeout=10)
    if not echo:
        body_file = workdir / "slow-body.json"
        body_file.write_text(json_body())
        cmd = [sys.executable, "-m", "harness.slow_upstream", "--port", str(slow), "--delay", str(delay_s)]
        procs.append(
            system.start(
                "upstream-slow",
                [*cmd, "--body-file", str(body_file)],
                core=core,
                logdir=workdir,
                cwd=Path(__file__).resolve().parent.parent,
            )
        )
    system.wait_ready(procs[-1], slow, None, timeout=10)
    return Upstream(fast, slow, "nginx-echo" if echo else "python-asyncio", procs)


def start_mcp_mock(up: Upstream, workdir: Path, core: int | None, python: str) -> None:
    """The SDK mock MCP server on the load core, as the MCP scenario's upstream (token required)."""
    port = system.free_port()
    cmd = [python, "-m", "lockgate", "mock-mcp", "--port", str(port), "--token", MCP_UPSTREAM_TOKEN]
    proc = system.start("upstream-mcp", cmd, core=core, logdir=workdir, cwd=workdir)
    system.wait_ready(proc, port, None, timeout=30)
    up.procs.append(proc)
    up.mcp_port = port


def start_nginx(name: str, prefix: Path, core: int | None, logdir: Path) -> system.Proc:
    conf = prefix / "nginx.conf"
    check = system.run_quiet(["nginx", "-t", "-p", str(prefix), "-c", str(conf)])
    if "test is successful" not in check:
        raise RuntimeError(f"nginx config for {name} is invalid:\n{check}")
    return system.start(
        name, ["nginx", "-p", str(prefix), "-c", str(conf), "-g", "daemon off;"], core=core, logdir=logdir
    )
