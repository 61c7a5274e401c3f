"""`costaudit summary`: per-currency AI and network figures that match sums taken straight from the
fixture file, month filters, freshness, and one-line errors."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

import click
import duckdb
import pytest
from click.testing import CliRunner

from costaudit.cli import CostauditGroup
from costaudit.errors import CostauditError, UsageError
from costaudit.loader import load_paths
from costaudit.store import connect
from costaudit.summary_cmd import summary

FIXTURE = Path(__file__).parent / "data" / "analysis" / "focus_ai_network.csv"


def _money(value: Decimal) -> str:
    return f"{value.quantize(Decimal('0.01'), rounding=ROUND_HALF_UP):,.2f}"


def _raw(sql: str) -> list[tuple]:
    con = duckdb.connect()
    return con.execute(sql.replace("RAW", f"read_csv('{FIXTURE}', all_varchar = true)")).fetchall()


@pytest.fixture
def loaded(db_path: Path, tmp_path: Path) -> tuple[Path, Path]:
    con = connect(db_path)
    load_paths(con, [str(FIXTURE)])
    con.close()
    (tmp_path / "ai_links.csv").write_text("resource_id,reason\neni-123,inference ENI\n", encoding="utf-8")
    config = tmp_path / "costaudit.toml"
    config.write_text(
        '[analysis]\nai_tag_keys = ["team"]\nai_accounts = ["ml-sandbox"]\nlink_file = "ai_links.csv"\n'
        '[analysis.ai_tag_values]\nworkload = ["training"]\n',
        encoding="utf-8",
    )
    return db_path, config


def _run(db: Path, *args: str):
    return CliRunner().invoke(summary, list(args), obj={"db": db})


def test_summary_prints_ai_and_network_totals_per_currency(loaded):
    db, config = loaded
    result = _run(db, "--config", str(config))
    assert result.exit_code == 0, result.output
    assert "Analysis refreshed" in result.output
    totals = _raw(
        """SELECT BillingCurrency, sum(CAST(BilledCost AS DECIMAL(38,12))),
                  coalesce(sum(CAST(BilledCost AS DECIMAL(38,12))) FILTER (WHERE expected_ai IS NOT NULL), 0),
                  coalesce(sum(CAST(BilledCost AS DECIMAL(38,12))) FILTER (WHERE expected_network IS NOT NULL), 0)
           FROM RAW GROUP BY ALL ORDER BY 1"""
    )
    assert [t[0] for t in totals] == ["EUR", "USD"]
    for currency, billed, ai, network in totals:
        assert f"{currency}: total billed {_money(billed)} {currency}; AI {_money(ai)} {currency}" in result.output
        assert f"network {_money(network)} {currency}" in result.output
    # per category, per month and provider
    for currency, month, provider, category, billed in _raw(
        """SELECT BillingCurrency, strftime(CAST(BillingPeriodStart AS TIMESTAMP), '%Y-%m'), ProviderName, expected_ai,
                  sum(CAST(BilledCost AS DECIMAL(38,12)))
           FROM RAW WHERE expected_ai IS NOT NULL GROUP BY ALL"""
    ):
        line = [ln for ln in result.output.splitlines() if month in ln and provider in ln and f" {category} " in ln]
        assert line and _money(billed) in line[0], (currency, month, provider, category)
    # network by class, and the most expensive route first
    for _currency, cls, billed in _raw(
        """SELECT BillingCurrency, expected_network, sum(CAST(BilledCost AS DECIMAL(38,12)))
           FROM RAW WHERE expected_network IS NOT NULL GROUP BY ALL"""
    ):
        assert any(ln.strip("│ ").startswith(cls) and _money(billed) in ln for ln in result.output.splitlines()), cls
    routes = result.output.split("Top routes by billed cost (USD")[1].splitlines()
    assert "us-east-1 -> internet" in routes[4]


def test_summary_never_adds_currencies(loaded):
    db, config = loaded
    output = _run(db, "--config", str(config)).output
    eur, usd = (s for s in _raw("SELECT sum(CAST(BilledCost AS DECIMAL(38,12))) FROM RAW GROUP BY BillingCurrency ORDER BY BillingCurrency"))
    assert _money(eur[0] + usd[0]) not in output


def test_month_filters(loaded):
    db, config = loaded
    result = _run(db, "--config", str(config), "--since", "2024-10", "--until", "2024-11")
    assert result.exit_code == 0, result.output
    (october_ai,) = _raw(
        """SELECT sum(CAST(BilledCost AS DECIMAL(38,12))) FROM RAW
           WHERE expected_ai IS NOT NULL AND BillingPeriodStart LIKE '2024-10%'"""
    )[0]
    assert f"AI {_money(october_ai)} USD" in result.output
    assert "EUR" not in result.output  # no Azure rows in October
    bad = _run(db, "--since", "October")
    assert isinstance(bad.exception, UsageError) and "expected a billing month as YYYY-MM" in str(bad.exception)


def test_second_summary_reuses_the_analysis(loaded):
    db, config = loaded
    assert "Analysis refreshed" in _run(db, "--config", str(config)).output
    again = _run(db, "--config", str(config))
    assert again.exit_code == 0 and "Analysis refreshed" not in again.output


def test_empty_or_missing_store_is_a_clear_error(tmp_path: Path):
    missing = _run(tmp_path / "nothing.duckdb")
    assert isinstance(missing.exception, CostauditError) and "no store here yet" in str(missing.exception)
    empty_db = tmp_path / "empty.duckdb"
    connect(empty_db).close()
    empty = _run(empty_db)
    assert isinstance(empty.exception, CostauditError) and "no billing data yet" in str(empty.exception)


def test_errors_are_one_line_under_the_cli_group(tmp_path: Path):
    @click.group(cls=CostauditGroup)
    @click.option("--db", type=click.Path(path_type=Path))
    @click.pass_context
    def cli(ctx: click.Context, db: Path) -> None:
        ctx.obj = {"db": db}

    cli.add_command(summary)
    result = CliRunner().invoke(cli, ["--db", str(tmp_path / "none.duckdb"), "summary"])
    assert result.exit_code == 1
    assert "Traceback" not in result.output


def test_a_fresh_summary_is_a_reader_beside_other_readers(loaded):
    """With the analysis up to date, summary opens the store read-only: it works while another
    process holds a read-only connection (a read-write open would be refused by DuckDB's lock)."""
    import subprocess
    import sys

    db, config = loaded
    assert _run(db, "--config", str(config)).exit_code == 0  # analyses once
    holder = subprocess.Popen(
        [sys.executable, "-c", "import duckdb, sys, time; c = duckdb.connect(sys.argv[1], read_only=True); "
         "print('open', flush=True); time.sleep(60)", str(db)],
        stdout=subprocess.PIPE, text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "open"
        result = _run(db, "--config", str(config))
        assert result.exit_code == 0, result.output
        assert "Analysis refreshed" not in result.output
    finally:
        holder.kill()
        holder.wait()


def test_summary_over_the_monthly_totals_equals_the_one_over_the_line_items(loaded):
    """The summary sums `analysis_totals` (line items already summed per month, resource, tag set
    and charge key); a store analysed by an older version, without those views, is summed from
    `analysis_line_items`. Both give the same figures, row counts included."""
    from costaudit.analysis.config import load_analysis_config
    from costaudit.analysis.run import run_analysis
    from costaudit.analysis.summary import summarise

    db, config = loaded
    con = connect(db)
    run_analysis(con, load_analysis_config(config))
    by_totals = summarise(con)
    assert by_totals and any(s.ai_rows for s in by_totals) and any(s.network_classes for s in by_totals)
    for view in ("ai_spend_totals", "network_transfer_totals", "analysis_totals"):
        con.execute(f"DROP VIEW {view}")
    by_lines = summarise(con)
    con.close()
    assert by_totals == by_lines
