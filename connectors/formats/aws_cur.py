"""AWS Cost and Usage Report, legacy "CUR 1": slash headers and the Athena snake_case flavour.

Two formats share one mapping to FOCUS 1.2:

* ``aws-cur``: the CSV/CSV.gz report with ``category/Name`` headers (``lineItem/UsageType``,
  ``resourceTags/user:team``, ``costCategory/CostCenter``).
* ``aws-cur-athena``: the same report delivered for Athena (Parquet, or a CSV export of that
  table) with snake_case headers (``line_item_usage_type``, ``resource_tags_user_team``,
  ``savings_plan_savings_plan_a_r_n``) and usually ``year``/``month`` partition columns.

The mapping (`aws_cur_sql`) is written once against the slash names; `CurColumns` resolves each
name in the flavour at hand, and `aws_cur2` reuses both for CUR 2.0 with its map columns.
"""

from __future__ import annotations

import re

import duckdb

from costaudit.errors import InputError

from ..base import Cols, Format, ReadOptions
from ..sql import quote_literal
from .aws_cur_sql import PROVIDER, register_lookups, select_sql, source_totals_sql

# CUR header categories and their Athena/CUR 2.0 spelling.
_CATEGORIES = {
    "identity": "identity", "bill": "bill", "lineitem": "line_item", "product": "product",
    "pricing": "pricing", "reservation": "reservation", "savingsplan": "savings_plan",
    "resourcetags": "resource_tags", "costcategory": "cost_category", "discount": "discount",
}

# AWS-generated tag keys whose snake_case form (Athena, CUR 2.0) hides the original spelling.
# Restoring them keeps `Tags` keys identical whichever CUR flavour a row came from.
KNOWN_AWS_TAGS = {
    "aws_created_by": "aws:createdBy",
    "aws_cloudformation_stack_name": "aws:cloudformation:stack-name",
    "aws_cloudformation_stack_id": "aws:cloudformation:stack-id",
    "aws_cloudformation_logical_id": "aws:cloudformation:logical-id",
    "aws_autoscaling_group_name": "aws:autoscaling:groupName",
    "aws_ec2spot_fleet_request_id": "aws:ec2spot:fleet-request-id",
    "aws_eks_cluster_name": "aws:eks:cluster-name",
    "aws_ecs_cluster_name": "aws:ecs:clusterName",
    "aws_ecs_service_name": "aws:ecs:serviceName",
}

MONEY_COLUMNS = (
    "lineItem/UnblendedCost", "lineItem/NetUnblendedCost", "lineItem/UnblendedRate", "lineItem/NetUnblendedRate",
    "pricing/publicOnDemandCost", "pricing/publicOnDemandRate",
    "savingsPlan/SavingsPlanEffectiveCost", "savingsPlan/NetSavingsPlanEffectiveCost",
    "savingsPlan/TotalCommitmentToDate", "savingsPlan/UsedCommitment",
    "reservation/EffectiveCost", "reservation/NetEffectiveCost",
    "reservation/UnusedAmortizedUpfrontFeeForBillingPeriod", "reservation/UnusedRecurringFee",
)
TIME_COLUMNS = (
    "bill/BillingPeriodStartDate", "bill/BillingPeriodEndDate", "lineItem/UsageStartDate", "lineItem/UsageEndDate",
)


def athena_name(slash_name: str) -> str:
    """The Athena/CUR 2.0 column name of a CUR 1 header: ``savingsPlan/SavingsPlanARN`` ->
    ``savings_plan_savings_plan_a_r_n`` (every capital starts a word, as AWS does it)."""
    category, _, name = slash_name.partition("/")
    snake = re.sub(r"[^a-z0-9]+", "_", re.sub(r"([A-Z])", r"_\1", name).lower()).strip("_")
    return f"{_CATEGORIES.get(category.lower(), category.lower())}_{snake}"


def tag_key(snake_key: str) -> str:
    """FOCUS tag key of a snake_case CUR tag key: ``user_team`` -> ``team`` (user tags are
    unprefixed), ``aws_created_by`` -> ``aws:createdBy``, other ``aws_x`` -> ``aws:x``."""
    if snake_key.startswith("user_"):
        return snake_key[len("user_"):]
    if snake_key in KNOWN_AWS_TAGS:
        return KNOWN_AWS_TAGS[snake_key]
    if snake_key.startswith("aws_"):
        return "aws:" + snake_key[len("aws_"):]
    return snake_key


def tag_key_sql(key: str) -> str:
    """SQL twin of `tag_key` for keys that are data (CUR 2.0 map keys)."""
    known = " ".join(f"WHEN {key} = {quote_literal(k)} THEN {quote_literal(v)}" for k, v in KNOWN_AWS_TAGS.items())
    return (
        f"CASE WHEN starts_with({key}, 'user_') THEN substr({key}, 6) {known} "
        f"WHEN starts_with({key}, 'aws_') THEN 'aws:' || substr({key}, 5) ELSE {key} END"
    )


def json_object_sql(entries: str, *, unique_keys: bool) -> str:
    """SQL for a JSON object from a list of STRUCT(k, v): blank values dropped, NULL when empty.

    Written here with DuckDB 2.0 ``lambda`` syntax: `base.json_object_from_columns` still uses
    the ``->`` arrow, which DuckDB 2.0 rejects. When keys are data (renamed map keys could
    collide, and DuckDB maps reject duplicates) the first of equal keys is kept; keys built from
    column names are already unique, and skipping that quadratic step keeps wide CURs fast.
    """
    kept = f"list_filter({entries}, lambda e: e.v IS NOT NULL AND e.v <> '')"
    if not unique_keys:
        kept = f"list_filter({kept}, lambda e, i: list_position(list_transform({kept}, lambda x: x.k), e.k) = i)"
    return f"CASE WHEN coalesce(len({kept}), 0) = 0 THEN NULL ELSE to_json(map_from_entries({kept})) END"


def json_from_columns(pairs: list[tuple[str, str]]) -> str:
    """SQL JSON object from (key literal, SQL value) pairs spread over many columns."""
    if not pairs:
        return "NULL::JSON"
    seen: dict[str, str] = {}
    for key, expr in pairs:
        seen.setdefault(key, expr)
    entries = ", ".join(
        f"struct_pack(k := {quote_literal(k)}, v := CAST(({v}) AS VARCHAR))" for k, v in seen.items()
    )
    return json_object_sql(f"[{entries}]", unique_keys=True)


class CurColumns:
    """CUR columns looked up by their slash names in one flavour: 'slash' or 'athena'.

    Absent columns give typed NULLs (through `Cols`), so one mapping serves reports with and
    without resource ids, discounts, Savings Plans or reservations.
    """

    def __init__(self, cols: Cols, flavour: str = "slash"):
        self.cols = cols
        self.flavour = flavour

    def names(self, *slash_names: str) -> tuple[str, ...]:
        if self.flavour == "slash":
            return slash_names
        return tuple(athena_name(n) for n in slash_names)

    def label(self, slash_name: str) -> str:
        """How the column is spelt in this flavour, for error messages."""
        return self.names(slash_name)[0]

    def has(self, *slash_names: str) -> bool:
        return self.cols.has(*self.names(*slash_names))

    def str(self, *slash_names: str) -> str:
        return self.cols.str(*self.names(*slash_names))

    def money(self, *slash_names: str) -> str:
        return self.cols.money(*self.names(*slash_names))

    def qty(self, *slash_names: str) -> str:
        return self.cols.qty(*self.names(*slash_names))

    def ts(self, *slash_names: str) -> str:
        return self.cols.ts(*self.names(*slash_names))

    def parsed(self) -> list[tuple[str, str]]:
        # Every line states its unblended cost (0 included): a blank would be read as 0.
        checks = [self.cols.parsed("money!" if n == "lineItem/UnblendedCost" else "money", *self.names(n))
                  for n in MONEY_COLUMNS]
        checks.append(self.cols.parsed("qty", *self.names("lineItem/UsageAmount")))
        checks += [self.cols.parsed("ts", *self.names(n)) for n in TIME_COLUMNS]
        return [c for c in checks if c is not None]

    def _prefixed(self, slash_prefix: str) -> list[tuple[str, str]]:
        """(key after the prefix, actual column) for tag/cost-category columns."""
        prefix = slash_prefix if self.flavour == "slash" else athena_name(slash_prefix + "x")[:-1]
        found = self.cols.matching(prefix.lower())
        return sorted((actual[len(prefix):], actual) for actual in found if len(actual) > len(prefix))

    def tags(self) -> str:
        pairs = []
        for key, actual in self._prefixed("resourceTags/"):
            if self.flavour == "slash":
                # Slash headers keep AWS's own spelling: user:team -> team, aws:createdBy stays.
                focus_key = key[len("user:"):] if key.lower().startswith("user:") else key
            else:
                focus_key = tag_key(key)
            pairs.append((focus_key, self.cols.str(actual)))
        return json_from_columns(pairs)

    def cost_categories(self) -> str:
        return json_from_columns([(key, self.cols.str(actual)) for key, actual in self._prefixed("costCategory/")])

    def memos(self) -> list[tuple[str, str, str]]:
        """(alias, raw column, SQL over ``k``): values computed once per distinct value of the raw
        column and joined back to the rows as the alias column (see `select_sql`)."""
        return []

    def account_names(self) -> tuple[str, str]:
        """(payer account name, usage account name): CUR 2.0 only."""
        return "NULL::VARCHAR", "NULL::VARCHAR"


class CurFormatBase(Format):
    """Shared behaviour of every CUR flavour; subclasses say how to read the columns."""

    provider = PROVIDER
    basis = "BilledCost"
    export_family = "aws-cur"

    def columns(self, cols: Cols) -> CurColumns:
        raise NotImplementedError

    def prepare(self, con: duckdb.DuckDBPyConnection) -> None:
        register_lookups(con)

    def check(self, cols: Cols, opts: ReadOptions) -> None:
        src = self.columns(cols)
        for needed in ("bill/PayerAccountId", "lineItem/UnblendedCost"):
            if not src.has(needed):
                raise InputError(
                    cols.source,
                    f"missing required column {src.label(needed)!r} (an AWS Cost and Usage Report always has it; "
                    "was the file cut or exported with a column selection?)",
                    column=src.label(needed),
                )
        if not src.has("bill/BillingPeriodStartDate", "lineItem/UsageStartDate"):
            name = src.label("bill/BillingPeriodStartDate")
            raise InputError(cols.source, f"missing required column {name!r}", column=name)
        if not src.has("lineItem/CurrencyCode") and not opts.default_currency:
            name = src.label("lineItem/CurrencyCode")
            raise InputError(
                cols.source,
                f"missing required column {name!r} (pass --currency CODE if the report's currency is known)",
                column=name,
            )

    def select_sql(self, cols: Cols, opts: ReadOptions) -> str:
        return select_sql(self.columns(cols), opts, self.id)

    def source_totals_sql(self, cols: Cols, opts: ReadOptions) -> str:
        return source_totals_sql(self.columns(cols), opts)

    def parsed_columns(self, cols: Cols) -> list[tuple[str, str]]:
        return self.columns(cols).parsed()


def is_cur2(cols: Cols) -> bool:
    """CUR 2.0 has map columns and account-name columns that no CUR 1 flavour has."""
    return cols.has(
        "product", "resource_tags", "cost_category", "discount",
        "bill_payer_account_name", "line_item_usage_account_name", "billing_period",
    )


class CurFormat(CurFormatBase):
    id = "aws-cur"
    title = "AWS Cost and Usage Report (legacy CUR, slash headers)"

    def columns(self, cols: Cols) -> CurColumns:
        return CurColumns(cols, "slash")

    def score(self, cols: Cols) -> int:
        if cols.has("lineItem/UnblendedCost") and cols.has("lineItem/LineItemType", "bill/PayerAccountId"):
            return 60
        return 0

    def version(self, cols: Cols) -> str:
        return "1"


class CurAthenaFormat(CurFormatBase):
    id = "aws-cur-athena"
    title = "AWS Cost and Usage Report (legacy CUR, Athena/Parquet snake_case headers)"

    def columns(self, cols: Cols) -> CurColumns:
        return CurColumns(cols, "athena")

    def score(self, cols: Cols) -> int:
        if cols.has("line_item_unblended_cost") and not is_cur2(cols):
            return 60
        return 0

    def version(self, cols: Cols) -> str:
        return "1"


FORMATS = [CurFormat(), CurAthenaFormat()]
