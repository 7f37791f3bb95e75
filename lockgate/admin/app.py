"""The admin API (FastAPI), mounted by ``app.py`` at ``/admin/v1``.

Every error leaves in the OpenAI envelope; request validation errors become
400 with ``param`` naming the field (``metadata.team``, ``roles.0.role``).
Lists share one pagination scheme: ``?limit=`` (1-200, default 50) and
``?cursor=`` from the previous page's ``next_cursor``; pages come in creation
order and ``has_more`` says whether to ask again.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Header, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from lockgate.admin.rbac import Actor, authenticate_admin
from lockgate.admin.snapshot_loader import SnapshotLoader
from lockgate.errors import BadRequest, LockgateError
from lockgate.governance.secrets import SecretBox
from lockgate.state.notify import ConfigNotifier
from lockgate.store.control import ControlStore, Kind, Page, public
from lockgate.store.logs import LogStore

log = logging.getLogger("lockgate.admin")
PREFIX = "/admin/v1"


@dataclass(slots=True)
class AdminContext:
    control: ControlStore
    secrets: SecretBox
    snapshots: SnapshotLoader
    notifier: ConfigNotifier | None
    admin_key: str | None
    # Live counters for /usage (governance/admission.py); None in tools that run no data plane.
    governor: Any = None
    # The MCP gateway of this worker (discovery reads its cached tool lists) and the stdio allow-list.
    mcp: Any = None
    mcp_stdio_commands: str = ""

    @property
    def logs(self) -> LogStore:
        return self.control.store.logs

    async def changed(self, version: int | None) -> None:
        """Tell every worker: this one reloads now, the others on a Redis notice or their next poll."""
        if version is None:
            return
        if self.notifier is not None:
            await self.notifier.publish(version)
        try:
            await self.snapshots.refresh()  # read-your-writes on the worker that made the change
        except Exception:  # committed already; the poll loop retries and logs
            log.exception("reloading the snapshot after config version %s failed", version)


def context(request: Request) -> AdminContext:
    return request.app.state.lockgate


async def current_actor(request: Request, ctx: Annotated[AdminContext, Depends(context)]) -> Actor:
    return await authenticate_admin(request.headers, ctx.control, ctx.admin_key)


Ctx = Annotated[AdminContext, Depends(context)]
Who = Annotated[Actor, Depends(current_actor)]
Limit = Annotated[int, Query(ge=1, le=200, description="Page size.")]
Cursor = Annotated[str | None, Query(description="next_cursor of the previous page.")]


def if_match(value: Annotated[str | None, Header(alias="If-Match")] = None) -> int | None:
    """Optimistic concurrency: the version the client last read; a stale one is 409."""
    if value is None:
        return None
    try:
        return int(value.strip().removeprefix("W/").strip('"'))
    except ValueError:
        raise BadRequest('If-Match must be an object version, e.g. "3".', param="If-Match") from None


Version = Annotated[int | None, Depends(if_match)]


def page(kind: Kind, result: Page) -> dict[str, Any]:
    return {
        "object": "list",
        "data": [one(kind, row) for row in result.data],
        "has_more": result.has_more,
        "next_cursor": result.next_cursor,
    }


def one(kind: Kind, row: dict[str, Any]) -> dict[str, Any]:
    """The API form of a stored row: hidden columns (hashes, ciphertext) never leave."""
    return {"object": kind.name, **public(kind, row)}


def _error(exc: LockgateError) -> JSONResponse:
    return JSONResponse(exc.to_dict(), status_code=exc.status)


async def _lockgate_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, LockgateError)
    return _error(exc)


async def _validation_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    problems, first = [], None
    for err in exc.errors():
        loc = [str(p) for p in err["loc"]]
        if loc and loc[0] in ("body", "query", "path", "header"):
            loc = loc[1:]
        field = ".".join(loc) or "(body)"
        first = first or field
        problems.append(f"{field}: {err['msg']}")
        if err["type"] == "json_invalid":
            return _error(
                BadRequest(f"The request body is not valid JSON: {err['msg']}", code="invalid_json")
            )
    return _error(BadRequest("; ".join(problems), param=first, code="invalid_value"))


async def _http_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    error = LockgateError(str(exc.detail))
    error.status, error.type = exc.status_code, "invalid_request_error"
    error.code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code)
    return _error(error)


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return _error(LockgateError("Internal error in Lockgate."))


def create_admin_app(ctx: AdminContext) -> FastAPI:
    from lockgate.admin import (
        api_audit,
        api_guardrails,
        api_keys,
        api_limits,
        api_logs,
        api_mcp,
        api_mcp_policies,
        api_oauth,
        api_objects,
        api_users,
        api_workspaces,
    )

    app = FastAPI(
        title="Lockgate admin API",
        version="1",
        openapi_url=f"{PREFIX}/openapi.json",
        docs_url=f"{PREFIX}/docs",
        redoc_url=None,
    )
    app.state.lockgate = ctx
    app.add_exception_handler(LockgateError, _lockgate_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected)
    for module in (
        api_workspaces,
        api_keys,
        api_objects,
        api_guardrails,
        api_users,
        api_audit,
        api_limits,
        api_logs,
        api_mcp,
        api_mcp_policies,
        api_oauth,
    ):
        app.include_router(module.router, prefix=PREFIX)
    return app
