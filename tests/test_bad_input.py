"""Bad input: one clear line naming the file (and row or column), a non-zero exit, and the
store exactly as it was before."""

from __future__ import annotations

import gzip
import shutil

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from costaudit.store import connect

from .focus_rows import HEADER, row, write


@pytest.fixture
def loaded(cli, tmp_path, db_path):
    """A store holding one good load, and a function returning its state."""
    good = write(tmp_path / "good.csv", [row(cost="1.25"), row(account="222", cost="2.50")])
    result = cli("load", str(good))
    assert result.exit_code == 0, result.output

    def state():
        con = connect(db_path, read_only=True)
        try:
            return (
                con.execute("SELECT * FROM line_items ORDER BY ALL").fetchall(),
                con.execute("SELECT load_id, status FROM loads ORDER BY ALL").fetchall(),
            )
        finally:
            con.close()

    return state


def _fails_cleanly(result, *expected: str) -> str:
    assert result.exit_code != 0
    assert "Traceback" not in result.output
    message = result.output.strip()
    assert message.startswith("error:"), message
    assert len(message.splitlines()) == 1, message
    for text in expected:
        assert text in message, message
    return message


def test_unknown_format(cli, loaded, tmp_path):
    before = loaded()
    path = tmp_path / "inventory.csv"
    path.write_text("name,colour\nwidget,blue\n")
    _fails_cleanly(cli("load", str(path)), "inventory.csv", "unknown format")
    assert loaded() == before


def test_missing_required_column(cli, loaded, tmp_path):
    before = loaded()
    header = [h for h in HEADER if h != "BilledCost"]
    path = write(tmp_path / "no_cost.csv", [row()], header=header)
    _fails_cleanly(cli("load", str(path)), "no_cost.csv", "'BilledCost'", "missing required column")
    assert loaded() == before


def test_corrupt_gzip(cli, loaded, tmp_path):
    before = loaded()
    plain = write(tmp_path / "plain.csv", [row(cost=str(i)) for i in range(2000)])
    packed = gzip.compress(plain.read_bytes())
    broken = tmp_path / "export.csv.gz"
    broken.write_bytes(packed[: len(packed) // 2])
    _fails_cleanly(cli("load", str(broken)), "export.csv.gz", "gzip")
    assert loaded() == before


def test_corrupt_parquet(cli, loaded, tmp_path):
    before = loaded()
    table = pa.table({"BilledCost": ["1.0"] * 50, "BillingCurrency": ["USD"] * 50})
    good = tmp_path / "whole.parquet"
    pq.write_table(table, good)
    data = good.read_bytes()
    broken = tmp_path / "cut.parquet"
    broken.write_bytes(data[: len(data) - 20])
    _fails_cleanly(cli("load", str(broken)), "cut.parquet", "Parquet")
    assert loaded() == before


def test_unparsable_date_names_row_and_column(cli, loaded, tmp_path):
    before = loaded()
    rows = [row(), row(ChargePeriodStart="next tuesday"), row()]
    path = write(tmp_path / "dates.csv", rows)
    message = _fails_cleanly(cli("load", str(path)), "dates.csv", "row 2", "'ChargePeriodStart'", "next tuesday")
    assert "date or timestamp" in message
    assert loaded() == before


def test_unparsable_number_names_row_and_column(cli, loaded, tmp_path):
    before = loaded()
    rows = [row(), row(), row(), row(BilledCost="12,50")]
    path = write(tmp_path / "numbers.csv", rows)
    _fails_cleanly(cli("load", str(path)), "numbers.csv", "row 4", "'BilledCost'", "decimal number")
    assert loaded() == before


@pytest.mark.parametrize("column", ["BilledCost", "BillingPeriodStart"])
def test_a_blank_invoice_amount_or_month_is_refused_not_guessed(cli, loaded, tmp_path, column):
    """A blank BilledCost was stored as NULL (the invoice one line short) and a blank
    BillingPeriodStart put the row on the month of its BillingPeriodEnd; both reconciled,
    because the source total read the blank the same way."""
    before = loaded()
    rows = [row(), row(**{column: ""}), row()]
    path = write(tmp_path / "blank.csv", rows)
    _fails_cleanly(cli("load", str(path)), "blank.csv", "row 2", f"'{column}'", "is missing", "every row")
    assert loaded() == before


def test_a_blank_unblended_cost_in_a_cur_is_refused_not_read_as_zero(cli, loaded, tmp_path):
    before = loaded()
    header = ["identity/LineItemId", "identity/TimeInterval", "bill/PayerAccountId", "bill/BillingPeriodStartDate",
              "bill/BillingPeriodEndDate", "lineItem/UsageAccountId", "lineItem/LineItemType", "lineItem/UsageStartDate",
              "lineItem/UsageEndDate", "lineItem/ProductCode", "lineItem/UsageType", "lineItem/UnblendedCost",
              "lineItem/CurrencyCode"]
    line = ["a1", "2024-01-01T00:00:00Z/2024-01-01T01:00:00Z", "111122223333", "2024-01-01T00:00:00Z",
            "2024-02-01T00:00:00Z", "111122223333", "Usage", "2024-01-01T00:00:00Z", "2024-01-01T01:00:00Z",
            "AmazonEC2", "BoxUsage:m5.large", "0.096", "USD"]
    blank = [*line[:11], "", "USD"]
    path = tmp_path / "cur.csv"
    path.write_text("\n".join(",".join(r) for r in (header, line, blank, line)) + "\n")
    _fails_cleanly(cli("load", str(path)), "cur.csv", "row 2", "'lineItem/UnblendedCost'", "is missing")
    assert loaded() == before


def test_a_number_too_large_for_the_store_says_so(cli, loaded, tmp_path):
    before = loaded()
    path = write(tmp_path / "huge.csv", [row(), row(BilledCost="12345678901234567890123456789.5")])
    _fails_cleanly(cli("load", str(path)), "huge.csv", "row 2", "'BilledCost'", "out of range", "DECIMAL(38,12)")
    assert loaded() == before


def test_a_cur_without_its_cost_column_names_the_column(cli, loaded, tmp_path):
    before = loaded()
    path = tmp_path / "cur.csv"
    path.write_text("identity/LineItemId,bill/PayerAccountId,lineItem/LineItemType,lineItem/UsageAccountId\n"
                    "a1,111122223333,Usage,111122223333\n")
    _fails_cleanly(cli("load", str(path)), "cur.csv", "looks like an AWS CUR", "lineItem/UnblendedCost")
    assert loaded() == before


def test_empty_file(cli, loaded, tmp_path):
    before = loaded()
    path = tmp_path / "empty.csv"
    path.write_bytes(b"")
    _fails_cleanly(cli("load", str(path)), "empty.csv", "empty")
    assert loaded() == before


def test_header_without_rows(cli, loaded, tmp_path):
    before = loaded()
    path = write(tmp_path / "header_only.csv", [])
    _fails_cleanly(cli("load", str(path)), "header_only.csv", "no rows")
    assert loaded() == before


def test_conflicting_currencies(cli, loaded, tmp_path):
    before = loaded()
    path = write(tmp_path / "mixed.csv", [row(currency="USD"), row(currency="EUR")])
    _fails_cleanly(cli("load", str(path)), "mixed.csv", "conflicting currencies", "EUR", "USD")
    assert loaded() == before


def test_invalid_tags_json(cli, loaded, tmp_path):
    before = loaded()
    path = write(tmp_path / "tags.csv", [row(), row(Tags='{"team": ')])
    _fails_cleanly(cli("load", str(path)), "tags.csv", "row 2", "'Tags'", "JSON object")
    assert loaded() == before


def test_missing_path(cli, loaded, tmp_path):
    _fails_cleanly(cli("load", str(tmp_path / "nowhere.csv")), "nowhere.csv", "no such file")


def test_file_name_is_never_trusted(cli, tmp_path, db_path):
    """A gzip file named .csv and a CSV named .parquet still load: kinds come from the bytes."""
    plain = write(tmp_path / "a.csv", [row(cost="1.5")])
    disguised = tmp_path / "report.parquet"
    shutil.copy(plain, disguised)
    zipped = tmp_path / "other.csv"
    zipped.write_bytes(gzip.compress(write(tmp_path / "b.csv", [row(account="9", cost="2")]).read_bytes()))
    result = cli("load", str(disguised), str(zipped))
    assert result.exit_code == 0, result.output
    con = connect(db_path, read_only=True)
    assert con.execute("SELECT sum(BilledCost) FROM line_items").fetchone()[0] == 3.5
    con.close()


def test_a_truncated_last_row_is_an_error_not_padding(cli, loaded, tmp_path):
    """Only a CSV whose every row is short is padded; one cut-off row is a damaged file."""
    before = loaded()
    path = write(tmp_path / "cut.csv", [row(cost="1"), row(cost="2"), row(cost="3")])
    text = path.read_text()
    path.write_text(text + "111,Account 111,USD,2024-09-01T00:00:00Z\n")
    _fails_cleanly(cli("load", str(path)), "cut.csv")
    assert loaded() == before


def test_a_one_line_manifest_is_not_billing_rows(cli, tmp_path):
    """A manifest written on one line is a document; named alone it is refused as such."""
    path = tmp_path / "export-Manifest.json"
    path.write_text('{"assemblyId": "a1", "reportKeys": [], "billingPeriod": {"start": "20240101T000000.000Z"}}\n')
    _fails_cleanly(cli("load", str(path)), "export-Manifest.json")


def test_brackets_in_a_message_are_printed_not_swallowed(cli, tmp_path):
    """File names are user text: rich must not read "[bold]" in them as markup."""
    path = tmp_path / "[bold]report[red].csv"
    path.write_text("name,colour\nwidget,blue\n")
    _fails_cleanly(cli("load", str(path)), "[bold]report[red].csv")


def test_a_billing_currency_that_is_not_a_code_is_refused(cli, loaded, tmp_path):
    before = loaded()
    path = write(tmp_path / "currency.csv", [row(currency="[red]x[/]")])
    _fails_cleanly(cli("load", str(path)), "currency.csv", "is not a currency code")
    assert loaded() == before
