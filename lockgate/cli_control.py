"""Control-plane commands: `lockgate db upgrade`, `lockgate admin create`, `lockgate apply`."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from lockgate.commands.client import DEFAULT_URL, AdminClient, AdminKey, AsJson, Url, console, print_json

db_app = typer.Typer(no_args_is_help=True, help="The database schema.")
admin_app = typer.Typer(no_args_is_help=True, help="Admin identities (works on the database directly).")

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
    url: Url = DEFAULT_URL,
    admin_key: AdminKey = "",
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Show the diff only.")] = False,
    merge: Annotated[
        bool,
        typer.Option(
            "--merge", help="Create and update only; never delete (a fragment, not the whole state)."
        ),
    ] = False,
    as_json: AsJson = False,
) -> None:
    """Apply a lockgate.yaml through the admin API (idempotent; --dry-run shows the diff)."""
    reply = apply_text(AdminClient(url, admin_key), file.read_text(), dry_run=dry_run, merge=merge)
    print_apply(reply, as_json)


def apply_text(api: AdminClient, text: str, *, dry_run: bool, merge: bool) -> dict[str, Any]:
    params = {"dry_run": str(dry_run).lower(), "merge": str(merge).lower()}
    return api.call("POST", "/config/apply", params=params, json={"yaml": text})


def print_apply(reply: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print_json(reply)
        return
    table = Table("action", "kind", "name", "fields", box=None)
    for change in reply["changes"]:
        table.add_row(change["action"], change["kind"], change["name"], ", ".join(change["fields"]))
    console.print(table if reply["changes"] else "no changes")
    for name, key in reply["generated_keys"].items():
        console.print(f"generated API key {name}: [bold]{key}[/bold]  (shown once)")
