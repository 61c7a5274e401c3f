"""One writer at a time, readers never blocked: build the store in a copy, then swap it in.

DuckDB lets one process open a database file read-write, and while it does, no other process
can open it at all, not even read-only. A scheduled `costaudit run` writes for minutes; during
that time `costaudit sql`, `report` and `summary` must keep working. So a builder never opens
the store itself for writing:

    with building_store(path, wait=300) as con:
        load_paths(con, ...)          # every write goes to <store>.building
    # a clean exit swapped the work in; an exception left the store exactly as it was

Order of work
1. **Lock.** ``<store>.lock`` is locked (``fcntl.flock``, exclusive) for the whole build, so two
   builders queue: the second waits up to ``wait`` seconds, then stops with `StoreBusy` naming
   the process that holds it. The lock file stays in place (removing a flock file races).
2. **Snapshot.** The store is opened read-only, which takes DuckDB's shared file lock: no writer
   can be active while ``<store>`` and, when present, its write-ahead log ``<store>.wal`` are
   copied to ``<store>.building`` and ``<store>.building.wal``. (A WAL is left only by a writer
   that did not close cleanly; a read-only open replays it in memory, and so does the copy.)
3. **Build.** ``<store>.building`` is opened read-write through `costaudit.store.connect` (which
   replays the copied WAL and brings the schema up to date); the body runs; ``CHECKPOINT`` and
   close fold every change into the file, so no WAL is left beside it.
4. **Swap.** The store is opened read-only again (no writer mid-write) and must still be the
   very file that was copied (inode, size, modification time, and its WAL); otherwise a command
   that does not take the lock (say `costaudit load`) wrote meanwhile, and the swap is refused
   rather than losing that write. Then ``os.replace(<store>.building, <store>)`` (atomic on POSIX),
   removal of the old store's WAL if one was copied (DuckDB refuses a WAL of another checkpoint
   iteration rather than replaying it, so a reader racing this step gets an error, never wrong
   data), and an fsync of the folder.

Readers that opened the store before the swap keep reading the old file until they close it;
the next open sees the new one. A failed build removes ``<store>.building*`` and keeps the store.
"""

from __future__ import annotations

import errno
import fcntl
import logging
import os
import re
import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

import duckdb

from costaudit.errors import CostauditError, UsageError

log = logging.getLogger(__name__)

DEFAULT_WAIT = 300.0
POLL_SECONDS = 0.2
Identity = tuple[int, int, int] | None


class StoreBusy(CostauditError):
    """Another process holds the store (a builder's lock, or DuckDB's writer lock) too long."""


class StoreChanged(CostauditError):
    """The store was written by a process that does not take the builder's lock during a build."""


def wal_path(path: Path) -> Path:
    """DuckDB's write-ahead log beside a database file."""
    return path.with_name(path.name + ".wal")


def building_path(path: Path) -> Path:
    return path.with_name(path.name + ".building")


def lock_path(path: Path) -> Path:
    return path.with_name(path.name + ".lock")


def _identity(path: Path) -> Identity:
    try:
        stat = os.stat(path)
    except FileNotFoundError:
        return None
    return (stat.st_ino, stat.st_size, stat.st_mtime_ns)


def _wait_until(deadline: float, attempt: Callable[[], bool]) -> bool:
    """Call `attempt` until it returns True or the deadline passes (polling, no busy loop)."""
    while True:
        if attempt():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(POLL_SECONDS)


@contextmanager
def store_lock(path: str | Path, *, wait: float = DEFAULT_WAIT) -> Iterator[None]:
    """Hold ``<store>.lock`` exclusively; wait up to `wait` seconds for another holder.

    The file records the holder's pid and start time for the message a waiting process prints."""
    target = lock_path(Path(path))
    handle: IO[str] = open(target, "a+", encoding="utf-8")  # noqa: SIM115 -- held for the whole block

    def take() -> bool:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except OSError as exc:
            if exc.errno not in (errno.EAGAIN, errno.EACCES):
                raise
            return False

    try:
        if not take():
            holder = target.read_text(encoding="utf-8").strip() or "another process"
            log.info("%s is being built by %s; waiting up to %s s", path, holder, _seconds(wait))
            if not _wait_until(time.monotonic() + wait, take):
                raise StoreBusy(
                    f"{path}: another costaudit run is writing this store ({holder}); waited {_seconds(wait)} s. "
                    "Try again later, or pass --wait SECONDS to wait longer"
                )
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()}, since {datetime.now(UTC):%Y-%m-%d %H:%M:%S} UTC\n")
        handle.flush()
        yield
    finally:
        handle.close()  # closing the descriptor releases the flock


def _seconds(value: float) -> str:
    return f"{value:g}"


@contextmanager
def _shared(path: Path, deadline: float, wait: float) -> Iterator[None]:
    """Hold DuckDB's shared (reader) lock on the store, so no writer is active meanwhile.

    Waits for a writer (say `costaudit load`) until the deadline. A missing store needs no lock."""
    if not path.exists():
        yield
        return
    from costaudit.store import connect  # same configuration as every other connection of this process

    holder: list[duckdb.DuckDBPyConnection] = []
    problem: list[str] = []

    def attach() -> bool:
        try:
            holder.append(connect(path, read_only=True))
            return True
        except CostauditError as exc:
            if "in use" not in str(exc):  # not a lock: waiting will not help
                raise
            problem[:] = [str(exc)]
            return False
        except duckdb.Error as exc:  # this process holds the store with another configuration
            raise StoreBusy(f"{path}: cannot share the store ({str(exc).splitlines()[0]})") from None

    if not _wait_until(deadline, attach):
        raise StoreBusy(
            f"{path}: the store is open for writing by another costaudit process (load, import, audit ...); "
            f"waited {_seconds(wait)} s (--wait){_detail(problem[0])}"
        )
    try:
        yield
    finally:
        holder[0].close()


def _detail(message: str) -> str:
    """DuckDB's own words from a store.connect message ("... (IO Error: ...)"), for the curious."""
    found = re.search(r"\((.*)\)$", message)
    return f" [{found.group(1)}]" if found else ""


def _remove(*paths: Path) -> None:
    for item in paths:
        item.unlink(missing_ok=True)


def _fsync(path: Path) -> None:
    flags = os.O_RDONLY | (os.O_DIRECTORY if path.is_dir() else 0)
    fd = os.open(path, flags)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextmanager
def building_store(path: str | Path, *, wait: float = DEFAULT_WAIT) -> Iterator[duckdb.DuckDBPyConnection]:
    """A read-write connection to a copy of the store, swapped over the store on a clean exit.

    `wait` bounds, in seconds, both the wait for another builder's lock and for a writer that
    holds DuckDB's own lock on the store. Raises `StoreBusy` past it and `StoreChanged` when a
    process that does not take the lock wrote the store during the build (the store then keeps
    that write and this build is dropped)."""
    from costaudit.store import connect  # the store imports the rules schema; keep this module light

    store = Path(path)
    if str(store) == ":memory:":
        raise UsageError("building a store needs a file (--db PATH), not :memory:")
    store = store.resolve()
    if not store.parent.is_dir():
        raise UsageError(f"{store.parent}: folder not found for the store")
    building = building_path(store)
    deadline = time.monotonic() + wait
    with store_lock(store, wait=wait):
        # Leftovers of a build that crashed: nobody else builds while we hold the lock.
        _remove(building, wal_path(building))
        with _shared(store, deadline, wait):
            before = (_identity(store), _identity(wal_path(store)))
            if before[0] is not None:
                shutil.copyfile(store, building)
                if before[1] is not None:
                    log.warning("%s has a write-ahead log left by an unclean exit; it is folded into the new store",
                                store)
                    shutil.copyfile(wal_path(store), wal_path(building))
        log.debug("building %s from %s", building, store if before[0] else "an empty store")
        try:
            con = connect(building)
            try:
                yield con
                con.execute("CHECKPOINT")
            finally:
                con.close()
            if wal_path(building).exists() and wal_path(building).stat().st_size:
                raise CostauditError(f"{building}: DuckDB left a write-ahead log after closing; the store was not replaced")
            _remove(wal_path(building))
            _fsync(building)
            with _shared(store, time.monotonic() + wait, wait):
                after = (_identity(store), _identity(wal_path(store)))
                if after != before:
                    raise StoreChanged(
                        f"{store}: the store was written by another costaudit command while this run was building "
                        "its copy; nothing was replaced (the other command's work is kept). Run again"
                    )
                os.replace(building, store)
                if before[1] is not None:
                    _remove(wal_path(store))  # it belonged to the file just replaced
            _fsync(store.parent)
            log.debug("swapped %s into place", store)
        except BaseException:
            _remove(building, wal_path(building))
            raise
