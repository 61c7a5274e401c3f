"""Build tiny FOCUS CSV files for store and error tests (independent of provider readers)."""

from __future__ import annotations

import csv
from pathlib import Path

HEADER = [
    "BillingAccountId", "BillingAccountName", "BillingCurrency", "BillingPeriodStart", "BillingPeriodEnd",
    "ChargePeriodStart", "ChargePeriodEnd", "ChargeCategory", "ChargeDescription", "BilledCost",
    "EffectiveCost", "ListCost", "ContractedCost", "ProviderName", "PublisherName", "InvoiceIssuerName",
    "ServiceName", "ServiceCategory", "ResourceId", "Tags",
]


def row(account: str = "111", period: str = "2024-09", cost: str = "1.25", currency: str = "USD", **overrides) -> dict:
    year, month = (int(p) for p in period.split("-"))
    end_year, end_month = (year + 1, 1) if month == 12 else (year, month + 1)
    start = f"{year:04d}-{month:02d}-01T00:00:00Z"
    end = f"{end_year:04d}-{end_month:02d}-01T00:00:00Z"
    values = {
        "BillingAccountId": account,
        "BillingAccountName": f"Account {account}",
        "BillingCurrency": currency,
        "BillingPeriodStart": start,
        "BillingPeriodEnd": end,
        "ChargePeriodStart": start,
        "ChargePeriodEnd": f"{year:04d}-{month:02d}-02T00:00:00Z",
        "ChargeCategory": "Usage",
        "ChargeDescription": "test charge",
        "BilledCost": cost,
        "EffectiveCost": cost,
        "ListCost": cost,
        "ContractedCost": cost,
        "ProviderName": "TestCloud",
        "PublisherName": "TestCloud",
        "InvoiceIssuerName": "TestCloud",
        "ServiceName": "Compute",
        "ServiceCategory": "Compute",
        "ResourceId": "r-1",
        "Tags": '{"team": "ml"}',
    }
    values.update(overrides)
    return values


def write(path: Path, rows: list[dict], header: list[str] | None = None) -> Path:
    header = header or HEADER
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=header, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    return path
