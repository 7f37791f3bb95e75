"""``lockgate logs``: search, follow and export request records straight from the store.

The filters are the logs API's (``store.logs.LogFilter``); reading the store
directly needs only the database URL, as ``lockgate db upgrade`` does.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import sys
import time
from collections import deque
from datetime import datetime
from typing import Annotated, Any

import orjson
import typer
from rich.console import Console
from rich.table import Table

logs_app = typer.Typer(no_args_is_help=True, help="Search, follow and export request records.")
console = Console()
# Records are stamped when the request starts and stored when it ends: --follow looks back this far
# and skips what it already printed, so a slow request's record is not missed.
_FOLLOW_LOOKBACK = 600.0

Since = Annotated[str | None, typer.Option(help="Start: ISO 8601, Unix seconds, or an age like 15m, 2h, 7d.")]


def _when(value: str | None) -> float | None:
    if value is None:
        return None
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    if value[-1:] in units and value[:-1].replace(".", "", 1).isdigit():
        return time.time() - float(value[:-1]) * units[value[-1]]
    try:
        return float(value)
    except ValueError:
        pass
    try:
        return datetime.fromisoformat(value).timestamp()
    except ValueError as exc:
        raise typer.BadParameter(f"{value!r} is not a time (ISO 8601, Unix seconds or 15m/2h/7d)") from exc


def _filter(**options: Any) -> Any:
    from lockgate.store.logs import LogFilter

    tags = {}
    for item in options.pop("metadata") or ():
        key, sep, value = item.partition(":")
        if not sep:
            raise typer.BadParameter(f"--metadata {item!r}: use key:value")
        tags[key] = value
    return LogFilter(
        since=_when(options.pop("since")), until=_when(options.pop("until")), tags=tags, **options
    )


def _run(database_url: str | None, body: Any) -> None:
    from lockgate.settings import Settings
    from lockgate.store.db import Store

    url = database_url or Settings.from_env().database_url

    async def main() -> None:
        store = Store(url)
        try:
            await store.migrate()
            await body(store)
        finally:
            await store.close()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main())


@logs_app.command("tail")
def logs_tail(
    n: Annotated[int, typer.Option("-n", help="How many recent records; 0: every match (an export).")] = 20,
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Keep printing new records.")] = False,
    since: Since = None,
    until: Annotated[str | None, typer.Option(help="End (same forms as --since).")] = None,
    workspace: Annotated[str | None, typer.Option("--workspace", help="Workspace id.")] = None,
    key: Annotated[str | None, typer.Option("--key", help="Virtual key id.")] = None,
    model: Annotated[str | None, typer.Option(help="Resolved or requested model.")] = None,
    provider: Annotated[str | None, typer.Option(help="Integration name.")] = None,
    status: Annotated[str | None, typer.Option(help="200, 4xx, 5xx, error or success.")] = None,
    metadata: Annotated[list[str] | None, typer.Option(help="key:value tag (repeatable).")] = None,
    min_cost: Annotated[float | None, typer.Option(help="USD.")] = None,
    min_latency: Annotated[float | None, typer.Option(help="Milliseconds.")] = None,
    grep: Annotated[str | None, typer.Option("--grep", help="Text in the error type or message.")] = None,
    output: Annotated[str, typer.Option("--output", "-o", help="table, jsonl or csv.")] = "table",
    database_url: Annotated[str | None, typer.Option(help="Defaults to LOCKGATE_DATABASE_URL.")] = None,
) -> None:
    """Show the most recent request records that match, oldest first; --follow keeps going."""
    if output not in ("table", "jsonl", "csv"):
        raise typer.BadParameter("--output must be table, jsonl or csv")
    f = _filter(
        since=since, until=until, workspace_id=workspace, key_id=key, model=model, provider=provider,
        status=status, metadata=metadata, min_cost=min_cost, min_latency_ms=min_latency, text=grep,
    )  # fmt: skip
    printer = _Printer(output)

    async def body(store: Any) -> None:
        if n == 0:  # streamed page by page, newest first: memory stays flat on any size
            async for row in store.logs.iterate(f):
                printer.rows([row])
            return
        rows, _ = await store.logs.page(f, limit=n)
        rows.reverse()
        printer.rows(rows)
        seen: deque[str] = deque(maxlen=100_000)
        seen.extend(r["id"] for r in rows)
        seen_set = set(seen)
        while follow:
            await asyncio.sleep(1.0)
            f.since = max(f.since or 0.0, time.time() - _FOLLOW_LOOKBACK)
            recent, _ = await store.logs.page(f, limit=1000)
            fresh = [r for r in reversed(recent) if r["id"] not in seen_set]
            for r in fresh:
                if len(seen) == seen.maxlen:
                    seen_set.discard(seen[0])
                seen.append(r["id"])
                seen_set.add(r["id"])
            printer.rows(fresh)

    _run(database_url, body)


class _Printer:
    def __init__(self, output: str) -> None:
        self.output = output
        self.header = True
        self._csv = csv.writer(sys.stdout) if output == "csv" else None

    def rows(self, rows: list[dict[str, Any]]) -> None:
        if self.output == "jsonl":
            for row in rows:
                sys.stdout.write(orjson.dumps(row).decode() + "\n")
        elif self._csv is not None:
            from lockgate.admin.api_logs import CSV_COLUMNS, csv_cell

            if self.header:
                self._csv.writerow(CSV_COLUMNS)
            for row in rows:
                self._csv.writerow([csv_cell(row.get(c)) for c in CSV_COLUMNS])
        elif rows or self.header:
            _print_table(rows, self.header)
        sys.stdout.flush()
        self.header = False


def _cell(value: Any) -> Any:
    return orjson.dumps(value).decode() if isinstance(value, dict | list) else value


def _print_table(rows: list[dict[str, Any]], header: bool) -> None:
    table = Table(show_header=header, box=None, pad_edge=False)
    for column in (
        "time", "id", "endpoint", "model", "provider", "status", "stream",
        "tokens in/out", "cost $", "latency ms", "usage",
    ):  # fmt: skip
        table.add_column(column)
    for row in rows:
        table.add_row(
            time.strftime("%H:%M:%S", time.localtime(row["created_at"])),
            row["id"][-12:],
            row["endpoint"],
            row["requested_model"] or "-",
            row["provider"] or "-",
            str(row["status"]),
            "yes" if row["stream"] else "no",
            f"{row['prompt_tokens'] or 0}/{row['completion_tokens'] or 0}",
            f"{row['cost_usd']:.6f}" if row["cost_usd"] is not None else "-",
            f"{row['latency_ms']:.1f}" if row["latency_ms"] is not None else "-",
            row["usage_source"] or "-",
        )
    console.print(table)
