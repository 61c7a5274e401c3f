"""Catalogue data shipped with the rules: instance specs and list prices, storage list prices.

The CSV files live in ``catalogue/`` beside this module (sources and licences in its README).
`refresh_catalogue` replaces the shipped rows in ``instance_catalogue``, ``instance_prices`` and
``storage_prices`` with the files' content; rows whose ``source`` starts with ``api:`` (a future refresh from the
providers' price APIs) are kept and win over shipped rows for the same key.
"""

from __future__ import annotations

from pathlib import Path

import duckdb

from costaudit.connectors.sql import quote_literal

from .schema import ensure_rules_schema
from .sqlparts import type_key

CATALOGUE_DIR = Path(__file__).resolve().parent / "catalogue"
TYPES_FILE = CATALOGUE_DIR / "instance_types.csv"
PRICES_FILE = CATALOGUE_DIR / "instance_prices.csv"
STORAGE_PRICES_FILE = CATALOGUE_DIR / "storage_prices.csv"


def _read(path: Path, columns: dict[str, str]) -> str:
    spec = ", ".join(f"{quote_literal(name)}: {quote_literal(sql_type)}" for name, sql_type in columns.items())
    return (
        f"read_csv({quote_literal(str(path))}, header = true, delim = ',', quote = '\"', "
        f"columns = {{{spec}}}, nullstr = '')"
    )


def refresh_catalogue(con: duckdb.DuckDBPyConnection) -> tuple[int, int]:
    """Load the shipped catalogue into the store; returns (instance types, prices) loaded."""
    ensure_rules_schema(con)
    types = _read(
        TYPES_FILE,
        {
            "provider_key": "VARCHAR", "instance_type": "VARCHAR", "family": "VARCHAR", "vcpu": "DECIMAL(10,2)",
            "memory_gib": "DECIMAL(12,2)", "accelerator_model": "VARCHAR", "accelerator_count": "DECIMAL(10,4)",
            "accelerator_memory_gib": "DECIMAL(10,2)", "source": "VARCHAR",
        },
    )
    prices = _read(
        PRICES_FILE,
        {
            "provider_key": "VARCHAR", "instance_type": "VARCHAR", "region": "VARCHAR",
            "hourly_price": "DECIMAL(18,6)", "currency": "VARCHAR", "price_note": "VARCHAR",
        },
    )
    con.execute("DELETE FROM instance_catalogue WHERE source NOT LIKE 'api:%'")
    con.execute("DELETE FROM instance_prices WHERE source NOT LIKE 'api:%'")
    con.execute("DELETE FROM storage_prices WHERE source NOT LIKE 'api:%'")
    storage = _read(
        STORAGE_PRICES_FILE,
        {
            "provider_key": "VARCHAR", "storage_class": "VARCHAR", "region": "VARCHAR",
            "price_per_gib_month": "DECIMAL(18,6)", "currency": "VARCHAR", "price_note": "VARCHAR",
        },
    )
    con.execute(
        f"""
        INSERT INTO storage_prices
        SELECT provider_key, upper(storage_class), lower(region), price_per_gib_month, currency, price_note,
               'costaudit catalogue'
        FROM {storage} s
        WHERE NOT EXISTS (SELECT 1 FROM storage_prices x WHERE x.provider_key = s.provider_key
                          AND x.storage_class = upper(s.storage_class) AND x.region = lower(s.region))
        """
    )
    con.execute(
        f"""
        INSERT INTO instance_catalogue
        SELECT provider_key, instance_type, {type_key('instance_type')}, family, vcpu, memory_gib,
               accelerator_model, coalesce(accelerator_count, 0), accelerator_memory_gib, source
        FROM {types} t
        WHERE NOT EXISTS (SELECT 1 FROM instance_catalogue c
                          WHERE c.provider_key = t.provider_key AND c.type_key = {type_key('t.instance_type')})
        """
    )
    con.execute(
        f"""
        INSERT INTO instance_prices
        SELECT provider_key, {type_key('instance_type')}, region, hourly_price, currency, price_note, 'costaudit catalogue'
        FROM {prices} p
        WHERE hourly_price IS NOT NULL AND NOT EXISTS (
          SELECT 1 FROM instance_prices x
          WHERE x.provider_key = p.provider_key AND x.type_key = {type_key('p.instance_type')} AND x.region = p.region)
        """
    )
    [(type_count, price_count)] = con.execute(
        "SELECT (SELECT count(*) FROM instance_catalogue), (SELECT count(*) FROM instance_prices)"
    ).fetchall()
    return int(type_count), int(price_count)
