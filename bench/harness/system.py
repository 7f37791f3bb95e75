"""Processes, cores and /proc readings.

Every process the harness starts goes through `start()`: pinned with `taskset`, in its own session
(so stopping it also stops anything it forked), output to a log file, and registered so that `stop_all()`
ends exactly the processes this run started, by their ids.
"""

from __future__ import annotations

import http.client
import os
import resource
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

CLK_TCK = os.sysconf("SC_CLK_TCK")
_started: list[Proc] = []


@dataclass
class Proc:
    name: str
    popen: subprocess.Popen[bytes]
    log: Path

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def log_tail(self, lines: int = 30) -> str:
        try:
            text = self.log.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])


def raise_nofile_limit() -> int:
    """Lift the soft open-files limit to the hard limit; children inherit it (1,000 sockets in flight)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def pin_self(core: int | None) -> None:
    if core is not None:
        os.sched_setaffinity(0, {core})


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(
    name: str,
    cmd: Sequence[str],
    *,
    core: int | None,
    logdir: Path,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
) -> Proc:
    argv = [*(["taskset", "-c", str(core)] if core is not None else []), *cmd]
    log = logdir / f"{name}.log"
    with log.open("ab") as out:
        popen = subprocess.Popen(
            argv,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            cwd=cwd,
            start_new_session=True,
        )
    proc = Proc(name, popen, log)
    _started.append(proc)
    return proc


def stop(proc: Proc, timeout: float = 8.0) -> None:
    """SIGTERM the process group we created for this process, then SIGKILL if it lingers."""
    if proc in _started:
        _started.remove(proc)
    if proc.popen.poll() is not None:
        return
    for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 3.0)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.popen.wait(wait)
            return
        except subprocess.TimeoutExpired:
            continue


def stop_all() -> None:
    for proc in reversed(list(_started)):
        stop(proc, timeout=3.0)


# --- /proc readings -------------------------------------------------------------------------------------


def process_tree(root: int) -> list[int]:
    """`root` and all its descendants (a gateway may fork workers)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        ppid = int(stat[stat.rindex(")") + 2 :].split()[1])
        children.setdefault(ppid, []).append(int(entry))
    pids, todo = [], [root]
    while todo:
        pid = todo.pop()
        pids.append(pid)
        todo.extend(children.get(pid, []))
    return pids


def rss_bytes(root: int, pids: list[int] | None = None) -> int:
    """Sum of VmRSS over the process tree (or over `pids`, already resolved)."""
    total = 0
    for pid in pids if pids is not None else process_tree(root):
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
                    break
        except OSError:
            continue
    return total


def rss_detail(root: int) -> dict[str, float]:
    """RssAnon / RssFile / RssShmem in MB over the tree: heap versus mapped libraries."""
    out = {"anon": 0.0, "file": 0.0, "shmem": 0.0}
    for pid in process_tree(root):
        try:
            lines = Path(f"/proc/{pid}/status").read_text().splitlines()
        except OSError:
            continue
        for line in lines:
            for key in out:
                if line.startswith(f"Rss{key.capitalize()}:"):
                    out[key] += int(line.split()[1]) / 1024
    return {k: round(v, 1) for k, v in out.items()}


def cpu_seconds(root: int) -> float:
    """utime + stime over the process tree, all threads included."""
    ticks = 0
    for pid in process_tree(root):
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        ticks += int(fields[11]) + int(fields[12])  # fields 14 and 15 of proc(5)
    return ticks / CLK_TCK


def core_times() -> dict[int, dict[str, int]]:
    """Per core, ticks from /proc/stat: task (user+nice+system), irq (irq+softirq), steal, total."""
    out = {}
    for line in Path("/proc/stat").read_text().splitlines():
        if line.startswith("cpu") and line[3].isdigit():
            name, *vals = line.split()
            n = [int(v) for v in vals[:8]]  # user nice system idle iowait irq softirq steal
            out[int(name[3:])] = {
                "task": n[0] + n[1] + n[2],
                "irq": n[5] + n[6],
                "steal": n[7],
                "total": sum(n),
            }
    return out


def core_split(
    before: dict[int, dict[str, int]], after: dict[int, dict[str, int]]
) -> dict[str, dict[str, float]]:
    """Per core, % of the window spent in tasks, in interrupts, and stolen by the hypervisor."""
    out = {}
    for core, a in after.items():
        b = before.get(core, dict.fromkeys(a, 0))
        total = a["total"] - b["total"]
        out[str(core)] = {
            k: round(100.0 * (a[k] - b[k]) / total, 1) if total > 0 else 0.0 for k in a if k != "total"
        }
    return out


def core_busy(before: dict[int, dict[str, int]], after: dict[int, dict[str, int]]) -> dict[str, float]:
    """Per core, % busy (tasks + interrupts)."""
    return {core: round(v["task"] + v["irq"], 1) for core, v in core_split(before, after).items()}


@dataclass
class Cores:
    """Which core runs what: the watched process (the gateway), and the bench's own side."""

    watch_core: int | None
    load_core: int | None
    side_pids: tuple[int, ...] = ()  # the upstream; wrk and this harness are counted by getrusage


class LoadMeter:
    """Over a block: per-core busy %, the watched tree's CPU seconds, and CPU % taken by anything else.

    "Anything else" is the cores' task time minus what the gateway, the upstream, wrk and this harness
    used, plus hypervisor steal: other processes on a shared machine, which make a run suspect.
    """

    def __init__(self, cores: Cores, watch_pid: int | None = None) -> None:
        self.cores, self.watch_pid = cores, watch_pid
        self.busy: dict[str, float] = {}
        self.other: dict[str, float] = {}
        self.watch_cpu = 0.0

    def _side(self) -> float:
        return sum(cpu_seconds(p) for p in self.cores.side_pids) + own_cpu_seconds()

    def __enter__(self) -> LoadMeter:
        self._cores0, self._side0 = core_times(), self._side()
        self._cpu0 = cpu_seconds(self.watch_pid) if self.watch_pid else 0.0
        self._t0 = time.monotonic()
        return self

    def __exit__(self, *exc: object) -> None:
        wall = max(time.monotonic() - self._t0, 1e-6)
        self.watch_cpu = (cpu_seconds(self.watch_pid) if self.watch_pid else 0.0) - self._cpu0
        side = self._side() - self._side0
        cores1 = core_times()
        split = core_split(self._cores0, cores1)
        self.busy = core_busy(self._cores0, cores1)
        ours: dict[str, float] = {}
        if self.cores.load_core is not None:
            ours[str(self.cores.load_core)] = 100 * side / wall
        if self.cores.watch_core is not None and self.watch_pid:  # direct runs don't touch the gateway core
            key = str(self.cores.watch_core)
            ours[key] = ours.get(key, 0.0) + 100 * self.watch_cpu / wall
        self.other = {
            c: round(max(0.0, v["task"] - ours[c]) + v["steal"], 1) for c, v in split.items() if c in ours
        }


def own_cpu_seconds() -> float:
    """CPU of this process and of its waited-for children (wrk runs)."""
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def background_busy(seconds: float) -> dict[str, float]:
    """Per-core busy % over a short idle window: other work on the machine skews every number."""
    before = core_times()
    time.sleep(seconds)
    return core_busy(before, core_times())


def wait_quiet(timeout: float, quiet_s: float, max_pct: float) -> float:
    """Wait until every core stays under `max_pct` busy for `quiet_s` s (or `timeout`); returns the wait."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if max(background_busy(quiet_s).values(), default=0.0) < max_pct:
            break
    return time.monotonic() - t0


@dataclass
class Sampler:
    """Samples a process tree's RSS in a background thread while load runs; keeps the peak.

    It shares the load core with wrk and the upstream, so it stays cheap: the tree is resolved once (a scan
    of /proc costs milliseconds and shows up in the p99), then one small read per process per interval.
    """

    pid: int
    interval: float = 0.25
    peak: int = 0
    samples: list[int] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __enter__(self) -> Sampler:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join()

    def _run(self) -> None:
        pids = process_tree(self.pid)
        while not self._stop.is_set():
            rss = rss_bytes(self.pid, pids)
            self.samples.append(rss)
            self.peak = max(self.peak, rss)
            self._stop.wait(self.interval)


# --- HTTP helpers --------------------------------------------------------------------------------------


def http_request(
    port: int,
    method: str,
    path: str,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
    timeout: float = 10.0,
) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


def wait_ready(proc: Proc, port: int, path: str | None, timeout: float) -> None:
    """Poll until `path` answers 200 (or, with path None, until the port accepts connections)."""
    deadline = time.monotonic() + timeout
    last = "no answer"
    while time.monotonic() < deadline:
        if not proc.alive():
            raise RuntimeError(f"{proc.name} exited with {proc.popen.returncode}:\n{proc.log_tail()}")
        try:
            if path is None:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                return
            status, _, body = http_request(port, "GET", path, timeout=2)
            if status == 200:
                return
            last = f"{status} {body[:200]!r}"
        except OSError as exc:
            last = repr(exc)
        time.sleep(0.1)
    raise RuntimeError(
        f"{proc.name} not ready on port {port} after {timeout:.0f}s ({last}):\n{proc.log_tail()}"
    )


def run_quiet(cmd: Sequence[str], timeout: float = 15.0) -> str:
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return (out.stdout + out.stderr).strip()


class Progress:
    """One line per step, with elapsed time against the planned total."""

    def __init__(self, planned_seconds: float) -> None:
        self.t0 = time.monotonic()
        self.planned = planned_seconds

    def step(self, text: str) -> None:
        elapsed = time.monotonic() - self.t0
        print(
            f"[{_mmss(elapsed)} / ~{_mmss(max(self.planned, elapsed))}] {text}", file=sys.stderr, flush=True
        )

    def note(self, text: str) -> None:
        print(f"             {text}", file=sys.stderr, flush=True)


def _mmss(seconds: float) -> str:
    return f"{int(seconds // 60)}:{int(seconds % 60):02d}"
