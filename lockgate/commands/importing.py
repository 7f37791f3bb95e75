"""`lockgate import litellm|portkey FILE`: another gateway's config as Lockgate objects.

The result is a lockgate.yaml document: printed (the default), written
(``--output``), and/or applied through the admin API (``--apply``, a merge: it
creates and updates, never deletes). Findings, what was not carried over or
carried over differently, go to stderr so the printed document stays clean.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import orjson
import typer
import yaml

from lockgate.cli_control import apply_text, print_apply
from lockgate.commands.client import DEFAULT_URL, AdminClient, AdminKey, AsJson, Url, err_console, fail, pairs

if TYPE_CHECKING:
    from lockgate.importers import ImportResult

app = typer.Typer(no_args_is_help=True, help="Import a LiteLLM or Portkey config.")

Source = Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="The file to import.")]
Output = Annotated[Path | None, typer.Option("--output", "-o", help="Write the lockgate.yaml here.")]
Apply = Annotated[bool, typer.Option("--apply", help="Apply it through the admin API (a merge).")]
DryRun = Annotated[bool, typer.Option("--dry-run", help="With --apply: show the diff only.")]


def _load(path: Path, kind: str) -> Any:
    try:
        text = path.read_text()
        return orjson.loads(text) if kind == "json" else yaml.safe_load(text)
    except (OSError, UnicodeDecodeError) as exc:
        fail(f"cannot read {path}: {exc}", 2)
    except (orjson.JSONDecodeError, yaml.YAMLError) as exc:
        fail(f"{path} is not valid {kind.upper()}: {exc}", 2)


def _finish(
    result: ImportResult,
    origin: Path,
    output: Path | None,
    apply: bool,
    dry_run: bool,
    url: str,
    admin_key: str,
    as_json: bool,
) -> None:
    for finding in result.findings:
        colour = "yellow" if finding.level == "changed" else "red"
        err_console.print(
            f"[{colour}]{finding.level}[/{colour}] {finding.path}: {finding.message}", highlight=False
        )
    if result.env_vars:
        err_console.print(
            "the gateway's environment must set: " + ", ".join(result.env_vars), highlight=False
        )
    text = result.to_yaml(origin.name)
    if output is not None:
        output.write_text(text)
        err_console.print(f"wrote {output}")
    if apply:
        api = AdminClient(url, admin_key)
        print_apply(apply_text(api, text, dry_run=dry_run, merge=True), as_json)
    elif output is None:
        typer.echo(text, nl=False)


@app.command()
def litellm(
    file: Source,
    output: Output = None,
    apply: Apply = False,
    dry_run: DryRun = False,
    url: Url = DEFAULT_URL,
    admin_key: AdminKey = "",
    as_json: AsJson = False,
) -> None:
    """A LiteLLM proxy config.yaml: model_list, router_settings, litellm_settings, general_settings."""
    from lockgate.importers import ImportFailed
    from lockgate.importers.litellm import import_litellm

    try:
        result = import_litellm(_load(file, "yaml"))
    except ImportFailed as exc:
        fail(str(exc), 2)
    _finish(result, file, output, apply, dry_run, url, admin_key, as_json)


@app.command()
def portkey(
    file: Source,
    config_id: Annotated[
        str | None, typer.Option("--id", help="The saved config's id; default: the file name.")
    ] = None,
    alias: Annotated[str | None, typer.Option(help="Also create a model alias that routes by it.")] = None,
    virtual_key: Annotated[
        list[str] | None,
        typer.Option(
            "--virtual-key", help="NAME=PROVIDER for a virtual key whose provider is not in its name."
        ),
    ] = None,
    output: Output = None,
    apply: Apply = False,
    dry_run: DryRun = False,
    url: Url = DEFAULT_URL,
    admin_key: AdminKey = "",
    as_json: AsJson = False,
) -> None:
    """A Portkey config JSON: becomes a saved config plus the integrations it names."""
    from lockgate.importers import ImportFailed
    from lockgate.importers.common import slug
    from lockgate.importers.portkey import import_portkey

    try:
        result = import_portkey(
            _load(file, "json"),
            config_id=config_id or slug(file.stem, 100),
            alias=alias,
            virtual_keys=pairs(virtual_key, "--virtual-key"),
        )
    except ImportFailed as exc:
        fail(str(exc), 2)
    _finish(result, file, output, apply, dry_run, url, admin_key, as_json)
