"""`lockgate budgets|rate-limits|policies list|create|delete` and `lockgate usage`, over the admin API."""

from __future__ import annotations

from typing import Annotated, Any

import orjson
import typer
from rich.table import Table

from lockgate.cli_control import AdminKey, Url, _call, console

budgets_app = typer.Typer(no_args_is_help=True, help="Budgets in USD (admin API).")
limits_app = typer.Typer(no_args_is_help=True, help="Rate limits (admin API).")
policies_app = typer.Typer(no_args_is_help=True, help="Usage policies (admin API).")

Scope = Annotated[
    str,
    typer.Option(help="org, workspace:<id>, key:<id>, integration:<name>, metadata:<key>[=<value>]"),
]
Json = Annotated[bool, typer.Option("--json", help="Print the API's JSON answer.")]


def _show(reply: Any, as_json: bool, columns: list[str]) -> None:
    if as_json:
        console.print_json(orjson.dumps(reply).decode())
        return
    rows = reply["data"] if reply.get("object") == "list" else [reply]
    table = Table(*columns, box=None)
    for row in rows:
        table.add_row(*("-" if row.get(c) is None else str(row.get(c)) for c in columns))
    console.print(table)


def _crud(app: typer.Typer, path: str, columns: list[str]) -> None:
    @app.command("list")
    def list_(url: Url = "http://127.0.0.1:8080", admin_key: AdminKey = "", as_json: Json = False) -> None:
        """List them."""
        _show(_call(url, admin_key, "GET", path, params={"limit": 200}), as_json, columns)

    @app.command("delete")
    def delete(
        object_id: Annotated[str, typer.Argument(help="The id.")],
        url: Url = "http://127.0.0.1:8080",
        admin_key: AdminKey = "",
    ) -> None:
        """Delete one."""
        _call(url, admin_key, "DELETE", f"{path}/{object_id}")
        console.print(f"deleted {object_id}")


_crud(budgets_app, "/budgets", ["id", "name", "scope", "amount_usd", "period", "mode", "auto_revoke"])
_crud(
    limits_app,
    "/rate-limits",
    ["id", "name", "scope", "requests_per_minute", "requests_per_hour", "tokens_per_minute", "concurrent"],
)
_crud(policies_app, "/policies", ["id", "name", "scope", "allowed_models", "denied_models", "max_tokens"])


@budgets_app.command("create")
def create_budget(
    name: Annotated[str, typer.Argument()],
    scope: Scope,
    amount: Annotated[float, typer.Option("--amount", help="USD.")],
    period: Annotated[str, typer.Option(help="none, day, week or month (UTC).")] = "month",
    soft: Annotated[bool, typer.Option("--soft", help="Alert only; never refuse.")] = False,
    auto_revoke: Annotated[bool, typer.Option("--auto-revoke", help="Revoke the key at its limit.")] = False,
    alerts: Annotated[str, typer.Option(help="Alert thresholds in percent.")] = "50,80,100",
    webhook: Annotated[str | None, typer.Option(help="POST alerts here.")] = None,
    url: Url = "http://127.0.0.1:8080",
    admin_key: AdminKey = "",
    as_json: Json = False,
) -> None:
    """Create a budget."""
    body = {
        "name": name,
        "scope": scope,
        "amount_usd": amount,
        "period": period,
        "mode": "soft" if soft else "hard",
        "auto_revoke": auto_revoke,
        "alert_thresholds": [int(t) for t in alerts.split(",") if t.strip()],
        "alert_webhook": webhook,
    }
    _show(
        _call(url, admin_key, "POST", "/budgets", json=body), as_json, ["id", "name", "scope", "amount_usd"]
    )


@limits_app.command("create")
def create_limit(
    name: Annotated[str, typer.Argument()],
    scope: Scope,
    rpm: Annotated[int | None, typer.Option("--rpm", help="Requests per minute.")] = None,
    rph: Annotated[int | None, typer.Option("--rph", help="Requests per hour.")] = None,
    rpd: Annotated[int | None, typer.Option("--rpd", help="Requests per day.")] = None,
    tpm: Annotated[int | None, typer.Option("--tpm", help="Tokens per minute.")] = None,
    tpd: Annotated[int | None, typer.Option("--tpd", help="Tokens per day.")] = None,
    concurrent: Annotated[int | None, typer.Option(help="Requests in flight at once.")] = None,
    url: Url = "http://127.0.0.1:8080",
    admin_key: AdminKey = "",
    as_json: Json = False,
) -> None:
    """Create a rate limit (sliding windows; see governance in the README)."""
    body = {
        "name": name,
        "scope": scope,
        "requests_per_minute": rpm,
        "requests_per_hour": rph,
        "requests_per_day": rpd,
        "tokens_per_minute": tpm,
        "tokens_per_day": tpd,
        "concurrent": concurrent,
    }
    _show(_call(url, admin_key, "POST", "/rate-limits", json=body), as_json, ["id", "name", "scope"])


@policies_app.command("create")
def create_policy(
    name: Annotated[str, typer.Argument()],
    scope: Annotated[str, typer.Option(help="workspace:<id> or key:<id>")],
    allow_model: Annotated[list[str] | None, typer.Option(help="Allowed model (repeat).")] = None,
    deny_model: Annotated[list[str] | None, typer.Option(help="Denied model (repeat).")] = None,
    max_tokens: Annotated[int | None, typer.Option()] = None,
    max_n: Annotated[int | None, typer.Option()] = None,
    temperature_min: Annotated[float | None, typer.Option()] = None,
    temperature_max: Annotated[float | None, typer.Option()] = None,
    require_metadata: Annotated[
        list[str] | None, typer.Option(help="Required metadata key (repeat).")
    ] = None,
    url: Url = "http://127.0.0.1:8080",
    admin_key: AdminKey = "",
    as_json: Json = False,
) -> None:
    """Create a usage policy."""
    body = {
        "name": name,
        "scope": scope,
        "allowed_models": allow_model,
        "denied_models": deny_model,
        "max_tokens": max_tokens,
        "max_n": max_n,
        "temperature_min": temperature_min,
        "temperature_max": temperature_max,
        "required_metadata": require_metadata,
    }
    _show(_call(url, admin_key, "POST", "/policies", json=body), as_json, ["id", "name", "scope"])


def usage(
    scope: Annotated[
        str, typer.Argument(help="org, workspace:<id>, key:<id>, integration:<name>, metadata:<k>=<v>")
    ],
    days: Annotated[int, typer.Option(help="Days of daily history.")] = 7,
    url: Url = "http://127.0.0.1:8080",
    admin_key: AdminKey = "",
    as_json: Json = False,
) -> None:
    """Current spend, budgets and rate-limit windows of one scope."""
    reply = _call(url, admin_key, "GET", "/usage", params={"scope": scope, "days": days})
    if as_json:
        console.print_json(orjson.dumps(reply).decode())
        return
    spend = reply["spend_usd"]
    console.print(
        f"{scope}: today ${spend['day']:.6f}, this week ${spend['week']:.6f}, "
        f"this month ${spend['month']:.6f}, all time ${spend['none']:.6f}; "
        f"reserved ${reply['reserved_usd']:.6f}"
    )
    if reply["budgets"]:
        table = Table("budget", "period", "mode", "spent $", "limit $", "%", box=None)
        for b in reply["budgets"]:
            percent = "-" if b["percent"] is None else f"{b['percent']:.1f}"
            table.add_row(
                b["name"], b["period"], b["mode"], f"{b['spent_usd']:.6f}", f"{b['amount_usd']:.2f}", percent
            )
        console.print(table)
    if reply["rate_limits"]:
        table = Table("rate limit", "window", "used", "limit", box=None)
        for w in reply["rate_limits"]:
            table.add_row(
                w["name"], w["window"], "-" if w["used"] is None else str(w["used"]), str(w["limit"])
            )
        console.print(table)
