"""The writer's overflow: records that do not fit in memory go to a local JSONL file.

Each process appends to its own file (``records-<pid>-<n>.jsonl``); to replay
it, the writer first renames it (``….replay-<pid>``), so new overflow goes to
a fresh file while the old one is read. A file left behind by a process that
died (its pid is gone) is claimed by whichever live writer renames it first;
the rename is atomic, so two workers never replay the same file. Replays are
written with ``dedupe``, so a file replayed twice after a crash counts once.

The bytes held in files this process wrote and has not replayed yet are
bounded by ``max_bytes``; past that a record is lost, and counted as dropped.
"""

from __future__ import annotations

import contextlib
import itertools
import os
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import orjson

_PREFIX = "records-"


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


def _owner(path: Path) -> int | None:
    """The pid that may still be using a spill file, from its name."""
    name = path.name
    try:
        if ".replay-" in name:
            return int(name.rsplit(".replay-", 1)[1])
        return int(name[len(_PREFIX) :].split("-", 1)[0])
    except ValueError:
        return None


class SpillFile:
    def __init__(self, directory: Path, *, max_bytes: int) -> None:
        self.directory = directory
        self.max_bytes = max_bytes
        self.pending_bytes = 0  # written by this process and not replayed yet
        self._serial = itertools.count()
        self._file: IO[bytes] | None = None
        self._path: Path | None = None
        self._claimed: dict[Path, int] = {}  # file being replayed -> bytes it counts for

    def write(self, row: dict[str, Any]) -> bool:
        """Append one record; False when the bound is reached (the caller counts a drop)."""
        line = orjson.dumps(row, option=orjson.OPT_APPEND_NEWLINE)
        if self.pending_bytes + len(line) > self.max_bytes:
            return False
        if self._file is None:
            self.directory.mkdir(parents=True, exist_ok=True)
            self._path = self.directory / f"{_PREFIX}{os.getpid()}-{next(self._serial)}.jsonl"
            # Buffered: an append lands in the page cache, it does not wait for the disk.
            self._file = open(self._path, "ab")  # noqa: SIM115 - held open across calls
        self._file.write(line)
        self.pending_bytes += len(line)
        return True

    def claim(self) -> Path | None:
        """A file to replay now: an interrupted replay, this process's overflow, or a dead one's."""
        if self._claimed:
            return next(iter(self._claimed))
        if self._file is not None and self._path is not None:
            self._file.close()
            claimed = self._path.with_name(f"{self._path.name}.replay-{os.getpid()}")
            os.rename(self._path, claimed)
            self._claimed[claimed] = claimed.stat().st_size
            self._file = self._path = None
            return claimed
        if not self.directory.is_dir():
            return None
        for path in sorted(self.directory.glob(f"{_PREFIX}*")):
            owner = _owner(path)
            if owner is None or _alive(owner):
                continue
            claimed = path.with_name(f"{path.name.split('.replay-')[0]}.replay-{os.getpid()}")
            try:
                os.rename(path, claimed)
            except FileNotFoundError:  # another worker got there first
                continue
            self._claimed[claimed] = 0  # not part of this process's bound
            return claimed
        return None

    @staticmethod
    def read(path: Path, batch_size: int) -> Iterator[list[dict[str, Any]]]:
        batch: list[dict[str, Any]] = []
        with open(path, "rb") as f:
            for line in f:
                try:
                    batch.append(orjson.loads(line))
                except orjson.JSONDecodeError:
                    continue  # a torn last line from a crash mid-write
                if len(batch) >= batch_size:
                    yield batch
                    batch = []
        if batch:
            yield batch

    def done(self, path: Path) -> None:
        self.pending_bytes = max(0, self.pending_bytes - self._claimed.pop(path, 0))
        with contextlib.suppress(FileNotFoundError):
            path.unlink()

    def has_work(self) -> bool:
        return self._file is not None or bool(self._claimed) or self._orphans()

    def _orphans(self) -> bool:
        if not self.directory.is_dir():
            return False
        for path in self.directory.glob(f"{_PREFIX}*"):
            owner = _owner(path)
            if owner is not None and not _alive(owner):
                return True
        return False

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
