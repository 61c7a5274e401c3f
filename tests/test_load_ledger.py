"""The load ledger: idempotent reloads, replacement of a period, and all-or-nothing failures."""

from __future__ import annotations

from decimal import Decimal

import pytest

from costaudit.connectors.formats.focus import FocusFormat
from costaudit.errors import InputError, ReconciliationError
from costaudit.loader import load_paths

from .focus_rows import row, write


def _state(con):
    totals = con.execute(
        "SELECT BillingAccountId, strftime(BillingPeriodStart, '%Y-%m'), sum(BilledCost), count(*)"
        " FROM line_items GROUP BY ALL ORDER BY ALL"
    ).fetchall()
    loads = con.execute(
        "SELECT load_id, status, billing_account_id, strftime(billing_period_start, '%Y-%m') FROM loads ORDER BY ALL"
    ).fetchall()
    return totals, loads


def test_loading_the_same_file_twice_changes_nothing(store, tmp_path):
    path = write(tmp_path / "sep.csv", [row(cost="1.10"), row(cost="2.20"), row(account="222", cost="5")])
    first = load_paths(store, [str(path)])
    before = _state(store)
    second = load_paths(store, [str(path)])
    assert {p.action for p in first.partitions} == {"loaded"}
    assert {p.action for p in second.partitions} == {"unchanged"}
    assert not second.changed
    assert _state(store) == before
    assert before[0] == [("111", "2024-09", Decimal("3.30"), 2), ("222", "2024-09", Decimal("5"), 1)]


def test_newer_delivery_replaces_the_period_in_the_ledger(store, tmp_path):
    v1 = write(tmp_path / "v1.csv", [row(cost="1.00"), row(cost="2.00")])
    v2 = write(tmp_path / "v2.csv", [row(cost="1.00"), row(cost="2.00"), row(cost="0.50")])
    load_paths(store, [str(v1)])
    report = load_paths(store, [str(v2)])
    assert [p.action for p in report.partitions] == ["replaced"]
    totals, loads = _state(store)
    assert totals == [("111", "2024-09", Decimal("3.50"), 3)]
    assert sorted(status for _, status, _, _ in loads) == ["active", "replaced"]
    replaced = store.execute("SELECT replaced_by FROM loads WHERE status = 'replaced'").fetchone()[0]
    active = store.execute("SELECT load_id FROM loads WHERE status = 'active'").fetchone()[0]
    assert replaced == active
    # every stored row belongs to the active load
    assert store.execute("SELECT DISTINCT x_LoadId FROM line_items").fetchall() == [(active,)]


def test_replacement_touches_only_the_periods_delivered(store, tmp_path):
    both = write(tmp_path / "aug_sep.csv", [row(period="2024-08", cost="4"), row(period="2024-09", cost="1")])
    sep_only = write(tmp_path / "sep.csv", [row(period="2024-09", cost="9")])
    load_paths(store, [str(both)])
    load_paths(store, [str(sep_only)])
    totals, _ = _state(store)
    assert totals == [("111", "2024-08", Decimal("4"), 1), ("111", "2024-09", Decimal("9"), 1)]


def test_separate_exports_of_one_period_are_kept_apart(store, tmp_path):
    path = write(tmp_path / "a.csv", [row(cost="1")])
    other = write(tmp_path / "b.csv", [row(cost="2")])
    load_paths(store, [str(path)], source_export="export-a")
    load_paths(store, [str(other)], source_export="export-b")
    exports = store.execute("SELECT source_export, status FROM loads ORDER BY 1").fetchall()
    assert exports == [("export-a", "active"), ("export-b", "active")]
    # both stay stored, but the FOCUS view reads one representation of the bill: the latest
    assert store.execute("SELECT sum(BilledCost) FROM line_items").fetchone()[0] == 3
    assert store.execute("SELECT sum(BilledCost) FROM focus_line_items").fetchone()[0] == 2


def test_a_reconciliation_mismatch_rolls_back_everything(store, tmp_path, monkeypatch):
    good = write(tmp_path / "v1.csv", [row(cost="1.00")])
    load_paths(store, [str(good)])
    before = _state(store)
    newer = write(tmp_path / "v2.csv", [row(cost="3.00")])
    original = FocusFormat.source_totals_sql

    def off_by_two_cents(self, cols, opts):
        # A reader whose own total disagrees with its rows, as a buggy mapping would.
        return f"SELECT provider, billing_account_id, billing_period_start, currency, total + 0.02 AS total FROM ({original(self, cols, opts)})"

    monkeypatch.setattr(FocusFormat, "source_totals_sql", off_by_two_cents)
    with pytest.raises(ReconciliationError, match="do not reconcile"):
        load_paths(store, [str(newer)])
    assert _state(store) == before


def test_a_bad_file_in_the_batch_leaves_the_whole_batch_unloaded(store, tmp_path):
    first = write(tmp_path / "v1.csv", [row(cost="1.00")])
    load_paths(store, [str(first)])
    before = _state(store)
    newer = write(tmp_path / "v2.csv", [row(cost="7.00")])
    broken = write(tmp_path / "broken.csv", [row(account="333", cost="abc")])
    with pytest.raises(Exception, match="broken.csv"):
        load_paths(store, [str(newer), str(broken)])
    assert _state(store) == before


def test_reconciliation_is_printed_per_invoice(cli, tmp_path):
    path = write(tmp_path / "sep.csv", [row(cost="1.105"), row(cost="2.2"), row(account="222", currency="EUR", cost="3")])
    result = cli("load", str(path))
    assert result.exit_code == 0, result.output
    lines = [line for line in result.output.splitlines() if "111" in line or "222" in line]
    assert any("USD" in line and "3.305" in line and "0.00" in line for line in lines)
    assert any("EUR" in line and "3.00" in line for line in lines)


def test_two_deliveries_of_one_period_in_one_command_are_refused(store, tmp_path):
    """The same bill as CSV and as Parquet in one command would replace itself; refuse it."""
    import duckdb

    csv_path = write(tmp_path / "sep.csv", [row(cost="1.00")])
    parquet_path = tmp_path / "sep.parquet"
    duckdb.connect().execute(
        f"COPY (SELECT * FROM read_csv('{csv_path}', all_varchar = true)) TO '{parquet_path}' (FORMAT parquet)"
    )
    with pytest.raises(InputError, match="also delivers"):
        load_paths(store, [str(csv_path), str(parquet_path)])
    assert store.execute("SELECT count(*) FROM loads").fetchone()[0] == 0


def test_a_store_from_an_older_version_gains_new_columns(db_path, tmp_path):
    """Columns added to line_items since a store was made are added, not refused."""
    from costaudit.store import connect

    con = connect(db_path)
    con.execute('ALTER TABLE line_items DROP COLUMN "x_CreditType"')
    con.close()
    con = connect(db_path)
    try:
        load_paths(con, [str(write(tmp_path / "a.csv", [row(cost="1")]))])
        assert con.execute('SELECT count(*) FROM line_items WHERE "x_CreditType" IS NULL').fetchone()[0] == 1
    finally:
        con.close()


def test_a_rerun_with_nothing_new_reads_no_billing_rows(store, tmp_path, monkeypatch):
    """Unchanged files are recognised from the ledger (size, mtime, checksum) before any scan."""
    import costaudit.loader as loader

    path = write(tmp_path / "sep.csv", [row(cost="1.10"), row(account="222", cost="2.20")])
    first = load_paths(store, [str(path)])

    def no_reading(*args, **kwargs):
        raise AssertionError("an unchanged delivery must not be read again")

    monkeypatch.setattr(loader, "_prepare", no_reading)
    again = load_paths(store, [str(path)])
    assert not again.changed
    assert sorted((p.billing_account_id, p.source_total, p.rows) for p in again.partitions) == sorted(
        (p.billing_account_id, p.source_total, p.rows) for p in first.partitions
    )


def test_a_file_rewritten_in_place_is_hashed_and_loaded_again(store, tmp_path):
    import os

    path = write(tmp_path / "sep.csv", [row(cost="1.10")])
    load_paths(store, [str(path)])
    stat = path.stat()
    write(path, [row(cost="9.90")])  # same size, new content
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))
    report = load_paths(store, [str(path)])
    assert [p.action for p in report.partitions] == ["replaced"]
    assert store.execute("SELECT sum(BilledCost) FROM line_items").fetchone()[0] == Decimal("9.90")


def test_a_rerun_prints_the_ledger_but_does_not_scan_the_store_for_a_summary(cli, tmp_path):
    """The first load prints reconciliation and the spend summary (a scan of every stored row);
    a rerun with nothing new prints the reconciliation from the ledger and no summary, so it
    costs the same at any store size."""
    path = write(tmp_path / "sep.csv", [row(cost="1.10"), row(account="222", cost="2.20")])
    first = cli("load", str(path))
    assert first.exit_code == 0, first.output
    assert "Reconciliation" in first.output and "Spend summary (store)" in first.output
    again = cli("load", str(path))
    assert again.exit_code == 0, again.output
    assert "Reconciliation" in again.output and "1.10" in again.output and "2.20" in again.output
    assert "Spend summary" not in again.output
    assert "Nothing changed: every delivery was already loaded" in again.output
