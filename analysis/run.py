"""Run the analysis against a store: find distinct keys, classify, link, persist, publish views.

Cost model: one DuckDB pass groups the current line items by a hash of the key columns (the same
order of work as any group-by), the few thousand distinct keys go to polars, and the results come
back as small tables. A second pass sums the line items per month, resource, tags and charge key
(`analysis_charge_totals`, what the rules read). A third, over AI rows only, runs when
`ai_tag_keys` is configured.
Everything is written in one transaction together with an `analysis_runs` row.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

import duckdb
import polars as pl

from costaudit.connectors.sql import quote_ident, quote_literal
from costaudit.errors import CostauditError
from costaudit.store import current_rows_sql, every_row_current

from .classify import classify_keys
from .config import AnalysisConfig
from .linking import ai_accounts, ai_tags, link_file_resources
from .schema import KEY_COLUMNS, RESULT_COLUMNS
from .taxonomy import Taxonomy, load_taxonomy
from .views import create_views, tag_path, totals_sql


def _current_filter(con: duckdb.DuckDBPyConnection, alias: str = "") -> str:
    """The row filter for the current line items (`costaudit.store.current_rows_sql`), or TRUE
    when every row of line_items is current.

    The loader deletes the rows of replaced loads, so rows outside the current ones exist only when
    two exports cover the same bill (a shadowed active load, or the actual twin of an amortized
    Azure export, read for its purchases only). Skipping a no-op filter saves a semi-join over
    every row."""
    return "TRUE" if every_row_current(con) else current_rows_sql(alias)


@dataclass
class AnalysisRun:
    """What a run did: ids to find it in `analysis_runs`, and counts a person can check."""

    run_id: str
    taxonomy_version: str
    config_digest: str
    keys: int
    ai_keys: int
    network_keys: int
    line_items: int
    ai_accounts: int
    linked_resources: int
    ai_tags: int
    seconds: float


def _ensure_runs_table(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(
        """
        CREATE TABLE IF NOT EXISTS analysis_runs (
          run_id VARCHAR PRIMARY KEY,
          started_at TIMESTAMPTZ NOT NULL,
          finished_at TIMESTAMPTZ NOT NULL,
          taxonomy_version VARCHAR NOT NULL,
          taxonomy_digest VARCHAR NOT NULL,
          config_digest VARCHAR NOT NULL,
          config_path VARCHAR,
          loads_digest VARCHAR NOT NULL,
          duckdb_version VARCHAR NOT NULL,
          key_count BIGINT NOT NULL,
          ai_key_count BIGINT NOT NULL,
          network_key_count BIGINT NOT NULL,
          line_item_count BIGINT NOT NULL,
          ai_account_count BIGINT NOT NULL,
          linked_resource_count BIGINT NOT NULL,
          ai_tag_count BIGINT NOT NULL
        )"""
    )


def loads_digest(con: duckdb.DuckDBPyConnection) -> str:
    """Identifies the set of current loads; a new or replaced load makes the analysis stale."""
    rows = con.execute(
        "SELECT coalesce(md5(string_agg(load_id, ',' ORDER BY load_id)), 'empty') FROM current_loads"
    ).fetchall()
    return rows[0][0] if rows else "empty"


def query_frame(con: duckdb.DuckDBPyConnection, sql: str) -> pl.DataFrame:
    """Run a query and hand the result to polars (through Arrow, no per-row Python)."""
    return con.sql(sql).pl()


def discover_keys(con: duckdb.DuckDBPyConnection) -> pl.DataFrame:
    """Distinct charge keys of the current line items, with how many rows each covers.

    One group-by on the charge key the store keeps on every row (``x_ChargeKey``, DuckDB's hash of
    the key columns) finds the keys and one row number per key; the key values are then read from
    those rows only. (Two different keys with the same 64-bit hash would be merged: with 10^5 keys
    the chance is about 3 in 10^10.)"""
    con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE __analysis_found AS
        SELECT x_ChargeKey AS charge_key, min(rowid) AS first_row, count(*) AS line_item_rows
        FROM line_items WHERE {_current_filter(con)}
        GROUP BY charge_key
        """
    )
    columns = ", ".join(f"li.{quote_ident(c)}" for c in KEY_COLUMNS)
    plain = ", ".join(quote_ident(c) for c in KEY_COLUMNS)
    keys = query_frame(
        con,
        f"""
        SELECT {columns}, f.line_item_rows, f.charge_key, md5(to_json(list_value({columns}))) AS key_id
        FROM (SELECT rowid AS first_row, {plain} FROM line_items
              WHERE rowid IN (SELECT first_row FROM __analysis_found)) li
        JOIN __analysis_found f USING (first_row)
        ORDER BY key_id
        """,
    )
    con.execute("DROP TABLE __analysis_found")
    return keys.with_columns([pl.col(c).cast(pl.String) for c in KEY_COLUMNS])


def _write_keys(con: duckdb.DuckDBPyConnection, classified: pl.DataFrame, run_id: str) -> None:
    con.register("__analysis_keys", classified.to_arrow())
    try:
        selected = ", ".join(
            ["key_id", *(quote_ident(c) for c in KEY_COLUMNS)]
            + [f"CAST({quote_ident(name)} AS {sql_type}) AS {quote_ident(name)}" for name, sql_type in RESULT_COLUMNS]
            + ["CAST(line_item_rows AS BIGINT) AS line_item_rows", "CAST(charge_key AS UBIGINT) AS charge_key",
               f"{quote_literal(run_id)} AS run_id"]
        )
        con.execute(f"CREATE OR REPLACE TABLE analysis_charge_keys AS SELECT {selected} FROM __analysis_keys")
    finally:
        con.unregister("__analysis_keys")


# Line items summed in one group-by. Above this, the totals are summed in shares of the resources:
# at 50M generated rows (2M totals of ten text columns, 2 GB memory limit) one group-by took 79 s,
# two shares 51 s, three 33 s, four 39-47 s, eight 61 s (bench/README.md, "Fourth round").
TOTALS_PASS_ROWS = 17_000_000


def _write_totals(con: duckdb.DuckDBPyConnection, rows: int) -> None:
    """`analysis_charge_totals`: the current line items summed per month, resource, tags and
    charge key, for the rules (see `views`): one group-by over the line items per share of
    `TOTALS_PASS_ROWS` of the `rows` current line items."""
    current = _current_filter(con)
    parts = max(1, -(-rows // TOTALS_PASS_ROWS))
    con.execute(f"CREATE OR REPLACE TABLE analysis_charge_totals AS {totals_sql(current, parts, 0)}")
    for part in range(1, parts):
        con.execute(f"INSERT INTO analysis_charge_totals {totals_sql(current, parts, part)}")


def _write_frame(con: duckdb.DuckDBPyConnection, table: str, frame: pl.DataFrame, columns: dict[str, str],
                 run_id: str) -> None:
    con.register("__analysis_frame", frame.to_arrow())
    try:
        selected = ", ".join(f"CAST({quote_ident(c)} AS {t}) AS {quote_ident(c)}" for c, t in columns.items())
        con.execute(
            f"CREATE OR REPLACE TABLE {table} AS SELECT {selected}, {quote_literal(run_id)} AS run_id "
            "FROM __analysis_frame"
        )
    finally:
        con.unregister("__analysis_frame")


def _account_names(con: duckdb.DuckDBPyConnection, config: AnalysisConfig) -> pl.DataFrame:
    """Distinct (provider, sub-account id, name) of the current rows; read only when accounts are configured."""
    if not config.ai_accounts:
        return pl.DataFrame(schema={"ProviderName": pl.String, "SubAccountId": pl.String, "SubAccountName": pl.String})
    return query_frame(
        con,
        f"SELECT DISTINCT ProviderName, SubAccountId, SubAccountName FROM line_items "
        f"WHERE {_current_filter(con)} AND SubAccountId IS NOT NULL",
    )


def _shared_tags(con: duckdb.DuckDBPyConnection, tag_keys: tuple[str, ...]) -> pl.DataFrame:
    """Values of the shared-tag keys found on AI spend, with one example resource each."""
    empty = pl.DataFrame(schema={"tag_key": pl.String, "tag_value": pl.String,
                                 "example_resource": pl.String, "example_category": pl.String})
    if not tag_keys:
        return empty
    current = _current_filter(con, "li")
    keys = "[" + ", ".join(quote_literal(k) for k in tag_keys) + "]"
    paths = "[" + ", ".join(tag_path(k) for k in tag_keys) + "]"
    return query_frame(
        con,
        f"""
        WITH ai_keys AS (
          SELECT charge_key, ai_category FROM analysis_charge_keys WHERE ai_category IS NOT NULL)
        SELECT tag_key, tag_value, min(ResourceId) AS example_resource, min(ai_category) AS example_category
        FROM (
          SELECT li.ResourceId, k.ai_category,
                 unnest({keys}) AS tag_key,
                 unnest(json_extract_string(li.Tags, {paths})) AS tag_value
          FROM line_items li JOIN ai_keys k ON li.x_ChargeKey = k.charge_key
          WHERE {current} AND li.Tags IS NOT NULL)
        WHERE tag_value IS NOT NULL
        GROUP BY tag_key, tag_value
        ORDER BY tag_key, tag_value
        """,
    )


def run_analysis(
    con: duckdb.DuckDBPyConnection, config: AnalysisConfig | None = None, taxonomy: Taxonomy | None = None
) -> AnalysisRun:
    """Classify every current line item's key, link AI data, and publish the analysis views.

    Reads `line_items` (never writes it); replaces the analysis tables in one transaction."""
    config = config or AnalysisConfig()
    taxonomy = taxonomy or load_taxonomy(config.rules, config.rules_files)
    resources = link_file_resources(config)  # a bad link file fails before anything is written
    run_id = uuid.uuid4().hex[:12]
    started = datetime.now(UTC)
    clock = time.perf_counter()
    _ensure_runs_table(con)
    con.execute("BEGIN TRANSACTION")
    try:
        classified = classify_keys(discover_keys(con), taxonomy)
        _write_keys(con, classified, run_id)
        _write_totals(con, int(classified.get_column("line_item_rows").sum() or 0))
        accounts = ai_accounts(_account_names(con, config), config)
        tags = ai_tags(_shared_tags(con, config.ai_tag_keys), config)
        _write_frame(con, "analysis_ai_accounts", accounts,
                     {"ProviderName": "VARCHAR", "SubAccountId": "VARCHAR", "reason": "VARCHAR"}, run_id)
        _write_frame(con, "analysis_ai_resources", resources, {"ResourceId": "VARCHAR", "reason": "VARCHAR"}, run_id)
        _write_frame(con, "analysis_ai_tags", tags,
                     {"tag_key": "VARCHAR", "tag_value": "VARCHAR", "source": "VARCHAR", "reason": "VARCHAR"}, run_id)
        create_views(con, config.tag_keys)
        result = AnalysisRun(
            run_id=run_id,
            taxonomy_version=taxonomy.version,
            config_digest=config.digest(),
            keys=classified.height,
            ai_keys=classified.filter(pl.col("ai_category").is_not_null()).height,
            network_keys=classified.filter(pl.col("network_class").is_not_null()).height,
            line_items=int(classified.get_column("line_item_rows").sum() or 0),
            ai_accounts=accounts.height,
            linked_resources=resources.height,
            ai_tags=tags.height,
            seconds=0.0,
        )
        con.execute(
            "INSERT INTO analysis_runs VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [run_id, started, datetime.now(UTC), taxonomy.version, taxonomy.digest, result.config_digest,
             str(config.source) if config.source else None, loads_digest(con), duckdb.__version__,
             result.keys, result.ai_keys, result.network_keys, result.line_items, result.ai_accounts,
             result.linked_resources, result.ai_tags],
        )
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    result.seconds = time.perf_counter() - clock
    return result


def latest_run(con: duckdb.DuckDBPyConnection) -> dict | None:
    """The newest `analysis_runs` row as a dict, or None when analysis never ran."""
    exists = con.execute(
        "SELECT count(*) FROM duckdb_tables() WHERE table_name = 'analysis_runs' AND NOT temporary"
    ).fetchall()
    if not exists[0][0]:
        return None
    cursor = con.execute("SELECT * FROM analysis_runs ORDER BY finished_at DESC LIMIT 1")
    rows = cursor.fetchall()
    if not rows:
        return None
    return dict(zip([d[0] for d in cursor.description], rows[0], strict=True))


def is_fresh(con: duckdb.DuckDBPyConnection, config: AnalysisConfig, taxonomy: Taxonomy) -> bool:
    """True when the stored analysis matches the current loads, configuration and taxonomy."""
    run = latest_run(con)
    return bool(
        run
        and run["loads_digest"] == loads_digest(con)
        and run["config_digest"] == config.digest()
        and run["taxonomy_digest"] == taxonomy.digest
        and run["duckdb_version"] == duckdb.__version__
        # an analysis written before its keys carried the store's charge key (x_ChargeKey), or
        # before it wrote the charge totals the rules read, must be redone
        and con.execute(
            "SELECT count(*) FROM information_schema.columns WHERE table_schema = current_schema() AND"
            " ((table_name = 'analysis_charge_keys' AND column_name = 'charge_key')"
            " OR (table_name = 'analysis_charge_totals' AND column_name = 'line_item_rows'))").fetchone()[0] == 2
    )


def ensure_analysis(con: duckdb.DuckDBPyConnection, config: AnalysisConfig | None = None) -> AnalysisRun | None:
    """Run the analysis unless the stored one is fresh; returns the new run or None."""
    config = config or AnalysisConfig()
    taxonomy = load_taxonomy(config.rules, config.rules_files)
    if is_fresh(con, config, taxonomy):
        return None
    if loads_digest(con) == "empty":
        raise CostauditError("the store has no billing data yet; run `costaudit load PATH...` first")
    return run_analysis(con, config, taxonomy)
