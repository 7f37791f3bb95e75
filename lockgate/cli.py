"""The ``lockgate`` command line."""

from __future__ import annotations

import asyncio
import os
import shutil
import sys
import tempfile
from typing import Annotated, Any

import typer
from rich.console import Console

from lockgate import cli_control, cli_logs
from lockgate.commands import importing, integrations, keys, limits, mcp, routes, workspaces

app = typer.Typer(
    no_args_is_help=True, add_completion=False, help="Lockgate: the AI gateway and control plane."
)
app.add_typer(cli_logs.logs_app, name="logs")
app.add_typer(cli_control.db_app, name="db")
app.add_typer(cli_control.admin_app, name="admin")
app.command("apply")(cli_control.apply)
app.add_typer(workspaces.app, name="workspaces")
app.add_typer(keys.app, name="keys")
app.add_typer(integrations.app, name="integrations")
app.add_typer(routes.models_app, name="models")
app.add_typer(routes.configs_app, name="configs")
app.add_typer(importing.app, name="import")
app.add_typer(limits.budgets_app, name="budgets")
app.add_typer(limits.limits_app, name="rate-limits")
app.add_typer(limits.policies_app, name="policies")
app.command("usage")(limits.usage)
app.add_typer(mcp.app, name="mcp")
console = Console()


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8080,
    workers: Annotated[int, typer.Option(min=1, help="Worker processes (one event loop each).")] = 1,
    config: Annotated[str | None, typer.Option(help="Declarative config file (lockgate.yaml).")] = None,
    demo: Annotated[
        bool, typer.Option("--demo", help="Accept data-plane requests without a key (local trials only).")
    ] = False,
    log_level: Annotated[str, typer.Option(help="uvicorn log level.")] = "warning",
    approximate_limits: Annotated[
        bool,
        typer.Option(
            "--approximate-limits",
            help="With --workers > 1 and no Redis: each worker enforces 1/N of every limit and budget.",
        ),
    ] = False,
) -> None:
    """Start the gateway."""
    import uvicorn

    if workers > 1 and not os.environ.get("LOCKGATE_REDIS_URL") and not approximate_limits:
        console.print(
            f"[red]error:[/red] --workers {workers} needs LOCKGATE_REDIS_URL: rate limits and budgets are "
            "counted in memory, which is exact only inside one process, so each worker would allow the "
            "full limit. Set LOCKGATE_REDIS_URL for exact limits across workers, or pass "
            "--approximate-limits to give each worker 1/N of every limit (records say so)."
        )
        raise typer.Exit(2)
    if approximate_limits:
        os.environ["LOCKGATE_APPROXIMATE_LIMITS"] = "1"

    # Flags go through the environment so every worker process builds the same Settings.
    os.environ["LOCKGATE_HOST"], os.environ["LOCKGATE_PORT"] = host, str(port)
    os.environ["LOCKGATE_WORKERS"] = str(workers)
    if config:
        os.environ["LOCKGATE_CONFIG"] = os.path.abspath(config)
    if demo:
        os.environ["LOCKGATE_DEMO"] = "1"
    settings, snapshot = _prepare_or_exit()
    routes = snapshot.routes(snapshot.default_workspace_id)
    names = ", ".join(routes.aliases) or "none"
    creds = ", ".join(f"@{c.name} ({c.provider})" for c in routes.credentials) or "none"
    console.print(f"Lockgate listening on http://{host}:{port}  workers={workers}")
    console.print(f"  providers: {creds}\n  model aliases: {names}  (config version {snapshot.version})")
    if settings.demo:
        console.print("  [yellow]demo mode: the gateway accepts requests without a key[/yellow]")
    elif not settings.master_key and not snapshot.keys:
        console.print(
            "  no API keys yet: create one with `lockgate keys create` (admin API) or set LOCKGATE_MASTER_KEY"
        )
    metrics_dir = _metrics_dir(workers)
    try:
        _serve(uvicorn, host, port, workers, log_level)
    finally:
        if metrics_dir is not None:
            shutil.rmtree(metrics_dir, ignore_errors=True)


def _metrics_dir(workers: int) -> str | None:
    """Several workers share Prometheus values through files in one fresh directory.

    Set before uvicorn spawns the workers: prometheus_client reads it when first imported.
    A directory the user chose is emptied (stale files would add old counts); one made
    here is removed at exit (returned so the caller can).
    """
    if workers < 2:
        return None
    chosen = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if chosen:
        os.makedirs(chosen, exist_ok=True)
        for name in os.listdir(chosen):
            if name.endswith(".db"):
                os.unlink(os.path.join(chosen, name))
        return None
    made = tempfile.mkdtemp(prefix="lockgate-metrics-")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = made
    return made


def _serve(uvicorn: Any, host: str, port: int, workers: int, log_level: str) -> None:
    uvicorn.run(
        "lockgate.app:create_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        loop="uvloop",
        http="httptools",
        lifespan="on",
        access_log=False,
        log_level=log_level,
        timeout_keep_alive=75,
    )


def _prepare_or_exit() -> tuple[Any, Any]:
    """Migrate and apply the file once in the parent, failing fast with the problem named."""
    from lockgate.app import ControlPlane
    from lockgate.catalog import Catalog
    from lockgate.config import ConfigError
    from lockgate.errors import LockgateError
    from lockgate.governance.secrets import SecretKeyError
    from lockgate.settings import Settings

    settings = Settings.from_env()

    async def prepare() -> Any:
        plane = ControlPlane(settings, Catalog.default())
        try:
            result = await plane.prepare()
            snapshot = plane.build_snapshot(await plane.control.load_state())
        finally:
            await plane.store.close()
        for name, key in (result.generated_keys if result else {}).items():
            console.print(f"  generated API key {name}: [bold]{key}[/bold]  (shown once; store it now)")
        return snapshot

    try:
        return settings, asyncio.run(prepare())
    except (ConfigError, SecretKeyError) as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from exc
    except LockgateError as exc:
        console.print(f"[red]error:[/red] applying the config file: {exc.message}")
        raise typer.Exit(2) from exc


@app.command("mock-provider")
def mock_provider(
    host: Annotated[str, typer.Option()] = "127.0.0.1",
    port: Annotated[int, typer.Option()] = 9090,
    latency_ms: Annotated[float, typer.Option(help="Delay before every answer.")] = 0,
) -> None:
    """Start the mock LLM provider (OpenAI and Anthropic wire formats)."""
    from lockgate.testing.mock_provider import run

    run(host=host, port=port, latency_ms=latency_ms)


@app.command("mock-mcp")
def mock_mcp(
    host: Annotated[str, typer.Option()] = "127.0.0.1",
    port: Annotated[int, typer.Option()] = 9091,
    stdio: Annotated[bool, typer.Option("--stdio", help="Serve over stdin/stdout instead of HTTP.")] = False,
    token: Annotated[str | None, typer.Option(help="Require 'Authorization: Bearer <token>' (HTTP).")] = None,
) -> None:
    """Start the mock MCP server (Streamable HTTP at /mcp, legacy SSE at /sse, or stdio)."""
    from lockgate.testing.mock_mcp import run_http, run_stdio

    if stdio:
        run_stdio()
    else:
        run_http(host=host, port=port, token=token)


def main() -> None:
    app(prog_name="lockgate")


if __name__ == "__main__":
    sys.exit(main())
