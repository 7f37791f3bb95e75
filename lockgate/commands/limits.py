"""`lockgate budgets|rate-limits|policies list|create|get|delete` and `lockgate usage <scope>`."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.table import Table

from lockgate.commands.client import (
    DEFAULT_URL,
    AdminClient,
    AdminKey,
    AsJson,
    Url,
    console,
    print_deleted,
    print_json,
    print_object,
    print_rows,
)

budgets_app = typer.Typer(no_args_is_help=True, help="Budgets in USD: hard (refuse) or soft (alert only).")
limits_app = typer.Typer(
    no_args_is_help=True, help="Rate limits: requests and tokens per window, concurrency."
)
policies_app = typer.Typer(no_args_is_help=True, help="Usage policies: models, parameter caps, metadata.")

Scope = Annotated[
    str,
    typer.Option(help="org, workspace:<id>, key:<id>, integration:<name>, metadata:<key>[=<value>]"),
]
Object = Annotated[str, typer.Argument(help="Name or id.")]


def _kind(app: typer.Typer, path: str, prefix: str, what: str, columns: dict[str, Any]) -> None:
    def object_id(api: AdminClient, value: str) -> str:
        return api.find_id(path, value, prefix, lambda r: r["name"] == value, what)

    @app.command("list")
    def list_(
        limit: Annotated[int, typer.Option(min=1)] = 100,
        url: Url = DEFAULT_URL,
        admin_key: AdminKey = "",
        as_json: AsJson = False,
    ) -> None:
        """List the ones you can see."""
        rows, more = AdminClient(url, admin_key).pages(path, {}, limit)
        print_rows(rows, columns, more, as_json)

    @app.command()
    def get(value: Object, url: Url = DEFAULT_URL, admin_key: AdminKey = "", as_json: AsJson = False) -> None:
        """Show one."""
        api = AdminClient(url, admin_key)
        print_object(api.call("GET", f"{path}/{object_id(api, value)}"), as_json)

    @app.command()
    def delete(
        value: Object, url: Url = DEFAULT_URL, admin_key: AdminKey = "", as_json: AsJson = False
    ) -> None:
        """Delete one."""
        api = AdminClient(url, admin_key)
        print_deleted(api.call("DELETE", f"{path}/{object_id(api, value)}"), as_json)


_kind(
    budgets_app,
    "/budgets",
    "bud",
    "budget",
    {
        "id": "id",
        "name": "name",
        "scope": "scope",
        "usd": "amount_usd",
        "period": "period",
        "mode": "mode",
        "auto-revoke": "auto_revoke",
    },
)
_kind(
    limits_app,
    "/rate-limits",
    "rl",
    "rate limit",
    {
        "id": "id",
        "name": "name",
        "scope": "scope",
        "rpm": "requests_per_minute",
        "rph": "requests_per_hour",
        "rpd": "requests_per_day",
        "tpm": "tokens_per_minute",
        "tpd": "tokens_per_day",
        "concurrent": "concurrent",
    },
)
_kind(
    policies_app,
    "/policies",
    "pol",
    "usage policy",
    {
        "id": "id",
        "name": "name",
        "scope": "scope",
        "allowed": "allowed_models",
        "denied": "denied_models",
        "max tokens": "max_tokens",
        "required metadata": "required_metadata",
    },
)


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
    url: Url = DEFAULT_URL,
    admin_key: AdminKey = "",
    as_json: AsJson = False,
) -> None:
    """Create a budget."""
    try:
        thresholds = [int(t) for t in alerts.split(",") if t.strip()]
    except ValueError:
        raise typer.BadParameter(
            "comma-separated percentages, e.g. 50,80,100", param_hint="--alerts"
        ) from None
    body = {
        "name": name,
        "scope": scope,
        "amount_usd": amount,
        "period": period,
        "mode": "soft" if soft else "hard",
        "auto_revoke": auto_revoke,
        "alert_thresholds": thresholds,
        "alert_webhook": webhook,
    }
    print_object(AdminClient(url, admin_key).call("POST", "/budgets", json=body), as_json)


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
    url: Url = DEFAULT_URL,
    admin_key: AdminKey = "",
    as_json: AsJson = False,
) -> None:
    """Create a rate limit (sliding windows of 60 buckets; see the README)."""
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
    print_object(AdminClient(url, admin_key).call("POST", "/rate-limits", json=body), as_json)


@policies_app.command("create")
def create_policy(
    name: Annotated[str, typer.Argument()],
    scope: Annotated[str, typer.Option(help="workspace:<id> or key:<id>")],
    allow_model: Annotated[list[str] | None, typer.Option(help="Allowed model or pattern (repeat).")] = None,
    deny_model: Annotated[list[str] | None, typer.Option(help="Denied model or pattern (repeat).")] = None,
    max_tokens: Annotated[int | None, typer.Option()] = None,
    max_n: Annotated[int | None, typer.Option()] = None,
    temperature_min: Annotated[float | None, typer.Option()] = None,
    temperature_max: Annotated[float | None, typer.Option()] = None,
    require_metadata: Annotated[
        list[str] | None, typer.Option(help="Required metadata key (repeat).")
    ] = None,
    url: Url = DEFAULT_URL,
    admin_key: AdminKey = "",
    as_json: AsJson = False,
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
    print_object(AdminClient(url, admin_key).call("POST", "/policies", json=body), as_json)


def usage(
    scope: Annotated[
        str, typer.Argument(help="org, workspace:<id>, key:<id>, integration:<name>, metadata:<k>=<v>")
    ],
    days: Annotated[int, typer.Option(min=1, max=400, help="Days of daily history.")] = 7,
    url: Url = DEFAULT_URL,
    admin_key: AdminKey = "",
    as_json: AsJson = False,
) -> None:
    """Current spend, budgets and rate-limit windows of one scope."""
    reply = AdminClient(url, admin_key).call("GET", "/usage", params={"scope": scope, "days": days})
    if as_json:
        print_json(reply)
        return
    spend = reply["spend_usd"]
    console.print(
        f"{scope}: today ${spend['day']:.6f}, this week ${spend['week']:.6f}, "
        f"this month ${spend['month']:.6f}, all time ${spend['none']:.6f}; "
        f"reserved ${reply['reserved_usd']:.6f}",
        soft_wrap=True,
    )
    if reply["budgets"]:
        table = Table("budget", "period", "mode", "spent $", "limit $", "%", box=None, pad_edge=False)
        for b in reply["budgets"]:
            percent = "-" if b["percent"] is None else f"{b['percent']:.1f}"
            table.add_row(
                b["name"], b["period"], b["mode"], f"{b['spent_usd']:.6f}", f"{b['amount_usd']:.2f}", percent
            )
        console.print(table)
    if reply["rate_limits"]:
        table = Table("rate limit", "window", "used", "limit", box=None, pad_edge=False)
        for w in reply["rate_limits"]:
            table.add_row(
                w["name"], w["window"], "-" if w["used"] is None else str(w["used"]), str(w["limit"])
            )
        console.print(table)
