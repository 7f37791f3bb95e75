"""A raw-socket SSE client: time to the first complete event, and how many `data:` events arrive.

Raw sockets keep the client's own cost small and identical for both sides. It speaks just enough HTTP/1.1:
keep-alive, Content-Length bodies (nginx) and chunked bodies (the gateway).
"""

from __future__ import annotations

import gc
import socket
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from .scenarios import Request


@dataclass
class StreamSample:
    status: int
    ttfc_ms: float  # request sent -> first complete SSE event received
    total_ms: float
    events: int  # `data:` lines
    done: bool  # the last event was [DONE]


class Connection:
    def __init__(self, host: str, port: int) -> None:
        self.addr = (host, port)
        self.sock: socket.socket | None = None
        self.buf = bytearray()

    def _connect(self) -> socket.socket:
        if self.sock is None:
            sock = socket.create_connection(self.addr, timeout=30)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self.sock, self.buf = sock, bytearray()
        return self.sock

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None

    def _fill(self) -> None:
        assert self.sock is not None
        data = self.sock.recv(65536)
        if not data:
            raise ConnectionError("connection closed mid-response")
        self.buf += data

    def request(self, req: Request) -> StreamSample:
        try:
            return self._request(req)
        except (OSError, ConnectionError):
            self.close()  # one retry on a fresh connection (the server may have closed an idle one)
            return self._request(req)

    def _request(self, req: Request) -> StreamSample:
        sock = self._connect()
        head = [f"POST {req.path} HTTP/1.1", f"Host: {self.addr[0]}:{self.addr[1]}"]
        head += [f"{k}: {v}" for k, v in req.headers.items()]
        head += [f"Content-Length: {len(req.body)}", "", ""]
        payload = "\r\n".join(head).encode() + req.body
        t0 = time.perf_counter()
        sock.sendall(payload)
        while b"\r\n\r\n" not in self.buf:
            self._fill()
        end = self.buf.index(b"\r\n\r\n")
        lines = bytes(self.buf[:end]).decode("latin-1").split("\r\n")
        del self.buf[: end + 4]
        status = int(lines[0].split()[1])
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        body = bytearray()
        ttfc: float | None = None

        def seen(data: bytes) -> None:
            nonlocal ttfc
            body.extend(data)
            if ttfc is None and (b"\n\n" in body or b"\r\n\r\n" in body):
                ttfc = time.perf_counter()

        if headers.get("transfer-encoding", "").lower() == "chunked":
            self._read_chunked(seen)
        elif "content-length" in headers:
            remaining = int(headers["content-length"])
            while remaining:
                if not self.buf:
                    self._fill()
                part = bytes(self.buf[:remaining])
                del self.buf[: len(part)]
                remaining -= len(part)
                seen(part)
        else:  # read to close
            try:
                while True:
                    self._fill()
                    seen(bytes(self.buf))
                    self.buf.clear()
            except ConnectionError:
                pass
            self.close()
        t_end = time.perf_counter()
        if headers.get("connection", "").lower() == "close":
            self.close()
        data_lines = [ln for ln in body.splitlines() if ln.startswith(b"data:")]
        return StreamSample(
            status=status,
            ttfc_ms=((ttfc or t_end) - t0) * 1000,
            total_ms=(t_end - t0) * 1000,
            events=len(data_lines),
            done=bool(data_lines) and data_lines[-1].split(b":", 1)[1].strip() == b"[DONE]",
        )

    def _read_chunked(self, seen: Callable[[bytes], None]) -> None:
        while True:
            while b"\r\n" not in self.buf:
                self._fill()
            end = self.buf.index(b"\r\n")
            size = int(bytes(self.buf[:end]).split(b";")[0], 16)
            del self.buf[: end + 2]
            if size == 0:
                while b"\r\n" not in self.buf:  # trailers end with an empty line
                    self._fill()
                end = self.buf.index(b"\r\n")
                del self.buf[: end + 2]
                if end == 0:
                    return
                continue
            while len(self.buf) < size + 2:
                self._fill()
            seen(bytes(self.buf[:size]))
            del self.buf[: size + 2]


@dataclass
class StreamStats:
    requests: int
    non_200: int
    ttfc_ms: dict[str, float]
    total_ms: dict[str, float]
    event_counts: dict[str, int] = field(default_factory=dict)  # count -> how many responses had it
    all_done: bool = True

    def as_dict(self) -> dict:
        return dict(self.__dict__)


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    idx = min(len(ordered) - 1, max(0, round(q / 100 * len(ordered)) - 1))
    return ordered[idx]


def summarize(samples: list[StreamSample]) -> StreamStats:
    ttfc = [s.ttfc_ms for s in samples]
    total = [s.total_ms for s in samples]
    counts: dict[str, int] = {}
    for s in samples:
        counts[str(s.events)] = counts.get(str(s.events), 0) + 1

    def dist(values: list[float]) -> dict[str, float]:
        return {
            "p50": round(statistics.median(values), 4),
            "p90": round(_pct(values, 90), 4),
            "p99": round(_pct(values, 99), 4),
            "mean": round(statistics.fmean(values), 4),
        }

    return StreamStats(
        requests=len(samples),
        non_200=sum(s.status != 200 for s in samples),
        ttfc_ms=dist(ttfc),
        total_ms=dist(total),
        event_counts=counts,
        all_done=all(s.done for s in samples),
    )


def compare(direct: Request, gateway: Request, n: int, warmup: int) -> tuple[StreamStats, StreamStats]:
    """N sequential streams to each side, interleaved (direct, gateway, ...) so drift hits both alike."""
    a, b = Connection(*direct.host_port), Connection(*gateway.host_port)
    gc.disable()  # a collection in the middle of a timed request is the client's pause, not the server's
    try:
        for _ in range(warmup):
            a.request(direct)
            b.request(gateway)
        da, db = [], []
        for _ in range(n):
            da.append(a.request(direct))
            db.append(b.request(gateway))
    finally:
        gc.enable()
        a.close()
        b.close()
    return summarize(da), summarize(db)
