"""FOCUS files of any version (0.5, 1.0-preview, 1.0, 1.1, 1.2), including the providers' own
FOCUS exports (AWS Data Exports FOCUS tables, Azure FocusCost, Google's FOCUS export).

Older column names are read under their 1.2 names (``ChargeType`` -> ChargeCategory,
``AmortizedCost`` -> EffectiveCost, ``Provider`` -> ProviderName, ``Region`` -> RegionId ...).
Enumerated values are put in their canonical spelling (``Usage-based`` -> ``Usage-Based``,
1.0-preview ``On-Demand`` -> ``Standard``). Typed Parquet columns are accepted as they come:
``Tags``/``SkuPriceDetails``/``x_CostCategories`` as MAP, STRUCT, a list of key/value structs or
JSON become JSON object text; timestamps of any Parquet type become UTC instants.
Custom columns that name one of costaudit's ``x_`` extras are kept; other custom columns
(including the sample data's bare ``Id``) are dropped, as they are not FOCUS columns.

Rules for fragments (files that omit columns FOCUS makes mandatory), chosen so that a load never
invents money and never merges unrelated files:

* no ``BilledCost`` -> refused: no tool can invent the billed amount;
* no ``BillingCurrency`` -> refused unless ``--currency CODE`` says what the file is billed in;
* no ``BillingPeriodStart`` -> the month of ``ChargePeriodStart``; neither -> refused;
* period bounds given the wrong way round (``all_pass_0.5.csv``) are swapped; the billing period
  key is the first instant of that month in UTC;
* no ``BillingAccountId`` -> ``unstated:<file name>``, so each fragment is its own invoice in the
  ledger and loading one file never replaces another's rows;
* no ``ProviderName`` -> InvoiceIssuerName, else PublisherName, else ``Unknown``; absent
  InvoiceIssuerName/PublisherName -> the provider;
* no ``ChargeCategory`` column -> ``Usage``; no ``ServiceCategory`` -> ``Other``; no
  ``ServiceName`` -> ``Unknown``;
* EffectiveCost/ListCost absent -> BilledCost; ContractedCost absent -> ContractedUnitPrice x
  PricingQuantity where both are stated, else BilledCost (FOCUS: a charge unrelated to others has
  ContractedCost = BilledCost);
* ``ChargePeriodStart/End`` absent -> the billing period bounds;
* a row stating no PricingCurrency and none of the PricingCurrency* amounts (every row before
  FOCUS 1.2, where all prices were in the billing currency) gets the billing currency and the
  billing-currency amounts in those columns;
* amounts are read by the shared ``ca_money`` macro: plain decimals, and spreadsheet renderings
  such as ``$10,000.00`` only where unambiguous; anything else is refused with its row and column.

Files of different FOCUS versions read together (one delivery) have both an old and a new
spelling of some columns; each row takes the first spelling that has a value.

What a file states that FOCUS 1.2 forbids (a ConsumedQuantity on a credit, a RegionName without a
RegionId, ``Lambda-GB-Seconds``...) is converted by the rules of `focus_conformance`, which keep
the stated values in ``x_OriginalValues`` and name the rules in ``x_ConformanceAdjustments``.
"""

from __future__ import annotations

import re

import duckdb

from costaudit.errors import InputError
from costaudit.schema import EXTRA_COLUMNS, FOCUS_COLUMNS, JSON, MONEY, QUANTITY, TS

from ..base import Cols, Format, ReadOptions, select_list
from ..sql import quote_ident, quote_literal
from .focus_conformance import conform_sql, register_lookups

# 1.2 name -> older (or newer) spellings, newest first.
ALIASES: dict[str, tuple[str, ...]] = {
    "ChargeCategory": ("ChargeType",),
    "EffectiveCost": ("AmortizedCost",),
    "ProviderName": ("Provider", "ServiceProviderName"),
    "PublisherName": ("Publisher",),
    "InvoiceIssuerName": ("InvoiceIssuer",),
    "ResourceId": ("ResourceID",),
    "RegionId": ("Region",),
    "ConsumedQuantity": ("UsageQuantity",),
    "ConsumedUnit": ("UsageUnit",),
    "BillingCurrency": ("BilledCurrency",),
    # SkuMeter (1.1) is what Azure FocusCost 1.0 called x_SkuMeterName and AWS FOCUS 1.0 x_UsageType.
    "SkuMeter": ("x_SkuMeterName", "x_UsageType"),
}
# Before 1.2 every price was in the billing currency, so a file without PricingCurrency states
# its pricing-currency columns through the billing-currency ones.
PRICING_CURRENCY_COLUMNS = {
    "PricingCurrencyEffectiveCost": "EffectiveCost",
    "PricingCurrencyListUnitPrice": "ListUnitPrice",
    "PricingCurrencyContractedUnitPrice": "ContractedUnitPrice",
}

# costaudit extra -> provider custom columns that also carry it, after the extra's own name (so
# costaudit's own exports read back whole). AWS FOCUS 1.0 has x_UsageType; AWS FOCUS 1.2 moved it
# to SkuMeter; Azure FocusCost 1.0 calls it x_SkuMeterName.
PROVIDER_EXTRAS: dict[str, tuple[str, ...]] = {
    "x_UsageType": ("x_SkuMeterName", "SkuMeter"),
    "x_ServiceCode": ("x_ServiceId",),
    "x_ProductFamily": ("x_SkuMeterCategory",),
    "x_ResourceGroup": ("x_ResourceGroupName",),
}
# Set by the loader, never read from a file.
OWN_EXTRAS = ("x_SourceFormat", "x_SourceFile", "x_LoadId")
JSON_COLUMNS = ("Tags", "SkuPriceDetails")

SERVICE_CATEGORIES = (
    "AI and Machine Learning", "Analytics", "Business Applications", "Compute", "Databases",
    "Developer Tools", "Multicloud", "Identity", "Integration", "Internet of Things",
    "Management and Governance", "Media", "Migration", "Mobile", "Networking", "Security",
    "Storage", "Web", "Other",
)

# canonical value -> accepted variants besides case, spaces, hyphens and underscores.
ENUMS: dict[str, dict[str, tuple[str, ...]]] = {
    "ChargeCategory": {v: () for v in ("Usage", "Purchase", "Tax", "Credit", "Adjustment")},
    "ChargeClass": {"Correction": ()},
    "ChargeFrequency": {"One-Time": (), "Recurring": (), "Usage-Based": ()},
    # 1.0-preview spelled the pricing categories differently.
    "PricingCategory": {
        "Standard": ("On-Demand", "OnDemand"),
        "Dynamic": ("Spot",),
        "Committed": ("Commitment-Based", "Commitment Based"),
        "Other": (),
    },
    "CommitmentDiscountCategory": {"Spend": (), "Usage": ()},
    "CommitmentDiscountStatus": {"Used": (), "Unused": ()},
    "CapacityReservationStatus": {"Used": (), "Unused": ()},
    "ServiceCategory": {v: () for v in SERVICE_CATEGORIES},
}

# Names no native provider export uses: one of them (with another FOCUS name) marks a FOCUS file.
FOCUS_ONLY = {
    n.lower()
    for n in (
        "BilledCost", "EffectiveCost", "ListCost", "ContractedCost", "AmortizedCost", "ChargeCategory",
        "ChargeClass", "ChargePeriodStart", "ChargePeriodEnd", "BillingPeriodStart", "BillingPeriodEnd",
        "ProviderName", "InvoiceIssuerName", "InvoiceIssuer", "ServiceCategory", "ServiceSubcategory",
        "PricingQuantity", "PricingCategory", "ConsumedQuantity", "ConsumedUnit", "SkuPriceId", "RegionId",
        "CommitmentDiscountId", "CommitmentDiscountStatus", "ListUnitPrice", "ContractedUnitPrice",
        "BilledCurrency", "SubAccountId", "BillingAccountType", "InvoiceId", "PricingCurrency",
    )
}

_TYPES = {name: sql_type for name, sql_type, _ in FOCUS_COLUMNS}
_FOCUS_LOWER = {name.lower() for name in _TYPES} | {a.lower() for al in ALIASES.values() for a in al}
_TIME_TYPES = ("DATE", "TIMESTAMP")


def _candidates(name: str) -> tuple[str, ...]:
    return (name, *ALIASES.get(name, ()))


def _squash(value: str) -> str:
    return re.sub(r"[\s_-]", "", value).lower()


def _canonical_enum(expr: str, allowed: dict[str, tuple[str, ...]]) -> str:
    """Map case/spacing/hyphen variants to the canonical value; leave unknown values as they are."""
    whens = [
        f"WHEN {quote_literal(key)} THEN {quote_literal(canonical)}"
        for canonical, variants in allowed.items()
        for key in sorted({_squash(canonical), *(_squash(v) for v in variants)})
    ]
    squashed = f"lower(regexp_replace({expr}, '[\\s_-]', '', 'g'))"
    return f"CASE {squashed} {' '.join(whens)} ELSE {expr} END"


class FocusFormat(Format):
    id = "focus"
    provider = None
    basis = "BilledCost"
    export_family = "focus"
    title = "FOCUS dataset"

    def prepare(self, con: duckdb.DuckDBPyConnection) -> None:
        register_lookups(con)

    def score(self, cols: Cols) -> int:
        names = cols.lower_names()
        present = len(names & _FOCUS_LOWER)
        if "billedcost" in names and present >= 2:
            # Unmistakably FOCUS: no native export has a BilledCost column.
            return 1000 + present
        if names & FOCUS_ONLY and present >= 2:
            # FOCUS-looking but without a cost: claim it weakly so `check` can say what is missing.
            return 1
        return 0

    def version(self, cols: Cols) -> str:
        if cols.has("ChargeType", "AmortizedCost") and not cols.has("ChargeCategory"):
            return "0.5"
        if cols.has("Provider", "InvoiceIssuer", "Publisher") and not cols.has("ProviderName"):
            return "1.0-preview"
        if cols.has("InvoiceId", "PricingCurrency", "PricingCurrencyEffectiveCost"):
            return "1.2"
        if cols.has("ServiceSubcategory", "SkuMeter", "SkuPriceDetails", "CommitmentDiscountQuantity",
                    "CommitmentDiscountUnit", "CapacityReservationId"):
            return "1.1"
        if cols.has("ChargeClass", "ConsumedQuantity", "RegionId", "ContractedCost"):
            return "1.0"
        return "1.0-preview"

    def check(self, cols: Cols, opts: ReadOptions) -> None:
        if not cols.has("BilledCost"):
            raise InputError(
                cols.source,
                "missing required column 'BilledCost': a FOCUS file must state the billed cost of each charge "
                f"(columns found: {', '.join(list(cols.types)[:8])})",
                column="BilledCost",
            )
        self.currency(cols, opts.default_currency)
        if not cols.has("BillingPeriodStart", "ChargePeriodStart"):
            raise InputError(
                cols.source,
                "missing required column 'BillingPeriodStart' (or at least 'ChargePeriodStart'): "
                "the billing month of each charge is needed",
                column="BillingPeriodStart",
            )
        for name in (*JSON_COLUMNS, *(n for n, t, _ in EXTRA_COLUMNS if t == JSON)):
            actual = cols.name(*_candidates(name))
            if actual is not None and _json_expr(cols, actual) is None:
                raise InputError(
                    cols.source,
                    f"column type {cols.types[actual]} cannot hold key-value pairs; expected JSON text, "
                    "a MAP, a STRUCT or a list of key/value structs",
                    column=actual,
                )

    def currency(self, cols: Cols, default_currency: str | None) -> str:
        if cols.has(*_candidates("BillingCurrency")):
            stated = f"upper({_text(cols, *_candidates('BillingCurrency'))})"
            return f"coalesce({stated}, {quote_literal(default_currency)})" if default_currency else stated
        if default_currency:
            return quote_literal(default_currency.upper())
        raise InputError(
            cols.source,
            "missing required column 'BillingCurrency' (pass --currency CODE when the export states its currency elsewhere)",
            column="BillingCurrency",
        )

    def keys(self, cols: Cols, default_currency: str | None) -> dict[str, str]:
        """Partition keys shared by the rows and the source totals."""
        provider = (
            f"coalesce({_text(cols, *_candidates('ProviderName'))}, {_text(cols, *_candidates('InvoiceIssuerName'))}, "
            f"{_text(cols, *_candidates('PublisherName'))}, 'Unknown')"
        )
        file_name = "regexp_extract(x__file, '[^/\\\\]*$')"
        account = f"coalesce({_text(cols, 'BillingAccountId')}, 'unstated:' || {file_name})"
        return {
            "ProviderName": provider,
            "BillingAccountId": account,
            "BillingPeriodStart": self._period_start(cols),
            "BillingCurrency": self.currency(cols, default_currency),
        }

    def _period_start(self, cols: Cols) -> str:
        if not cols.has("BillingPeriodStart"):
            return f"CAST(date_trunc('month', {_ts(cols, 'ChargePeriodStart')}) AS TIMESTAMPTZ)"
        start, end = _ts(cols, "BillingPeriodStart"), _ts(cols, "BillingPeriodEnd")
        # Swapped bounds (seen in FOCUS 0.5 test data) are read the right way round; the 12-hour
        # nudge keeps a start written with a local offset (e.g. +02:00) in its own month.
        # A missing start stays missing (the loader refuses such rows): least() would skip it and
        # put the row in the month its period ends.
        first = f"CASE WHEN {start} IS NOT NULL THEN least({start}, coalesce({end}, {start})) END"
        return f"CAST(date_trunc('month', {first} + INTERVAL 12 HOUR) AS TIMESTAMPTZ)"

    def select_sql(self, cols: Cols, opts: ReadOptions) -> str:
        values: dict[str, str] = {}
        for name, sql_type, _ in FOCUS_COLUMNS:
            present = _present(cols, *_candidates(name))
            if not present:
                continue
            if sql_type == MONEY:
                exprs = [cols.money(actual) for actual in present]
            elif sql_type == QUANTITY:
                exprs = [cols.qty(actual) for actual in present]
            elif sql_type == TS:
                exprs = [_ts(cols, actual) for actual in present]
            elif name in JSON_COLUMNS:
                exprs = [_json_expr(cols, actual) or "NULL" for actual in present]
            else:
                exprs = [_text(cols, actual) for actual in present]
            values[name] = _first_of(exprs)
            if name in ENUMS:
                values[name] = _canonical_enum(values[name], ENUMS[name])
        keys = self.keys(cols, opts.default_currency)
        values.update(keys)
        period = keys["BillingPeriodStart"]
        next_period = f"({period} + INTERVAL 1 MONTH)"
        if cols.has_all("BillingPeriodStart", "BillingPeriodEnd"):
            raw_end = f"greatest({_ts(cols, 'BillingPeriodStart')}, {_ts(cols, 'BillingPeriodEnd')})"
            values["BillingPeriodEnd"] = f"CASE WHEN {raw_end} > {period} THEN {raw_end} ELSE {next_period} END"
        else:
            values["BillingPeriodEnd"] = next_period
        values["ChargePeriodStart"] = f"coalesce({values.get('ChargePeriodStart', 'NULL')}, {period})"
        values["ChargePeriodEnd"] = f"coalesce({values.get('ChargePeriodEnd', 'NULL')}, {values['BillingPeriodEnd']})"
        self._fill_costs(cols, values)
        self._fill_pricing_currency(values)
        values["ChargeCategory"] = values.get("ChargeCategory", "'Usage'")
        values["ServiceCategory"] = f"coalesce({values.get('ServiceCategory', 'NULL')}, 'Other')"
        # ServiceName stays null here when unstated: the conformance step needs to tell a stated name
        # from the 'Unknown' it writes in its place (focus_conformance).
        provider = keys["ProviderName"]
        for name in ("InvoiceIssuerName", "PublisherName"):
            values[name] = f"coalesce({values.get(name, 'NULL')}, {provider})"
        for extra, sql_type, _ in EXTRA_COLUMNS:
            present = _present(cols, extra, *PROVIDER_EXTRAS.get(extra, ()))
            if not present or extra in OWN_EXTRAS:
                continue
            if sql_type == JSON:
                values[extra] = _first_of([_json_expr(cols, actual) or "NULL" for actual in present])
            else:
                values[extra] = _text(cols, *present)
        values["x_SourceFormat"] = quote_literal(f"focus-{self.version(cols)}")
        values["x_SourceFile"] = "x__file"
        stated = f"SELECT\n  {select_list(values)}\nFROM raw"
        present = {name for name, _, _ in FOCUS_COLUMNS if _present(cols, *_candidates(name))}
        return conform_sql(stated, has_subcategory="ServiceSubcategory" in present, stated_columns=present)

    @staticmethod
    def _fill_pricing_currency(values: dict[str, str]) -> None:
        """A row that states no pricing currency at all (every file before 1.2, whose rows may be
        read together with 1.2 files) is priced in its billing currency."""
        stated = ["PricingCurrency", *PRICING_CURRENCY_COLUMNS]
        unstated = " AND ".join(f"({values[c]}) IS NULL" for c in stated if c in values) or "TRUE"
        values["PricingCurrency"] = (
            f"CASE WHEN {unstated} THEN {values['BillingCurrency']} ELSE {values.get('PricingCurrency', 'NULL')} END"
        )
        for target, source in PRICING_CURRENCY_COLUMNS.items():
            if source in values:
                values[target] = f"CASE WHEN {unstated} THEN {values[source]} ELSE {values.get(target, 'NULL')} END"

    @staticmethod
    def _fill_costs(cols: Cols, values: dict[str, str]) -> None:
        billed = values["BilledCost"]
        # FOCUS: these metrics are never null; where a file omits them they equal the billed cost
        # (spec: a charge unrelated to other charges has its cost metrics = BilledCost).
        for metric in ("EffectiveCost", "ListCost"):
            values[metric] = f"coalesce({values[metric]}, {billed})" if metric in values else billed
        contracted = [values.get("ContractedCost", "NULL")]
        if "ContractedUnitPrice" in values and "PricingQuantity" in values:
            contracted.append(f"{values['ContractedUnitPrice']} * {values['PricingQuantity']}")
        values["ContractedCost"] = f"coalesce({', '.join(contracted)}, {billed})"

    def source_totals_sql(self, cols: Cols, opts: ReadOptions) -> str:
        keys = self.keys(cols, opts.default_currency)
        return f"""
            SELECT {keys['ProviderName']} AS provider,
                   {keys['BillingAccountId']} AS billing_account_id,
                   {keys['BillingPeriodStart']} AS billing_period_start,
                   {keys['BillingCurrency']} AS currency,
                   sum({cols.money('BilledCost')}) AS total
            FROM raw
            GROUP BY ALL
        """

    def parsed_columns(self, cols: Cols) -> list[tuple[str, str]]:
        checks: list[tuple[str, str] | None] = []
        for name, sql_type, _ in FOCUS_COLUMNS:
            candidates = _candidates(name)
            kind = {MONEY: "money", QUANTITY: "qty", TS: "ts"}.get(sql_type)
            if name in JSON_COLUMNS:
                kind = "json"
            present = _present(cols, *candidates)
            if name in REQUIRED_VALUES and present:
                # The invoice amount and month of every row: a blank would be read as nothing
                # billed, or put the row on the month of its BillingPeriodEnd.
                checks.append(cols.parsed(REQUIRED_VALUES[name], present[0]))
                present = present[1:]
            checks.extend(cols.parsed(kind, actual) for actual in present if kind)
        for extra, sql_type, _ in EXTRA_COLUMNS:
            if sql_type == JSON:
                checks.append(cols.parsed("json", extra))
        return [c for c in checks if c is not None]


# Columns a row may not leave blank when the file has them (FOCUS: mandatory, not null).
REQUIRED_VALUES = {"BilledCost": "money!", "BillingPeriodStart": "ts!"}


def _present(cols: Cols, *candidates: str) -> list[str]:
    """Actual names of every candidate present, in the candidates' order (newest name first)."""
    found = [cols.name(candidate) for candidate in candidates]
    return list(dict.fromkeys(name for name in found if name is not None))


def _first_of(exprs: list[str]) -> str:
    """Row by row, the first non-null of several spellings: files of different FOCUS versions
    read together have the old and the new column, each filled on its own rows."""
    return exprs[0] if len(exprs) == 1 else f"coalesce({', '.join(exprs)})"


def _text(cols: Cols, *candidates: str) -> str:
    """VARCHAR with blanks and ``NULL``/``null`` literals (Parquet written from CSV) as NULL,
    taking the first candidate column that has a value on each row."""
    exprs = []
    for actual in _present(cols, *candidates):
        value = cols.str(actual)
        exprs.append(f"CASE WHEN upper({value}) = 'NULL' THEN NULL ELSE {value} END")
    return _first_of(exprs) if exprs else "NULL::VARCHAR"


def _ts(cols: Cols, *candidates: str) -> str:
    """A UTC instant from text (any format `ca_ts` reads) or from any Parquet date/time type."""
    actual = cols.name(*candidates)
    if actual is None:
        return "NULL::TIMESTAMPTZ"
    if cols.type_of(actual).startswith(_TIME_TYPES):
        return f"CAST({quote_ident(actual)} AS TIMESTAMPTZ)"
    return cols.ts(actual)


def _json_expr(cols: Cols, actual: str) -> str | None:
    """JSON object text for a key-value column of any supported type; None when the type cannot be."""
    ident = quote_ident(actual)
    sql_type = cols.type_of(actual)
    if sql_type == "VARCHAR":
        return f"ca_braced_json({_text(cols, actual)})"
    if sql_type == "JSON":
        return f"ca_braced_json(CAST({ident} AS VARCHAR))"
    if sql_type.startswith("MAP("):
        return f"CASE WHEN {ident} IS NULL OR cardinality({ident}) = 0 THEN NULL ELSE CAST(to_json({ident}) AS VARCHAR) END"
    if sql_type.startswith("STRUCT(") and not sql_type.endswith("[]"):
        return f"CASE WHEN {ident} IS NULL THEN NULL ELSE CAST(to_json({ident}) AS VARCHAR) END"
    if sql_type.startswith("STRUCT(") and sql_type.endswith("[]") and re.search(r'\b"?key"?\b', sql_type, re.I):
        # BigQuery-style labels: [{key, value}, ...]. Built as text so repeated keys cannot fail.
        pairs = f"list_transform({ident}, lambda e: to_json(CAST(e.key AS VARCHAR)) || ':' || to_json(CAST(e.value AS VARCHAR)))"
        return f"CASE WHEN {ident} IS NULL OR len({ident}) = 0 THEN NULL ELSE '{{' || array_to_string({pairs}, ',') || '}}' END"
    return None


FORMATS = [FocusFormat()]
