"""The migration sealing secret integration options stored in clear before it (SQLite and PostgreSQL)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic.script import ScriptDirectory
from sqlalchemy import select, update

from lockgate.governance import secret_fields
from lockgate.governance.secrets import SecretBox
from lockgate.store import audit, migrate
from lockgate.store.db import Store
from lockgate.store.tables import audit_log, config_state, integrations
from tests.store.conftest import fresh_database_url

SEALING = "7c1e5a9d3b20"
BOX = SecretBox("migration-test-key")
AWS_SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
ENTRA_SECRET = "entra-client-secret-0123456789"
PEM = "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC-not-a-key\n-----END PRIVATE KEY-----\n"
SECRETS = (AWS_SECRET, ENTRA_SECRET, "MIIEvQIBADANBgkqhkiG9w0B", "Bearer static-token-0123456789")

# The revision before the sealing one, and its integrations table (no sealed_ciphertext yet).
BEFORE = ScriptDirectory.from_config(migrate.alembic_config()).get_revision(SEALING).down_revision
integrations_before = sa.table(
    "integrations",
    *(sa.column(c) for c in ("id", "name", "provider", "base_url", "secret_ciphertext", "secret_hint")),
    *(sa.column(c, sa.JSON) for c in ("headers", "options", "workspace_ids", "allowed_models")),
    *(sa.column(c) for c in ("version", "source", "created_at", "updated_at")),
)
ACCOUNT = {"client_email": "a@p", "private_key": PEM, "token_uri": "https://t"}
ROWS = [
    ("int_aws", "aws", "bedrock", {"region": "us-west-2", "access_key_id": "AKIDEXAMPLE00001",
                                   "secret_access_key": AWS_SECRET}, {}),
    ("int_az", "az", "azure", {"entra": {"tenant_id": "t", "client_id": "c", "client_secret": ENTRA_SECRET}},
     {"x-trace": "on"}),
    ("int_gcp", "gcp", "vertex", {"project": "p", "service_account": ACCOUNT},
     {"Authorization": "Bearer static-token-0123456789"}),
    ("int_plain", "plain", "openai", {"organization": "org-1"}, {}),
]  # fmt: skip


@pytest.fixture(params=["sqlite", "postgresql"])
async def old_store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    """A database at the revision before sealing, holding secret options in clear, with their audit rows."""
    url = await fresh_database_url(request.param, tmp_path, request)
    store = Store(url)
    await migrate.upgrade(store.engine, BEFORE)
    async with store.engine.begin() as conn:
        head = (await conn.execute(select(config_state.c.audit_head))).scalar_one()
        now = time.time()
        for i, (row_id, name, provider, options, headers) in enumerate(ROWS):
            row = {"id": row_id, "name": name, "provider": provider, "base_url": "https://x",
                   "headers": headers, "options": options, "version": 1, "source": "api",
                   "created_at": now, "updated_at": now}  # fmt: skip
            if row_id != "int_gcp":  # deleted since: only its audit rows remain
                await conn.execute(sa.insert(integrations_before).values(**row))
            head = await _audit(conn, head, now, i, "integration", row_id, None, row)
        # A later change to something else: the re-chained tail must verify too.
        head = await _audit(conn, head, now, 9, "workspace", "ws_default", None, {"description": "x"})
        await conn.execute(update(config_state).values(audit_head=head))
    assert (await audit.verify(store.engine)).ok
    await store.close()  # on SQLite, this writes the clear values into the file itself
    store = Store(url)
    yield store
    await store.close()


async def _audit(
    conn: Any, head: str, now: float, i: int, kind: str, oid: str, before: Any, after: Any
) -> str:
    entry = await audit.append(
        conn, prev_hash=head, at=now + i, config_version=1, actor_id="usr_old", actor_name="old",
        action=f"{kind}.create", object_type=kind, object_id=oid, workspace_id=None,
        before=before, after=after,
    )  # fmt: skip
    return entry["hash"]


async def _dump(store: Store) -> str:
    text = ""
    async with store.engine.connect() as conn:
        for table in (integrations, audit_log):
            text += str(list(await conn.execute(select(table))))
    if store.sqlite_path:
        await store.close()  # checkpoints the WAL into the file
        text += (await asyncio.to_thread(Path(store.sqlite_path).read_bytes)).decode("latin-1")
    return text


async def test_upgrade_seals_clear_options_and_masks_the_audit_trail(old_store: Store) -> None:
    await old_store.migrate(secrets=BOX)
    async with old_store.engine.connect() as conn:
        rows = {r.id: r._mapping for r in await conn.execute(select(integrations))}
    aws, az, plain = rows["int_aws"], rows["int_az"], rows["int_plain"]
    assert aws["options"] == {
        "region": "us-west-2",
        "access_key_id": "AKI...0001",
        "secret_access_key": "wJa...EKEY",
    }
    assert az["options"]["entra"]["client_secret"] == "ent...6789" and az["headers"] == {"x-trace": "on"}
    assert plain["options"] == {"organization": "org-1"} and plain["sealed_ciphertext"] is None
    assert secret_fields.open_fields(BOX, aws) == (dict(ROWS[0][3]), {})
    assert secret_fields.open_fields(BOX, az)[0] == ROWS[1][3]

    verdict = await audit.verify(old_store.engine)
    assert verdict.ok and verdict.checked == len(ROWS) + 2  # the old rows and the audit.redact note
    rows, _ = await audit.entries(
        old_store.engine, equals={}, workspace_in=None, since=None, until=None, after_seq=None, limit=10
    )
    note, *older = rows
    assert note["action"] == "audit.redact" and note["after"] == {
        "masked_rows": [1, 2, 3],
        "rechained_from": 1,
    }
    gcp = next(r for r in older if r["object_id"] == "int_gcp")["after"]
    assert gcp["options"]["service_account"] == "****" and gcp["headers"] == {"Authorization": "Bea...6789"}
    dump = await _dump(old_store)
    assert "wJa...EKEY" in dump  # the dump does see the masked rows
    assert not [s for s in SECRETS if s in dump]


async def test_a_broken_audit_chain_is_masked_but_not_rechained(old_store: Store) -> None:
    async with old_store.engine.begin() as conn:
        await conn.execute(update(audit_log).where(audit_log.c.seq == 4).values(actor_name="mallory"))
    await old_store.migrate(secrets=BOX)
    verdict = await audit.verify(old_store.engine)
    assert not verdict.ok and verdict.broken_at == 1  # masking row 1 broke it there; not laundered
    async with old_store.engine.connect() as conn:
        actions = [r.action for r in await conn.execute(select(audit_log.c.action))]
    assert "audit.redact" not in actions
    dump = await _dump(old_store)
    assert not [s for s in SECRETS if s in dump]


async def test_downgrade_puts_the_values_back_for_the_older_schema(old_store: Store) -> None:
    await old_store.migrate(secrets=BOX)
    await migrate.downgrade(old_store.engine, BEFORE, secrets=BOX)
    async with old_store.engine.connect() as conn:
        rows = {r.id: r._mapping for r in await conn.execute(select(integrations_before))}
    assert rows["int_aws"]["options"] == ROWS[0][3] and rows["int_az"]["options"] == ROWS[1][3]


async def test_without_a_key_handed_over_it_loads_the_applications_key(
    old_store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LOCKGATE_SECRET_KEY", "migration-test-key")
    await old_store.migrate()  # as `lockgate db upgrade` runs it
    async with old_store.engine.connect() as conn:
        aws = (await conn.execute(select(integrations).where(integrations.c.id == "int_aws"))).one()._mapping
    assert secret_fields.open_fields(BOX, aws)[0]["secret_access_key"] == AWS_SECRET
