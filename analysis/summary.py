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
    by_currency: dict[str, CurrencySummary] = {}
    for currency, billed, effective, ai_billed, ai_effective, net_billed, net_effective, gb in con.execute(
        f"""
        SELECT BillingCurrency, sum(BilledCost), sum(EffectiveCost),
               sum(BilledCost) FILTER (WHERE ai_category IS NOT NULL),
               sum(EffectiveCost) FILTER (WHERE ai_category IS NOT NULL),
               sum(BilledCost) FILTER (WHERE network_class IS NOT NULL),
               sum(EffectiveCost) FILTER (WHERE network_class IS NOT NULL),
               sum(volume_gb) FILTER (WHERE network_class IS NOT NULL)
        FROM analysis_line_items WHERE {where}
        GROUP BY BillingCurrency ORDER BY BillingCurrency
        """,
        params,
    ).fetchall():
        by_currency[currency] = CurrencySummary(
            currency, billed or zero, effective or zero, ai_billed or zero, ai_effective or zero,
            net_billed or zero, net_effective or zero, gb or zero,
        )
    for currency, month, provider, category, billed, effective, rows in con.execute(
        f"""
        SELECT BillingCurrency, strftime(BillingPeriodStart, '%Y-%m'), ProviderName, ai_category,
               sum(BilledCost), sum(EffectiveCost), count(*)
        FROM ai_spend WHERE {where}
        GROUP BY ALL ORDER BY 1, 2, 3, 5 DESC, 4
        """,
        params,
    ).fetchall():
        by_currency[currency].ai_rows.append((month, provider, category, billed, effective, rows))
    for currency, cls, billed, effective, gb, rows in con.execute(
        f"""
        SELECT BillingCurrency, network_class, sum(BilledCost), sum(EffectiveCost), sum(volume_gb), count(*)
        FROM network_transfer WHERE {where}
        GROUP BY ALL ORDER BY 1, 3 DESC, 2
        """,
        params,
    ).fetchall():
        by_currency[currency].network_classes.append((cls, billed, effective, gb or zero, rows))
    for currency, route, cls, billed, effective, gb in con.execute(
        f"""
        SELECT BillingCurrency, route, network_class, billed, effective, gb FROM (
          SELECT BillingCurrency, route, network_class, sum(BilledCost) AS billed, sum(EffectiveCost) AS effective,
                 sum(volume_gb) AS gb
          FROM network_transfer WHERE {where} AND network_class <> 'inbound'
          GROUP BY ALL)
        QUALIFY row_number() OVER (PARTITION BY BillingCurrency ORDER BY billed DESC, route, network_class) <= ?
        ORDER BY 1, 4 DESC, 2, 3
        """,
        [*params, top],
    ).fetchall():
        by_currency[currency].top_routes.append((route, cls, billed, effective, gb or zero))
    return list(by_currency.values())
