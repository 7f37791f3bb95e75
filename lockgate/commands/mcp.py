"""`lockgate mcp servers|tools|import|calls|stats`: the MCP registry, its kill switch and its tool-call
records and analytics over the admin API."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from lockgate.commands.client import (
    DEFAULT_URL,
    AdminClient,
    AdminKey,
    AsJson,
    Url,
    fail,
    parse_time,
    print_deleted,
    print_object,
    print_rows,
    show_time,
)

app = typer.Typer(no_args_is_help=True, help="MCP servers: registry, kill switch, tool-call records.")
servers_app = typer.Typer(no_args_is_help=True, help="Registered MCP servers.")
tools_app = typer.Typer(no_args_is_help=True, help="Disable or kill single tools.")
app.add_typer(servers_app, name="servers")
app.add_typer(tools_app, name="tools")

Server = Annotated[str, typer.Argument(help="Server name (its latest version), name@version, or id (mcp_…).")]
COLUMNS = {
    "id": "id",
    "name": lambda r: f"{r['name']}@{r['server_version']}" + (" *" if r["latest"] else ""),
    "transport": "transport",
    "status": lambda r: r["status"] + (" (retired)" if r["retired"] else ""),
    "tools off": lambda r: ", ".join(f"{t}={s}" for t, s in (r["tool_status"] or {}).items()) or "-",
    "updated": lambda r: show_time(r["updated_at"]),
}
CALL_COLUMNS = {
    "time": lambda r: show_time(r["created_at"]),
    "server": lambda r: r["server"] or "-",
    "tool": lambda r: r["tool"] or "-",
    "key": lambda r: r["key_id"] or "-",
    "status": "status",
    "ms": lambda r: f"{r['latency_ms']:.1f}" if r["latency_ms"] is not None else "-",
    "error": lambda r: (r["error_message"] or "")[:60],
}


def _server_id(client: AdminClient, value: str) -> str:
    if value.startswith("mcp_"):
        return value
    name, _, version = value.partition("@")
    rows, _ = client.pages("/mcp/servers", {"name": name}, 10_000)
    found = [r for r in rows if (r["server_version"] == version if version else r["latest"])]
    if not found:
        fail(f"no MCP server {value!r}")
    return str(found[0]["id"])


@servers_app.command("list")
def list_(
    tools: Annotated[bool, typer.Option("--tools", help="Include each server's tools (discovery).")] = False,
    limit: Annotated[int, typer.Option(min=1)] = 100,
    url: Url = DEFAULT_URL,
    admin_key: AdminKey = "",
    as_json: AsJson = False,
) -> None:
    """List MCP servers (* marks the version /mcp/{name} serves)."""
    rows, more = AdminClient(url, admin_key).pages("/mcp/servers", {"tools": tools or None}, limit)
    columns = dict(COLUMNS)
    if tools:
        columns["tools"] = lambda r: ", ".join(t["name"] for t in r["tools"]["tools"]) or r["tools"]["status"]
    print_rows(rows, columns, more, as_json)


@servers_app.command()
def add(
    name: Annotated[str, typer.Argument(help="Lower-case letters, digits and '-'.")],
    url_: Annotated[str | None, typer.Option("--server-url", help="Streamable HTTP or SSE endpoint.")] = None,
    command: Annotated[
        list[str] | None, typer.Option("--command", help="stdio argv, one option per word.")
    ] = None,
    transport: Annotated[str, typer.Option(help="streamable_http | sse | stdio.")] = "streamable_http",
    version: Annotated[str, typer.Option(help="Server version.")] = "1",
    secret: Annotated[str | None, typer.Option(help="Upstream credential (stored encrypted).")] = None,
    description: Annotated[str, typer.Option()] = "",
    timeout_ms: Annotated[int, typer.Option()] = 30_000,
    url: Url = DEFAULT_URL,
    admin_key: AdminKey = "",
    as_json: AsJson = False,
) -> None:
    """Register an MCP server (or a new version of one)."""
    body: dict[str, Any] = {
        "name": name,
        "version": version,
        "transport": "stdio" if command else transport,
        "description": description,
        "timeout_ms": timeout_ms,
    }
    if url_:
        body["url"] = url_
    if command:
        body["command"] = command
    if secret:
        body["secret"] = secret
    print_object(AdminClient(url, admin_key).call("POST", "/mcp/servers", json=body), as_json)


@app.command("import")
def import_(
    path: Annotated[Path, typer.Argument(help="An official MCP registry server.json.")],
    secret: Annotated[str | None, typer.Option(help="Upstream credential (stored encrypted).")] = None,
    name: Annotated[str | None, typer.Option(help="Name to register under.")] = None,
    url: Url = DEFAULT_URL,
    admin_key: AdminKey = "",
    as_json: AsJson = False,
) -> None:
    """Register a server from a server.json (its first streamable-http or sse remote)."""
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        fail(f"cannot read {path}: {exc}")
    body = {"server": doc, "secret": secret, "name": name}
    print_object(AdminClient(url, admin_key).call("POST", "/mcp/servers/import", json=body), as_json)


def _status(action: str) -> Any:
    def command(
        server: Server,
        reason: Annotated[
            str | None, typer.Option(help="Shown to callers and kept in the audit log.")
        ] = None,
        url: Url = DEFAULT_URL,
        admin_key: AdminKey = "",
        as_json: AsJson = False,
    ) -> None:
        client = AdminClient(url, admin_key)
        server_id = _server_id(client, server)
        body = {"reason": reason} if reason else None
        print_object(client.call("POST", f"/mcp/servers/{server_id}/{action}", json=body), as_json)

    command.__doc__ = {
        "kill": "Kill a server: refuse new calls and cut in-flight ones, on every worker.",
        "disable": "Disable a server: refuse new calls.",
        "enable": "Enable a server again.",
        "retire": "Retire a server version for good.",
    }[action]
    return command


for _action in ("kill", "disable", "enable", "retire"):
    servers_app.command(_action)(_status(_action))


@servers_app.command()
def delete(server: Server, url: Url = DEFAULT_URL, admin_key: AdminKey = "", as_json: AsJson = False) -> None:
    """Delete a server registration."""
    client = AdminClient(url, admin_key)
    print_deleted(client.call("DELETE", f"/mcp/servers/{_server_id(client, server)}"), as_json)


def _tool_status(action: str) -> Any:
    def command(
        server: Server,
        tool: Annotated[str, typer.Argument(help="The server's own tool name.")],
        url: Url = DEFAULT_URL,
        admin_key: AdminKey = "",
        as_json: AsJson = False,
    ) -> None:
        client = AdminClient(url, admin_key)
        path = f"/mcp/servers/{_server_id(client, server)}/tools/{tool}/{action}"
        print_object(client.call("POST", path), as_json)

    command.__doc__ = f"{action.capitalize()} one tool of a server."
    return command


for _action in ("kill", "disable", "enable"):
    tools_app.command(_action)(_tool_status(_action))


@app.command()
def calls(
    server: Annotated[str | None, typer.Option(help="Only this server.")] = None,
    tool: Annotated[str | None, typer.Option(help="Only this tool (the server's own name).")] = None,
    status: Annotated[
        str | None,
        typer.Option(help="ok, tool_error, denied, timeout, killed; error: any failure."),
    ] = None,
    key: Annotated[str | None, typer.Option("--key", help="Virtual key id.")] = None,
    workspace: Annotated[str | None, typer.Option("--workspace", help="Workspace id.")] = None,
    since: Annotated[str | None, typer.Option(help="ISO 8601 or Unix seconds.")] = None,
    until: Annotated[str | None, typer.Option(help="ISO 8601 or Unix seconds.")] = None,
    trace_id: Annotated[str | None, typer.Option(help="W3C trace id.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=10_000)] = 50,
    url: Url = DEFAULT_URL,
    admin_key: AdminKey = "",
    as_json: AsJson = False,
) -> None:
    """Tool-call records, newest first (the filters of /admin/v1/mcp/tool-calls)."""
    params = {
        "server": server,
        "tool": tool,
        "status": status,
        "key_id": key,
        "workspace_id": workspace,
        "since": parse_time(since, "--since"),
        "until": parse_time(until, "--until"),
        "trace_id": trace_id,
    }
    rows, more = AdminClient(url, admin_key).pages("/mcp/tool-calls", params, limit)
    print_rows(rows, CALL_COLUMNS, more, as_json)


def _percentile(name: str) -> Any:
    def get(row: dict[str, Any]) -> str:
        value = row["latency_ms"][name]
        return f"{value:.1f}" if value is not None else "-"

    return get


STATS_COLUMNS = {
    "group": lambda r: r["group"] or "-",
    "calls": "calls",
    "errors": "errors",
    "error rate": lambda r: f"{r['error_rate']:.1%}" if r["error_rate"] is not None else "-",
    "p50 ms": _percentile("p50"),
    "p95 ms": _percentile("p95"),
    "p99 ms": _percentile("p99"),
}


@app.command()
def stats(
    group_by: Annotated[
        str, typer.Option(help="none, workspace, server, tool (server__tool) or key.")
    ] = "server",
    server: Annotated[str | None, typer.Option(help="With --group-by tool: this server's tools.")] = None,
    since: Annotated[str | None, typer.Option(help="ISO 8601 or Unix seconds; default: a day ago.")] = None,
    until: Annotated[str | None, typer.Option(help="ISO 8601 or Unix seconds; default: now.")] = None,
    workspace: Annotated[str | None, typer.Option("--workspace", help="Workspace id.")] = None,
    url: Url = DEFAULT_URL,
    admin_key: AdminKey = "",
    as_json: AsJson = False,
) -> None:
    """Tool-call volume, errors and latency percentiles per group (/admin/v1/analytics?source=mcp)."""
    params = {
        "source": "mcp",
        "bucket": "day",
        "group_by": group_by,
        "server": server,
        "since": parse_time(since, "--since"),
        "until": parse_time(until, "--until"),
        "workspace_id": workspace,
    }
    query = {k: v for k, v in params.items() if v is not None}
    body = AdminClient(url, admin_key).call("GET", "/analytics", params=query)
    totals = sorted(body["totals"], key=lambda t: -t["calls"])
    print_rows(totals, STATS_COLUMNS, False, as_json)
