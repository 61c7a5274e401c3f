"""SIGKILL at several points of `costaudit load` leaves the store at its previous consistent state,
and a rerun completes with exact totals."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path

import pytest

from costaudit.store import connect

from .focus_rows import row, write

COSTAUDIT = [sys.executable, "-m", "costaudit.cli"]


def _state(db: Path):
    con = connect(db, read_only=True)
    try:
        return (
            con.execute(
                "SELECT BillingAccountId, strftime(BillingPeriodStart, '%Y-%m'), sum(BilledCost), count(*)"
                " FROM line_items GROUP BY ALL ORDER BY ALL"
            ).fetchall(),
            con.execute("SELECT load_id, status FROM loads ORDER BY ALL").fetchall(),
        )
    finally:
        con.close()


def _kill_at(point: str, args: list[str], tmp_path: Path) -> None:
    marker = tmp_path / f"paused-{point.replace(':', '-')}"
    env = {**os.environ, "COSTAUDIT_PAUSE_AT": point, "COSTAUDIT_PAUSE_FILE": str(marker)}
    process = subprocess.Popen([*COSTAUDIT, *args], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while not marker.exists():
        if process.poll() is not None:
            raise AssertionError(f"costaudit ended before {point}: {process.stderr.read().decode()}")
        if time.monotonic() > deadline:
            process.kill()
            raise AssertionError(f"costaudit never reached {point}")
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    assert process.returncode == -signal.SIGKILL


@pytest.mark.parametrize("point", ["load:after-read", "load:mid-transaction", "load:before-commit"])
def test_sigkill_during_load_keeps_the_previous_state(point, tmp_path):
    db = tmp_path / "store.duckdb"
    first = write(tmp_path / "v1.csv", [row(cost="1.10"), row(account="222", cost="2.20")])
    subprocess.run([*COSTAUDIT, "--db", str(db), "load", "--quiet", str(first)], check=True)
    before = _state(db)

    newer = write(
        tmp_path / "v2.csv",
        [row(cost="5.55")] * 500 + [row(account="222", cost="0.01")] + [row(period="2024-10", cost="9.99")],
    )
    _kill_at(point, ["--db", str(db), "load", "--quiet", str(newer)], tmp_path)
    assert _state(db) == before, f"killed at {point}: the store must be exactly as before"

    done = subprocess.run([*COSTAUDIT, "--db", str(db), "load", "--quiet", str(newer)], capture_output=True)
    assert done.returncode == 0, done.stderr.decode()
    totals, loads = _state(db)
    assert totals == [
        ("111", "2024-09", Decimal("2775.00"), 500),
        ("111", "2024-10", Decimal("9.99"), 1),
        ("222", "2024-09", Decimal("0.01"), 1),
    ]
    assert sorted(status for _, status in loads) == ["active", "active", "active", "replaced", "replaced"]


def _demo(tmp_path: Path) -> Path:
    """A costaudit.toml over a copy of two fixture rooms, reports into tmp."""
    from .conftest import FIXTURES

    config = tmp_path / "costaudit.toml"
    config.write_text(
        f"""
[[sources]]
name = "bills"
provider = "local"
path = ["{FIXTURES / 'focus'}", "{FIXTURES / 'gcp'}"]

[reports]
formats = ["html", "json"]
out = "{tmp_path / 'reports'}"

[run]
fail_on = "none"
"""
    )
    return config


WINDOW = ["--since", "2024-01", "--until", "2024-12"]


@pytest.mark.parametrize("point", ["load:after-read", "load:mid-transaction", "run:before-swap", "run:mid-report"])
def test_sigkill_during_run_keeps_a_consistent_store(point, tmp_path):
    db = tmp_path / "store.duckdb"
    config = _demo(tmp_path)
    first = write(tmp_path / "v1.csv", [row(cost="1.10")])
    subprocess.run([*COSTAUDIT, "--db", str(db), "load", "--quiet", str(first)], check=True)
    before = _state(db)

    _kill_at(point, ["--db", str(db), "--quiet", "run", "--config", str(config), *WINDOW], tmp_path)
    after = _state(db)
    if point == "run:mid-report":
        # the run was swapped in before the reports: the new, whole store; no partial report file
        assert after != before and set(before[0]) <= set(after[0])
        reports = tmp_path / "reports"
        assert not list(reports.glob("*.tmp*")) and not list(reports.glob(".*"))
        for written in reports.glob("costaudit-*"):
            assert written.stat().st_size > 0
    else:
        assert after == before, f"killed at {point}: the store must be exactly as before"

    done = subprocess.run([*COSTAUDIT, "--db", str(db), "--quiet", "run", "--config", str(config), *WINDOW],
                          capture_output=True)
    assert done.returncode == 0, done.stderr.decode()
    con = connect(db, read_only=True)
    try:
        # exact totals: every loaded partition reconciles, and the bills of the run are all there
        mismatched = con.execute(
            "SELECT count(*) FROM load_totals t JOIN loads l USING (load_id) WHERE l.status = 'active'"
            " AND abs(t.source_total - t.stored_total) > 0.01"
        ).fetchone()[0]
        assert mismatched == 0
        assert con.execute("SELECT count(*) FROM runs").fetchone()[0] >= 1
        assert con.execute("SELECT count(DISTINCT ProviderName) FROM current_line_items").fetchone()[0] >= 3
    finally:
        con.close()
    assert list((tmp_path / "reports").glob("costaudit-*.html")), "the rerun writes its report"
