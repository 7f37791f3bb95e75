"""`lockgate models …` (model aliases) and `lockgate configs …` (saved route configs)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import orjson
import typer
import yaml

from lockgate.commands.client import (
    DEFAULT_URL,
    AdminClient,
    AdminKey,
    AsJson,
    Url,
    print_deleted,
    print_object,
    print_rows,
)

models_app = typer.Typer(no_args_is_help=True, help="Model aliases: the names clients send as 'model'.")
configs_app = typer.Typer(no_args_is_help=True, help="Saved route configs (DESIGN §3 'Route config').")

Alias = Annotated[str, typer.Argument(help="The alias or its id (mdl_…).")]
ConfigId = Annotated[str, typer.Argument(help="The config's id.")]
InWorkspace = Annotated[
    str | None, typer.Option("--workspace", "-w", help="Workspace name or id; unset: org-wide.")
]
Targets = Annotated[
    list[str] | None,
    typer.Option("--target", "-t", help="'@integration/model' or 'provider/model'; first primary. Repeat."),
]
UsesConfig = Annotated[str | None, typer.Option("--config", help="Route by this saved config instead.")]
ConfigFile = Annotated[
    Path | None, typer.Option("--file", "-f", exists=True, dir_okay=False, help="The config, JSON or YAML.")
]
ConfigText = Annotated[str | None, typer.Option("--data", help="The config as inline JSON.")]

ALIAS_COLUMNS = {
    "id": "id",
    "alias": "alias",
    "workspace": lambda r: r["workspace_id"] or "org-wide",
    "routes to": lambda r: f"config {r['config_id']}" if r["config_id"] else r["targets"],
}


def _summary(config: dict[str, Any]) -> str:
    mode = (config.get("strategy") or {}).get("mode", "single")
    targets = config.get("targets") or []
    if not targets:
        return f"{config.get('provider') or '@' + str(config.get('virtual_key'))}"
    return f"{mode}, {len(targets)} target{'s' if len(targets) != 1 else ''}"


CONFIG_COLUMNS = {
    "id": "id",
    "workspace": lambda r: r["workspace_id"] or "org-wide",
    "route": lambda r: _summary(r["config"]),
    "description": lambda r: r["description"] or "-",
}


def _routing(targets: list[str] | None, config: str | None) -> dict[str, Any]:
    if bool(targets) == bool(config):
        raise typer.BadParameter("give --target (one or more) or --config")
    return {"targets": targets} if targets else {"config_id": config}


def _alias_id(api: AdminClient, value: str, workspace: str | None) -> str:
    return api.find_id(
        "/models",
        value,
        "mdl",
        lambda r: r["alias"] == value,
        "alias",
        alias=value,
        workspace_id=api.workspace_id(workspace),
    )


def _read_config(file: Path | None, text: str | None) -> dict[str, Any] | None:
    if file is not None and text is not None:
        raise typer.BadParameter("give --file or --data, not both")
    try:
        data = yaml.safe_load(file.read_text()) if file is not None else None
        data = orjson.loads(text) if text is not None else data
    except (yaml.YAMLError, orjson.JSONDecodeError) as exc:
        raise typer.BadParameter(f"the config is not valid JSON/YAML: {exc}") from exc
    if data is not None and not isinstance(data, dict):
        raise typer.BadParameter("a route config is a JSON object")
    return data


@models_app.command("list")
def list_models(
    workspace: InWorkspace = None,
    alias: Annotated[str | None, typer.Option(help="Only this alias.")] = None,
    limit: Annotated[int, typer.Option(min=1)] = 100,
    url: Url = DEFAULT_URL,
    admin_key: AdminKey = "",
    as_json: AsJson = False,
) -> None:
    """List model aliases (org-wide ones and those of workspaces you can see)."""
    api = AdminClient(url, admin_key)
    params = {"workspace_id": api.workspace_id(workspace), "alias": alias}
    rows, more = api.pages("/models", params, limit)
    print_rows(rows, ALIAS_COLUMNS, more, as_json)


@models_app.command("create")
def create_model(
    alias: Annotated[str, typer.Argument(help="The model name clients will send.")],
    target: Targets = None,
    config: UsesConfig = None,
    workspace: InWorkspace = None,
    url: Url = DEFAULT_URL,
    admin_key: AdminKey = "",
    as_json: AsJson = False,
) -> None:
    """Create an alias that routes to targets (fallbacks in order) or to a saved config."""
    api = AdminClient(url, admin_key)
    body = {"alias": alias, "workspace_id": api.workspace_id(workspace), **_routing(target, config)}
    print_object(api.call("POST", "/models", json=body), as_json)


@models_app.command("get")
def get_model(
    alias: Alias,
    workspace: InWorkspace = None,
    url: Url = DEFAULT_URL,
    admin_key: AdminKey = "",
    as_json: AsJson = False,
) -> None:
    """Show one alias."""
    api = AdminClient(url, admin_key)
    print_object(api.call("GET", f"/models/{_alias_id(api, alias, workspace)}"), as_json)


@models_app.command("update")
def update_model(
    alias: Alias,
    target: Targets = None,
    config: UsesConfig = None,
    workspace: InWorkspace = None,
    url: Url = DEFAULT_URL,
    admin_key: AdminKey = "",
    as_json: AsJson = False,
) -> None:
    """Point an alias at new targets or at a saved config."""
    body = _routing(target, config)
    api = AdminClient(url, admin_key)
    print_object(api.call("PATCH", f"/models/{_alias_id(api, alias, workspace)}", json=body), as_json)


@models_app.command("delete")
def delete_model(
    alias: Alias,
    workspace: InWorkspace = None,
    url: Url = DEFAULT_URL,
    admin_key: AdminKey = "",
    as_json: AsJson = False,
) -> None:
    """Delete an alias."""
    api = AdminClient(url, admin_key)
    print_deleted(api.call("DELETE", f"/models/{_alias_id(api, alias, workspace)}"), as_json)


@configs_app.command("list")
def list_configs(
    workspace: InWorkspace = None,
    limit: Annotated[int, typer.Option(min=1)] = 100,
    url: Url = DEFAULT_URL,
    admin_key: AdminKey = "",
    as_json: AsJson = False,
) -> None:
    """List saved route configs."""
    api = AdminClient(url, admin_key)
    rows, more = api.pages("/configs", {"workspace_id": api.workspace_id(workspace)}, limit)
    print_rows(rows, CONFIG_COLUMNS, more, as_json)


@configs_app.command("create")
def create_config(
    file: ConfigFile = None,
    data: ConfigText = None,
    config_id: Annotated[str | None, typer.Option("--id", help="Unset: generated.")] = None,
    description: Annotated[str, typer.Option()] = "",
    workspace: InWorkspace = None,
    url: Url = DEFAULT_URL,
    admin_key: AdminKey = "",
    as_json: AsJson = False,
) -> None:
    """Save a route config (from --file or --data); aliases and x-lockgate-config name it by id."""
    config = _read_config(file, data)
    if config is None:
        raise typer.BadParameter("give the config with --file or --data")
    api = AdminClient(url, admin_key)
    body = {
        "id": config_id,
        "description": description,
        "workspace_id": api.workspace_id(workspace),
        "config": config,
    }
    print_object(api.call("POST", "/configs", json=body), as_json)


@configs_app.command("get")
def get_config(
    config_id: ConfigId, url: Url = DEFAULT_URL, admin_key: AdminKey = "", as_json: AsJson = False
) -> None:
    """Show one saved config, tree included."""
    print_object(AdminClient(url, admin_key).call("GET", f"/configs/{config_id}"), as_json)


@configs_app.command("update")
def update_config(
    config_id: ConfigId,
    file: ConfigFile = None,
    data: ConfigText = None,
    description: Annotated[str | None, typer.Option()] = None,
    url: Url = DEFAULT_URL,
    admin_key: AdminKey = "",
    as_json: AsJson = False,
) -> None:
    """Replace a saved config's tree and/or description."""
    config = _read_config(file, data)
    body: dict[str, Any] = {"description": description, "config": config}
    body = {k: v for k, v in body.items() if v is not None}
    if not body:
        raise typer.BadParameter("nothing to change; give --file, --data or --description")
    print_object(AdminClient(url, admin_key).call("PATCH", f"/configs/{config_id}", json=body), as_json)


@configs_app.command("delete")
def delete_config(
    config_id: ConfigId, url: Url = DEFAULT_URL, admin_key: AdminKey = "", as_json: AsJson = False
) -> None:
    """Delete a saved config no alias uses."""
    print_deleted(AdminClient(url, admin_key).call("DELETE", f"/configs/{config_id}"), as_json)
