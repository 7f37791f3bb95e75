"""The admin API as the CLI sees it: one client, name lookups, tables and ``--json`` output.

Every command talks to a running gateway (``--url``/``LOCKGATE_URL``) with an admin
key (``--admin-key``/``LOCKGATE_ADMIN_KEY``). An API error prints the envelope's
message (and the field it names) on stderr and exits 1; output meant for programs
(``--json``) goes to stdout alone.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from typing import Annotated, Any, NoReturn

import httpx
import orjson
import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

console = Console()
err_console = Console(stderr=True)

DEFAULT_URL = "http://127.0.0.1:8080"
Url = Annotated[str, typer.Option(envvar="LOCKGATE_URL", help="The gateway's base URL.")]
AdminKey = Annotated[
    str, typer.Option(envvar="LOCKGATE_ADMIN_KEY", show_default=False, help="An admin key (lga-…).")
]
AsJson = Annotated[bool, typer.Option("--json", help="Print the API's JSON instead of a table.")]
Pairs = Annotated[list[str] | None, typer.Option(help="KEY=VALUE; repeat for more.")]


def fail(message: str, code: int = 1) -> NoReturn:
    err_console.print(f"[red]error:[/red] {escape(message)}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


class AdminClient:
    def __init__(self, url: str, admin_key: str) -> None:
        if not admin_key:
            fail("set LOCKGATE_ADMIN_KEY or pass --admin-key", 2)
        self.url = url.rstrip("/")
        self._http = httpx.Client(
            base_url=self.url + "/admin/v1",
            headers={"authorization": f"Bearer {admin_key}"},
            timeout=30,
        )

    def call(self, method: str, path: str, **kwargs: Any) -> Any:
        """The JSON body; an error status prints the API's message and exits 1."""
        reply = self.send(method, path, **kwargs)
        if reply.status_code >= 400:
            _fail_reply(reply)
        try:
            return reply.json()
        except ValueError:
            fail(f"{method} {path}: HTTP {reply.status_code} with a body that is not JSON")

    def send(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            return self._http.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            fail(f"cannot reach {self.url}: {exc}")

    def pages(self, path: str, params: Mapping[str, Any], limit: int) -> tuple[list[dict[str, Any]], bool]:
        """Up to ``limit`` objects, following ``next_cursor``; True when more are left."""
        rows: list[dict[str, Any]] = []
        query = {k: v for k, v in params.items() if v is not None}
        while True:
            page = self.call("GET", path, params={**query, "limit": min(200, limit - len(rows))})
            rows.extend(page["data"])
            if not page["has_more"] or len(rows) >= limit:
                return rows, bool(page["has_more"])
            query["cursor"] = page["next_cursor"]

    def find_id(
        self,
        path: str,
        value: str,
        id_prefix: str,
        match: Callable[[dict[str, Any]], bool],
        what: str,
        **filters: Any,
    ) -> str:
        """``value`` is an id (``ws_…``) or a name; a name must match exactly one object."""
        if value.startswith(id_prefix + "_"):
            reply = self.send("GET", f"{path}/{value}")
            if reply.status_code == 200:
                return value
            if reply.status_code != 404:
                _fail_reply(reply)
        rows, _ = self.pages(path, filters, 10_000)
        found = [r for r in rows if match(r)]
        if not found:
            fail(f"no {what} named or with id {value!r}")
        if len(found) > 1:
            where = ", ".join(f"{r['id']} ({r.get('workspace_id') or 'org-wide'})" for r in found)
            fail(f"more than one {what} is named {value!r}: {where}; give the id or --workspace")
        return found[0]["id"]

    def workspace_id(self, value: str | None) -> str | None:
        if value is None:
            return None
        return self.find_id("/workspaces", value, "ws", lambda r: r["name"] == value, "workspace", name=value)


def _fail_reply(reply: httpx.Response) -> NoReturn:
    try:
        error = reply.json().get("error") or {}
    except (ValueError, AttributeError):
        error = {}
    message = error.get("message") or reply.text[:200] or reply.reason_phrase
    where = f" ({error['param']})" if error.get("param") else ""
    fail(f"HTTP {reply.status_code}: {message}{where}")


def pairs(values: Iterable[str] | None, option: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in values or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise typer.BadParameter(f"expected KEY=VALUE, got {item!r}", param_hint=option)
        out[key] = value
    return out


def parse_time(value: str | None, option: str) -> str | None:
    """ISO 8601 date or time (or Unix seconds), checked here so a typo names the option."""
    if value is None:
        return None
    try:
        return datetime.fromtimestamp(float(value)).astimezone().isoformat()
    except ValueError:
        pass
    try:
        stamp = datetime.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter(f"not an ISO 8601 time: {value!r}", param_hint=option) from None
    return (stamp if stamp.tzinfo else stamp.astimezone()).isoformat()


def show_time(stamp: float | None) -> str:
    return "-" if stamp is None else datetime.fromtimestamp(stamp).strftime("%Y-%m-%d %H:%M")


def cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, list):
        return ", ".join(str(v) for v in value) or "[]"
    if isinstance(value, dict):
        return orjson.dumps(value).decode() if value else "{}"
    return str(value)


def print_json(value: Any) -> None:
    sys.stdout.write(orjson.dumps(value, option=orjson.OPT_INDENT_2).decode() + "\n")


def print_rows(
    rows: list[dict[str, Any]],
    # header -> the row's field name, or a function of the row for derived cells
    columns: Mapping[str, str | Callable[[dict[str, Any]], Any]],
    more: bool,
    as_json: bool,
) -> None:
    if as_json:
        print_json(rows)
        return
    table = Table(*columns, box=None, pad_edge=False)
    for row in rows:
        table.add_row(
            *(Text(cell(row[get] if isinstance(get, str) else get(row))) for get in columns.values())
        )
    console.print(table if rows else "none")
    if more:
        err_console.print("(more objects exist; raise --limit)")


def print_object(row: dict[str, Any], as_json: bool, *, secret: str | None = None) -> None:
    """One object as field/value rows; ``secret`` (a new key) is printed once, below."""
    if as_json:
        print_json(row)
        return
    table = Table(show_header=False, box=None, pad_edge=False)
    for key, value in row.items():
        if key == "key":
            continue
        shown = show_time(value) if key.endswith("_at") and isinstance(value, int | float) else cell(value)
        table.add_row(Text(key, style="bold"), Text(shown))
    console.print(table)
    if secret is not None:
        console.print(f"\nkey (shown once, store it now): [bold]{secret}[/bold]", soft_wrap=True)


def print_deleted(reply: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print_json(reply)
    else:
        console.print(f"deleted {reply['object']} {reply['id']}")
