"""`costaudit export focus`: the dataset's layout, format and safety, its round trip through the
FOCUS reader, and the FinOps Foundation validator on exports of real samples."""

from __future__ import annotations

import csv
import json
import re
from decimal import Decimal
from pathlib import Path

import duckdb
import pytest

from costaudit.connectors.formats import all_formats
from costaudit.connectors.formats.focus_conformance import RULES
from costaudit.focus_export import exported_columns
from costaudit.schema import EXTRA_COLUMNS, FOCUS_NAMES
from costaudit.store import connect

from . import focus_validator_env
from .conftest import FIXTURES

ISO = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z")
NUMBER = re.compile(r"-?\d+\.\d+")
SAMPLE = "focus-sample-data/focus_sample.csv"


def _ok(result):
    assert result.exit_code == 0, result.output
    return result


def _fails(result, *expected: str) -> str:
    message = result.output.strip()
    assert result.exit_code != 0 and "Traceback" not in message, message
    assert len(message.splitlines()) == 1 and message.startswith("error:"), message
    for text in expected:
        assert text in message, message
    return message


def _store_totals(db: Path) -> dict[tuple, Decimal]:
    con = connect(db, read_only=True)
    try:
        rows = con.execute(
            """SELECT ProviderName, BillingAccountId, strftime(BillingPeriodStart, '%Y-%m'), BillingCurrency,
                      sum(BilledCost), sum(EffectiveCost), count(*)
               FROM current_line_items GROUP BY ALL"""
        ).fetchall()
    finally:
        con.close()
    return {tuple(r[:4]): tuple(r[4:]) for r in rows}


@pytest.fixture
def sample_store(cli, samples_dir):
    _ok(cli("load", "--quiet", str(samples_dir / SAMPLE)))
    return samples_dir / SAMPLE


def test_csv_export_layout_and_values(cli, sample_store, tmp_path):
    out = tmp_path / "out"
    result = _ok(cli("export", "focus", "--out", str(out), "--format", "csv"))
    dataset = out / "focus-1.2"
    files = sorted(p.relative_to(dataset).as_posix() for p in dataset.rglob("*") if p.is_file())
    assert files == ["billing_period=2024-09/part-0.csv", "billing_period=2024-10/part-0.csv", "metadata.json"]
    assert "1000 rows" in result.output
    with (dataset / "billing_period=2024-09" / "part-0.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert list(rows[0]) == FOCUS_NAMES + [n for n, _, _ in EXTRA_COLUMNS]
    assert len(rows) == 999
    for row in rows:
        for column in ("BillingPeriodStart", "BillingPeriodEnd", "ChargePeriodStart", "ChargePeriodEnd"):
            assert ISO.fullmatch(row[column]), (column, row[column])
        for column in ("BilledCost", "EffectiveCost", "ListCost", "ContractedCost", "PricingQuantity"):
            assert NUMBER.fullmatch(row[column]), (column, row[column])
        assert row["ChargeFrequency"] in ("One-Time", "Recurring", "Usage-Based")
        if row["Tags"]:
            assert isinstance(json.loads(row["Tags"]), dict)
        assert row["ServiceSubcategory"]  # never null in the export
        assert "NULL" not in (row["AvailabilityZone"], row["ResourceName"])  # nulls are empty fields
    raw = duckdb.connect().execute(
        f"SELECT sum(BilledCost::DECIMAL(38,12)) FROM read_csv('{sample_store}', all_varchar = true,"
        " nullstr = ['', 'NULL']) WHERE BillingPeriodStart LIKE '2024-09%'").fetchone()[0]
    assert sum(Decimal(r["BilledCost"]) for r in rows) == raw


def test_metadata_describes_the_dataset(cli, sample_store, tmp_path):
    _ok(cli("export", "focus", "--out", str(tmp_path)))
    meta = json.loads((tmp_path / "focus-1.2" / "metadata.json").read_text())
    assert meta["generator"] == "costaudit" and meta["focus_version"] == "1.2" and meta["format"] == "parquet"
    assert meta["row_count"] == 1000
    assert meta["files"] == ["billing_period=2024-09/part-0.parquet", "billing_period=2024-10/part-0.parquet"]
    raw = duckdb.connect().execute(
        f"SELECT sum(BilledCost::DECIMAL(38,12)), sum(EffectiveCost::DECIMAL(38,12)) FROM read_csv('{sample_store}',"
        " all_varchar = true, nullstr = ['', 'NULL'])").fetchone()
    assert meta["totals"] == [{"currency": "USD", "rows": 1000, "BilledCost": format(raw[0].normalize(), "f"),
                               "EffectiveCost": format(raw[1].normalize(), "f"),
                               "ListCost": meta["totals"][0]["ListCost"], "ContractedCost": meta["totals"][0]["ContractedCost"]}]
    assert {p["provider"] for p in meta["providers"]} == {"AWS", "Microsoft", "Oracle"}
    assert [p["rows"] for p in meta["periods"]] == [999, 1]
    assert meta["columns"] == exported_columns()
    # every conversion rule is listed with the rows it changed, counted here from the raw file
    adjusted = meta["conformance_adjustments"]
    assert set(RULES.values()) <= set(adjusted) and all(isinstance(n, int) for n in adjusted.values())
    con = duckdb.connect()
    con.execute(f"CREATE VIEW r AS SELECT * FROM read_csv('{sample_store}', all_varchar = true, nullstr = ['', 'NULL'])")
    expected = con.execute(
        """SELECT count(*) FILTER (WHERE ChargeCategory <> 'Usage' AND ConsumedQuantity IS NOT NULL),
                  count(*) FILTER (WHERE ResourceId IS NULL AND ResourceType IS NOT NULL),
                  count(*) FILTER (WHERE RegionId IS NULL AND RegionName IS NOT NULL),
                  count(*) FILTER (WHERE ServiceName = 'Amazon Elastic Compute Cloud' AND ServiceCategory = 'Storage')
           FROM r""").fetchone()
    rules = ("consumed-not-usage", "resource-type-without-id", "region-name-without-id", "service-category")
    assert tuple(adjusted[RULES[r]] for r in rules) == expected == (2, 36, 7, 132)


def test_parquet_keeps_types_and_round_trips(cli, sample_store, db_path, tmp_path):
    _ok(cli("export", "focus", "--out", str(tmp_path / "out")))
    part = tmp_path / "out" / "focus-1.2" / "billing_period=2024-09" / "part-0.parquet"
    types = dict(duckdb.connect().execute(f"SELECT column_name, column_type FROM (DESCRIBE SELECT * FROM '{part}')").fetchall())
    assert types["BilledCost"] == "DECIMAL(38,12)" and types["BillingPeriodStart"] == "TIMESTAMP WITH TIME ZONE"
    assert types["Tags"] == "VARCHAR"
    # the export is a FOCUS 1.2 dataset the reader loads back to the same totals
    again = tmp_path / "again.duckdb"
    from click.testing import CliRunner

    from costaudit.cli import main

    result = CliRunner().invoke(main, ["--db", str(again), "load", "--quiet", str(tmp_path / "out" / "focus-1.2")])
    assert result.exit_code == 0, result.output
    assert _store_totals(again) == _store_totals(db_path)


def test_csv_round_trip_keeps_every_value(cli, db_path, tmp_path):
    """The fixtures (four FOCUS shapes) -> store -> CSV export -> new store: identical rows."""
    _ok(cli("load", "--quiet", str(FIXTURES / "focus")))
    _ok(cli("export", "focus", "--out", str(tmp_path / "out"), "--format", "csv"))
    again = tmp_path / "again.duckdb"
    from click.testing import CliRunner

    from costaudit.cli import main

    result = CliRunner().invoke(main, ["--db", str(again), "load", "--quiet", str(tmp_path / "out" / "focus-1.2")])
    assert result.exit_code == 0, result.output
    skip = {"x_SourceFormat", "x_SourceFile", "x_LoadId"}
    columns = ", ".join(f'"{c}"' for c in exported_columns() if c not in skip)

    def rows(path: Path):
        con = connect(path, read_only=True)
        try:
            return con.execute(f"SELECT {columns} FROM line_items ORDER BY ALL").fetchall()
        finally:
            con.close()

    before, after = rows(db_path), rows(again)
    assert len(before) == 106
    # every value survives, except ServiceSubcategory, which the export fills where it was null
    sub = exported_columns().index("ServiceSubcategory")
    strip = [tuple(v for i, v in enumerate(r) if i != sub) for r in before]
    assert strip == [tuple(v for i, v in enumerate(r) if i != sub) for r in after]


def test_filters_and_no_extensions(cli, tmp_path):
    _ok(cli("load", "--quiet", str(FIXTURES / "focus")))
    out = tmp_path / "out"
    _ok(cli("export", "focus", "--out", str(out), "--format", "csv", "--provider", "Microsoft",
            "--since", "2024-10", "--until", "2024-11", "--no-extensions"))
    dataset = out / "focus-1.2"
    meta = json.loads((dataset / "metadata.json").read_text())
    assert meta["files"] == ["billing_period=2024-10/part-0.csv"]
    assert {p["provider"] for p in meta["providers"]} == {"Microsoft"}
    assert {t["currency"] for t in meta["totals"]} == {"EUR", "USD"}
    header = (dataset / meta["files"][0]).read_text().splitlines()[0].split(",")
    assert header == FOCUS_NAMES
    _fails(cli("export", "focus", "--out", str(out), "--since", "2024-13"), "--since", "YYYY-MM")
    _fails(cli("export", "focus", "--out", str(out), "--since", "2024-10", "--until", "2024-09"), "--until")
    _fails(cli("export", "focus", "--out", str(out), "--provider", "Nobody"), "nothing to export", "Nobody")


def test_empty_store_and_missing_store(cli, db_path, tmp_path):
    _fails(cli("export", "focus", "--out", str(tmp_path / "out")), "no store")
    connect(db_path).close()
    _fails(cli("export", "focus", "--out", str(tmp_path / "out")), "nothing to export")
    assert not (tmp_path / "out" / "focus-1.2").exists()


def test_reexport_replaces_its_own_dataset(cli, tmp_path):
    _ok(cli("load", "--quiet", str(FIXTURES / "focus" / "focus-1.2-multicloud.csv")))
    out = tmp_path / "out"
    _ok(cli("export", "focus", "--out", str(out), "--format", "csv"))
    _ok(cli("export", "focus", "--out", str(out), "--since", "2024-10"))
    files = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    assert files == ["focus-1.2/billing_period=2024-10/part-0.parquet", "focus-1.2/metadata.json"]


def test_refuses_to_overwrite_files_it_did_not_write(cli, tmp_path):
    _ok(cli("load", "--quiet", str(FIXTURES / "focus" / "focus-1.2-multicloud.csv")))
    out = tmp_path / "out"
    foreign = out / "focus-1.2" / "notes.txt"
    foreign.parent.mkdir(parents=True)
    foreign.write_text("mine")
    _fails(cli("export", "focus", "--out", str(out)), "focus-1.2", "did not write")
    assert foreign.read_text() == "mine" and sorted(p.name for p in out.rglob("*")) == ["focus-1.2", "notes.txt"]
    # a file slipped into costaudit's own dataset also stops the export
    foreign.unlink()
    _ok(cli("export", "focus", "--out", str(out)))
    extra = out / "focus-1.2" / "billing_period=2024-09" / "keep.csv"
    extra.write_text("x")
    _fails(cli("export", "focus", "--out", str(out)), "keep.csv", "not written by costaudit")
    assert extra.exists()
    # other things in DIR are never touched
    assert not [p for p in out.iterdir() if p.name.startswith(".")]


def test_never_writes_outside_the_output_folder(cli, tmp_path):
    _ok(cli("load", "--quiet", str(FIXTURES / "focus" / "focus-1.2-multicloud.csv")))
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    out = tmp_path / "out"
    out.mkdir()
    (out / "focus-1.2").symlink_to(outside, target_is_directory=True)
    _fails(cli("export", "focus", "--out", str(out)), "focus-1.2")
    assert list(outside.iterdir()) == []
    a_file = tmp_path / "plain.txt"
    a_file.write_text("x")
    _fails(cli("export", "focus", "--out", str(a_file)), "not a folder")


def test_creates_the_output_folder(cli, tmp_path):
    _ok(cli("load", "--quiet", str(FIXTURES / "focus" / "focus-1.1-gcp.csv")))
    out = tmp_path / "a" / "b"
    _ok(cli("export", "focus", "--out", str(out)))
    assert (out / "focus-1.2" / "metadata.json").exists()


# -- the FinOps Foundation validator -----------------------------------------------------------


@pytest.fixture(scope="module")
def focus_validator():
    try:
        return focus_validator_env.validator()
    except focus_validator_env.ValidatorUnavailable as exc:
        pytest.skip(f"FOCUS validator unavailable: {exc}")


def _needs_format(format_id: str) -> None:
    if format_id not in {fmt.id for fmt in all_formats()}:
        pytest.skip(f"the {format_id} reader is not registered yet")


CASES = {
    # case: (reader that must exist, inputs, export format). Only billing periods before 2024-10
    # are validated, to keep each test fast: the FOCUS sample's 2024-10 holds one Oracle row and
    # the fixtures' two months are alike.
    "focus-sample": ("focus", [SAMPLE], "csv"),
    "aws-cur-sample": ("aws-cur", ["focus-converters/sample-anonymous-aws-export-dataset.csv"], "parquet"),
    "azure-ea-sample": ("azure-actual", ["finops-toolkit/EA_ActualCost_Small.csv"], "csv"),
    "fixtures": ("focus", ["@fixtures/focus-1.2-multicloud.csv", "@fixtures/focus-1.2-aws-export.parquet"], "parquet"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_export_passes_the_focus_validator(case, focus_validator, cli, samples_dir, tmp_path):
    format_id, inputs, file_format = CASES[case]
    _needs_format(format_id)
    paths = [str(FIXTURES / "focus" / i[10:]) if i.startswith("@fixtures/") else str(samples_dir / i) for i in inputs]
    _ok(cli("load", "--quiet", *paths))
    _ok(cli("export", "focus", "--out", str(tmp_path), "--format", file_format, "--until", "2024-10"))
    known = {k.rule_id for k in focus_validator_env.known_failures(case)}
    files = sorted((tmp_path / "focus-1.2").rglob(f"part-*.{file_format}"))
    assert files
    failed: set[str] = set()
    for path in files:
        result = focus_validator.run(path)
        assert result.statuses, result.console[-2000:]
        failed |= set(result.counted_failures)
        unexpected = sorted(set(result.counted_failures) - known)
        detail = focus_validator.explain(path, unexpected) if unexpected else ""
        assert not unexpected, f"{path.name}: rules failed that are not known defects: {unexpected}\n{detail}"
    # an entry listed for this case alone must still be needed: fixed ones leave the list
    stale = sorted({k.rule_id for k in focus_validator_env.known_failures(case) if k.scope == case} - failed)
    assert not stale, f"known failures listed for {case} that no longer fail (remove them): {stale}"


def test_known_failures_are_documented():
    entries = focus_validator_env.known_failures()
    assert entries and all(e.reason and e.kind in ("validator", "source-data", "reader") for e in entries)
    assert {e.scope for e in entries} <= {"*", *CASES}
    assert all(re.fullmatch(r"[A-Za-z]+-[CDA]-\d{3}-[MOC]", e.rule_id) for e in entries)
