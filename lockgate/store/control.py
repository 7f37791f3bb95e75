"""Control-plane repositories: reads, and changes that bump the config version and append audit.

Every change runs in one transaction that starts by updating the single
``config_state`` row. That first write serialises admin changes (a row lock on
PostgreSQL, the write lock on SQLite), so the version only moves forward, the
audit chain stays linear, and an update always applies to the latest row. An
``expected_version`` (the API's ``If-Match``) turns a stale update into 409.

Rows leave this module as plain dicts; ``public`` drops the columns that must
never leave the store (key hashes, encrypted secrets), and audit records are
made from that same public form.
"""

from __future__ import annotations

import base64
import binascii
import secrets
import time
from collections.abc import AsyncIterator, Callable, Collection, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import orjson
from sqlalchemy import Select, Table, and_, delete, insert, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from lockgate.errors import BadRequest, Conflict, NotFound
from lockgate.store import audit
from lockgate.store.db import Store
from lockgate.store.tables import (
    admin_keys,
    admin_users,
    api_keys,
    budgets,
    config_state,
    guardrail_attachments,
    guardrails,
    integrations,
    mcp_access_rules,
    mcp_approvals,
    mcp_servers,
    mcp_tool_pins,
    mcp_tool_policies,
    model_aliases,
    oauth_issuers,
    organizations,
    rate_limits,
    route_configs,
    usage_policies,
    workspaces,
)

Row = dict[str, Any]


@dataclass(frozen=True, slots=True)
class Kind:
    name: str
    table: Table
    id_prefix: str
    hidden: frozenset[str] = frozenset()
    workspace_column: str | None = None


WORKSPACE = Kind("workspace", workspaces, "ws", workspace_column="id")
API_KEY = Kind("api_key", api_keys, "key", frozenset({"key_hash"}), "workspace_id")
INTEGRATION = Kind("integration", integrations, "int", frozenset({"secret_ciphertext", "sealed_ciphertext"}))
MODEL_ALIAS = Kind("model_alias", model_aliases, "mdl", workspace_column="workspace_id")
ROUTE_CONFIG = Kind("route_config", route_configs, "cfg", workspace_column="workspace_id")
GUARDRAIL = Kind("guardrail", guardrails, "grd", workspace_column="workspace_id")
GUARDRAIL_ATTACHMENT = Kind(
    "guardrail_attachment", guardrail_attachments, "gat", workspace_column="workspace_id"
)
ADMIN_USER = Kind("admin_user", admin_users, "usr")
ADMIN_KEY = Kind("admin_key", admin_keys, "adk", frozenset({"key_hash"}))
BUDGET = Kind("budget", budgets, "bud", workspace_column="workspace_id")
RATE_LIMIT = Kind("rate_limit", rate_limits, "rl", workspace_column="workspace_id")
USAGE_POLICY = Kind("usage_policy", usage_policies, "pol", workspace_column="workspace_id")
MCP_SERVER = Kind("mcp_server", mcp_servers, "mcp", frozenset({"secret_ciphertext"}), "workspace_id")
MCP_ACCESS_RULE = Kind("mcp_access_rule", mcp_access_rules, "mar", workspace_column="workspace_id")
MCP_TOOL_POLICY = Kind("mcp_tool_policy", mcp_tool_policies, "mtp", workspace_column="workspace_id")
MCP_APPROVAL = Kind("mcp_approval", mcp_approvals, "apr", workspace_column="workspace_id")
MCP_TOOL_PIN = Kind("mcp_tool_pin", mcp_tool_pins, "pin", workspace_column="workspace_id")
OAUTH_ISSUER = Kind("oauth_issuer", oauth_issuers, "iss")


@dataclass(frozen=True, slots=True)
class AuditActor:
    id: str
    name: str


@dataclass(slots=True)
class Page:
    data: list[Row]
    next_cursor: str | None

    @property
    def has_more(self) -> bool:
        return self.next_cursor is not None


@dataclass(frozen=True, slots=True)
class ControlState:
    """Everything the data-plane snapshot is built from, read in one transaction."""

    version: int
    org: Row
    workspaces: list[Row]
    api_keys: list[Row]
    integrations: list[Row]
    model_aliases: list[Row]
    route_configs: list[Row]
    guardrails: list[Row] = field(default_factory=list)
    guardrail_attachments: list[Row] = field(default_factory=list)
    budgets: list[Row] = field(default_factory=list)
    rate_limits: list[Row] = field(default_factory=list)
    usage_policies: list[Row] = field(default_factory=list)
    mcp_servers: list[Row] = field(default_factory=list)
    mcp_access_rules: list[Row] = field(default_factory=list)
    mcp_tool_policies: list[Row] = field(default_factory=list)
    mcp_tool_pins: list[Row] = field(default_factory=list)
    oauth_issuers: list[Row] = field(default_factory=list)


def new_id(prefix: str) -> str:
    # Time first, so ids made in one transaction (same created_at) still sort in creation order.
    return f"{prefix}_{time.time_ns():x}{secrets.token_hex(4)}"


def public(kind: Kind, row: Mapping[str, Any]) -> Row:
    return {k: v for k, v in row.items() if k not in kind.hidden}


def _encode_cursor(row: Row) -> str:
    return base64.urlsafe_b64encode(orjson.dumps([row["created_at"], row["id"]])).decode().rstrip("=")


def _decode_cursor(cursor: str) -> tuple[float, str]:
    try:
        created_at, row_id = orjson.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        return float(created_at), str(row_id)
    except (binascii.Error, ValueError, TypeError) as exc:
        raise BadRequest("The cursor is not one this API returned.", param="cursor") from exc


class ControlStore:
    def __init__(self, store: Store) -> None:
        self.store = store
        self.engine = store.engine

    async def version(self) -> int:
        async with self.engine.connect() as conn:
            return int((await conn.execute(select(config_state.c.version))).scalar_one())

    async def get(self, kind: Kind, object_id: str) -> Row | None:
        async with self.engine.connect() as conn:
            return await _get(conn, kind, object_id)

    async def find(self, kind: Kind, **equals: Any) -> Row | None:
        async with self.engine.connect() as conn:
            return await _find(conn, kind, equals)

    async def list(
        self,
        kind: Kind,
        *,
        equals: Mapping[str, Any] | None = None,
        workspace_in: Collection[str] | None = None,
        include_global: bool = False,
        keep: Callable[[Row], bool] | None = None,
        cursor: str | None = None,
        limit: int = 50,
    ) -> Page:
        """One page in creation order. ``workspace_in`` limits a workspace-scoped kind to those
        workspaces (plus org-wide rows with ``include_global``); ``keep`` filters in Python
        for conditions SQL cannot state portably (JSON membership)."""
        table = kind.table
        query = _where_equals(select(table).order_by(table.c.created_at, table.c.id), table, equals or {})
        if workspace_in is not None and kind.workspace_column is not None:
            column = table.c[kind.workspace_column]
            scope = column.in_(list(workspace_in))
            query = query.where(or_(scope, column.is_(None)) if include_global else scope)
        if cursor is not None:
            created_at, row_id = _decode_cursor(cursor)
            later = and_(table.c.created_at == created_at, table.c.id > row_id)
            query = query.where(or_(table.c.created_at > created_at, later))
        found: list[Row] = []
        batch = max(limit + 1, 100) if keep else limit + 1
        async with self.engine.connect() as conn:
            offset = 0
            while len(found) <= limit:
                rows = [_row(r) for r in await conn.execute(query.limit(batch).offset(offset))]
                found.extend(r for r in rows if keep is None or keep(r))
                if len(rows) < batch:
                    break
                offset += batch
        page = found[:limit]
        next_cursor = _encode_cursor(page[-1]) if len(found) > limit else None
        return Page([public(kind, r) for r in page], next_cursor)

    async def load_state(self) -> ControlState:
        conn_options = {"isolation_level": "REPEATABLE READ"} if not self.store.is_sqlite else {}
        async with self.engine.connect() as conn:
            conn = await conn.execution_options(**conn_options)
            async with conn.begin():
                version = int((await conn.execute(select(config_state.c.version))).scalar_one())

                async def rows(table: Table) -> list[Row]:
                    return [_row(r) for r in await conn.execute(select(table))]

                orgs = await rows(organizations)
                return ControlState(
                    version=version,
                    org=orgs[0],
                    workspaces=await rows(workspaces),
                    api_keys=await rows(api_keys),
                    integrations=await rows(integrations),
                    model_aliases=await rows(model_aliases),
                    route_configs=await rows(route_configs),
                    guardrails=await rows(guardrails),
                    guardrail_attachments=await rows(guardrail_attachments),
                    budgets=await rows(budgets),
                    rate_limits=await rows(rate_limits),
                    usage_policies=await rows(usage_policies),
                    mcp_servers=await rows(mcp_servers),
                    mcp_access_rules=await rows(mcp_access_rules),
                    mcp_tool_policies=await rows(mcp_tool_policies),
                    mcp_tool_pins=await rows(mcp_tool_pins),
                    oauth_issuers=await rows(oauth_issuers),
                )

    @asynccontextmanager
    async def change(self, actor: AuditActor) -> AsyncIterator[Change]:
        """One atomic admin change: everything inside commits, with its audit rows, or nothing."""
        try:
            async with self.engine.connect() as conn, conn.begin() as transaction:
                now = time.time()
                bumped = await conn.execute(
                    update(config_state)
                    .where(config_state.c.id == 1)
                    .values(version=config_state.c.version + 1, updated_at=now)
                    .returning(config_state.c.version, config_state.c.audit_head)
                )
                version, head = bumped.one()
                tx = Change(conn, actor, int(version), now, head)
                yield tx
                if tx.changed:
                    await conn.execute(
                        update(config_state).where(config_state.c.id == 1).values(audit_head=tx.head)
                    )
                else:
                    await transaction.rollback()  # nothing changed: the version stays where it was
        except IntegrityError as exc:
            raise Conflict(f"The change conflicts with a stored object: {exc.orig}") from exc


@dataclass
class Change:
    conn: AsyncConnection
    actor: AuditActor
    version: int
    now: float
    head: str
    changed: bool = False
    audited: list[Row] = field(default_factory=list)

    async def get(self, kind: Kind, object_id: str) -> Row | None:
        return await _get(self.conn, kind, object_id)

    async def require(self, kind: Kind, object_id: str) -> Row:
        row = await self.get(kind, object_id)
        if row is None:
            raise NotFound(f"No {kind.name} with id {object_id!r}.", param="id")
        return row

    async def find(self, kind: Kind, **equals: Any) -> Row | None:
        return await _find(self.conn, kind, equals)

    async def all(self, kind: Kind, **equals: Any) -> list[Row]:
        query = select(kind.table).order_by(kind.table.c.created_at, kind.table.c.id)
        query = _where_equals(query, kind.table, equals)
        return [_row(r) for r in await self.conn.execute(query)]

    async def create(self, kind: Kind, values: Mapping[str, Any], *, action: str = "create") -> Row:
        row = {"id": new_id(kind.id_prefix), **values}  # values may carry a chosen id
        if "version" in kind.table.c:
            row.update(version=1, created_at=self.now, updated_at=self.now)
            row.setdefault("source", "api")
        await self.conn.execute(insert(kind.table).values(**row))
        created = await self.require(kind, row["id"])
        await self.audit(action, kind, created, None, created)
        return created

    async def update(
        self,
        kind: Kind,
        object_id: str,
        values: Mapping[str, Any],
        *,
        expected_version: int | None = None,
        action: str = "update",
    ) -> Row:
        before = await self.require(kind, object_id)
        _check_version(kind, before, expected_version)
        if all(before.get(k) == v for k, v in values.items()):
            return before  # nothing to change: no version bump, no audit row
        await self.conn.execute(
            update(kind.table)
            .where(kind.table.c.id == object_id)
            .values(**values, version=before["version"] + 1, updated_at=self.now)
        )
        after = await self.require(kind, object_id)
        await self.audit(action, kind, after, before, after)
        return after

    async def delete(self, kind: Kind, object_id: str, *, expected_version: int | None = None) -> Row:
        before = await self.require(kind, object_id)
        _check_version(kind, before, expected_version)
        await self.conn.execute(delete(kind.table).where(kind.table.c.id == object_id))
        await self.audit("delete", kind, before, before, None)
        return before

    async def audit(self, action: str, kind: Kind, row: Row, before: Row | None, after: Row | None) -> None:
        workspace_id = row.get(kind.workspace_column) if kind.workspace_column else None
        entry = await audit.append(
            self.conn,
            prev_hash=self.head,
            at=self.now,
            config_version=self.version,
            actor_id=self.actor.id,
            actor_name=self.actor.name,
            action=f"{kind.name}.{action}",
            object_type=kind.name,
            object_id=row["id"],
            workspace_id=workspace_id,
            before=public(kind, before) if before is not None else None,
            after=public(kind, after) if after is not None else None,
        )
        self.head = entry["hash"]
        self.changed = True
        self.audited.append(entry)


def _check_version(kind: Kind, row: Row, expected: int | None) -> None:
    if expected is not None and row["version"] != expected:
        raise Conflict(
            f"The {kind.name} {row['id']!r} is at version {row['version']}, not {expected}; "
            "read it again and retry.",
            code="version_conflict",
        )


async def _get(conn: AsyncConnection, kind: Kind, object_id: str) -> Row | None:
    found = (await conn.execute(select(kind.table).where(kind.table.c.id == object_id))).first()
    return _row(found) if found is not None else None


async def _find(conn: AsyncConnection, kind: Kind, equals: Mapping[str, Any]) -> Row | None:
    query = _where_equals(select(kind.table), kind.table, equals)
    found = (await conn.execute(query.limit(1))).first()
    return _row(found) if found is not None else None


def _where_equals(query: Select, table: Table, equals: Mapping[str, Any]) -> Select:
    for column, value in equals.items():
        query = query.where(table.c[column].is_(None) if value is None else table.c[column] == value)
    return query


def _row(record: Any) -> Row:
    # Plain str keys: SQLAlchemy may hand back str subclasses, which orjson refuses as keys.
    return {str(k): v for k, v in record._mapping.items()}
