"""The GET stream's outboxes: bounded, deduplicated, and reaching only sessions that cover a server."""

from __future__ import annotations

from lockgate.mcp.notices import BACKLOG, Notices

CHANGED = {"jsonrpc": "2.0", "method": "notifications/tools/list_changed"}


def progress(n: int) -> dict[str, object]:
    return {"jsonrpc": "2.0", "method": "notifications/progress", "params": {"progress": n}}


async def test_backlog_keeps_the_newest_and_take_empties_it() -> None:
    notices = Notices()
    for n in range(BACKLOG + 5):
        notices.post("s1", "orders@1", progress(n))
    box = notices.box("s1")
    assert box.ready.is_set()
    taken = box.take()
    assert [m["params"]["progress"] for m in taken] == list(range(5, BACKLOG + 5))  # type: ignore[index]
    assert box.take() == [] and not box.ready.is_set()


async def test_a_list_change_heard_twice_is_said_once() -> None:
    notices = Notices()
    notices.post("s1", "orders@1", CHANGED)
    notices.broadcast("orders@1", CHANGED)
    assert notices.box("s1").take() == [CHANGED]


async def test_broadcast_reaches_only_sessions_that_cover_the_server() -> None:
    notices = Notices()
    notices.box("aggregate").addresses.update({"orders@1", "local@1"})
    notices.box("orders-only").addresses.add("orders@1")
    notices.broadcast("local@1", CHANGED)
    assert notices.box("aggregate").take() == [CHANGED]
    assert notices.box("orders-only").take() == []


async def test_the_least_recently_used_session_is_dropped() -> None:
    notices = Notices(sessions=2)
    notices.post("old", "orders@1", CHANGED)
    notices.post("mid", "orders@1", progress(1))
    notices.box("old")  # used again: "mid" is now the oldest
    notices.post("new", "orders@1", progress(2))
    assert notices.box("old").take() == [CHANGED]
    assert notices.box("mid").take() == []  # a fresh, empty outbox
