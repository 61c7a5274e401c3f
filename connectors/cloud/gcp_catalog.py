"""Compute Engine list prices from the Cloud Billing Catalog API, into ``instance_prices``.

Google prices a machine type by its parts: an on-demand SKU per vCPU-hour and per GiB-hour of
memory for each machine series and region group, and one per GPU-hour for each GPU model. The
SKUs are staged as a table, matched to the series by the description patterns in
``data/gcp_catalog_skus.csv`` and priced against the vCPU, memory and GPU counts of
``instance_catalogue``: hourly = vCPUs x core price + GiB x memory price + GPUs x GPU price.
Rows are written with source ``api:gcp-cloud-catalog``, which the shipped catalogue keeps and
prefers. Machine types whose GPU has no known SKU pattern (A3's H100) and shared-core E2 types
are left to the shipped prices. The catalogue is read at most once a day.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from costaudit.connectors.base import data_file
from costaudit.connectors.sql import quote_literal

from . import Collected, PullContext
from .common import Remote
from .gcp import call, credentials, options, retry

COMPUTE_ENGINE = "services/6F81-5844-456A"  # the Compute Engine service id in the Cloud Catalog
SOURCE = "api:gcp-cloud-catalog"


def _price(money) -> Decimal:
    return Decimal(int(money.units or 0)) + Decimal(int(money.nanos or 0)) / Decimal(1_000_000_000)


def collect_prices(ctx: PullContext, collected: Collected) -> None:
    """List the Compute Engine SKUs (once a day) for `store_prices`."""
    from google.cloud import billing_v1

    today = datetime.now(UTC).date().isoformat()
    url = f"catalog://{COMPUTE_ENGINE}"
    if ctx.cache.state_etag(url) == today:
        ctx.report.up_to_date.append(url)
        return
    creds, _project = credentials(ctx)
    client = billing_v1.CloudCatalogClient(credentials=creds, transport="rest",
                                           client_options=options(ctx.settings.get("api_endpoint")))
    skus = call("serviceusage.services.use (the Cloud Billing API enabled)", COMPUTE_ENGINE,
                lambda: list(client.list_skus(parent=COMPUTE_ENGINE, retry=retry(ctx))))
    rows = []
    for sku in skus:
        if sku.category.usage_type != "OnDemand" or not sku.pricing_info:
            continue
        expression = sku.pricing_info[0].pricing_expression
        rates = list(expression.tiered_rates)
        if not rates:
            continue
        # The rate from the first priced tier (compute SKUs have one tier; free tiers start at 0).
        rate = next((r for r in rates if _price(r.unit_price) > 0), rates[0])
        for region in sku.service_regions:
            rows.append({
                "description": sku.description, "resource_group": sku.category.resource_group, "region": region,
                "unit": expression.usage_unit, "price": str(_price(rate.unit_price)),
                "currency": rate.unit_price.currency_code or "USD",
            })
    collected.extra["catalog_skus"] = rows
    ctx.cache.remember(Remote(url, ("catalog",), len(rows), today), None, "catalog")


def store_prices(ctx: PullContext, collected: Collected) -> None:
    """Price every GCP machine type of the instance catalogue from the staged SKUs."""
    import pyarrow as pa

    from costaudit.rules.instance_catalogue import refresh_catalogue

    con = ctx.con
    [(known,)] = con.execute("SELECT count(*) FROM instance_catalogue WHERE provider_key = 'gcp'").fetchall()
    if not known:
        refresh_catalogue(con)
    staged = pa.Table.from_pylist(collected.extra["catalog_skus"], schema=pa.schema([
        ("description", pa.string()), ("resource_group", pa.string()), ("region", pa.string()),
        ("unit", pa.string()), ("price", pa.string()), ("currency", pa.string()),
    ]))
    con.register("catalog_skus_staged", staged)
    note = f"list price from the Cloud Billing Catalog API, on-demand, as of {datetime.now(UTC):%Y-%m-%d}"
    mapping = f"read_csv({quote_literal(data_file('gcp_catalog_skus.csv'))}, header = true, comment = '#', all_varchar = true)"
    try:
        con.execute("BEGIN TRANSACTION")
        con.execute(
            f"""
            INSERT OR REPLACE INTO instance_prices
            WITH parts AS (
              SELECT m.series, m.part, m.accelerator_model, s.region, s.currency,
                     min(CAST(s.price AS DECIMAL(18, 9))) AS price
              FROM {mapping} m
              JOIN catalog_skus_staged s
                ON s.resource_group = m.resource_group AND s.description LIKE m.description_like
               AND s.unit = CASE m.part WHEN 'ram' THEN 'GiBy.h' ELSE 'h' END
              GROUP BY ALL)
            SELECT 'gcp', c.type_key, cpu.region,
                   CAST(c.vcpu * cpu.price + c.memory_gib * ram.price
                        + c.accelerator_count * coalesce(gpu.price, 0) AS DECIMAL(18, 6)),
                   cpu.currency, {quote_literal(note + ', ')} || cpu.region, {quote_literal(SOURCE)}
            FROM instance_catalogue c
            JOIN parts cpu ON cpu.part = 'cpu' AND cpu.series = split_part(c.family, '-', 1)
            JOIN parts ram ON ram.part = 'ram' AND ram.series = cpu.series AND ram.region = cpu.region
                          AND ram.currency = cpu.currency
            LEFT JOIN parts gpu ON gpu.part = 'gpu' AND gpu.accelerator_model = c.accelerator_model
                               AND gpu.region = cpu.region AND gpu.currency = cpu.currency
            WHERE c.provider_key = 'gcp' AND c.family <> 'e2-shared'
              AND (c.accelerator_count = 0 OR gpu.price IS NOT NULL)
            """
        )
        [(count,)] = con.execute("SELECT count(*) FROM instance_prices WHERE source = ?", [SOURCE]).fetchall()
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    finally:
        con.unregister("catalog_skus_staged")
    ctx.report.prices = int(count)
    ctx.cache.commit("catalog")
