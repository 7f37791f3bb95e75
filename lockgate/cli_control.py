"""Control-plane commands: `lockgate db upgrade`, `lockgate admin create`, `lockgate apply`."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated, Any

import httpx
import orjson
import typer
from rich.console import Console
from rich.table import Table

console = Console()
db_app = typer.Typer(no_args_is_help=True, help="The database schema.")
admin_app = typer.Typer(no_args_is_help=True, help="Admin identities (works on the database directly).")

Url = Annotated[str, typer.Option(envvar="LOCKGATE_URL", help="The gateway's base URL.")]
AdminKey = Annotated[str, typer.Option(envvar="LOCKGATE_ADMIN_KEY", help="An admin key.")]
DatabaseUrl = Annotated[str | None, typer.Option(help="Defaults to LOCKGATE_DATABASE_URL.")]


def _database_url(given: str | None) -> str:
    from lockgate.settings import Settings

    return given or Settings.from_env().database_url


@db_app.command("upgrade")
def db_upgrade(database_url: DatabaseUrl = None) -> None:
    """Bring the schema to the newest migration."""
    from lockgate.store import migrate
    from lockgate.store.db import Store

    async def run() -> str | None:
        store = Store(_database_url(database_url))
        try:
            await store.migrate()
            return await migrate.current_revision(store.engine)
        finally:
            await store.close()

    console.print(f"database at revision {asyncio.run(run())}")


@admin_app.command("create")
def admin_create(
    name: Annotated[str, typer.Option(help="The admin user's name.")],
    role: Annotated[str, typer.Option(help="owner, admin, member or viewer.")] = "owner",
    workspace_id: Annotated[str | None, typer.Option(help="Scope the role to one workspace.")] = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Create an admin user and print its admin key once (bootstrap without LOCKGATE_ADMIN_KEY)."""
    from lockgate.admin.api_users import create_admin_key_in
    from lockgate.admin.rbac import ROLES
    from lockgate.store.control import ADMIN_USER, WORKSPACE, AuditActor, ControlStore
    from lockgate.store.db import Store

    if role not in ROLES or (role == "owner" and workspace_id):
        raise typer.BadParameter(
            "role must be owner (org-wide), admin, member or viewer", param_hint="--role"
        )

    async def run() -> str:
        store = Store(_database_url(database_url))
        try:
            await store.migrate()
            control = ControlStore(store)
            async with control.change(AuditActor("cli", "lockgate admin create")) as tx:
                if workspace_id and await tx.get(WORKSPACE, workspace_id) is None:
                    raise typer.BadParameter(f"no workspace {workspace_id!r}", param_hint="--workspace-id")
                if await tx.find(ADMIN_USER, name=name) is not None:
                    raise typer.BadParameter(f"an admin user named {name!r} exists", param_hint="--name")
                user = await tx.create(
                    ADMIN_USER,
                    {
                        "name": name,
                        "roles": [{"workspace_id": workspace_id, "role": role}],
                        "status": "active",
                    },
                )
                _, key = await create_admin_key_in(tx, user["id"], "created by lockgate admin create", None)
            return key
        finally:
            await store.close()

    key = asyncio.run(run())
    console.print(f"admin user {name} ({role}); admin key, shown once:\n[bold]{key}[/bold]")


def apply(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="lockgate.yaml")],
    url: Url = "http://127.0.0.1:8080",
    admin_key: AdminKey = "",
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Show the diff only.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the API's JSON answer.")] = False,
) -> None:
    """Apply a lockgate.yaml through the admin API (idempotent; --dry-run shows the diff)."""
    reply = _call(
        url,
        admin_key,
        "POST",
        "/config/apply",
        params={"dry_run": str(dry_run).lower()},
        json={"yaml": file.read_text()},
    )
    if as_json:
        console.print_json(orjson.dumps(reply).decode())
        return
    table = Table("action", "kind", "name", "fields", box=None)
    for change in reply["changes"]:
        table.add_row(change["action"], change["kind"], change["name"], ", ".join(change["fields"]))
    console.print(table if reply["changes"] else "no changes")
    for name, key in reply["generated_keys"].items():
        console.print(f"generated API key {name}: [bold]{key}[/bold]  (shown once)")


def _call(url: str, admin_key: str, method: str, path: str, **kwargs: Any) -> Any:
    if not admin_key:
        raise typer.BadParameter("set LOCKGATE_ADMIN_KEY or pass --admin-key", param_hint="--admin-key")
    try:
        reply = httpx.request(
            method,
            url.rstrip("/") + "/admin/v1" + path,
            headers={"authorization": f"Bearer {admin_key}"},
            timeout=30,
            **kwargs,
        )
    except httpx.TransportError as exc:
        console.print(f"[red]error:[/red] cannot reach {url}: {exc}")
        raise typer.Exit(1) from exc
    body = reply.json()
    if reply.status_code >= 400:
        error = body.get("error", {})
        where = f" ({error['param']})" if error.get("param") else ""
        console.print(f"[red]error {reply.status_code}:[/red] {error.get('message')}{where}")
        raise typer.Exit(1)
    return body
