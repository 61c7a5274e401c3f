"""Azure Cost Management exports (EA and MCA cost details, actual and amortized, and the legacy
usage-details schema). Azure's FOCUS export (FocusCost) is read by the generic FOCUS reader.

Actual and amortized exports have the same columns, so the columns alone cannot tell them apart.
Which dataset a delivery is comes, in this order, from:

1. its export manifest (``exportConfig.type`` ActualCost / AmortizedCost), and otherwise
2. its rows: only amortized data has UnusedReservation/UnusedSavingsPlan rows or
   reservation/savings-plan covered usage with a cost; only actual data has reservation/savings-plan
   purchases with a cost.

`azure_delivery.claim` finds both during planning and passes the answer on as the delivery's
``format_hint``. When neither source says anything the
export holds no commitment rows, actual and amortized rows are then identical, and the
conservative default is **actual** (the invoice view, reconciled on BilledCost).

Both formats also check the rows against the dataset they were chosen for and refuse a delivery
whose rows contradict it, rather than store amortized amounts as billed cost (or the reverse).
"""

from __future__ import annotations

import duckdb

from ..base import Cols, Format, ReadOptions
from ..sql import quote_literal
from . import azure_rows
from .azure_source import Source, dialect, is_azure_cost_details

ACTUAL_ID = "azure-actual"
AMORTIZED_ID = "azure-amortized"

# Export dataset type (manifest exportConfig.type) -> format id. "Usage" is the older API's name
# for actual cost.
DATASET_FORMATS = {"actualcost": ACTUAL_ID, "usage": ACTUAL_ID, "amortizedcost": AMORTIZED_ID, "focuscost": "focus"}

class _AzureCost(Format):
    """What the actual and amortized formats share: detection, checks and the SQL."""

    provider = "Microsoft"
    amortized = False
    # Actual outranks amortized when nothing says which dataset a file holds (the conservative
    # default); a manifest's or the delivery planner's format_hint picks amortized.
    _rank = 0

    def score(self, cols: Cols) -> int:
        if not is_azure_cost_details(cols):
            return 0
        # 100 is above any FOCUS score (10 + FOCUS columns present).
        return 100 + self._rank

    def version(self, cols: Cols) -> str:
        return dialect(cols)

    def check(self, cols: Cols, opts: ReadOptions) -> None:
        Source(cols, opts).require()

    def prepare(self, con: duckdb.DuckDBPyConnection) -> None:
        azure_rows.prepare(con)

    def parsed_columns(self, cols: Cols) -> list[tuple[str, str]]:
        return Source(cols, ReadOptions()).parsed_columns()

    def select_sql(self, cols: Cols, opts: ReadOptions) -> str:
        return azure_rows.select_sql(Source(cols, opts), self.amortized, self.id)

    def source_totals_sql(self, cols: Cols, opts: ReadOptions) -> str:
        """Sum of the export's cost column (CostInBillingCurrency / Cost / PreTaxCost) per billing
        account (EA) or billing profile (MCA), billing month and billing currency: for actual data
        that is the invoice, for amortized data the amortized view of the same charges."""
        src = Source(cols, opts)
        contradiction = src.actual_evidence() if self.amortized else src.amortized_evidence()
        return f"""
            WITH guard AS (
              SELECT CASE WHEN bool_or({contradiction}) THEN error({quote_literal(self._contradiction_message())})
                          ELSE 1 END AS ok
              FROM raw
            )
            SELECT 'Microsoft' AS provider,
                   {src.account()} AS billing_account_id,
                   {src.period_start()} AS billing_period_start,
                   {src.currency()} AS currency,
                   sum({src.cost()}) AS total
            FROM raw
            WHERE (SELECT ok FROM guard) = 1
            GROUP BY ALL
        """

    def _contradiction_message(self) -> str:
        raise NotImplementedError


class AzureActual(_AzureCost):
    """Azure actual-cost export: the invoice view, reconciled on BilledCost."""

    id = ACTUAL_ID
    basis = "BilledCost"
    export_family = ACTUAL_ID
    title = "Azure cost details (actual cost)"
    amortized = False
    _rank = 1

    def _contradiction_message(self) -> str:
        return (
            "these Azure rows look like an AMORTIZED cost export (UnusedReservation/UnusedSavingsPlan rows, "
            "or reservation/savings-plan usage with a cost) but were read as actual cost; load the "
            "AmortizedCost export with its manifest.json, and keep actual and amortized exports in separate files"
        )


class AzureAmortized(_AzureCost):
    """Azure amortized-cost export: commitment purchases spread over the usage they cover,
    reconciled on EffectiveCost."""

    id = AMORTIZED_ID
    basis = "EffectiveCost"
    export_family = AMORTIZED_ID
    title = "Azure cost details (amortized cost)"
    amortized = True
    _rank = 0

    def _contradiction_message(self) -> str:
        return (
            "these Azure rows look like an ACTUAL cost export (reservation or savings-plan purchases with a cost) "
            "but were named amortized cost (AmortizedCost manifest or amortized rows in the same delivery); "
            "check the export's type, and keep actual and amortized exports in separate files"
        )


FORMATS = [AzureActual(), AzureAmortized()]
