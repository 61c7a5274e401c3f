"""Google Cloud Billing export (standard and detailed/resource-level) to FOCUS 1.2.

Accepted shapes, told apart by column types, never by file names:

* BigQuery rows exported as Parquet or newline-delimited JSON (optionally gzip): nested columns
  ``service``, ``sku``, ``usage``, ``credits`` ... (JSON numbers may be strings: BigQuery writes
  NUMERIC and INT64 as strings);
* the flattened CSV some tools write (koku): ``service.description``, ``invoice.month`` and list
  columns (``credits``, ``labels`` ...) as Python-repr or JSON text.

Mapping decisions:

* ProviderName ``Google Cloud``; InvoiceIssuerName and PublisherName ``seller_name`` or ``Google``.
* BillingPeriodStart = ``invoice.month`` (YYYYMM, first instant UTC), End = +1 month. Usage that
  happened in one month but is billed in the next (late usage) stays on the invoice month.
* Source total per (billing_account_id, invoice.month, currency) = sum(cost) + sum(credits.amount).
  Each export row becomes a FOCUS row with its ``cost`` (before credits); each credit becomes its
  own ``Credit`` row (all four cost metrics = the credit amount, x_CreditType = credits.type,
  ChargeDescription = full_name/name, every other dimension of its row kept for attribution).
  EffectiveCost equals BilledCost everywhere: Google bills commitment fees in the period they
  cover, so there is no prepaid purchase to amortize.
* cost_type: regular -> Usage (commitment fee SKUs "Commitment v1: ..." / "Commitment - dollar
  based ..." -> Purchase, Recurring, PricingCategory Standard); tax -> Tax; rounding_error ->
  Adjustment; adjustment -> Credit when adjustment_info.type is a goodwill or SLA credit, else
  Adjustment, with ChargeClass Correction when the adjusted usage ended before the invoice month
  began (Pacific time, Google's invoice time zone).
* Committed use discounts: a credit of type COMMITTED_USAGE_DISCOUNT (Usage) or
  COMMITTED_USAGE_DISCOUNT_DOLLAR_BASE (Spend) sets CommitmentDiscountId (the credit id),
  Name, Category, Type (the credit type) and Status ``Used`` on the usage row and on the credit
  row, and PricingCategory ``Committed`` on the usage row. Sustained-use, promotion, free-tier,
  FEE_UTILIZATION_OFFSET and other credits are plain credits. Spot/preemptible SKUs are Dynamic.
* Tags (JSON object): ``labels`` unprefixed (the user scheme); ``system_labels`` under
  ``gcp-system/``, ``project.labels`` under ``gcp-project/``, resource-manager ``tags`` under
  ``gcp-tag/<namespace>/``; the first occurrence of a key wins; an empty value becomes ``true``.
* x_InstanceType from the system label ``compute.googleapis.com/machine_spec``; x_FromLocation /
  x_ToLocation from egress SKU names ("... from Americas to APAC"); PricingCurrency USD with
  PricingCurrency* = amount / currency_conversion_rate (Google prices in USD).
"""

from __future__ import annotations

import duckdb

from costaudit.errors import InputError

from ..base import Cols, Format, ReadOptions, data_file
from ..sql import quote_literal
from .gcp_fields import Fields
from .gcp_sql import MONEY_PATHS, SERVICES_TABLE, SOURCE_FORMAT, TIME_PATHS, UNITS_TABLE, GcpSql

# Paths whose presence says "Google Cloud billing export"; the first three are required for a match.
SIGNATURE = ("billing_account_id", "cost", "service.description")
KNOWN_PATHS = (
    "service.id", "sku.id", "sku.description", "usage_start_time", "usage_end_time", "project.id",
    "labels", "system_labels", "location.region", "export_time", "currency", "currency_conversion_rate",
    "usage.amount", "usage.unit", "credits", "invoice.month", "cost_type", "cost_at_list",
    "resource.name", "resource.global_name", "price.effective_price", "adjustment_info", "seller_name",
)


class GcpBillingExportFormat(Format):
    id = SOURCE_FORMAT
    provider = "Google Cloud"
    basis = "BilledCost"
    export_family = SOURCE_FORMAT
    title = "Google Cloud Billing export (standard or detailed; BigQuery rows as Parquet/JSON, or flattened CSV)"

    def prepare(self, con: duckdb.DuckDBPyConnection) -> None:
        """Register the service-category and unit lookups (one row per key, so joins never fan out)."""
        con.execute(
            f"""CREATE OR REPLACE TEMP TABLE {SERVICES_TABLE} AS
                SELECT DISTINCT ON (lower(service_description)) lower(service_description) AS service_key,
                       service_category, service_subcategory
                FROM read_csv({quote_literal(data_file('gcp_services.csv'))}, header = true, comment = '#',
                              all_varchar = true)"""
        )
        con.execute(
            f"""CREATE OR REPLACE TEMP TABLE {UNITS_TABLE} AS
                SELECT DISTINCT ON (lower(gcp_unit)) lower(gcp_unit) AS gcp_unit, focus_unit
                FROM read_csv({quote_literal(data_file('gcp_units.csv'))}, header = true, comment = '#',
                              all_varchar = true)"""
        )

    def score(self, cols: Cols) -> int:
        fields = Fields(cols)
        if not all(fields.has(path) for path in SIGNATURE):
            return 0
        # Far above FOCUS (10 + matching FOCUS names): these snake_case/dotted names are Google's own.
        return 100 + sum(1 for path in KNOWN_PATHS if fields.has(path))

    def version(self, cols: Cols) -> str:
        fields = Fields(cols)
        level = "detailed" if fields.has("resource.global_name") or fields.has("resource.name") else "standard"
        shape = "flattened" if cols.has("service.description") else "nested"
        return f"{level}-{shape}"

    def check(self, cols: Cols, opts: ReadOptions) -> None:
        fields = Fields(cols)
        expected = {
            "billing_account_id": "the Cloud Billing account id",
            "cost": "the cost of each row before credits",
            "invoice.month": "the invoice month as YYYYMM",
        }
        for path, meaning in expected.items():
            if not fields.has(path):
                raise InputError(
                    cols.source, f"missing required column {path!r} ({meaning}) of a Google Cloud billing export",
                    column=path,
                )
        if not fields.has("currency") and not opts.default_currency:
            raise InputError(
                cols.source,
                "missing required column 'currency' of a Google Cloud billing export "
                "(pass --currency CODE when the export states its currency elsewhere)",
                column="currency",
            )
        credits = fields.type_of("credits")
        element = credits.element if credits is not None and credits.kind == "list" else None
        if element is not None and element.kind == "struct" and element.field("amount") is None:
            raise InputError(cols.source, "the 'credits' entries have no 'amount' field; expected "
                             "credits as a list of {name, amount, full_name, id, type}", column="credits")

    def parsed_columns(self, cols: Cols) -> list[tuple[str, str]]:
        """Whole text columns (flattened CSV, loosely typed JSON); nested leaves are checked by
        `problem_checks`, which the core runs right after this pass."""
        fields = Fields(cols)
        checks = []
        for path in MONEY_PATHS:
            column = fields.top_level_text(path)
            if column:
                checks.append((column, "money"))
        for path in TIME_PATHS:
            column = fields.top_level_text(path)
            if column:
                checks.append((column, "ts"))
        return checks

    def select_sql(self, cols: Cols, opts: ReadOptions) -> str:
        return GcpSql(cols, opts).select_sql()

    def source_totals_sql(self, cols: Cols, opts: ReadOptions) -> str:
        return GcpSql(cols, opts).totals_sql()

    def problem_checks(self, cols: Cols) -> list[tuple[str, str]]:
        """Nested money and time values (credits[].amount, usage.amount...) that must parse."""
        return GcpSql(cols, ReadOptions()).problems()


FORMATS = [GcpBillingExportFormat()]
