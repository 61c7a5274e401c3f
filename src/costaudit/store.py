"""The DuckDB store: schema, connections and the load ledger.

The store owns ``line_items`` and ``loads``; nobody else writes them. Each ledger entry covers
one (provider, billing account, billing period, source export); a newer delivery of the same
key replaces the older one inside one transaction.
"""

from __future__ import annotations

import os
from pathlib import Path

import duckdb

from costaudit.config import check_memory_limit
from costaudit.connectors.sql import install_macros, quote_ident
from costaudit.errors import CostauditError
from costaudit.schema import CHARGE_KEY_COLUMNS, FOCUS_NAMES, LINE_ITEM_COLUMNS, MONEY, charge_key_sql

DEFAULT_DB = "costaudit.duckdb"
SCHEMA_VERSION = 1
DEFAULT_MEMORY_LIMIT = "2GB"


def store_files(db: str | Path) -> set[Path]:
    """The absolute paths of the store `db` and of its companion files (WAL, lock, the working copy
    `costaudit run` builds): no output may be written over any of them."""
    store = Path(db).expanduser().resolve()
    return {store, *(store.with_name(store.name + s) for s in (".wal", ".lock", ".building", ".building.wal"))}


def default_db_path() -> Path:
    """The store used when none is named: $COSTAUDIT_DB, else ./costaudit.duckdb."""
    return Path(os.environ.get("COSTAUDIT_DB", DEFAULT_DB))


def connect(path: str | Path | None = None, *, read_only: bool = False) -> duckdb.DuckDBPyConnection:
    """Open the store, creating its schema when writable. A lock held by another writer is a
    clear error, not a traceback."""
    db_path = Path(path) if path is not None else default_db_path()
    if read_only and not db_path.exists():
        raise CostauditError(f"{db_path}: no store here yet; run `costaudit load` first")
    limit = os.environ.get("COSTAUDIT_MEMORY_LIMIT")
    config = {"memory_limit": check_memory_limit(limit, "COSTAUDIT_MEMORY_LIMIT") if limit else DEFAULT_MEMORY_LIMIT}
    try:
        con = duckdb.connect(str(db_path), read_only=read_only, config=config)
    except duckdb.IOException as exc:
        message = str(exc).splitlines()[0]
        if "lock" in message.lower():
            raise CostauditError(f"{db_path}: the store is in use by another costaudit process ({message})") from None
        raise CostauditError(f"{db_path}: cannot open the store ({message})") from None
    install_macros(con)
    if not read_only:
        ensure_schema(con)
    return con


# The Azure formats' ids (`costaudit.connectors.formats.azure.ACTUAL_ID` / `AMORTIZED_ID`; a test
# keeps them equal) and the rows an actual load adds to an amortized one of the same bill.
AZURE_ACTUAL = "azure-actual"
AZURE_AMORTIZED = "azure-amortized"
ALL_ROWS = "all"
COMMITMENT_PURCHASES = "commitment purchases"
_COMMITMENT_PURCHASE = (
    "lower({p}x_LineItemType) IN ('purchase', 'refund') AND lower({p}x_PricingModel) IN ('reservation', 'savingsplan')"
)

CURRENT_LOADS_SQL = f"""
WITH active AS (
  SELECT *,
    row_number() OVER bill AS bill_rank,
    row_number() OVER (PARTITION BY provider, billing_account_id, billing_period_start, source_format
                       ORDER BY loaded_at DESC, load_id) AS format_rank,
    first_value(source_format) OVER bill IN ('{AZURE_ACTUAL}', '{AZURE_AMORTIZED}')
      AND bool_or(source_format = '{AZURE_ACTUAL}') OVER whole
      AND bool_or(source_format = '{AZURE_AMORTIZED}') OVER whole AS paired
  FROM loads WHERE status = 'active'
  WINDOW bill AS (PARTITION BY provider, billing_account_id, billing_period_start ORDER BY loaded_at DESC, load_id),
         whole AS (PARTITION BY provider, billing_account_id, billing_period_start))
SELECT * EXCLUDE (bill_rank, format_rank, paired),
       CASE WHEN paired AND source_format = '{AZURE_ACTUAL}' THEN '{COMMITMENT_PURCHASES}' ELSE '{ALL_ROWS}' END
         AS row_scope
FROM active
WHERE CASE WHEN paired THEN format_rank = 1 AND source_format IN ('{AZURE_ACTUAL}', '{AZURE_AMORTIZED}')
           ELSE bill_rank = 1 END"""


def current_rows_sql(alias: str = "") -> str:
    """The predicate, over `line_items` (as `alias`), of the rows `current_line_items` holds: every
    row of a current load, and of an Azure actual load read beside its amortized twin only the
    commitment purchases and refunds."""
    p = f"{alias}." if alias else ""
    return (
        f"({p}x_LoadId IN (SELECT load_id FROM current_loads WHERE row_scope = '{ALL_ROWS}') OR "
        f"({p}x_LoadId IN (SELECT load_id FROM current_loads WHERE row_scope = '{COMMITMENT_PURCHASES}') "
        f"AND {_COMMITMENT_PURCHASE.format(p=p)}))"
    )


CURRENT_LINE_ITEMS_SQL = f"""
SELECT * FROM line_items WHERE x_LoadId IN (SELECT load_id FROM current_loads WHERE row_scope = '{ALL_ROWS}')
UNION ALL
SELECT * FROM line_items
WHERE x_LoadId IN (SELECT load_id FROM current_loads WHERE row_scope = '{COMMITMENT_PURCHASES}')
  AND {_COMMITMENT_PURCHASE.format(p="")}"""


def every_row_current(con: duckdb.DuckDBPyConnection) -> bool:
    """True when every row of `line_items` is current: no active load is shadowed by a later
    export of its bill and none is read only in part. (The loader deletes the rows of replaced
    loads.) Lets a pass over every row skip a no-op filter."""
    [(other,)] = con.execute(
        f"""SELECT count(*) FROM loads WHERE status = 'active' AND load_id NOT IN
              (SELECT load_id FROM current_loads WHERE row_scope = '{ALL_ROWS}')"""
    ).fetchall()
    return other == 0


def _line_items_ddl() -> str:
    columns = ",\n  ".join(f"{quote_ident(name)} {sql_type}" for name, sql_type in LINE_ITEM_COLUMNS)
    return f"CREATE TABLE IF NOT EXISTS line_items (\n  {columns}\n)"


def _add_missing_columns(con: duckdb.DuckDBPyConnection) -> None:
    """A store made by an earlier costaudit lacks columns added since: add them (NULL for the
    rows already there; the charge key is computed for them, see `_refresh_charge_keys`) rather
    than refuse to load into it."""
    present = {
        name
        for (name,) in con.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_name = 'line_items'"
            " AND table_schema = current_schema()"
        ).fetchall()
    }
    for name, sql_type in LINE_ITEM_COLUMNS:
        if name not in present:
            con.execute(f"ALTER TABLE line_items ADD COLUMN {quote_ident(name)} {sql_type}")


# A fixed charge key whose hash tells whether this DuckDB hashes as the one that filled x_ChargeKey.
_CHARGE_KEY_PROBE = "SELECT CAST(" + charge_key_sql().replace('"', "") + " AS VARCHAR) FROM (SELECT " + ", ".join(
    f"'costaudit {name}' AS {name}" for name in CHARGE_KEY_COLUMNS
) + ")"


def _refresh_charge_keys(con: duckdb.DuckDBPyConnection) -> None:
    """Every row's x_ChargeKey must come from the running DuckDB's hash(): compute it for rows
    that lack it (a store from before the column) and for all rows when DuckDB's hash changed."""
    [(probe,)] = con.execute(_CHARGE_KEY_PROBE).fetchall()
    stored = con.execute("SELECT value FROM meta WHERE key = 'charge_key_probe'").fetchone()
    if stored is not None and stored[0] == probe:
        missing = con.execute("SELECT 1 FROM line_items WHERE x_ChargeKey IS NULL LIMIT 1").fetchone()
        if missing is None:
            return
    con.execute("BEGIN TRANSACTION")
    try:
        where = "" if stored is None or stored[0] != probe else " WHERE x_ChargeKey IS NULL"
        con.execute(f"UPDATE line_items SET x_ChargeKey = {charge_key_sql()}{where}")
        con.execute(
            "INSERT INTO meta VALUES ('charge_key_probe', ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            [probe],
        )
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise


def ensure_schema(con: duckdb.DuckDBPyConnection) -> None:
    """Create the tables and views if missing (idempotent)."""
    con.execute("CREATE TABLE IF NOT EXISTS meta (key VARCHAR PRIMARY KEY, value VARCHAR)")
    con.execute(_line_items_ddl())
    _add_missing_columns(con)
    _refresh_charge_keys(con)
    con.execute(
        """
        CREATE TABLE IF NOT EXISTS loads (
          load_id VARCHAR PRIMARY KEY,
          batch_id VARCHAR NOT NULL,
          provider VARCHAR NOT NULL,
          billing_account_id VARCHAR NOT NULL,
          billing_period_start TIMESTAMPTZ NOT NULL,
          source_export VARCHAR NOT NULL,
          source_format VARCHAR NOT NULL,
          format_version VARCHAR,
          delivery_id VARCHAR,
          fingerprint VARCHAR NOT NULL,
          files JSON NOT NULL,
          row_count BIGINT NOT NULL,
          basis VARCHAR NOT NULL,
          loaded_at TIMESTAMPTZ NOT NULL,
          status VARCHAR NOT NULL,
          replaced_by VARCHAR
        )"""
    )
    con.execute(
        f"""
        CREATE TABLE IF NOT EXISTS load_totals (
          load_id VARCHAR NOT NULL,
          currency VARCHAR NOT NULL,
          basis VARCHAR NOT NULL,
          source_total {MONEY} NOT NULL,
          stored_total {MONEY} NOT NULL,
          PRIMARY KEY (load_id, currency)
        )"""
    )
    # One bill is read once: when several source exports cover the same (provider, billing
    # account, billing period) -- say a CUR and a FOCUS export of the same month -- analysis reads
    # the most recently loaded one. The others stay in the ledger and in line_items.
    # One exception, Microsoft's own FOCUS conversion (formats.md 6.2): an Azure actual and an
    # amortized export of the same bill are read together, whichever came last, as the amortized
    # rows plus the actual rows of commitment purchases and refunds (which amortized data leaves
    # out). Alone, each gives one of the two costs short: amortized data has no purchase to bill,
    # actual data has covered usage at 0 instead of its amortized share.
    con.execute(f"CREATE OR REPLACE VIEW current_loads AS {CURRENT_LOADS_SQL}")
    con.execute(f"CREATE OR REPLACE VIEW current_line_items AS {CURRENT_LINE_ITEMS_SQL}")
    focus_list = ", ".join(quote_ident(n) for n in FOCUS_NAMES)
    con.execute(f"CREATE OR REPLACE VIEW focus_line_items AS SELECT {focus_list} FROM current_line_items")
    con.execute(
        "INSERT INTO meta VALUES ('schema_version', ?) ON CONFLICT (key) DO NOTHING",
        [str(SCHEMA_VERSION)],
    )
    # Findings, runs and the inputs beyond billing (metrics, inventories, the catalogue) belong
    # to the rules room, which declares its own tables.
    from costaudit.rules.schema import ensure_rules_schema

    ensure_rules_schema(con)
