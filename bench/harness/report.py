"""Derived numbers (added latency, RPS per core), the DESIGN §8 targets, and the printed table."""

from __future__ import annotations

from collections.abc import Iterable

from .runner import NOISY_PCT

# DESIGN §8. Which scenarios each target is judged on is part of the target.
TARGETS = {
    "added_p50": {"text": "added p50 <= 0.4 ms at c=1", "limit": 0.4, "scenarios": "abc"},
    "added_p99": {"text": "added p99 <= 1.5 ms at c=1", "limit": 1.5, "scenarios": "abc"},
    "rps": {"text": ">= 3,000 non-stream RPS on one core, full pipeline", "limit": 3000, "scenarios": "b"},
    "ttft": {"text": "added TTFT <= 1 ms, identical chunk counts", "limit": 1.0, "scenarios": "ab"},
    "rss": {"text": "RSS <= 100 MB (peak under load and after)", "limit": 100, "scenarios": "abcd"},
}
# Not in §8: the delayed-upstream run must not collapse.
OVERLOAD_MIN_SHARE, OVERLOAD_MAX_P99_MS = 0.9, 1500
OVERLOAD_CHECK = "1 s upstream, 1000 in flight: >= 90% of ideal RPS, p99 <= 1.5 s, no errors"
LIMIT = {tid: spec["limit"] for tid, spec in TARGETS.items()}


def derive(results: list[dict], direct: dict) -> None:
    """Adds `derived` to each measured result, in place."""
    for r in results:
        if r.get("status") != "ok":
            continue
        der: dict = {}
        # The MCP scenario's baseline is its own upstream, the mock MCP server.
        base = direct.get("mcp", {}) if r["scenario"] == "m" else direct
        d_lat = base.get("latency_c1", {}).get("latency_ms", {})
        lat = r.get("latency_c1", {}).get("latency_ms")
        if lat and d_lat:
            der["added_p50_ms"] = round(lat["p50"] - d_lat["p50"], 4)
            der["added_p99_ms"] = round(lat["p99"] - d_lat["p99"], 4)
        runs = list(r.get("throughput", {}).values())
        if runs:
            best = max(runs, key=lambda x: x["rps"])
            der["rps_per_core"] = best["rps"]  # the gateway is pinned to one core
            der["best_rps_connections"] = best["connections"]
            if best.get("cpu_us_per_req"):
                der["cpu_us_per_req"] = best["cpu_us_per_req"]
                der["cpu_bound_rps_per_core"] = round(1e6 / best["cpu_us_per_req"], 0)
            der["non_2xx"] = sum(x["non_2xx"] for x in runs)
        st = r.get("stream")
        if st:
            der["added_ttfc_p50_ms"] = round(
                st["gateway"]["ttfc_ms"]["p50"] - st["direct"]["ttfc_ms"]["p50"], 4
            )
            der["added_ttfc_p99_ms"] = round(
                st["gateway"]["ttfc_ms"]["p99"] - st["direct"]["ttfc_ms"]["p99"], 4
            )
        r["derived"] = der


def evaluate(results: list[dict], target: str = "lockgate", delay_s: float = 1.0) -> list[dict]:
    """Pass/miss per §8 target for one target's results. A target with no measurement is "n/a"."""
    mine = {r["scenario"]: r for r in results if r["target"] == target and r.get("status") == "ok"}
    out = []
    for tid, spec in TARGETS.items():
        values: dict[str, object] = {}
        ok = True
        for key in spec["scenarios"]:
            r = mine.get(key)
            if r is None:
                continue
            der = r.get("derived", {})
            if tid in ("added_p50", "added_p99") and f"{tid}_ms" in der:
                v = der[f"{tid}_ms"]
                values[key], ok = v, ok and v <= spec["limit"]
            elif tid == "rps" and "rps_per_core" in der:
                v = der["rps_per_core"]
                values[key], ok = v, ok and v >= spec["limit"] and der.get("non_2xx", 0) == 0
            elif tid == "ttft" and "added_ttfc_p50_ms" in der:
                v = der["added_ttfc_p50_ms"]
                equal = r["stream"]["events_equal"]
                values[key], ok = {"added_ms": v, "events_equal": equal}, ok and v <= spec["limit"] and equal
            elif tid == "rss" and r.get("rss_mb", {}).get("load_peak") is not None:
                v = max(r["rss_mb"]["load_peak"], r["rss_mb"]["after"])
                values[key], ok = v, ok and v <= spec["limit"]
        verdict = ("PASS" if ok else "MISS") if values else "n/a"
        out.append({"id": tid, "target": spec["text"], "values": values, "verdict": verdict})
    d = mine.get("d", {}).get("overload")
    if d:
        ideal = d["connections"] / delay_s
        ok = (
            d["littles_law_rps"] >= OVERLOAD_MIN_SHARE * ideal
            and d["latency_ms"]["p99"] <= OVERLOAD_MAX_P99_MS
        )
        ok = ok and d["non_2xx"] == 0 and d["socket_errors"] == 0
        values = {"d": {"rps": d["littles_law_rps"], "p99_ms": d["latency_ms"]["p99"]}}
        out.append(
            {
                "id": "overload",
                "target": OVERLOAD_CHECK,
                "values": values,
                "verdict": "PASS" if ok else "MISS",
            }
        )
    return out


# --- the table -------------------------------------------------------------------------------------------


def _table(header: list[str], rows: Iterable[list[str]]) -> str:
    rows = [header, *rows]
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    lines = []
    for n, row in enumerate(rows):
        cells = [row[0].ljust(widths[0])] + [c.rjust(w) for c, w in zip(row[1:], widths[1:], strict=True)]
        lines.append("  " + "  ".join(cells).rstrip())
        if n == 0:
            lines.append("  " + "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _f(v: object, digits: int = 3) -> str:
    if v is None:
        return "-"
    if isinstance(v, float | int):
        return f"{v:,.{digits}f}"
    return str(v)


def _mark(ok: bool) -> str:
    return "pass" if ok else "MISS"


def render(report: dict) -> str:
    direct, results, meta = report["direct"], report["results"], report["meta"]
    ok = [r for r in results if r.get("status") == "ok"]
    name = {r["target"] + r["scenario"]: f"{r['target']} ({r['scenario']}) {r['title']}" for r in results}
    out = [
        f"Lockgate benchmark, {meta['started_at']}{' (quick)' if meta['quick'] else ''}",
        f"gateway on core {meta['gateway_core']}; load, upstream, stream client on core {meta['load_core']}",
        f"{meta['tools']['wrk']}, {meta['tools']['nginx']}; delayed upstream: {meta['slow_upstream']}",
        "",
    ]
    d = direct.get("latency_c1", {}).get("latency_ms", {})
    rows = [["direct upstream", _f(d.get("p50")), _f(d.get("p99")), "", "", ""]]
    if "mcp" in direct:
        m = direct["mcp"]["latency_c1"]["latency_ms"]
        rows.append(["direct MCP server (baseline of m)", _f(m["p50"]), _f(m["p99"]), "", "", ""])
    for r in ok:
        if "latency_c1" not in r:
            continue
        lat, der = r["latency_c1"]["latency_ms"], r["derived"]
        a50, a99 = der.get("added_p50_ms"), der.get("added_p99_ms")
        both = a50 is not None and a99 is not None and r["scenario"] in TARGETS["added_p50"]["scenarios"]
        verdict = f"{_mark(a50 <= LIMIT['added_p50'])} / {_mark(a99 <= LIMIT['added_p99'])}" if both else "-"
        rows.append(
            [name[r["target"] + r["scenario"]], _f(lat["p50"]), _f(lat["p99"]), _f(a50), _f(a99), verdict]
        )
    header = ["Latency at c=1 (ms)", "p50", "p99", "added p50", "added p99"]
    header.append(f"<={LIMIT['added_p50']:g} / <={LIMIT['added_p99']:g}")
    out += [_table(header, rows), ""]

    conc = sorted(
        {int(c) for r in ok for c in r.get("throughput", {})} | {int(c) for c in direct["throughput"]}
    )
    rows = [["direct upstream", *[_f(direct["throughput"].get(str(c), {}).get("rps"), 0) for c in conc]]]
    rows[0] += ["", "", "", "", ""]
    if "mcp" in direct:
        runs = direct["mcp"]["throughput"]
        rows.append(["direct MCP server (calls/s)", *[_f(runs.get(str(c), {}).get("rps"), 0) for c in conc]])
        rows[-1] += ["", "", "", "", ""]
    gcore = str(meta["gateway_core"])
    for r in ok:
        if not r.get("throughput"):
            continue
        der, runs = r["derived"], r["throughput"]
        best = runs[str(der["best_rps_connections"])]
        busy = (best.get("core_busy_pct") or {}).get(gcore)
        verdict = (
            _mark(der["rps_per_core"] >= LIMIT["rps"]) if r["scenario"] in TARGETS["rps"]["scenarios"] else ""
        )
        rows.append(
            [
                name[r["target"] + r["scenario"]],
                *[_f(runs.get(str(c), {}).get("rps"), 0) for c in conc],
                _f(der.get("cpu_us_per_req"), 0),
                _f(der.get("cpu_bound_rps_per_core"), 0),
                _f(busy, 0),
                _f(der.get("non_2xx"), 0),
                verdict,
            ]
        )
    header = ["Throughput, non-stream (RPS)", *[f"c={c}" for c in conc]]
    header += [
        "CPU us/req",
        "CPU-bound RPS",
        "gw core %",
        "non-2xx",
        f">={LIMIT['rps']:,} ({TARGETS['rps']['scenarios']})",
    ]
    out += [_table(header, rows), ""]

    rows = []
    for r in ok:
        st = r.get("stream")
        if not st:
            continue
        der = r["derived"]
        counts = f"{'/'.join(st['direct']['event_counts'])} / {'/'.join(st['gateway']['event_counts'])}"
        rows.append(
            [
                name[r["target"] + r["scenario"]],
                _f(st["direct"]["ttfc_ms"]["p50"]),
                _f(st["gateway"]["ttfc_ms"]["p50"]),
                _f(der["added_ttfc_p50_ms"]),
                _f(der["added_ttfc_p99_ms"]),
                counts,
                "yes" if st["events_equal"] else "NO",
                _mark(der["added_ttfc_p50_ms"] <= LIMIT["ttft"] and st["events_equal"]),
            ]
        )
    if rows:
        n = next(r["stream"]["requests"] for r in ok if r.get("stream"))
        header = [f"Streaming, {n} sequential (ms)", "TTFC direct", "TTFC gw", "added p50", "added p99"]
        header += ["events d / gw", "equal", f"<={LIMIT['ttft']:g} ms & equal"]
        out += [_table(header, rows), ""]

    rows = []
    for r in ok:
        m = r.get("rss_mb", {})
        peak = max(x for x in (m.get("load_peak"), m.get("after"), 0) if x is not None)
        rows.append(
            [
                name[r["target"] + r["scenario"]],
                _f(m.get("idle"), 1),
                _f(m.get("load_peak"), 1),
                _f(m.get("after"), 1),
                _mark(peak <= LIMIT["rss"]),
            ]
        )
    if rows:
        out += [
            _table(["Memory, VmRSS (MB)", "idle", "under load", "after", f"<={LIMIT['rss']:g}"], rows),
            "",
        ]

    rows = []
    for r in results:
        rec = r.get("records")
        if rec:
            rows.append(
                [
                    name[r["target"] + r["scenario"]],
                    f"{rec['logged']:,}",
                    f"{rec['responses_completed']:,}",
                    f"{rec['in_flight_at_stops']:,}",
                    "yes" if rec["complete"] else "NO",
                ]
            )
    if rows:
        header = [
            "Request records (SQLite)",
            "logged",
            "responses seen",
            "+ in flight at stops",
            "all logged",
        ]
        out += [_table(header, rows), ""]

    rows = []
    for label, o in [("direct upstream", direct.get("overload"))] + [
        (name[r["target"] + r["scenario"]], r.get("overload")) for r in ok
    ]:
        if o:
            lat = o["latency_ms"]
            rows.append(
                [
                    label,
                    _f(o["rps"], 0),
                    _f(o["littles_law_rps"], 0),
                    _f(lat["p50"] / 1000),
                    _f(lat["p99"] / 1000),
                    _f(lat["max"] / 1000),
                    _f(o["non_2xx"], 0),
                    _f(o["socket_errors"], 0),
                ]
            )
    if rows:
        header = ["1 s upstream, c=1000", "RPS (wrk)", "RPS (c/mean)", "p50 s", "p99 s", "max s", "non-2xx"]
        out += [_table([*header, "sock errs"], rows), ""]

    noisy = _noisy_runs(direct, ok, name)
    if noisy:
        out.append(
            f"Interference: other processes (or the hypervisor) took > {NOISY_PCT:g}% of a core during:"
        )
        out += [f"  {line}" for line in noisy]
        out.append("  Those runs are suspect; rerun on a quiet machine.\n")
    for r in results:
        if r.get("status") != "ok":
            out.append(f"{r['status'].upper()}: {name[r['target'] + r['scenario']]}: {r.get('reason', '')}")
    for tname, verdicts in report["targets"].items():
        out.append(f"\nTargets (DESIGN §8) for {tname}:")
        for v in verdicts:
            out.append(f"  {v['verdict']:<4}  {v['target']:<55} {_values(v['values'])}")
    return "\n".join(out)


def _noisy_runs(direct: dict, ok: list[dict], name: dict[str, str]) -> list[str]:
    runs = [("direct upstream", "c=1", direct.get("latency_c1"))]
    runs += [("direct upstream", f"c={c}", run) for c, run in direct.get("throughput", {}).items()]
    runs.append(("direct upstream", "c=1000", direct.get("overload")))
    for r in ok:
        label = name[r["target"] + r["scenario"]]
        runs.append((label, "c=1", r.get("latency_c1")))
        runs += [(label, f"c={c}", run) for c, run in r.get("throughput", {}).items()]
        runs.append((label, "overload", r.get("overload")))
    lines = []
    for label, what, run in runs:
        other = (run or {}).get("other_load_pct") or {}
        if other and max(other.values()) > NOISY_PCT:
            tries = f" (least disturbed of {run['attempts']} attempts)" if run.get("attempts", 1) > 1 else ""
            lines.append(
                f"{label}, {what}: " + ", ".join(f"core {c} {v:g}%" for c, v in other.items()) + tries
            )
    return lines


def _values(values: dict) -> str:
    parts = []
    for key, v in values.items():
        if isinstance(v, dict):
            parts.append(
                f"{key}: " + ", ".join(f"{k}={_f(x, 2) if isinstance(x, float) else x}" for k, x in v.items())
            )
        else:
            parts.append(f"{key}: {_f(v, 3 if isinstance(v, float) and v < 100 else 0)}")
    return "; ".join(parts)
