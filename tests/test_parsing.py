"""The parse macros every reader shares: what counts as money and as a timestamp."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import duckdb
import pytest

from costaudit.connectors.sql import install_macros


@pytest.fixture(scope="module")
def con():
    connection = duckdb.connect()
    install_macros(connection)
    yield connection
    connection.close()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("0.00000080000", Decimal("0.0000008")),
        ("1.385e-05", Decimal("0.00001385")),
        (" 42 ", Decimal("42")),
        ("-3.5", Decimal("-3.5")),
        ("$10,000.00 ", Decimal("10000")),  # FOCUS spec example, spreadsheet formatting
        ("1,234.50", Decimal("1234.5")),
        ("-$5.00", Decimal("-5")),
        ("12,50", None),  # decimal comma or thousands group: ambiguous, refused
        ("1,234", None),
        ("abc", None),
        ("NaN", None),
    ],
)
def test_money(con, text, expected):
    assert con.execute("SELECT ca_money(?)", [text]).fetchone()[0] == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2023-11-01T00:00:00Z", datetime(2023, 11, 1, tzinfo=UTC)),
        ("2024-10-01 00:00:00", datetime(2024, 10, 1, tzinfo=UTC)),
        ("2022-08-01 03:00:00+00:00", datetime(2022, 8, 1, 3, tzinfo=UTC)),
        ("2022-08-01T05:00:00+02:00", datetime(2022, 8, 1, 3, tzinfo=UTC)),
        ("09/21/2023", datetime(2023, 9, 21, tzinfo=UTC)),
        ("5/1/25", datetime(2025, 5, 1, tzinfo=UTC)),
        ("20180801T000000.000Z", datetime(2018, 8, 1, tzinfo=UTC)),
        ("202208", datetime(2022, 8, 1, tzinfo=UTC)),
        ("2023-02-01T30:00:00Z", None),  # hour 30 does not exist
        ("next tuesday", None),
    ],
)
def test_timestamps(con, text, expected):
    assert con.execute("SELECT ca_ts(?)", [text]).fetchone()[0] == expected
