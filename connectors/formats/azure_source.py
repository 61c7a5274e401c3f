"""The columns of an Azure Cost Management cost-details export, read as typed SQL over ``raw``.

One reader covers four column sets that differ in names, not meaning:

* ``ea``: Enterprise Agreement "cost details" (2023+, PascalCase): CostInBillingCurrency,
  BillingCurrencyCode, BillingAccountId, BillingProfileId, ProductName, benefitId ...
* ``ea-cost``: the older EA set: Cost, BillingCurrency, Product, InvoiceSection ...
* ``mca``: Microsoft Customer Agreement (camelCase in older exports, PascalCase in newer):
  costInBillingCurrency, billingCurrency, billingProfileId, pricingCurrency, costInPricingCurrency,
  exchangeRatePricingToBilling, paygCostInBillingCurrency, ProductId, invoiceId ...
* ``usage-details``: the legacy consumption/usage-details schema (SubscriptionGuid,
  UsageDateTime, PreTaxCost, Currency, UsageQuantity, ResourceRate, InstanceId ...).

Header casing varies between export versions; `Cols` looks names up case-insensitively.
Every expression here reads raw columns only, so the source totals and the normalised rows
share the same partition keys without depending on each other.
"""

from __future__ import annotations

from costaudit.errors import InputError

from ..base import Cols, ReadOptions, month_start
from ..sql import quote_literal

# Candidate spellings, most specific first.
COST = ("CostInBillingCurrency", "Cost", "PreTaxCost")
CURRENCY = ("BillingCurrencyCode", "BillingCurrency", "Currency")
DATE = ("Date", "UsageDateTime", "UsageDate")
QUANTITY = ("Quantity", "UsageQuantity")
UNIT_PRICE = ("UnitPrice", "ResourceRate")
SUBSCRIPTION = ("SubscriptionId", "SubscriptionGuid")
RESOURCE_ID = ("ResourceId", "InstanceId", "InstanceName")
PRODUCT = ("ProductName", "Product")
# Columns only MCA exports carry (prices in a pricing currency converted to the billing currency).
MCA_MARKERS = ("CostInPricingCurrency", "ExchangeRatePricingToBilling", "PaygCostInBillingCurrency")

EA, EA_COST, MCA, USAGE_DETAILS = "ea", "ea-cost", "mca", "usage-details"

# Azure writes this where a value does not apply ("Unassigned", "0 Unassigned"); FOCUS wants null.
_PLACEHOLDER = r"(\d+ )?unassigned"


def is_azure_cost_details(cols: Cols) -> bool:
    """True when the columns are an Azure actual/amortized cost export (not FOCUS, not another cloud)."""
    if cols.has("BilledCost", "EffectiveCost", "AmortizedCost"):
        return False  # a FOCUS file, including Azure's own FocusCost export
    return cols.has(*COST) and cols.has("MeterCategory") and cols.has(*DATE)


def dialect(cols: Cols) -> str:
    """Which of the four column sets this is (see the module docstring)."""
    if cols.has("PreTaxCost") and not cols.has("CostInBillingCurrency", "Cost"):
        return USAGE_DETAILS
    if cols.has(*MCA_MARKERS) or (cols.has("BillingProfileId") and not cols.has("BillingAccountId")):
        return MCA
    if cols.has("Cost") and not cols.has("CostInBillingCurrency"):
        return EA_COST
    return EA


def clean(expr: str) -> str:
    """A text expression with Azure's 'Unassigned' placeholders turned into NULL."""
    return f"(CASE WHEN regexp_full_match(lower({expr}), {quote_literal(_PLACEHOLDER)}) THEN NULL ELSE {expr} END)"


def norm(expr: str) -> str:
    """Lower-case, no spaces: for comparing enumerated values such as ChargeType or PricingModel."""
    return f"lower(replace({expr}, ' ', ''))"


class Source:
    """Typed SQL expressions over the raw columns of one Azure cost export."""

    def __init__(self, cols: Cols, opts: ReadOptions) -> None:
        self.cols = cols
        self.opts = opts
        self.dialect = dialect(cols)

    def any_of(self, kind: str, candidates: tuple[str, ...]) -> str:
        """The first non-null value among every present spelling (files read together may
        spell a column differently). kind is 'str', 'money', 'qty' or 'ts'."""
        present = list(dict.fromkeys(n for n in (self.cols.name(c) for c in candidates) if n is not None))
        if not present:
            return getattr(self.cols, kind)(candidates[0])
        exprs = [getattr(self.cols, kind)(name) for name in present]
        return exprs[0] if len(exprs) == 1 else f"coalesce({', '.join(exprs)})"

    # -- partition keys: shared by the rows and the source totals -----------------------------
    def currency(self) -> str:
        if self.cols.has(*CURRENCY):
            return self.any_of("str", CURRENCY)
        if self.opts.default_currency:
            return quote_literal(self.opts.default_currency)
        raise InputError(
            self.cols.source,
            "missing required column 'BillingCurrencyCode' (or BillingCurrency / Currency); "
            "pass --currency CODE when the export states its currency elsewhere",
            column="BillingCurrencyCode",
        )

    def account(self) -> str:
        """The invoice-level account: EA billing account, MCA billing profile.

        The legacy usage-details schema names no billing account and no billing period, so the
        subscription stands in for the account (each subscription's usage reconciles on its own).
        """
        c = self.cols
        if self.dialect == USAGE_DETAILS:
            ids = [self.any_of("str", SUBSCRIPTION)]
        elif self.dialect == MCA:
            ids = [c.str("BillingProfileId"), c.str("BillingAccountId")]
        else:
            ids = [c.str("BillingAccountId"), c.str("BillingProfileId")]
        return f"coalesce({', '.join(ids)}, 'unknown')"

    def account_name(self) -> str:
        c = self.cols
        if self.dialect == USAGE_DETAILS:
            return "NULL::VARCHAR"
        if self.dialect == MCA:
            return f"coalesce({c.str('BillingProfileName')}, {c.str('BillingAccountName')})"
        return f"coalesce({c.str('BillingAccountName')}, {c.str('BillingProfileName')})"

    def account_type(self) -> str:
        return {USAGE_DETAILS: "'Subscription'", MCA: "'Billing Profile'"}.get(self.dialect, "'Billing Account'")

    def period_start(self) -> str:
        """First instant of the billing month. The legacy schema has no billing period: the
        month of the usage date is used instead."""
        by_date = month_start(self.any_of("ts", DATE))
        if self.cols.has("BillingPeriodStartDate"):
            return f"coalesce({month_start(self.cols.ts('BillingPeriodStartDate'))}, {by_date})"
        return by_date

    def period_end(self) -> str:
        """Exclusive end: BillingPeriodEndDate is the last day, so add one day."""
        fallback = f"({self.period_start()} + INTERVAL 1 MONTH)"
        if self.cols.has("BillingPeriodEndDate"):
            end = self.cols.ts("BillingPeriodEndDate")
            return f"coalesce(date_trunc('day', {end}) + INTERVAL 1 DAY, {fallback})"
        return fallback

    def cost(self) -> str:
        """The export's own cost in the billing currency (actual or amortized, per the dataset)."""
        return f"coalesce({self.any_of('money', COST)}, 0)"

    def require(self) -> None:
        """Raise InputError naming the first required column that is missing."""
        c = self.cols
        if not c.has(*COST):
            raise InputError(c.source, "missing required column 'CostInBillingCurrency' (or Cost / PreTaxCost)", column="CostInBillingCurrency")
        if not c.has(*DATE):
            raise InputError(c.source, "missing required column 'Date' (or UsageDateTime)", column="Date")
        if self.dialect == USAGE_DETAILS and not c.has(*SUBSCRIPTION):
            raise InputError(c.source, "missing required column 'SubscriptionGuid'", column="SubscriptionGuid")
        if self.dialect != USAGE_DETAILS and not c.has("BillingAccountId", "BillingProfileId"):
            raise InputError(c.source, "missing required column 'BillingAccountId' (or BillingProfileId)", column="BillingAccountId")
        self.currency()

    # -- dataset evidence ------------------------------------------------------------------------
    def charge_type(self) -> str:
        return norm(self.cols.str("ChargeType"))

    def pricing_model(self) -> str:
        return norm(self.cols.str("PricingModel"))

    def amortized_evidence(self) -> str:
        """True on rows only an amortized export has: unused commitment rows, or usage a
        reservation/savings plan covered that carries a (amortized) cost."""
        if not self.cols.has("ChargeType"):
            return "FALSE"
        ct, pm = self.charge_type(), self.pricing_model()
        return (
            f"(coalesce({ct} IN ('unusedreservation', 'unusedsavingsplan'), FALSE) OR "
            f"coalesce({ct} = 'usage' AND {pm} IN ('reservation', 'savingsplan') AND {self.cost()} <> 0, FALSE))"
        )

    def actual_evidence(self) -> str:
        """True on rows only an actual export has: a reservation/savings plan purchase with a cost."""
        if not self.cols.has("ChargeType"):
            return "FALSE"
        ct, pm = self.charge_type(), self.pricing_model()
        return (
            f"coalesce({ct} IN ('purchase', 'refund') AND {pm} IN ('reservation', 'savingsplan') "
            f"AND {self.cost()} <> 0, FALSE)"
        )

    # -- validation ------------------------------------------------------------------------------
    def parsed_columns(self) -> list[tuple[str, str]]:
        """Every present spelling of the money, quantity, date and tag columns must parse."""
        groups = [
            ("money", COST), ("qty", QUANTITY), ("money", UNIT_PRICE), ("money", ("PayGPrice",)),
            ("money", ("PaygCostInBillingCurrency",)), ("money", ("CostInPricingCurrency",)),
            ("qty", ("ExchangeRatePricingToBilling", "ExchangeRate")), ("ts", DATE),
            ("ts", ("BillingPeriodStartDate",)), ("ts", ("BillingPeriodEndDate",)), ("json", ("Tags",)),
        ]
        checks = []
        for kind, names in groups:
            for name in names:
                check = self.cols.parsed(kind, name)
                if check is not None and check not in checks:
                    checks.append(check)
        return checks

    # -- the raw-level projection used by the row mapping -------------------------------------
    def base_columns(self) -> dict[str, str]:
        """Alias -> expression over raw. Aliases start with ``a_`` so they never meet a source
        column name in the queries built on top of them."""
        c = self.cols
        mca = self.dialect == MCA
        info = c.str("AdditionalInfo")
        rate = c.qty("ExchangeRatePricingToBilling", "ExchangeRate") if mca else "NULL::DECIMAL(38,12)"
        return {
            "a_file": "x__file",
            "a_account": self.account(),
            "a_account_name": self.account_name(),
            "a_period": self.period_start(),
            "a_period_end": self.period_end(),
            "a_currency": self.currency(),
            "a_cost": self.cost(),
            "a_date": self.any_of("ts", DATE),
            "a_ct_raw": c.str("ChargeType"),
            "a_ct": self.charge_type(),
            "a_pm_raw": c.str("PricingModel"),
            "a_pm": self.pricing_model(),
            "a_freq": norm(c.str("Frequency")),
            "a_qty": self.any_of("qty", QUANTITY),
            "a_uom": clean(c.str("UnitOfMeasure")),
            "a_unit_price": self.any_of("money", UNIT_PRICE),
            "a_payg_price": c.money("PayGPrice"),
            "a_payg_cost": c.money("PaygCostInBillingCurrency"),
            "a_pricing_currency": c.str("PricingCurrency", "PricingCurrencyCode") if mca else "NULL::VARCHAR",
            "a_cost_pricing": c.money("CostInPricingCurrency") if mca else "NULL::DECIMAL(38,12)",
            "a_rate": rate,
            "a_product": clean(self.any_of("str", PRODUCT)),
            "a_meter_cat": clean(c.str("MeterCategory")),
            "a_meter_sub": clean(c.str("MeterSubCategory", "MeterSubcategory", "ServiceTier")),
            "a_meter_name": clean(c.str("MeterName")),
            "a_meter_region": clean(c.str("MeterRegion")),
            "a_consumed": c.str("ConsumedService"),
            "a_rid": self.any_of("str", RESOURCE_ID),
            "a_rname": c.str("ResourceName"),
            "a_rgroup": c.str("ResourceGroup", "ResourceGroupName"),
            "a_location": clean(c.str("ResourceLocation", "Location")),
            "a_rtype_col": c.str("ResourceType"),
            "a_tags": f"ca_braced_json({c.str('Tags')})",
            # AdditionalInfo is descriptive: an unparsable value is read as absent, not an error.
            "a_info": f"(CASE WHEN json_valid({info}) AND json_type(({info})::JSON) = 'OBJECT' THEN ({info})::JSON END)",
            "a_benefit_id": c.str("benefitId", "ReservationId"),
            "a_benefit_name": c.str("benefitName", "ReservationName"),
            "a_publisher": clean(c.str("PublisherName")),
            "a_publisher_type": c.str("PublisherType"),
            "a_plan": clean(c.str("PlanName")),
            "a_partner": c.str("PartnerName"),
            "a_invoice": c.str("InvoiceId"),
            "a_sku_id": f"coalesce({c.str('ProductId')}, {clean(c.str('PartNumber'))})",
            "a_az": c.str("AvailabilityZone"),
            "a_sub_id": self.any_of("str", SUBSCRIPTION),
            "a_sub_name": c.str("SubscriptionName"),
        }
