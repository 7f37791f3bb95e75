"""Keeps a worker's snapshot current: a cheap version poll, woken early by pub/sub.

Invariants:
- ``current`` is always a complete snapshot; a rebuild replaces it in one assignment.
- A failed reload is logged and retried on the next tick; the old snapshot keeps serving.
- The request path never waits on this loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from lockgate.admin.snapshot import Snapshot
from lockgate.state.notify import ConfigNotifier
from lockgate.store.control import ControlState, ControlStore

log = logging.getLogger("lockgate.snapshot")


class SnapshotLoader:
    def __init__(
        self,
        control: ControlStore,
        build: Callable[[ControlState], Snapshot],
        *,
        interval: float = 0.5,
        notifier: ConfigNotifier | None = None,
    ) -> None:
        self._control = control
        self._build = build
        self._interval = interval
        self._notifier = notifier
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._current: Snapshot | None = None
        self.reloads = 0
        self.failures = 0

    @property
    def current(self) -> Snapshot:
        if self._current is None:
            raise RuntimeError("the snapshot is not loaded yet")
        return self._current

    @property
    def loaded(self) -> bool:
        return self._current is not None

    async def load(self) -> Snapshot:
        state = await self._control.load_state()
        self._current = self._build(state)
        self.reloads += 1
        return self._current

    def start(self) -> None:
        if self._notifier is not None:
            self._notifier.subscribe(lambda _version: self.poke())
        self._task = asyncio.create_task(self._run(), name="lockgate-snapshot-loader")

    def poke(self) -> None:
        """Check the version now rather than at the next tick (after a local change or a notice)."""
        self._wakeup.set()

    async def refresh(self) -> Snapshot:
        """Reload if the stored version moved; used right after this worker made a change."""
        if self._current is None or await self._control.version() != self._current.version:
            return await self.load()
        return self._current

    async def _run(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wakeup.wait(), self._interval)
            self._wakeup.clear()
            try:
                await self.refresh()
            except Exception:
                self.failures += 1
                log.exception(
                    "reloading the config snapshot failed; still serving version %s",
                    self._current.version if self._current else None,
                )

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
