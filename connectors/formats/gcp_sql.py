"""SQL for Google Cloud billing exports (standard and detailed), in any of their shapes.

Google's invoice for a billing account and invoice month is ``sum(cost) + sum(credits.amount)``
over every row of that ``invoice.month`` (credits are negative), including tax, adjustment and
rounding-error rows. The store gets one FOCUS row per export row plus one ``Credit`` row per
entry of its ``credits`` list (produced with UNNEST), so BilledCost sums to that invoice total.

Decisions (see the module docstring of `gcp` for the full list):
* committed use discounts: a COMMITTED_USAGE_DISCOUNT (Usage) or ..._DOLLAR_BASE (Spend) credit
  marks its usage row PricingCategory 'Committed' and both rows CommitmentDiscountId = the credit
  id, Status 'Used'; commitment fee SKUs ("Commitment v1: ...") are ChargeCategory 'Purchase',
  ChargeFrequency 'Recurring'.
* cost_type adjustment: 'Credit' for goodwill/SLA adjustments, else 'Adjustment'; ChargeClass
  'Correction' when the adjusted usage ended before the invoice month began (Pacific time, the
  time zone of Google's invoice months).
"""

from __future__ import annotations

from costaudit.schema import MONEY

from ..base import Cols, ReadOptions, month_start, next_month, select_list
from ..sql import quote_literal
from .gcp_fields import Fields, ListColumn, ListSpec, money_problem_sql, text_sql

PROVIDER = "Google Cloud"
SOURCE_FORMAT = "gcp-billing-export"
SERVICES_TABLE = "gcp_services_map"
UNITS_TABLE = "gcp_units_map"

# Tag key prefixes for the tag sources other than the resource's own labels (FOCUS: provider
# tags and further tag schemes carry a prefix; the main user scheme, labels, does not).
SYSTEM_LABEL_PREFIX = "gcp-system/"
PROJECT_LABEL_PREFIX = "gcp-project/"
TAG_PREFIX = "gcp-tag/"
MACHINE_SPEC = "compute.googleapis.com/machine_spec"
CUD_CATEGORY = {"COMMITTED_USAGE_DISCOUNT": "Usage", "COMMITTED_USAGE_DISCOUNT_DOLLAR_BASE": "Spend"}

CREDITS = ListSpec(text=("name", "full_name", "id", "type"), money=("amount",))
LABELS = ListSpec(text=("key", "value"))
TAGS = ListSpec(text=("key", "value", "namespace"))

# Leaves read as money/quantity or time; text ones are validated (core pass or `problems`).
MONEY_PATHS = (
    "cost", "cost_at_list", "currency_conversion_rate", "usage.amount", "usage.amount_in_pricing_units",
    "price.effective_price", "price.tier_start_amount", "price.pricing_unit_quantity",
)
TIME_PATHS = ("usage_start_time", "usage_end_time", "invoice.month")
LIST_PATHS = {"credits": CREDITS, "labels": LABELS, "system_labels": LABELS, "project.labels": LABELS, "tags": TAGS}


def _cud_category(type_expr: str) -> str:
    whens = " ".join(f"WHEN {quote_literal(t)} THEN {quote_literal(c)}" for t, c in CUD_CATEGORY.items())
    return f"(CASE upper({type_expr}) {whens} END)"


# The raw tag lists whose distinct combinations `_tags_memo_sql` converts to the Tags JSON.
_TAG_LISTS = ("g_labels", "g_system_labels", "g_project_labels", "g_tags")


class GcpSql:
    """Builds the reader SQL for one set of columns."""

    def __init__(self, cols: Cols, opts: ReadOptions):
        self.cols = cols
        self.opts = opts
        self.f = Fields(cols)
        self.lists: dict[str, ListColumn] = {p: self.f.list_column(p, spec) for p, spec in LIST_PATHS.items()}

    # -- partition keys, shared by the rows and the source totals ------------------------------
    def currency(self) -> str:
        if self.f.has("currency"):
            return f"upper({self.f.text('currency')})"
        return quote_literal(self.opts.default_currency or "")

    def keys(self) -> dict[str, str]:
        return {
            "account": self.f.text("billing_account_id"),
            "period": month_start(self.f.ts("invoice.month")),
            "currency": self.currency(),
        }

    # -- validation of values the core's per-column pass cannot see -------------------------------
    def problems(self) -> list[tuple[str, str]]:
        """(column label, SQL yielding a problem text or NULL) for nested or list values."""
        found: list[tuple[str, str]] = []
        for path in MONEY_PATHS + TIME_PATHS:
            located = self.f.find(path)
            if located is None or self.f.top_level_text(path) or not located[1].is_text:
                continue
            text = text_sql(located[0], located[1])
            if path in MONEY_PATHS:
                bad = money_problem_sql(text)
                expected = "a decimal number"
            else:
                bad = f"({text} IS NOT NULL AND ca_ts({text}) IS NULL)"
                expected = "a date/time (or YYYYMM for invoice.month)"
            suffix = quote_literal(f"', which is not {expected}")
            found.append((path, f"CASE WHEN {bad} THEN 'has ''' || {text} || {suffix} END"))
        for path, column in self.lists.items():
            if column.problem is not None:
                found.append((path, column.problem))
        # Every export row names its billing account and states its cost (0 included): a row
        # without them cannot be put on an invoice, so it is refused rather than guessed.
        account = self.f.text("billing_account_id")
        found.append((
            "billing_account_id",
            f"CASE WHEN nullif(trim({account}), '') IS NULL THEN 'is missing (expected the billing account id)' "
            f"WHEN regexp_matches(trim({account}), '^[\\[{{]|^(true|false)$') "
            f"THEN 'has ' || {account} || ', which is not a billing account id' END",
        ))
        found.append((
            "cost",
            f"CASE WHEN {self.f.money('cost')} IS NULL THEN 'is missing (every row states its cost, 0 included)' END",
        ))
        entries = self.lists["credits"].entries
        bad_credit = f"list_filter({entries}, lambda c: c.amount IS NULL)"
        found.append((
            "credits",
            f"CASE WHEN len({bad_credit}) > 0 THEN 'has an entry whose amount ' || "
            f"coalesce('''' || ({bad_credit})[1].amount_text || '''', '(missing)') || ' is not a decimal number' END",
        ))
        return found

    # -- source totals: straight from the raw columns -------------------------------------------
    def totals_sql(self) -> str:
        keys = self.keys()
        credits = self.lists["credits"].entries
        return f"""
            SELECT {quote_literal(PROVIDER)} AS provider,
                   {keys['account']} AS billing_account_id,
                   {keys['period']} AS billing_period_start,
                   {keys['currency']} AS currency,
                   sum(coalesce({self.f.money('cost')}, 0))
                   + coalesce(sum(list_sum(list_transform({credits}, lambda c: c.amount))), 0) AS total
            FROM raw
            GROUP BY ALL
        """

    # -- rows -----------------------------------------------------------------------------------
    def base_sql(self) -> str:
        """One row per export row, every field typed, under g_ names."""
        f, keys = self.f, self.keys()
        columns = {
            "g_account": keys["account"],
            "g_period": keys["period"],
            "g_currency": keys["currency"],
            "g_cost": f"coalesce({f.money('cost')}, 0)",
            "g_cost_at_list": f.money("cost_at_list"),
            "g_cost_type": f"lower({f.text('cost_type')})",
            "g_credits": self.lists["credits"].entries,
            "g_labels": self.lists["labels"].entries,
            "g_system_labels": self.lists["system_labels"].entries,
            "g_project_labels": self.lists["project.labels"].entries,
            "g_tags": self.lists["tags"].entries,
            "g_service_id": f.text("service.id"),
            "g_service": f.text("service.description"),
            "g_sku_id": f.text("sku.id"),
            "g_sku": f.text("sku.description"),
            "g_start": f.ts("usage_start_time"),
            "g_end": f.ts("usage_end_time"),
            "g_project_id": f.text("project.id"),
            "g_project_name": f.text("project.name"),
            "g_region": f.text("location.region"),
            "g_zone": f.text("location.zone"),
            "g_resource_name": f.text("resource.name"),
            "g_resource_global": f.text("resource.global_name"),
            "g_usage_amount": f.money("usage.amount"),
            "g_usage_unit": f.text("usage.unit"),
            "g_pricing_amount": f.money("usage.amount_in_pricing_units"),
            "g_pricing_unit": f.text("usage.pricing_unit"),
            "g_effective_price": f.money("price.effective_price"),
            "g_tier_start": f.money("price.tier_start_amount"),
            "g_price_unit_quantity": f.money("price.pricing_unit_quantity"),
            "g_rate": f.money("currency_conversion_rate"),
            "g_seller": f.text("seller_name"),
            "g_adjustment_type": f.text("adjustment_info.type"),
            "g_adjustment_description": f.text("adjustment_info.description"),
            "g_consumption_model": f.text("consumption_model.description"),
            "g_file": "x__file",
        }
        return "SELECT " + ", ".join(f"{expr} AS {name}" for name, expr in columns.items()) + " FROM raw"

    def rows_sql(self) -> str:
        """Base rows joined to the lookup tables, with the derived classifications."""
        fee = (
            "CASE WHEN regexp_matches(b.g_sku, '(?i)^commitment\\b') THEN "
            "CASE WHEN regexp_matches(b.g_sku, '(?i)dollar|spend') THEN 'Spend' ELSE 'Usage' END END"
        )
        category = f"""CASE
              WHEN b.g_cost_type = 'tax' THEN 'Tax'
              WHEN b.g_cost_type = 'rounding_error' THEN 'Adjustment'
              WHEN b.g_cost_type = 'adjustment' THEN
                CASE WHEN regexp_matches(coalesce(b.g_adjustment_type, ''), '(?i)goodwill|sla') THEN 'Credit' ELSE 'Adjustment' END
              WHEN b.g_cost_type = 'credit' THEN 'Credit'
              WHEN b.g_cost_type IS NULL OR b.g_cost_type = 'regular' THEN
                CASE WHEN ({fee}) IS NOT NULL THEN 'Purchase' ELSE 'Usage' END
              ELSE 'Adjustment' END"""
        cud_types = ", ".join(quote_literal(t) for t in CUD_CATEGORY)
        entries = f"""list_concat(list_concat(list_concat(
              list_transform(b.g_labels, lambda e: struct_pack(k := e.key, v := e.value)),
              list_transform(b.g_system_labels, lambda e: struct_pack(k := {quote_literal(SYSTEM_LABEL_PREFIX)} || e.key, v := e.value))),
              list_transform(b.g_project_labels, lambda e: struct_pack(k := {quote_literal(PROJECT_LABEL_PREFIX)} || e.key, v := e.value))),
              list_transform(b.g_tags, lambda e: struct_pack(
                  k := {quote_literal(TAG_PREFIX)} || coalesce(e.namespace || '/', '') || e.key, v := e.value)))"""
        # Usage ended before the invoice month began in Pacific time: a past invoice's usage.
        past_usage = "b.g_end <= timezone('America/Los_Angeles', CAST(b.g_period AS TIMESTAMP))"
        return f"""
            SELECT b.*,
              coalesce(svc.service_category, 'Other') AS g_service_category,
              coalesce(svc.service_subcategory, 'Other (' || coalesce(svc.service_category, 'Other') || ')') AS g_service_subcategory,
              coalesce(cu.focus_unit, b.g_usage_unit) AS g_usage_unit_focus,
              coalesce(pu.focus_unit, b.g_pricing_unit) AS g_pricing_unit_focus,
              ({fee}) AS g_fee_category,
              ({category}) AS g_category,
              list_filter(b.g_credits, lambda c: upper(c.type) IN ({cud_types}))[1] AS g_cud,
              list_filter(b.g_system_labels, lambda e: e.key = {quote_literal(MACHINE_SPEC)})[1].value AS g_machine_spec,
              tm.g_tags_json,
              CASE WHEN b.g_cost_type = 'adjustment' AND {past_usage} THEN 'Correction' END AS g_charge_class,
              regexp_matches(coalesce(b.g_sku, ''), '(?i)egress|data transfer') AS g_is_transfer
            FROM gcp_base b
            LEFT JOIN {SERVICES_TABLE} svc ON svc.service_key = lower(b.g_service)
            LEFT JOIN {UNITS_TABLE} cu ON cu.gcp_unit = lower(b.g_usage_unit)
            LEFT JOIN {UNITS_TABLE} pu ON pu.gcp_unit = lower(b.g_pricing_unit)
            LEFT JOIN ({self._tags_memo_sql(entries)}) tm
              ON {" AND ".join(f"b.{c} IS NOT DISTINCT FROM tm.{c}" for c in _TAG_LISTS)}
        """

    @staticmethod
    def _tags_memo_sql(entries: str) -> str:
        """Tags JSON once per distinct combination of the four tag lists (labels, system labels,
        project labels, tags), not once per row: a month holds about one combination per
        resource, and merging, de-duplicating and serialising the lists costs microseconds a row.
        Keys keep their first value (user labels win over system labels over project labels)."""
        kept = (
            "list_filter(e, lambda x, i: x.k IS NOT NULL AND NOT list_contains("
            "list_transform(list_slice(e, 1, i - 1), lambda y: y.k), x.k))"
        )
        tags_json = (
            f"CASE WHEN len({kept}) = 0 THEN NULL ELSE to_json(map_from_entries(list_transform({kept}, "
            "lambda x: struct_pack(k := x.k, v := CASE WHEN x.v IS NULL THEN 'true'::JSON ELSE to_json(x.v) END)))) END"
        )
        columns = ", ".join(_TAG_LISTS)
        return f"""
            SELECT {columns}, {tags_json} AS g_tags_json
            FROM (SELECT {columns}, {entries} AS e FROM (SELECT DISTINCT {columns} FROM gcp_base) b)
        """

    def shared_values(self) -> dict[str, str]:
        """Dimensions every stored row keeps, usage row and credit row alike."""
        transfer_from = "CASE WHEN g_is_transfer THEN NULLIF(regexp_extract(g_sku, '(?i)\\bfrom (.+?) to (.+)$', 1), '') END"
        transfer_to = "CASE WHEN g_is_transfer THEN NULLIF(regexp_extract(g_sku, '(?i)\\bfrom (.+?) to (.+)$', 2), '') END"
        resource_type = (
            "CASE WHEN regexp_matches(g_resource_global, '^//[^/]+/.+/[^/]+$') THEN "
            "regexp_extract(g_resource_global, '^//([^/]+)/', 1) || '/' || "
            "regexp_extract(g_resource_global, '/([^/]+)/[^/]+$', 1) END"
        )
        tier = "rtrim(rtrim(CAST(g_tier_start AS VARCHAR), '0'), '.')"
        return {
            "ProviderName": quote_literal(PROVIDER),
            "InvoiceIssuerName": "coalesce(g_seller, 'Google')",
            "PublisherName": "coalesce(g_seller, 'Google')",
            "BillingAccountId": "g_account",
            "BillingAccountType": "'Billing Account'",
            "BillingCurrency": "g_currency",
            "BillingPeriodStart": "g_period",
            "BillingPeriodEnd": next_month("g_period"),
            "ChargePeriodStart": "coalesce(g_start, g_period)",
            "ChargePeriodEnd": f"coalesce(g_end, {next_month('g_period')})",
            "ChargeClass": "g_charge_class",
            "ServiceName": "coalesce(g_service, 'Invoice')",
            "ServiceCategory": "g_service_category",
            "ServiceSubcategory": "g_service_subcategory",
            "SkuId": "g_sku_id",
            "SkuPriceId": f"CASE WHEN g_sku_id IS NOT NULL AND g_tier_start IS NOT NULL THEN "
            f"'SKU ID: ' || g_sku_id || ', Price Tier Start Amount: ' || {tier} ELSE g_sku_id END",
            "SkuMeter": "g_sku",
            "RegionId": "g_region",
            "AvailabilityZone": "g_zone",
            "ResourceId": "g_resource_global",
            "ResourceName": "g_resource_name",
            "ResourceType": resource_type,
            "SubAccountId": "g_project_id",
            "SubAccountName": "g_project_name",
            "SubAccountType": "CASE WHEN g_project_id IS NOT NULL THEN 'Project' END",
            "PricingCurrency": "CASE WHEN g_rate > 0 THEN 'USD' END",
            "Tags": "g_tags_json",
            "x_UsageType": "g_sku",
            "x_SkuDescription": "g_sku",
            "x_ServiceCode": "g_service_id",
            "x_InstanceType": "g_machine_spec",
            "x_FromLocation": transfer_from,
            "x_ToLocation": transfer_to,
            "x_FromRegionCode": "CASE WHEN g_is_transfer THEN g_region END",
            "x_LineItemType": "g_cost_type",
            "x_PricingModel": "g_consumption_model",
            "x_SourceFormat": quote_literal(SOURCE_FORMAT),
            "x_SourceFile": "g_file",
        }

    def usage_values(self) -> dict[str, str]:
        """The export row itself: its cost before credits, its quantities and prices."""
        metered = "g_category IN ('Usage', 'Purchase')"
        is_purchase = "g_category = 'Purchase'"
        fee_id = "coalesce(g_resource_global, g_resource_name)"
        cud_id = "coalesce(g_cud.id, g_cud.full_name, g_cud.name)"
        commitment_id = f"CASE WHEN {is_purchase} THEN {fee_id} ELSE {cud_id} END"
        fee_type = (
            "CASE g_fee_category WHEN 'Spend' THEN 'COMMITTED_USAGE_DISCOUNT_DOLLAR_BASE' "
            "ELSE 'COMMITTED_USAGE_DISCOUNT' END"
        )
        unit_price = (
            "CASE WHEN g_price_unit_quantity IS NULL OR g_price_unit_quantity IN (0, 1) THEN g_effective_price "
            f"ELSE CAST(g_effective_price / g_price_unit_quantity AS {MONEY}) END"
        )
        pricing_category = """CASE g_category
              WHEN 'Purchase' THEN 'Standard'
              WHEN 'Usage' THEN CASE
                WHEN g_cud IS NOT NULL OR regexp_matches(coalesce(g_consumption_model, ''), '(?i)\\bcud\\b|commit') THEN 'Committed'
                WHEN regexp_matches(coalesce(g_sku, ''), '(?i)\\b(spot|preemptible)\\b') THEN 'Dynamic'
                ELSE 'Standard' END
            END"""
        values = self.shared_values()
        values.update({
            "BilledCost": "g_cost",
            "EffectiveCost": "g_cost",
            "ContractedCost": "g_cost",
            "ListCost": "coalesce(g_cost_at_list, g_cost)",
            "ChargeCategory": "g_category",
            "ChargeDescription": "coalesce(CASE WHEN g_cost_type = 'adjustment' THEN g_adjustment_description END, "
            "g_sku, g_service, g_cost_type)",
            "ChargeFrequency": "CASE g_category WHEN 'Purchase' THEN 'Recurring' WHEN 'Usage' THEN 'Usage-Based' "
            "WHEN 'Tax' THEN 'Usage-Based' ELSE 'One-Time' END",
            "PricingCategory": pricing_category,
            "ConsumedQuantity": "CASE WHEN g_category = 'Usage' THEN g_usage_amount END",
            "ConsumedUnit": "CASE WHEN g_category = 'Usage' AND g_usage_amount IS NOT NULL THEN g_usage_unit_focus END",
            "PricingQuantity": f"CASE WHEN {metered} THEN g_pricing_amount END",
            "PricingUnit": f"CASE WHEN {metered} AND g_pricing_amount IS NOT NULL THEN g_pricing_unit_focus END",
            "ContractedUnitPrice": f"CASE WHEN {metered} THEN {unit_price} END",
            "PricingCurrencyContractedUnitPrice": f"CASE WHEN {metered} AND g_rate > 0 THEN "
            f"CAST(({unit_price}) / g_rate AS {MONEY}) END",
            "PricingCurrencyEffectiveCost": f"CASE WHEN g_rate > 0 THEN CAST(g_cost / g_rate AS {MONEY}) END",
            "CommitmentDiscountId": commitment_id,
            "CommitmentDiscountName": f"CASE WHEN ({commitment_id}) IS NOT NULL THEN "
            f"CASE WHEN {is_purchase} THEN g_sku ELSE coalesce(g_cud.full_name, g_cud.name) END END",
            "CommitmentDiscountCategory": f"CASE WHEN ({commitment_id}) IS NOT NULL THEN "
            f"CASE WHEN {is_purchase} THEN g_fee_category ELSE {_cud_category('g_cud.type')} END END",
            "CommitmentDiscountType": f"CASE WHEN ({commitment_id}) IS NOT NULL THEN "
            f"CASE WHEN {is_purchase} THEN {fee_type} ELSE upper(g_cud.type) END END",
            "CommitmentDiscountStatus": f"CASE WHEN g_category = 'Usage' AND ({cud_id}) IS NOT NULL THEN 'Used' END",
        })
        return values

    def credit_values(self) -> dict[str, str]:
        """One row per credit: the credit's amount on the usage row's dimensions."""
        cud_category = _cud_category("g_credit.type")
        cud_id = f"CASE WHEN {cud_category} IS NOT NULL THEN coalesce(g_credit.id, g_credit.full_name, g_credit.name) END"
        values = self.shared_values()
        values.update({
            "BilledCost": "g_credit.amount",
            "EffectiveCost": "g_credit.amount",
            "ContractedCost": "g_credit.amount",
            "ListCost": "g_credit.amount",
            "ChargeCategory": "'Credit'",
            "ChargeDescription": "coalesce(g_credit.full_name, g_credit.name, g_credit.id, g_credit.type)",
            "ChargeFrequency": "CASE g_category WHEN 'Purchase' THEN 'Recurring' WHEN 'Usage' THEN 'Usage-Based' "
            "WHEN 'Tax' THEN 'Usage-Based' ELSE 'One-Time' END",
            "PricingCurrencyEffectiveCost": f"CASE WHEN g_rate > 0 THEN CAST(g_credit.amount / g_rate AS {MONEY}) END",
            "CommitmentDiscountId": cud_id,
            "CommitmentDiscountName": f"CASE WHEN ({cud_id}) IS NOT NULL THEN coalesce(g_credit.full_name, g_credit.name) END",
            "CommitmentDiscountCategory": f"CASE WHEN ({cud_id}) IS NOT NULL THEN {cud_category} END",
            "CommitmentDiscountType": f"CASE WHEN ({cud_id}) IS NOT NULL THEN upper(g_credit.type) END",
            "CommitmentDiscountStatus": f"CASE WHEN ({cud_id}) IS NOT NULL THEN 'Used' END",
            "x_CreditType": "g_credit.type",
        })
        return values

    def select_sql(self) -> str:
        return f"""
            WITH gcp_base AS ({self.base_sql()}),
            gcp_rows AS ({self.rows_sql()}),
            gcp_credit_rows AS (SELECT r.*, unnest(r.g_credits) AS g_credit FROM gcp_rows r)
            SELECT {select_list(self.usage_values())} FROM gcp_rows
            UNION ALL
            SELECT {select_list(self.credit_values())} FROM gcp_credit_rows
        """
