"""Secret integration options and headers encrypted at rest: ``integrations.sealed_ciphertext``.

Existing rows are sealed by the rule in ``governance/secret_fields.py`` (the rule as it is
when this runs): secrets move into the Fernet token and the clear columns keep masks. Older
audit rows carried those values in their before/after; they are masked too, and the hash
chain is recomputed from the first masked row, with an ``audit.redact`` row recording it. A
chain that did not verify before is not recomputed (that would hide the tampering): its rows
are masked and it keeps failing verification from where it failed.

SQLite zeroes the replaced values (``secure_delete``, see ``store/db.py``). PostgreSQL keeps
replaced row versions in the table files until they are vacuumed: run
``VACUUM FULL integrations, audit_log`` after upgrading to rewrite them.

The key is the one the application uses: handed over by ``store/migrate.py`` when the
caller has it, else ``LOCKGATE_SECRET_KEY`` or the SQLite key file, loaded only when there
is something to encrypt.

Revision ID: 7c1e5a9d3b20
Revises: 0004_budgets
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic import context, op

from lockgate.governance import secret_fields
from lockgate.governance.secrets import SecretBox, load_secret_box
from lockgate.store.audit import chain_hash

revision = "7c1e5a9d3b20"
down_revision = "0004_budgets"
branch_labels = None
depends_on = None

log = logging.getLogger("lockgate.migrations")

integrations = sa.table(
    "integrations",
    sa.column("id", sa.String),
    sa.column("provider", sa.String),
    sa.column("options", sa.JSON),
    sa.column("headers", sa.JSON),
    sa.column("sealed_ciphertext", sa.Text),
)
audit_log = sa.table(
    "audit_log",
    *(sa.column(c, sa.String) for c in ("actor_id", "actor_name", "action", "object_type", "object_id")),
    *(sa.column(c, sa.String) for c in ("workspace_id", "prev_hash", "hash")),
    sa.column("seq", sa.Integer),
    sa.column("at", sa.Float),
    sa.column("config_version", sa.BigInteger),
    sa.column("before", sa.JSON),
    sa.column("after", sa.JSON),
)
config_state = sa.table(
    "config_state", sa.column("id", sa.Integer), sa.column("version", sa.BigInteger),
    sa.column("audit_head", sa.String),
)  # fmt: skip


def _secret_box(bind: sa.Connection) -> SecretBox:
    given = context.config.attributes.get("secrets")
    if given is not None:
        return given
    from lockgate.settings import Settings

    database = bind.engine.url.database if bind.dialect.name == "sqlite" else None
    data_dir = Path(database).parent if database and database != ":memory:" else None
    return load_secret_box(Settings.from_env().secret_key, data_dir=data_dir)


def upgrade() -> None:
    with op.batch_alter_table("integrations") as batch:
        batch.add_column(sa.Column("sealed_ciphertext", sa.Text))
    bind = op.get_bind()
    box: SecretBox | None = None
    providers: dict[str, str] = {}
    for row in bind.execute(sa.select(integrations)).mappings():
        providers[row["id"]] = row["provider"]
        _, secret_options = secret_fields.split(row["provider"], "options", row["options"] or {})
        _, secret_headers = secret_fields.split(row["provider"], "headers", row["headers"] or {})
        if not (secret_options or secret_headers):
            continue
        box = box or _secret_box(bind)
        values = secret_fields.seal(box, row["provider"], row["options"] or {}, row["headers"] or {})
        bind.execute(sa.update(integrations).where(integrations.c.id == row["id"]).values(**values))
    _mask_audit(bind, providers)


def _masked_state(provider: str, state: Any) -> Any:
    if not isinstance(state, dict):
        return state
    out = dict(state)
    for column in secret_fields.COLUMNS:
        if isinstance(out.get(column), dict):
            out[column] = secret_fields.masked(provider, column, out[column])
    return out


def _mask_audit(bind: sa.Connection, providers: dict[str, str]) -> None:
    rows = [dict(r) for r in bind.execute(sa.select(audit_log).order_by(audit_log.c.seq)).mappings()]
    state = bind.execute(sa.select(config_state)).mappings().one()
    intact, prev = True, "0" * 64
    for row in rows:
        intact = intact and row["prev_hash"] == prev and chain_hash(prev, row) == row["hash"]
        prev = row["hash"]
    intact = intact and prev == state["audit_head"]
    masked: list[int] = []
    prev = "0" * 64
    for row in rows:
        if row["object_type"] == "integration":
            # A deleted integration's provider is still in its audit rows.
            provider = providers.get(row["object_id"]) or next(
                (s["provider"] for s in (row["before"], row["after"]) if isinstance(s, dict)), ""
            )
            before, after = _masked_state(provider, row["before"]), _masked_state(provider, row["after"])
            if (before, after) != (row["before"], row["after"]):
                row.update(before=before, after=after)
                masked.append(row["seq"])
        if intact and masked:
            row.update(prev_hash=prev, hash=chain_hash(prev, row))
        prev = row["hash"]
        if masked and masked[0] <= row["seq"]:
            bind.execute(
                sa.update(audit_log)
                .where(audit_log.c.seq == row["seq"])
                .values(
                    before=row["before"], after=row["after"], prev_hash=row["prev_hash"], hash=row["hash"]
                )
            )
    if not masked:
        return
    if not intact:
        log.warning("the audit chain did not verify before this migration; it is masked, not re-chained")
        return
    note = {
        "at": time.time(),
        "config_version": state["version"],
        "actor_id": "migration",
        "actor_name": f"migration {revision}",
        "action": "audit.redact",
        "object_type": "audit",
        "object_id": revision,
        "workspace_id": None,
        "before": None,
        "after": {"masked_rows": masked, "rechained_from": masked[0]},
    }
    head = chain_hash(prev, note)
    bind.execute(sa.insert(audit_log).values(**note, prev_hash=prev, hash=head))
    bind.execute(sa.update(config_state).where(config_state.c.id == 1).values(audit_head=head))


def downgrade() -> None:
    # The older schema reads secrets from the clear columns: put them back.
    bind = op.get_bind()
    box: SecretBox | None = None
    for row in bind.execute(
        sa.select(integrations).where(integrations.c.sealed_ciphertext.isnot(None))
    ).mappings():
        box = box or _secret_box(bind)
        options, headers = secret_fields.open_fields(box, row)
        bind.execute(
            sa.update(integrations)
            .where(integrations.c.id == row["id"])
            .values(options=options, headers=headers)
        )
    with op.batch_alter_table("integrations") as batch:
        batch.drop_column("sealed_ciphertext")
