from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import text, update

from lockgate.errors import BadRequest, Conflict, NotFound
from lockgate.store import audit, migrate
from lockgate.store.control import API_KEY, WORKSPACE, AuditActor, ControlStore
from lockgate.store.db import Store
from lockgate.store.tables import DEFAULT_WORKSPACE_ID, audit_log

ALICE = AuditActor("usr_alice", "alice")


async def test_migrations_reach_head_and_seed_the_default_org(store: Store, control: ControlStore) -> None:
    assert await migrate.current_revision(store.engine) == migrate.head_revision()
    await store.migrate()  # a second run is a no-op
    state = await control.load_state()
    assert state.version == 1 and state.org["id"] == "org_default"
    assert [w["id"] for w in state.workspaces] == [DEFAULT_WORKSPACE_ID]


async def test_create_update_delete_bump_version_and_audit(control: ControlStore) -> None:
    async with control.change(ALICE) as tx:
        ws = await tx.create(WORKSPACE, {"org_id": "org_default", "name": "team-a", "metadata": {}})
    assert await control.version() == 2
    async with control.change(ALICE) as tx:
        updated = await tx.update(WORKSPACE, ws["id"], {"description": "Team A"}, expected_version=1)
    assert updated["version"] == 2 and updated["description"] == "Team A"
    async with control.change(ALICE) as tx:  # a no-op update changes nothing, not even the version
        await tx.update(WORKSPACE, ws["id"], {"description": "Team A"})
    assert await control.version() == 3
    async with control.change(ALICE) as tx:
        await tx.delete(WORKSPACE, ws["id"])
    assert await control.get(WORKSPACE, ws["id"]) is None
    rows, _ = await audit.entries(
        control.engine, equals={}, workspace_in=None, since=None, until=None, after_seq=None, limit=10
    )
    assert [r["action"] for r in rows] == ["workspace.delete", "workspace.update", "workspace.create"]
    assert rows[1]["before"]["description"] == "" and rows[1]["after"]["description"] == "Team A"
    assert all(r["actor_name"] == "alice" for r in rows)
    assert (await audit.verify(control.engine)).ok


async def test_stale_version_is_a_conflict_and_changes_nothing(control: ControlStore) -> None:
    async with control.change(ALICE) as tx:
        ws = await tx.create(WORKSPACE, {"org_id": "org_default", "name": "team-b", "metadata": {}})
    with pytest.raises(Conflict):
        async with control.change(ALICE) as tx:
            await tx.update(WORKSPACE, ws["id"], {"description": "x"}, expected_version=7)
    assert (await control.get(WORKSPACE, ws["id"]))["description"] == ""
    with pytest.raises(NotFound):
        async with control.change(ALICE) as tx:
            await tx.update(WORKSPACE, "ws_nope", {"description": "x"})
    assert await control.version() == 2


async def test_unique_names_conflict(control: ControlStore) -> None:
    async with control.change(ALICE) as tx:
        await tx.create(WORKSPACE, {"org_id": "org_default", "name": "dup", "metadata": {}})
    with pytest.raises(Conflict):
        async with control.change(ALICE) as tx:
            await tx.create(WORKSPACE, {"org_id": "org_default", "name": "dup", "metadata": {}})
    assert (await audit.verify(control.engine)).ok


async def test_concurrent_updates_lose_no_writes(control: ControlStore) -> None:
    async with control.change(ALICE) as tx:
        ws = await tx.create(WORKSPACE, {"org_id": "org_default", "name": "busy", "metadata": {}})

    async def set_description(i: int) -> None:
        async with control.change(AuditActor(f"usr_{i}", f"user{i}")) as tx:
            row = await tx.require(WORKSPACE, ws["id"])
            await tx.update(WORKSPACE, ws["id"], {"metadata": {**row["metadata"], f"k{i}": str(i)}})

    await asyncio.gather(*(set_description(i) for i in range(8)))
    final = await control.get(WORKSPACE, ws["id"])
    assert final["metadata"] == {f"k{i}": str(i) for i in range(8)}  # read-modify-write, none lost
    assert final["version"] == 9
    verdict = await audit.verify(control.engine)
    assert verdict.ok and verdict.checked == 9


async def test_pagination_walks_every_row_once(control: ControlStore) -> None:
    async with control.change(ALICE) as tx:
        for i in range(7):
            await tx.create(
                API_KEY,
                {
                    "workspace_id": DEFAULT_WORKSPACE_ID,
                    "name": f"k{i}",
                    "key_hash": f"{i:064x}",
                    "key_hint": "lg-...",
                    "status": "active",
                    "metadata": {},
                },
            )
    seen, cursor = [], None
    while True:
        page = await control.list(API_KEY, cursor=cursor, limit=3)
        seen += [r["name"] for r in page.data]
        assert all("key_hash" not in r for r in page.data)
        if not page.has_more:
            break
        cursor = page.next_cursor
    assert seen == [f"k{i}" for i in range(7)]
    odd = await control.list(API_KEY, keep=lambda r: int(r["name"][1:]) % 2 == 1, limit=2)
    assert [r["name"] for r in odd.data] == ["k1", "k3"] and odd.has_more
    with pytest.raises(BadRequest):
        await control.list(API_KEY, cursor="not-a-cursor")


async def test_verify_detects_an_edited_row_and_a_cut_tail(control: ControlStore) -> None:
    for name in ("one", "two", "three"):
        async with control.change(ALICE) as tx:
            await tx.create(WORKSPACE, {"org_id": "org_default", "name": name, "metadata": {}})
    assert (await audit.verify(control.engine)).ok
    async with control.engine.begin() as conn:
        await conn.execute(update(audit_log).where(audit_log.c.seq == 2).values(actor_name="mallory"))
    verdict = await audit.verify(control.engine)
    assert not verdict.ok and verdict.broken_at == 2 and "content" in (verdict.reason or "")
    async with control.engine.begin() as conn:
        await conn.execute(update(audit_log).where(audit_log.c.seq == 2).values(actor_name="alice"))
        await conn.execute(text("DELETE FROM audit_log WHERE seq = 3"))
    verdict = await audit.verify(control.engine)
    assert not verdict.ok and verdict.broken_at is None and "missing" in (verdict.reason or "")
