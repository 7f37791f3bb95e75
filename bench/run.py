"""Lockgate benchmark: direct-to-upstream vs through-the-gateway, in one run. See bench/README.md.

Usage: bash bench/run.sh [--quick] [--peers] [--reference] [--scenarios abcd] ...
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shutil
import signal
import sys
import tempfile
from pathlib import Path

from harness import report, system, upstream
from harness.runner import Plan, Runner
from harness.scenarios import SCENARIOS, Scenario
from harness.targets import REPO, Context, LiteLLM, Lockgate, NginxProxy, Portkey, parse_env, split_args

RESULTS = Path(__file__).resolve().parent / "results"


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="bench/run.sh", description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="short runs for a smoke test (about a minute)")
    p.add_argument(
        "--peers", action="store_true", help="also LiteLLM proxy and Portkey gateway, if installed"
    )
    p.add_argument(
        "--reference", action="store_true", help="also a plain nginx reverse proxy on the gateway core"
    )
    p.add_argument("--stand-in", action="store_true", help="measure the nginx proxy instead of Lockgate")
    p.add_argument(
        "--scenarios",
        default="".join(s.key for s in SCENARIOS),
        help="subset, e.g. ab or m (default: all, abcdm)",
    )
    p.add_argument("--gateway-core", type=int, default=0)
    p.add_argument("--load-core", type=int, default=1)
    p.add_argument(
        "--delay", type=float, default=1.0, help="delayed upstream's delay in seconds (scenario d)"
    )
    p.add_argument("--env", action="append", default=[], metavar="KEY=VALUE", help="extra env for Lockgate")
    p.add_argument("--lockgate-args", default="", help="extra `lockgate serve` arguments, e.g. '--workers 1'")
    p.add_argument("--output", type=Path, default=RESULTS / "latest.json")
    p.add_argument("--keep", action="store_true", help="keep the temp dir (configs, logs, SQLite files)")
    p.add_argument(
        "--retries", type=int, default=2, help="repeat a run disturbed by other processes (default 2)"
    )
    p.add_argument(
        "--wait-quiet",
        type=float,
        default=0,
        metavar="S",
        help="first wait up to S s for idle cores (< 10%% for 3 s)",
    )
    p.add_argument("--strict", action="store_true", help="exit 1 when a DESIGN §8 target is missed")
    return p.parse_args(argv)


def pick_cores(gateway: int, load: int) -> tuple[int | None, int | None, str]:
    allowed = os.sched_getaffinity(0)
    if gateway != load and {gateway, load} <= allowed:
        return gateway, load, ""
    return (
        None,
        None,
        f"cores {gateway} and {load} are not both available ({sorted(allowed)}): running unpinned",
    )


def tool_versions() -> dict[str, str]:
    wrk = system.run_quiet(["wrk", "-v"]).splitlines()
    nginx = system.run_quiet(["nginx", "-v"])
    git = system.run_quiet(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"])
    return {
        "wrk": wrk[0].split(" [")[0] if wrk else "wrk ?",
        "nginx": nginx.replace("nginx version: ", "") or "nginx ?",
        "python": platform.python_version(),
        "kernel": platform.release(),
        "cpu": _cpu_model(),
        "lockgate_git": git if git and " " not in git else "uncommitted",
    }


def _cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "?"


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    for tool in ("nginx", "wrk", "taskset"):
        if not shutil.which(tool):
            print(f"{tool} not found: run bench/run.sh, which installs it", file=sys.stderr)
            return 2
    scenarios = [s for s in SCENARIOS if s.key in args.scenarios]
    gcore, lcore, warning = pick_cores(args.gateway_core, args.load_core)
    if warning:
        print(f"warning: {warning}", file=sys.stderr)
    nofile = system.raise_nofile_limit()
    if nofile < 4096 and any(s.overload for s in scenarios):
        print(f"warning: open-files limit is {nofile}; c=1000 needs ~2,100", file=sys.stderr)
    system.pin_self(lcore)  # the harness (and the stream client in it) lives on the load core
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    plan = Plan.quick() if args.quick else Plan()
    workdir = Path(tempfile.mkdtemp(prefix="lockgate-bench-"))
    workdir.chmod(0o755)  # nginx workers run as nobody and read the SSE file from here
    try:
        return run(args, scenarios, plan, workdir, gcore, lcore)
    finally:
        system.stop_all()
        if args.keep:
            print(f"kept {workdir}", file=sys.stderr)
        else:
            shutil.rmtree(workdir, ignore_errors=True)


def run(
    args: argparse.Namespace,
    scenarios: list[Scenario],
    plan: Plan,
    workdir: Path,
    gcore: int | None,
    lcore: int | None,
) -> int:
    if args.wait_quiet:
        waited = system.wait_quiet(args.wait_quiet, quiet_s=3.0, max_pct=10.0)
        print(f"waited {waited:.0f}s for idle cores", file=sys.stderr)
    started = dt.datetime.now(dt.UTC)
    background = system.background_busy(1.0)
    if max(background.values(), default=0) > 15:
        print(
            f"warning: the machine is busy before the run (core busy %: {background}); "
            "numbers will be noisy, latency tails most of all",
            file=sys.stderr,
        )
    up = upstream.start_upstreams(workdir, lcore, args.delay)
    if any(s.ingress == "mcp" for s in scenarios):
        upstream.start_mcp_mock(up, workdir, lcore, sys.executable)
    ctx = Context(workdir, up, gcore, args.delay, parse_env(args.env), split_args(args.lockgate_args))
    targets = [NginxProxy(ctx)] if args.stand_in else [Lockgate(ctx)]
    if args.reference and not args.stand_in:
        targets.append(NginxProxy(ctx))
    if args.peers:
        targets += [LiteLLM(ctx), Portkey(ctx)]
    results: list[dict] = []
    runnable = []
    for t in targets:
        why = t.unavailable()
        if why is None:
            runnable.append(t)
            continue
        print(f"skipping {t.name}: {why}", file=sys.stderr)
        if isinstance(t, Lockgate):
            print(
                "Lockgate cannot start. `bash bench/run.sh --stand-in` checks the harness itself.",
                file=sys.stderr,
            )
            return 2
        results += [
            {"target": t.name, "scenario": s.key, "title": s.title, "status": "skipped", "reason": why}
            for s in scenarios
        ]
    planned = plan.direct_seconds() + sum(plan.scenario_seconds(s) for s in scenarios) * len(runnable)
    progress = system.Progress(planned)
    runner = Runner(ctx, plan, lcore, progress, retries=args.retries, retry_budget_s=15 if args.quick else 60)
    progress.step(
        f"upstream ready (nginx on core {lcore}, delayed upstream: {up.slow_kind}); workdir {workdir}"
    )
    direct = runner.measure_direct(scenarios)
    for t in runnable:
        for s in scenarios:
            results.append(runner.measure(t, s))
    report.derive(results, direct)
    out = {
        "meta": {
            "started_at": started.strftime("%Y-%m-%d %H:%M UTC"),
            "quick": args.quick,
            "gateway_core": gcore,
            "load_core": lcore,
            "plan": plan.__dict__,
            "slow_upstream": f"{up.slow_kind}, {args.delay:g} s",
            "background_busy_pct": background,
            "tools": tool_versions(),
            "argv": sys.argv[1:],
        },
        "direct": direct,
        "results": results,
        "targets": {t.name: report.evaluate(results, t.name, args.delay) for t in runnable},
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(out, indent=2)
    args.output.write_text(text)
    (args.output.parent / f"{started.strftime('%Y%m%dT%H%M%SZ')}.json").write_text(text)
    progress.step(f"done; results in {args.output}")
    print(report.render(out))
    failed = [r for r in results if r["target"] == runnable[0].name and r.get("status") == "failed"]
    missed = any(v["verdict"] == "MISS" for v in out["targets"].get(runnable[0].name, []))
    return 1 if failed or (args.strict and missed) else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
