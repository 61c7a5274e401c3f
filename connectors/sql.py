"""Small SQL helpers shared by every reader: identifier quoting and the parse macros.

Everything that turns source text into money or time goes through the macros defined here, so
the validation pass (which finds unparsable values) and the normalisation pass agree exactly.
"""

from __future__ import annotations

import duckdb

from costaudit.schema import MONEY, QUANTITY


def quote_ident(name: str) -> str:
    """Quote an SQL identifier for DuckDB, whatever characters the source put in it."""
    return '"' + name.replace('"', '""') + '"'


def quote_literal(value: str) -> str:
    """Quote a string literal. Used only for values we control (paths, ids), never user SQL."""
    return "'" + value.replace("'", "''") + "'"


# Each macro takes VARCHAR. Typed (Parquet/JSON) columns are cast directly by `Cols`.
_MACROS = [
    # Money and quantities: exact decimals from text, E-notation allowed. Spreadsheet-formatted
    # amounts ("$10,000.00", "1,234.50") are read too, but only when unambiguous: comma groups of
    # exactly three digits followed by a point decimal part, or a leading currency symbol. A bare
    # "12,50" (a decimal comma, or a thousands group?) stays an error.
    r"""CREATE OR REPLACE TEMP MACRO ca_decimal_text(x) AS (
        CASE
          WHEN regexp_full_match(trim(x), '-?[$€£¥]?-?\d{1,3}(,\d{3})+\.\d+')
            OR regexp_full_match(trim(x), '-?[$€£¥]-?\d{1,3}(,\d{3})*(\.\d+)?')
            THEN regexp_replace(trim(x), '[$€£¥,]', '', 'g')
          ELSE trim(x)
        END)""",
    f"CREATE OR REPLACE TEMP MACRO ca_money(x) AS TRY_CAST(ca_decimal_text(x) AS {MONEY})",
    f"CREATE OR REPLACE TEMP MACRO ca_qty(x) AS TRY_CAST(ca_decimal_text(x) AS {QUANTITY})",
    # Timestamps, always read as UTC. Formats seen in real exports: ISO 8601 with or without T/Z
    # and offsets, US dates (Azure EA: 09/21/2023, FOCUS spec examples: 5/1/25), compact
    # manifest stamps (20180801T000000.000Z), dates alone, and AWS TimeInterval halves.
    r"""CREATE OR REPLACE TEMP MACRO ca_ts(x) AS (
        CASE
          WHEN x IS NULL THEN NULL
          WHEN regexp_full_match(trim(x), '\d{1,2}/\d{1,2}/\d{2}')
            THEN try_strptime(trim(x), '%m/%d/%y')::TIMESTAMPTZ
          WHEN regexp_full_match(trim(x), '\d{1,2}/\d{1,2}/\d{4}.*')
            THEN try_strptime(trim(x), ['%m/%d/%Y', '%m/%d/%Y %H:%M:%S', '%m/%d/%Y %H:%M',
                                        '%m/%d/%Y %I:%M:%S %p', '%m/%d/%Y %I:%M %p'])::TIMESTAMPTZ
          WHEN regexp_full_match(trim(x), '\d{8}T\d{6}(\.\d+)?Z')
            THEN try_strptime(trim(x), ['%Y%m%dT%H%M%S.%gZ', '%Y%m%dT%H%M%SZ'])::TIMESTAMPTZ
          WHEN regexp_full_match(trim(x), '\d{6}')
            THEN try_strptime(trim(x), '%Y%m')::TIMESTAMPTZ
          ELSE TRY_CAST(trim(x) AS TIMESTAMPTZ)
        END)""",
    # Azure tags come as a JSON object body without braces; FOCUS wants a JSON object.
    r"""CREATE OR REPLACE TEMP MACRO ca_braced_json(x) AS (
        CASE
          WHEN x IS NULL OR trim(x) IN ('', '{}') THEN NULL
          WHEN starts_with(ltrim(x), '{') THEN trim(x)
          ELSE '{' || trim(x) || '}'
        END)""",
]


def install_macros(con: duckdb.DuckDBPyConnection) -> None:
    """Define the parse macros on a connection (idempotent) and pin the session to UTC."""
    con.execute("SET TimeZone = 'UTC'")
    for statement in _MACROS:
        con.execute(statement)
