"""Closed-loop load with wrk, pinned to the load core, with the target's CPU and RSS measured around it."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

from . import system
from .scenarios import Request

LUA = Path(__file__).resolve().parent.parent / "wrk" / "post.lua"


@dataclass
class LoadResult:
    connections: int
    duration_s: float
    requests: int
    rps: float
    non_2xx: int
    socket_errors: int
    latency_ms: dict[str, float]  # p50, p75, p90, p99, p99.9, mean, max
    latency_source: str = "wrk"  # "script": timed per request in post.lua (c=1 runs)
    attempts: int = 1  # runs made; the least disturbed one is kept
    cpu_us_per_req: float | None = None
    rss_peak_mb: float | None = None
    core_busy_pct: dict[str, float] | None = None
    # CPU % per core used by processes that are not part of the bench (plus steal): interference.
    other_load_pct: dict[str, float] | None = None
    errors: dict[str, int] | None = None

    def as_dict(self) -> dict:
        return dict(self.__dict__)


def run_wrk(
    req: Request,
    connections: int,
    duration_s: int,
    *,
    cores: system.Cores,
    workdir: Path,
    watch_pid: int | None = None,
    timeout_s: int = 10,
) -> LoadResult:
    """One wrk run. With `watch_pid`, also CPU per request and peak RSS of that process tree.

    wrk runs on `cores.load_core`; what the cores did beyond the bench's own processes is reported as
    `other_load_pct` (see system.LoadMeter).

    At c=1 the latencies are timed by post.lua itself (BENCH_TIMING, see there why); above, they are
    wrk's own histogram, good enough for the 1 s delayed upstream, not for microseconds under contention.
    """
    body_file = workdir / "wrk-body.json"
    body_file.write_bytes(req.body)
    env = dict(os.environ)
    env["BENCH_BODY_FILE"] = str(body_file)
    env["BENCH_HEADERS"] = "\n".join(f"{k}: {v}" for k, v in req.headers.items())
    env["BENCH_TIMING"] = "1" if connections == 1 else "0"
    cmd = [
        *(["taskset", "-c", str(cores.load_core)] if cores.load_core is not None else []),
        "wrk",
        "-t1",
        f"-c{connections}",
        f"-d{duration_s}s",
        f"--timeout={timeout_s}s",
        "-s",
        str(LUA),
        req.url,
    ]
    sampler = system.Sampler(watch_pid) if watch_pid else None
    with system.LoadMeter(cores, watch_pid) as meter, sampler or contextlib.nullcontext():
        out = subprocess.run(
            cmd, capture_output=True, text=True, env=env, timeout=duration_s + timeout_s + 30
        )
    line = next((ln for ln in out.stdout.splitlines() if ln.startswith("BENCH_JSON ")), None)
    if line is None:
        raise RuntimeError(f"wrk printed no summary (exit {out.returncode}):\n{out.stdout}\n{out.stderr}")
    data = json.loads(line.removeprefix("BENCH_JSON "))
    requests = data["requests"]
    seconds = data["duration_us"] / 1e6
    lat = data.get("own_latency_us") or data["latency_us"]
    latency_ms = {f"p{k}": round(v / 1000, 4) for k, v in lat["p"].items()}
    latency_ms.update(mean=round(lat["mean"] / 1000, 4), max=round(lat["max"] / 1000, 4))
    errs = data["errors"]
    return LoadResult(
        connections=connections,
        duration_s=round(seconds, 3),
        requests=requests,
        rps=round(requests / seconds, 1) if seconds else 0.0,
        non_2xx=errs["status"],
        socket_errors=errs["connect"] + errs["read"] + errs["write"] + errs["timeout"],
        latency_ms=latency_ms,
        latency_source="script" if data.get("own_latency_us") else "wrk",
        cpu_us_per_req=round(meter.watch_cpu * 1e6 / requests, 1) if watch_pid and requests else None,
        rss_peak_mb=round(sampler.peak / 2**20, 1) if sampler else None,
        core_busy_pct=meter.busy,
        other_load_pct=meter.other,
        errors=errs,
    )
