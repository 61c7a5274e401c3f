"""Figures for `costaudit summary`: AI spend and network cost per currency, straight from the views.

Every amount stays in its billing currency; nothing here adds currencies together."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

import duckdb


@dataclass
class CurrencySummary:
    """One currency's figures. Amounts are exact decimals (BilledCost and EffectiveCost)."""

    currency: str
    billed: Decimal = Decimal(0)
    effective: Decimal = Decimal(0)
    ai_billed: Decimal = Decimal(0)
    ai_effective: Decimal = Decimal(0)
    network_billed: Decimal = Decimal(0)
    network_effective: Decimal = Decimal(0)
    network_gb: Decimal = Decimal(0)
    # (month, provider, category, billed, effective, rows)
    ai_rows: list[tuple[str, str, str, Decimal, Decimal, int]] = field(default_factory=list)
    # (class, billed, effective, gb, rows)
    network_classes: list[tuple[str, Decimal, Decimal, Decimal, int]] = field(default_factory=list)
    # (route, class, billed, effective, gb)
    top_routes: list[tuple[str, str, Decimal, Decimal, Decimal]] = field(default_factory=list)


def _period_filter(since: datetime | None, until: datetime | None) -> tuple[str, list]:
    clauses, params = [], []
    if since is not None:
        clauses.append("BillingPeriodStart >= ?")
        params.append(since)
    if until is not None:
        clauses.append("BillingPeriodStart < ?")
        params.append(until)
    return (" AND ".join(clauses) or "TRUE"), params


def summarise(
    con: duckdb.DuckDBPyConnection, *, since: datetime | None = None, until: datetime | None = None, top: int = 10
) -> list[CurrencySummary]:
    """Per currency: total spend, AI spend by month/provider/category, network cost by class, top routes.

    `since` is inclusive and `until` exclusive (billing months, as FOCUS periods are)."""
    where, params = _period_filter(since, until)
    zero = Decimal(0)
    # One pass over the monthly charge totals (analysis_totals: the line items already summed per
    # month, resource, tag set and charge key), grouped as finely as any figure below needs (a
    # few thousand groups, kept in a TEMP table); each figure is then summed in SQL over those
    # groups, exact. ai_spend and network_transfer are analysis_line_items filtered on
    # ai_category / network_class, so the groups serve them too. A store analysed by an older
    # version has no totals: its line items are read instead.
    views = {name for (name,) in con.execute("SELECT view_name FROM duckdb_views()").fetchall()}
    source, rows = ("analysis_totals", "sum(line_item_rows)") if "analysis_totals" in views else (
        "analysis_line_items", "count(*)")
    con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE costaudit_summary_groups AS
        SELECT BillingCurrency, strftime(BillingPeriodStart, '%Y-%m') AS month, ProviderName, ai_category,
               network_class, route, sum(BilledCost) AS billed, sum(EffectiveCost) AS effective,
               sum(volume_gb) AS gb, {rows} AS n
        FROM {source} WHERE {where}
        GROUP BY ALL
        """,
        params,
    )
    try:
        return _from_groups(con, top, zero)
    finally:
        con.execute("DROP TABLE IF EXISTS temp.costaudit_summary_groups")


def _from_groups(con: duckdb.DuckDBPyConnection, top: int, zero: Decimal) -> list[CurrencySummary]:
    g = "costaudit_summary_groups"
    by_currency: dict[str, CurrencySummary] = {}
    for currency, billed, effective, ai_billed, ai_effective, net_billed, net_effective, gb in con.execute(
        f"""
        SELECT BillingCurrency, sum(billed), sum(effective),
               sum(billed) FILTER (WHERE ai_category IS NOT NULL),
               sum(effective) FILTER (WHERE ai_category IS NOT NULL),
               sum(billed) FILTER (WHERE network_class IS NOT NULL),
               sum(effective) FILTER (WHERE network_class IS NOT NULL),
               sum(gb) FILTER (WHERE network_class IS NOT NULL)
        FROM {g} GROUP BY BillingCurrency ORDER BY BillingCurrency
        """
    ).fetchall():
        by_currency[currency] = CurrencySummary(
            currency, billed or zero, effective or zero, ai_billed or zero, ai_effective or zero,
            net_billed or zero, net_effective or zero, gb or zero,
        )
    for currency, month, provider, category, billed, effective, rows in con.execute(
        f"""
        SELECT BillingCurrency, month, ProviderName, ai_category, sum(billed), sum(effective), sum(n)::BIGINT
        FROM {g} WHERE ai_category IS NOT NULL
        GROUP BY ALL ORDER BY 1, 2, 3, 5 DESC, 4
        """
    ).fetchall():
        by_currency[currency].ai_rows.append((month, provider, category, billed, effective, rows))
    for currency, cls, billed, effective, gb, rows in con.execute(
        f"""
        SELECT BillingCurrency, network_class, sum(billed), sum(effective), sum(gb), sum(n)::BIGINT
        FROM {g} WHERE network_class IS NOT NULL
        GROUP BY ALL ORDER BY 1, 3 DESC, 2
        """
    ).fetchall():
        by_currency[currency].network_classes.append((cls, billed, effective, gb or zero, rows))
    for currency, route, cls, billed, effective, gb in con.execute(
        f"""
        SELECT BillingCurrency, route, network_class, billed, effective, gb FROM (
          SELECT BillingCurrency, route, network_class, sum(billed) AS billed, sum(effective) AS effective,
                 sum(gb) AS gb
          FROM {g} WHERE network_class IS NOT NULL AND network_class <> 'inbound'
          GROUP BY ALL)
        QUALIFY row_number() OVER (PARTITION BY BillingCurrency ORDER BY billed DESC, route, network_class) <= ?
        ORDER BY 1, 4 DESC, 2, 3
        """,
        [top],
    ).fetchall():
        by_currency[currency].top_routes.append((route, cls, billed, effective, gb or zero))
    return list(by_currency.values())
