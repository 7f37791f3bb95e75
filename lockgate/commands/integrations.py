"""`lockgate integrations list|create|get|update|delete`: named provider credentials.

The provider secret never goes on the command line (shell history, ``ps``): it is
read from an environment variable (``--api-key-env``) or from stdin
(``--api-key-stdin``), sent once, stored encrypted, and shown only as a hint.
"""

from __future__ import annotations

import os
import sys
from typing import Annotated, Any

import orjson
import typer

from lockgate.commands.client import (
    DEFAULT_URL,
    AdminClient,
    AdminKey,
    AsJson,
    Url,
    pairs,
    print_deleted,
    print_object,
    print_rows,
)

app = typer.Typer(no_args_is_help=True, help="Integrations: provider credentials, stored encrypted.")
Integration = Annotated[str, typer.Argument(help="Integration name or id (int_…).")]
ApiKeyEnv = Annotated[
    str | None, typer.Option(help="Read the provider secret from this environment variable.")
]
ApiKeyStdin = Annotated[bool, typer.Option("--api-key-stdin", help="Read the provider secret from stdin.")]
BaseUrl = Annotated[str | None, typer.Option(help="Override the provider's default base URL.")]
Headers = Annotated[list[str] | None, typer.Option("--header", help="NAME=VALUE sent upstream; repeat.")]
Options = Annotated[
    list[str] | None, typer.Option("--option", help="KEY=VALUE provider option (VALUE may be JSON); repeat.")
]
Workspaces = Annotated[
    list[str] | None, typer.Option("--workspace", "-w", help="A workspace that may use it; repeat.")
]
AllowModel = Annotated[
    list[str] | None, typer.Option("--allow-model", help="An upstream model it may serve; repeat.")
]
COLUMNS = {
    "id": "id",
    "name": "name",
    "provider": "provider",
    "base url": lambda r: r["base_url"] or "(default)",
    "secret": lambda r: r["secret_hint"] or "none",
    "workspaces": lambda r: r["workspace_ids"] if r["workspace_ids"] is not None else "all",
    "models": lambda r: r["allowed_models"] if r["allowed_models"] is not None else "any",
}


def _integration_id(api: AdminClient, value: str) -> str:
    return api.find_id("/integrations", value, "int", lambda r: r["name"] == value, "integration")


def _secret(env: str | None, stdin: bool) -> str | None:
    if env and stdin:
        raise typer.BadParameter("give --api-key-env or --api-key-stdin, not both")
    if env:
        value = os.environ.get(env)
        if not value:
            raise typer.BadParameter(f"the variable {env} is not set", param_hint="--api-key-env")
        return value
    if stdin:
        value = sys.stdin.readline().strip()
        if not value:
            raise typer.BadParameter("stdin gave no secret", param_hint="--api-key-stdin")
        return value
    return None


def _options(values: list[str] | None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, raw in pairs(values, "--option").items():
        try:
            out[key] = orjson.loads(raw)
        except orjson.JSONDecodeError:
            out[key] = raw  # a plain string such as 2024-10-21
    return out


@app.command("list")
def list_(
    provider: Annotated[str | None, typer.Option(help="Only this provider.")] = None,
    limit: Annotated[int, typer.Option(min=1)] = 100,
    url: Url = DEFAULT_URL,
    admin_key: AdminKey = "",
    as_json: AsJson = False,
) -> None:
    """List integrations (secrets appear only as hints)."""
    rows, more = AdminClient(url, admin_key).pages("/integrations", {"provider": provider}, limit)
    print_rows(rows, COLUMNS, more, as_json)


@app.command()
def create(
    name: Annotated[str, typer.Argument(help="Models address it as '@name/model'.")],
    provider: Annotated[str, typer.Option(help="Provider id: openai, anthropic, groq …")],
    base_url: BaseUrl = None,
    api_key_env: ApiKeyEnv = None,
    api_key_stdin: ApiKeyStdin = False,
    header: Headers = None,
    option: Options = None,
    workspace: Workspaces = None,
    allow_model: AllowModel = None,
    url: Url = DEFAULT_URL,
    admin_key: AdminKey = "",
    as_json: AsJson = False,
) -> None:
    """Create an integration; unless --workspace is given, every workspace may use it."""
    secret = _secret(api_key_env, api_key_stdin)
    api = AdminClient(url, admin_key)
    body: dict[str, Any] = {
        "name": name,
        "provider": provider,
        "base_url": base_url,
        "headers": pairs(header, "--header"),
        "options": _options(option),
        "workspace_ids": [api.workspace_id(w) for w in workspace] if workspace else None,
        "allowed_models": allow_model or None,
    }
    if secret is not None:
        body["api_key"] = secret
    print_object(api.call("POST", "/integrations", json=body), as_json)


@app.command()
def get(
    integration: Integration, url: Url = DEFAULT_URL, admin_key: AdminKey = "", as_json: AsJson = False
) -> None:
    """Show one integration."""
    api = AdminClient(url, admin_key)
    print_object(api.call("GET", f"/integrations/{_integration_id(api, integration)}"), as_json)


@app.command()
def update(
    integration: Integration,
    base_url: BaseUrl = None,
    api_key_env: ApiKeyEnv = None,
    api_key_stdin: ApiKeyStdin = False,
    no_api_key: Annotated[bool, typer.Option("--no-api-key", help="Remove the stored secret.")] = False,
    header: Annotated[list[str] | None, typer.Option("--header", help="NAME=VALUE; replaces all.")] = None,
    option: Annotated[list[str] | None, typer.Option("--option", help="KEY=VALUE; replaces all.")] = None,
    workspace: Workspaces = None,
    all_workspaces: Annotated[
        bool, typer.Option("--all-workspaces", help="Share with every workspace.")
    ] = False,
    allow_model: AllowModel = None,
    any_model: Annotated[bool, typer.Option("--any-model", help="Lift the model restriction.")] = False,
    url: Url = DEFAULT_URL,
    admin_key: AdminKey = "",
    as_json: AsJson = False,
) -> None:
    """Change an integration; the secret changes only when one is given."""
    for given, flag in (
        (workspace and all_workspaces, "--workspace"),
        (allow_model and any_model, "--allow-model"),
    ):
        if given:
            raise typer.BadParameter(f"{flag} contradicts its --all/--any counterpart")
    secret = _secret(api_key_env, api_key_stdin)
    if secret is not None and no_api_key:
        raise typer.BadParameter("give a new secret or --no-api-key, not both")
    api = AdminClient(url, admin_key)
    body: dict[str, Any] = {}
    if base_url is not None:
        body["base_url"] = base_url
    if secret is not None or no_api_key:
        body["api_key"] = secret
    if header is not None:
        body["headers"] = pairs(header, "--header")
    if option is not None:
        body["options"] = _options(option)
    if workspace or all_workspaces:
        body["workspace_ids"] = [api.workspace_id(w) for w in workspace] if workspace else None
    if allow_model or any_model:
        body["allowed_models"] = allow_model or None
    if not body:
        raise typer.BadParameter("nothing to change")
    reply = api.call("PATCH", f"/integrations/{_integration_id(api, integration)}", json=body)
    print_object(reply, as_json)


@app.command()
def delete(
    integration: Integration, url: Url = DEFAULT_URL, admin_key: AdminKey = "", as_json: AsJson = False
) -> None:
    """Delete an integration no alias routes to."""
    api = AdminClient(url, admin_key)
    print_deleted(api.call("DELETE", f"/integrations/{_integration_id(api, integration)}"), as_json)
