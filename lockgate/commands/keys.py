"""`lockgate keys list|create|get|update|rotate|revoke|delete`: virtual keys (lg-…)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import typer

from lockgate.commands.client import (
    DEFAULT_URL,
    AdminClient,
    AdminKey,
    AsJson,
    Pairs,
    Url,
    pairs,
    parse_time,
    print_deleted,
    print_object,
    print_rows,
    show_time,
)

app = typer.Typer(no_args_is_help=True, help="Virtual keys: what apps hold instead of provider secrets.")
Key = Annotated[str, typer.Argument(help="Key name or id (key_…).")]
InWorkspace = Annotated[
    str | None, typer.Option("--workspace", "-w", help="Workspace name or id (to find the key by name).")
]
AllowModel = Annotated[
    list[str] | None, typer.Option("--allow-model", help="A model (or fnmatch pattern) it may use; repeat.")
]
ExpiresAt = Annotated[str | None, typer.Option(help="ISO 8601 time (or Unix seconds) it stops working.")]
COLUMNS = {
    "id": "id",
    "name": "name",
    "workspace": "workspace_id",
    "status": "status",
    "key": "key_hint",
    "expires": lambda r: show_time(r["expires_at"]) if r["expires_at"] else "never",
    "models": lambda r: r["allowed_models"] if r["allowed_models"] is not None else "any",
}


def _key_id(api: AdminClient, value: str, workspace: str | None) -> str:
    return api.find_id(
        "/keys",
        value,
        "key",
        lambda r: r["name"] == value,
        "key",
        name=value,
        workspace_id=api.workspace_id(workspace),
    )


@app.command("list")
def list_(
    workspace: InWorkspace = None,
    status: Annotated[Literal["active", "revoked"] | None, typer.Option()] = None,
    name: Annotated[str | None, typer.Option(help="Only this name.")] = None,
    limit: Annotated[int, typer.Option(min=1)] = 100,
    url: Url = DEFAULT_URL,
    admin_key: AdminKey = "",
    as_json: AsJson = False,
) -> None:
    """List keys (never the keys themselves: only a hint)."""
    api = AdminClient(url, admin_key)
    params = {"workspace_id": api.workspace_id(workspace), "status": status, "name": name}
    rows, more = api.pages("/keys", params, limit)
    print_rows(rows, COLUMNS, more, as_json)


@app.command()
def create(
    name: Annotated[str, typer.Argument()],
    workspace: Annotated[str, typer.Option("--workspace", "-w", help="Workspace name or id.")] = "default",
    expires_at: ExpiresAt = None,
    allow_model: AllowModel = None,
    metadata: Pairs = None,
    url: Url = DEFAULT_URL,
    admin_key: AdminKey = "",
    as_json: AsJson = False,
) -> None:
    """Create a key; it is printed once and cannot be shown again."""
    api = AdminClient(url, admin_key)
    body: dict[str, Any] = {
        "name": name,
        "workspace_id": api.workspace_id(workspace),
        "metadata": pairs(metadata, "--metadata"),
        "expires_at": parse_time(expires_at, "--expires-at"),
        "allowed_models": allow_model or None,
    }
    created = api.call("POST", "/keys", json=body)
    print_object(created, as_json, secret=created["key"])


@app.command()
def get(
    key: Key,
    workspace: InWorkspace = None,
    url: Url = DEFAULT_URL,
    admin_key: AdminKey = "",
    as_json: AsJson = False,
) -> None:
    """Show one key."""
    api = AdminClient(url, admin_key)
    print_object(api.call("GET", f"/keys/{_key_id(api, key, workspace)}"), as_json)


@app.command()
def update(
    key: Key,
    workspace: InWorkspace = None,
    name: Annotated[str | None, typer.Option(help="A new name.")] = None,
    expires_at: ExpiresAt = None,
    no_expiry: Annotated[bool, typer.Option("--no-expiry", help="Never expire.")] = False,
    allow_model: AllowModel = None,
    any_model: Annotated[bool, typer.Option("--any-model", help="Lift the model restriction.")] = False,
    metadata: Annotated[list[str] | None, typer.Option(help="KEY=VALUE; replaces all metadata.")] = None,
    url: Url = DEFAULT_URL,
    admin_key: AdminKey = "",
    as_json: AsJson = False,
) -> None:
    """Change a key's name, expiry, allowed models or metadata (the secret stays)."""
    if expires_at is not None and no_expiry:
        raise typer.BadParameter("give --expires-at or --no-expiry, not both")
    if allow_model and any_model:
        raise typer.BadParameter("give --allow-model or --any-model, not both")
    body: dict[str, Any] = {}
    if name is not None:
        body["name"] = name
    if expires_at is not None or no_expiry:
        body["expires_at"] = parse_time(expires_at, "--expires-at")
    if allow_model or any_model:
        body["allowed_models"] = allow_model or None
    if metadata is not None:
        body["metadata"] = pairs(metadata, "--metadata")
    if not body:
        raise typer.BadParameter("nothing to change")
    api = AdminClient(url, admin_key)
    print_object(api.call("PATCH", f"/keys/{_key_id(api, key, workspace)}", json=body), as_json)


@app.command()
def rotate(
    key: Key,
    workspace: InWorkspace = None,
    url: Url = DEFAULT_URL,
    admin_key: AdminKey = "",
    as_json: AsJson = False,
) -> None:
    """Give a key a new secret; the old one stops working at once on every worker."""
    api = AdminClient(url, admin_key)
    rotated = api.call("POST", f"/keys/{_key_id(api, key, workspace)}/rotate")
    print_object(rotated, as_json, secret=rotated["key"])


@app.command()
def revoke(
    key: Key,
    workspace: InWorkspace = None,
    url: Url = DEFAULT_URL,
    admin_key: AdminKey = "",
    as_json: AsJson = False,
) -> None:
    """Stop a key for good (it stays listed, as revoked)."""
    api = AdminClient(url, admin_key)
    print_object(api.call("POST", f"/keys/{_key_id(api, key, workspace)}/revoke"), as_json)


@app.command()
def delete(
    key: Key,
    workspace: InWorkspace = None,
    url: Url = DEFAULT_URL,
    admin_key: AdminKey = "",
    as_json: AsJson = False,
) -> None:
    """Delete a key."""
    api = AdminClient(url, admin_key)
    print_deleted(api.call("DELETE", f"/keys/{_key_id(api, key, workspace)}"), as_json)
