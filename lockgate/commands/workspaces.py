"""`lockgate workspaces list|create|get|update|delete`."""

from __future__ import annotations

from typing import Annotated

import typer

from lockgate.commands.client import (
    DEFAULT_URL,
    AdminClient,
    AdminKey,
    AsJson,
    Pairs,
    Url,
    pairs,
    print_deleted,
    print_object,
    print_rows,
    show_time,
)

app = typer.Typer(no_args_is_help=True, help="Workspaces: teams or apps that hold keys and aliases.")
Workspace = Annotated[str, typer.Argument(help="Workspace name or id (ws_…).")]
COLUMNS = {
    "id": "id",
    "name": "name",
    "description": lambda r: r["description"] or "-",
    "metadata": "metadata",
    "created": lambda r: show_time(r["created_at"]),
}


@app.command("list")
def list_(
    name: Annotated[str | None, typer.Option(help="Only this name.")] = None,
    limit: Annotated[int, typer.Option(min=1)] = 100,
    url: Url = DEFAULT_URL,
    admin_key: AdminKey = "",
    as_json: AsJson = False,
) -> None:
    """List the workspaces you can see."""
    rows, more = AdminClient(url, admin_key).pages("/workspaces", {"name": name}, limit)
    print_rows(rows, COLUMNS, more, as_json)


@app.command()
def create(
    name: Annotated[str, typer.Argument(help="Letters, digits, '.', '_' and '-'.")],
    description: Annotated[str, typer.Option()] = "",
    metadata: Pairs = None,
    url: Url = DEFAULT_URL,
    admin_key: AdminKey = "",
    as_json: AsJson = False,
) -> None:
    """Create a workspace."""
    body = {"name": name, "description": description, "metadata": pairs(metadata, "--metadata")}
    print_object(AdminClient(url, admin_key).call("POST", "/workspaces", json=body), as_json)


@app.command()
def get(
    workspace: Workspace, url: Url = DEFAULT_URL, admin_key: AdminKey = "", as_json: AsJson = False
) -> None:
    """Show one workspace."""
    api = AdminClient(url, admin_key)
    print_object(api.call("GET", f"/workspaces/{api.workspace_id(workspace)}"), as_json)


@app.command()
def update(
    workspace: Workspace,
    name: Annotated[str | None, typer.Option(help="A new name.")] = None,
    description: Annotated[str | None, typer.Option()] = None,
    metadata: Annotated[
        list[str] | None, typer.Option(help="KEY=VALUE; replaces all metadata. Repeat for more.")
    ] = None,
    url: Url = DEFAULT_URL,
    admin_key: AdminKey = "",
    as_json: AsJson = False,
) -> None:
    """Change a workspace's name, description or metadata."""
    body: dict[str, object] = {"name": name, "description": description}
    body = {k: v for k, v in body.items() if v is not None}
    if metadata is not None:
        body["metadata"] = pairs(metadata, "--metadata")
    if not body:
        raise typer.BadParameter("nothing to change; give --name, --description or --metadata")
    api = AdminClient(url, admin_key)
    print_object(api.call("PATCH", f"/workspaces/{api.workspace_id(workspace)}", json=body), as_json)


@app.command()
def delete(
    workspace: Workspace, url: Url = DEFAULT_URL, admin_key: AdminKey = "", as_json: AsJson = False
) -> None:
    """Delete an empty workspace (no keys, aliases or configs left in it)."""
    api = AdminClient(url, admin_key)
    print_deleted(api.call("DELETE", f"/workspaces/{api.workspace_id(workspace)}"), as_json)
