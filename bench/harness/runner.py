"""One measurement story per target and scenario, plus the direct baseline, all in the same run."""

from __future__ import annotations

import json
import math
import time
import traceback
from dataclasses import dataclass

from . import loadgen, stream_client, system, upstream
from .scenarios import SCENARIOS, Request, Scenario, build
from .targets import Context, Direct, Target

NOISY_PCT = 10.0  # CPU % on a core from processes outside the bench that makes a run suspect


@dataclass(frozen=True)
class Plan:
    """Durations in whole seconds (wrk takes no fractions)."""

    latency_s: int = 8  # c=1 run
    throughput_s: int = 6  # each of c=32, c=128
    overload_s: int = 10  # delayed-upstream run
    warmup_s: int = 1
    stream_n: int = 200
    stream_warmup: int = 20
    settle_s: float = 2.0  # after the warm-up, and before the after-load RSS reading
    startup_s: float = 3.0  # a guess, for the progress estimate only

    @classmethod
    def quick(cls) -> Plan:
        return cls(2, 2, 3, 1, 30, 5, 1.5)

    def direct_seconds(self) -> float:
        return self.latency_s + 2 * self.throughput_s + self.overload_s + 2 * self.warmup_s

    def scenario_seconds(self, s: Scenario) -> float:
        t = self.startup_s + self.warmup_s + 2 * self.settle_s + (2 if s.overload else 0)
        t += self.latency_s if s.latency_c1 else 0
        t += self.throughput_s * len(s.throughput) + (self.overload_s if s.overload else 0)
        return t + (self.stream_n + self.stream_warmup) * 0.004 if s.stream else t


def _noise(other: dict[str, float] | None) -> float:
    return max((other or {}).values(), default=0.0)


class Runner:
    def __init__(
        self,
        ctx: Context,
        plan: Plan,
        load_core: int | None,
        progress: system.Progress,
        retries: int = 2,
        retry_budget_s: float = 60.0,
    ) -> None:
        self.ctx, self.plan, self.progress, self.retries = ctx, plan, progress, retries
        # Repeats stop when this many seconds went into them: on a machine that stays busy, retrying
        # can't help, and the whole run should still end in minutes.
        self.retry_budget_s = retry_budget_s
        self.cores = system.Cores(ctx.gateway_core, load_core, tuple(p.pid for p in ctx.up.procs))
        self.direct = Direct(ctx)
        self.completed, self.in_flight = 0, 0

    def wrk(
        self, req: Request, connections: int, seconds: int, watch: int | None = None, measured: bool = True
    ) -> loadgen.LoadResult:
        """One wrk run. A measured run that other processes disturbed is repeated (up to `retries` times)
        and the least disturbed attempt is kept. Every attempt's requests count as served."""
        best: loadgen.LoadResult | None = None
        attempts = 0
        while True:
            t0 = time.monotonic()
            run = loadgen.run_wrk(
                req, connections, seconds, cores=self.cores, workdir=self.ctx.workdir, watch_pid=watch
            )
            if attempts:
                self.retry_budget_s -= time.monotonic() - t0
            attempts += 1
            self.completed += run.requests
            self.in_flight += connections
            if best is None or _noise(run.other_load_pct) < _noise(best.other_load_pct):
                best = run
            quiet = _noise(run.other_load_pct) <= NOISY_PCT
            if quiet or not measured or attempts > self.retries or self.retry_budget_s <= seconds + 2:
                break
            self.progress.note(f"repeating (attempt {attempts + 1}): other processes used the cores")
            time.sleep(2)
            self.retry_budget_s -= 2
        best.attempts = attempts
        self._note_errors(best, measured)
        return best

    # --- direct baseline ---------------------------------------------------------------------------------

    def measure_direct(self, scenarios: list[Scenario]) -> dict:
        plain = SCENARIOS[0]
        req = build(self.direct.route(plain, "chat"), plain, "chat", auth=False)
        _check_chat(*system.http_request(req.host_port[1], "POST", req.path, req.body, req.headers))
        out: dict = {"throughput": {}}
        self.progress.step("direct upstream: warm-up")
        self.wrk(req, 32, self.plan.warmup_s, measured=False)
        self.progress.step(f"direct upstream: latency at c=1 ({self.plan.latency_s:g} s)")
        out["latency_c1"] = self.wrk(req, 1, self.plan.latency_s).as_dict()
        for c in sorted({c for s in scenarios if s.ingress != "mcp" for c in s.throughput}):
            self.progress.step(f"direct upstream: throughput at c={c} ({self.plan.throughput_s:g} s)")
            out["throughput"][str(c)] = self.wrk(req, c, self.plan.throughput_s).as_dict()
        for s in scenarios:
            if s.ingress == "mcp" and "mcp" not in out:
                out["mcp"] = self._direct_mcp(s)
            if s.overload and "overload" not in out:
                slow = build(self.direct.route(s, "chat"), s, "chat", auth=False)
                self.progress.step(f"direct delayed upstream: c={s.overload} ({self.plan.overload_s:g} s)")
                out["overload"] = _overload(self.wrk(slow, s.overload, self.plan.overload_s))
        return out

    def _direct_mcp(self, s: Scenario) -> dict:
        """The mock MCP server by itself: the baseline of the MCP scenario (its own upstream)."""
        req = build(self.direct.route(s, "mcp"), s, "mcp", auth=False)
        _check_mcp(*system.http_request(req.host_port[1], "POST", req.path, req.body, req.headers))
        out: dict = {"throughput": {}}
        self.progress.step("direct MCP server: warm-up")
        self.wrk(req, 16, self.plan.warmup_s, measured=False)
        self.progress.step(f"direct MCP server: latency at c=1 ({self.plan.latency_s:g} s)")
        out["latency_c1"] = self.wrk(req, 1, self.plan.latency_s).as_dict()
        for c in s.throughput:
            self.progress.step(f"direct MCP server: throughput at c={c} ({self.plan.throughput_s:g} s)")
            out["throughput"][str(c)] = self.wrk(req, c, self.plan.throughput_s).as_dict()
        return out

    # --- one target, one scenario ------------------------------------------------------------------------

    def measure(self, target: Target, s: Scenario) -> dict:
        label = f"{target.name} ({s.key}) {s.title}"
        result: dict = {"target": target.name, "scenario": s.key, "title": s.title}
        reason = target.unsupported(s)
        if reason:
            self.progress.step(f"{label}: skipped, {reason}")
            return result | {"status": "skipped", "reason": reason}
        self.progress.step(f"{label}: starting")
        t0 = time.monotonic()
        try:
            proc = target.start(s)
        except Exception as exc:
            self.progress.note(f"failed to start: {exc}")
            return result | {"status": "failed", "reason": f"start: {exc}"}
        result["startup_s"] = round(time.monotonic() - t0, 2)
        # Responses the load side saw complete, and requests possibly still in flight when a wrk run stopped
        # (wrk counts neither those nor their answers): the records logged should fall in between.
        self.completed, self.in_flight = 0, 0
        try:
            result |= self._measure_running(target, s, proc, label)
        except Exception as exc:
            self.progress.note(f"failed: {exc}")
            result |= {
                "status": "failed",
                "reason": str(exc),
                "trace": traceback.format_exc(limit=3),
                "log_tail": proc.log_tail(15),
            }
        finally:
            system.stop(proc)  # SIGTERM first: a graceful shutdown flushes queued request records
        logged = target.records_logged(s)
        if logged is not None:
            result["records"] = {
                "logged": logged,
                "responses_completed": self.completed,
                "in_flight_at_stops": self.in_flight,
                "complete": self.completed <= logged <= self.completed + self.in_flight,
            }
        return result

    def _measure_running(self, target: Target, s: Scenario, proc: system.Proc, label: str) -> dict:
        kind = s.kind
        req = build(target.route(s, kind), s, kind)
        pid = proc.pid
        time.sleep(0.5)
        rss_idle = system.rss_bytes(pid)
        status, headers, body = system.http_request(
            req.host_port[1], "POST", req.path, req.body, req.headers, 30
        )
        self.completed += 1
        if kind == "mcp":
            _check_mcp(status, headers, body)
        else:
            (_check_messages if kind == "messages" and target.translates else _check_chat)(
                status, headers, body
            )
        out: dict = {"status": "ok", "rss_detail_idle_mb": system.rss_detail(pid), "throughput": {}}
        peaks = []
        self.progress.step(f"{label}: warm-up")
        # With the delayed upstream, warm up at full concurrency for two rounds, so the measured run sees
        # steady state (pools filled) rather than 1,000 connects at once.
        warm_c = s.overload or 32
        warm_s = (
            max(self.plan.warmup_s, 2 * math.ceil(self.ctx.delay_s)) if s.overload else self.plan.warmup_s
        )
        self.wrk(req, warm_c, warm_s, measured=False)
        # Let the gateway drain the warm-up's work (queued request records are flushed in batches, and a
        # big batch stalls the loop for milliseconds), so that streams and c=1 see steady state.
        time.sleep(self.plan.settle_s)
        if s.stream:
            out["stream"] = self._stream(target, s, label, pid)
            peaks.append(out["stream"].pop("rss_peak_mb"))
        if s.latency_c1:
            self.progress.step(f"{label}: latency at c=1 ({self.plan.latency_s:g} s)")
            run = self.wrk(req, 1, self.plan.latency_s, watch=pid)
            out["latency_c1"], peaks = run.as_dict(), [*peaks, run.rss_peak_mb]
        for c in s.throughput:
            self.progress.step(f"{label}: throughput at c={c} ({self.plan.throughput_s:g} s)")
            run = self.wrk(req, c, self.plan.throughput_s, watch=pid)
            out["throughput"][str(c)], peaks = run.as_dict(), [*peaks, run.rss_peak_mb]
        if s.overload:
            self.progress.step(f"{label}: c={s.overload} ({self.plan.overload_s:g} s)")
            run = self.wrk(req, s.overload, self.plan.overload_s, watch=pid)
            out["overload"], peaks = _overload(run), [*peaks, run.rss_peak_mb]
        time.sleep(self.plan.settle_s)
        out["rss_mb"] = {
            "idle": round(rss_idle / 2**20, 1),
            "load_peak": max((p for p in peaks if p is not None), default=None),
            "after": round(system.rss_bytes(pid) / 2**20, 1),
        }
        if not proc.alive():
            raise RuntimeError(f"{target.name} died during the run:\n{proc.log_tail()}")
        return out

    def _stream(self, target: Target, s: Scenario, label: str, pid: int) -> dict:
        n, warm = self.plan.stream_n, self.plan.stream_warmup
        self.progress.step(f"{label}: streaming, {n} sequential requests each side, interleaved")
        direct = build(self.direct.route(s, "stream"), s, "stream", auth=False)
        gateway = build(target.route(s, "stream"), s, "stream")
        expected = len(upstream.sse_events())
        # Not checked for interference: 200 streams take well under a second, too short for /proc/stat's
        # 10 ms ticks. The p50 it is judged on shrugs off a few disturbed requests anyway.
        with system.Sampler(pid) as sampler:
            d, g = stream_client.compare(direct, gateway, n, warm)
        self.completed += n + warm
        return {
            "requests": n,
            "expected_events": expected,
            "direct": d.as_dict(),
            "gateway": g.as_dict(),
            "events_equal": d.event_counts == g.event_counts == {str(expected): n} and g.non_200 == 0,
            "rss_peak_mb": round(sampler.peak / 2**20, 1),
        }

    def _note_errors(self, run: loadgen.LoadResult, measured: bool = True) -> None:
        if run.non_2xx or run.socket_errors:
            self.progress.note(f"!! {run.non_2xx} non-2xx, socket errors {run.errors}")
        if measured and _noise(run.other_load_pct) > NOISY_PCT:
            self.progress.note(f"!! other processes busy during this run (core: %): {run.other_load_pct}")


def _overload(run: loadgen.LoadResult) -> dict:
    out = run.as_dict()
    mean_s = run.latency_ms["mean"] / 1000
    # Little's law: with every connection busy, throughput = in flight / latency. wrk's own RPS undercounts
    # by the round still in flight when the clock stops.
    out["littles_law_rps"] = round(run.connections / mean_s, 1) if mean_s else 0.0
    return out


def _check_chat(status: int, headers: dict[str, str], body: bytes) -> None:
    if status != 200:
        raise RuntimeError(f"preflight chat completion: HTTP {status}: {body[:300]!r}")
    data = json.loads(body)
    if not data.get("choices") or "usage" not in data:
        raise RuntimeError(f"preflight chat completion: unexpected body {body[:300]!r}")


def _check_mcp(status: int, headers: dict[str, str], body: bytes) -> None:
    # A JSON body or one SSE event: either way the JSON-RPC result is in it, and no error.
    if status != 200 or b'"result"' not in body or b'"isError":true' in body:
        raise RuntimeError(f"preflight MCP tools/call: HTTP {status}: {body[:300]!r}")


def _check_messages(status: int, headers: dict[str, str], body: bytes) -> None:
    if status != 200:
        raise RuntimeError(f"preflight /v1/messages: HTTP {status}: {body[:300]!r}")
    data = json.loads(body)
    if data.get("type") != "message" or not isinstance(data.get("content"), list):
        raise RuntimeError(f"preflight /v1/messages: not an Anthropic message: {body[:300]!r}")
