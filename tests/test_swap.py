"""costaudit.swap: a builder writes a copy and swaps it in; readers and other writers are safe."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

import duckdb
import pytest

from costaudit.store import connect
from costaudit.swap import (
    StoreBusy,
    StoreChanged,
    building_path,
    building_store,
    lock_path,
    store_lock,
    wal_path,
)


def _make_store(path: Path, rows: int = 3) -> None:
    con = connect(path)
    con.execute("CREATE TABLE sample AS SELECT range AS x FROM range(?)", [rows])
    con.close()


def _count(path: Path) -> int:
    con = connect(path, read_only=True)
    try:
        return con.execute("SELECT count(*) FROM sample").fetchall()[0][0]
    finally:
        con.close()


def test_clean_exit_swaps_the_copy_in(tmp_path):
    store = tmp_path / "store.duckdb"
    _make_store(store)
    before = store.stat().st_ino
    with building_store(store, wait=0) as con:
        con.execute("INSERT INTO sample VALUES (100)")
        # Readers are never blocked by a build: the store itself is not open for writing.
        assert _count(store) == 3
        assert building_path(store).exists()
    assert _count(store) == 4
    assert store.stat().st_ino != before, "the store was replaced, not written in place"
    assert not building_path(store).exists() and not wal_path(store).exists()
    assert lock_path(store).exists()


def test_first_build_creates_the_store(tmp_path):
    store = tmp_path / "new.duckdb"
    with building_store(store, wait=0) as con:
        con.execute("CREATE TABLE sample AS SELECT 1 AS x")
    assert _count(store) == 1


def test_failure_keeps_the_store_and_removes_the_copy(tmp_path):
    store = tmp_path / "store.duckdb"
    _make_store(store)
    identity = (store.stat().st_ino, store.stat().st_mtime_ns)
    with pytest.raises(RuntimeError, match="boom"):
        with building_store(store, wait=0) as con:
            con.execute("DELETE FROM sample")
            raise RuntimeError("boom")
    assert (store.stat().st_ino, store.stat().st_mtime_ns) == identity
    assert _count(store) == 3
    assert not building_path(store).exists() and not wal_path(building_path(store)).exists()


def test_a_second_builder_waits_for_the_lock(tmp_path):
    store = tmp_path / "store.duckdb"
    _make_store(store)
    acquired = threading.Event()
    errors: list[BaseException] = []

    def second() -> None:
        try:
            with store_lock(store, wait=30):
                acquired.set()
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    with store_lock(store, wait=0):
        with pytest.raises(StoreBusy, match=r"another costaudit run is writing this store \(pid \d+"):
            with building_store(store, wait=0):
                pass
        thread = threading.Thread(target=second)
        thread.start()
        assert not acquired.is_set()  # it cannot have the lock while this block holds it
    assert acquired.wait(30), "the waiting builder never got the lock"
    thread.join(30)
    assert not errors


def test_an_open_writer_makes_the_builder_wait_then_stop(tmp_path):
    """A process holding the store read-write (say `costaudit load`) excludes the snapshot."""
    store = tmp_path / "store.duckdb"
    _make_store(store)
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import duckdb, sys; con = duckdb.connect(sys.argv[1]); print('ready', flush=True); sys.stdin.read()",
         str(store)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "ready"
        with pytest.raises(StoreBusy, match="open for writing by another costaudit process"):
            with building_store(store, wait=0.5):
                pass
    finally:
        holder.stdin.close()
        holder.wait(30)
    assert not building_path(store).exists()


def test_a_write_during_the_build_refuses_the_swap(tmp_path):
    """`costaudit load` does not take the builder's lock: its write must not be lost."""
    store = tmp_path / "store.duckdb"
    _make_store(store)
    with pytest.raises(StoreChanged, match="written by another costaudit command"):
        with building_store(store, wait=0) as con:
            con.execute("DELETE FROM sample")
            other = connect(store)
            other.execute("INSERT INTO sample VALUES (7)")
            other.close()
    assert _count(store) == 4  # the other writer's row is kept
    assert not building_path(store).exists()


def test_a_wal_left_by_a_crash_is_folded_in(tmp_path):
    store = tmp_path / "store.duckdb"
    _make_store(store)
    crash = (
        "import duckdb, os, sys\n"
        "con = duckdb.connect(sys.argv[1])\n"
        "con.execute(\"SET checkpoint_threshold = '1TB'\")\n"
        "con.execute('INSERT INTO sample VALUES (42)')\n"
        "os._exit(0)\n"  # no close, no checkpoint: the insert lives only in the WAL
    )
    subprocess.run([sys.executable, "-c", crash, str(store)], check=True, timeout=60)
    assert wal_path(store).exists()
    with building_store(store, wait=0) as con:
        assert con.execute("SELECT count(*) FROM sample WHERE x = 42").fetchall() == [(1,)]
        con.execute("INSERT INTO sample VALUES (43)")
    assert not wal_path(store).exists(), "the old store's WAL must not be replayed against the new file"
    check = duckdb.connect(str(store), read_only=True)
    assert check.execute("SELECT count(*), sum(x) FROM sample").fetchall() == [(5, 0 + 1 + 2 + 42 + 43)]
    check.close()


def test_memory_store_is_a_usage_error():
    from costaudit.errors import UsageError

    with pytest.raises(UsageError, match="needs a file"):
        with building_store(":memory:", wait=0):
            pass


def test_lock_records_its_holder(tmp_path):
    store = tmp_path / "store.duckdb"
    with store_lock(store, wait=0):
        text = lock_path(store).read_text()
    assert text.startswith("pid ") and str(time.gmtime().tm_year) in text
