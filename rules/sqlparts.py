"""SQL fragments shared by the rules: provider keys, instance types, units, tags, resource names.

Each function returns an SQL expression over the columns of ``current_line_items`` (and of
``analysis_totals``, shaped like it: see `billing`) or the side tables, except `tag_sets` and
`charge_keys`, which build TEMP tables of the run. Patterns are constants
written here; values that come from the configuration are bound as ``$name`` parameters, never
pasted into SQL.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from costaudit.connectors.sql import quote_ident
from costaudit.schema import CHARGE_KEY_COLUMNS

if TYPE_CHECKING:
    from .contract import RuleContext

# Billing-window filter on analysis_totals or current_line_items (since inclusive, until exclusive).
WINDOW = "BillingPeriodStart >= $since AND BillingPeriodStart < $until"

# AWS usage types that name the instance type after a colon (BoxUsage:m5.xlarge, SpotUsage:...).
_AWS_INSTANCE_USAGE = r"(?:BoxUsage|SpotUsage|DedicatedUsage|HostUsage|SchedUsage|UnusedBox)[^:]*:([a-z0-9-]+\.[a-z0-9-]+)$"
# Units that count running time, and their factor to hours.
HOUR_UNITS = {"hours": "1", "hour": "1", "hrs": "1", "hr": "1", "h": "1"}
# A storage *volume* unit: a size over time (GB-Mo, GB-Months, GB/Month, GiB-month, Byte-Seconds,
# ByteHrs ...). Storage lines with such a unit are what a duplicate copy costs to keep.
STORAGE_VOLUME_UNIT = r"(?i)(byte|kb|mb|gb|gib|tb|tib).*(mo|month|hr|hour|sec|day)"
STORAGE_VOLUME_USAGE = r"(?i)(TimedStorage|EBS:VolumeUsage|EBS:Snapshot|BackupUsage|ByteHrs)"


def col(alias: str, name: str) -> str:
    """A quoted column, optionally qualified by a table alias."""
    return f"{alias}.{quote_ident(name)}" if alias else quote_ident(name)


def provider_key(expr: str) -> str:
    """'aws', 'gcp', 'azure' or 'other' from a ProviderName (FOCUS spellings vary by export)."""
    low = f"lower(coalesce({expr}, ''))"
    return (
        f"(CASE WHEN {low} LIKE '%amazon%' OR {low} = 'aws' OR {low} LIKE 'aws %' THEN 'aws' "
        f"WHEN {low} LIKE '%google%' OR {low} = 'gcp' THEN 'gcp' "
        f"WHEN {low} LIKE '%microsoft%' OR {low} LIKE '%azure%' THEN 'azure' ELSE 'other' END)"
    )


def type_key(expr: str) -> str:
    """The catalogue key of an instance type: lower case, Azure ``Standard_`` dropped, spaces
    as underscores, Azure meter suffixes (Spot, Low Priority) dropped."""
    return (
        f"nullif(regexp_replace(regexp_replace(regexp_replace(lower(trim({expr})), "
        f"'\\s+(spot|low priority)$', ''), '^standard_', ''), '\\s+', '_', 'g'), '')"
    )


def instance_key(alias: str = "") -> str:
    """The catalogue key of the instance type a line item bills: ``x_InstanceType``, else the
    type named in an AWS usage type, else an Azure Virtual Machines meter name ('D4s v3')."""
    from_usage = f"nullif(regexp_extract({col(alias, 'x_UsageType')}, '{_AWS_INSTANCE_USAGE}', 1), '')"
    azure_meter = (
        f"CASE WHEN {col(alias, 'ServiceName')} = 'Virtual Machines' "
        f"AND lower({col(alias, 'ConsumedUnit')}) IN ('hours', 'hour', '1 hour') THEN {col(alias, 'x_UsageType')} END"
    )
    return type_key(f"coalesce({col(alias, 'x_InstanceType')}, {from_usage}, {azure_meter})")


def running_hours(alias: str = "") -> str:
    """Hours of running time on a line when its consumed unit is an hour unit, else NULL."""
    units = ", ".join(f"'{u}'" for u in HOUR_UNITS)
    return (
        f"CASE WHEN lower(trim({col(alias, 'ConsumedUnit')})) IN ({units}) "
        f"AND {col(alias, 'ChargeCategory')} = 'Usage' THEN {col(alias, 'ConsumedQuantity')} END"
    )


def storage_volume_line(alias: str = "") -> str:
    """True for a line that bills stored volume (size over time): by its unit, or, for exports
    whose lines carry no unit, by an AWS storage usage type (TimedStorage, EBS volume/snapshot)."""
    unit = f"coalesce({col(alias, 'PricingUnit')}, {col(alias, 'ConsumedUnit')}, '')"
    usage = f"coalesce({col(alias, 'x_UsageType')}, '')"
    return (
        f"(regexp_matches({unit}, '{STORAGE_VOLUME_UNIT}') OR ({unit} = '' AND "
        f"regexp_matches({usage}, '{STORAGE_VOLUME_USAGE}')))"
    )


def tag_pairs(tags_expr: str) -> str:
    """The tags of a row as a list of lower-case 'key=value' strings (empty when no tags)."""
    return (
        f"coalesce(list_transform(map_entries(TRY_CAST(CAST({tags_expr} AS JSON) AS MAP(VARCHAR, VARCHAR))), "
        f"lambda e: lower(e.key) || '=' || lower(coalesce(e.value, ''))), [])"
    )


def tag_value(tags_expr: str, keys_param: str) -> str:
    """The value of the first tag whose key (case-insensitive) is in the bound list ``$keys_param``."""
    entries = f"map_entries(TRY_CAST(CAST({tags_expr} AS JSON) AS MAP(VARCHAR, VARCHAR)))"
    return (
        f"list_filter(coalesce({entries}, []), lambda e: list_contains(list_transform(${keys_param}, "
        f"lambda k: lower(k)), lower(e.key)))[1].value"
    )


def tags_match(tags_expr: str, keys_param: str, values_param: str) -> str:
    """True when the row has a tag with a key in ``$keys_param`` and a value in ``$values_param``
    (both bound lists, compared case-insensitively)."""
    return pairs_match(tag_pairs(tags_expr), keys_param, values_param)


def pairs_match(pairs_expr: str, keys_param: str, values_param: str) -> str:
    """`tags_match` over pairs already made by `tag_pairs` (e.g. the ``pairs`` of `tag_sets`)."""
    wanted = (
        f"flatten(list_transform(${keys_param}, lambda k: list_transform(${values_param}, "
        f"lambda v: lower(k) || '=' || lower(v))))"
    )
    return f"list_has_any({pairs_expr}, {wanted})"


def tag_sets(ctx: RuleContext) -> str:
    """A TEMP table of the run (``tags_text``, ``pairs``): each distinct Tags value billed in the
    window, as text (to join back with ``CAST(Tags AS VARCHAR)``), and its `tag_pairs`.

    The JSON is parsed once per distinct value: a filter on the parsed tags written over
    ``SELECT DISTINCT Tags`` is pushed below the DISTINCT by the optimizer and parses every row."""
    scope = f"{ctx.window.since.isoformat()}..{ctx.window.until.isoformat()}"
    return ctx.scratch.table(
        ctx.con, f"tag sets {scope}",
        f"SELECT CAST(Tags AS VARCHAR) AS tags_text, {tag_pairs('Tags')} AS pairs "
        f"FROM (SELECT DISTINCT Tags FROM {billing(ctx)} WHERE {WINDOW} AND Tags IS NOT NULL)",
        {"since": ctx.window.since, "until": ctx.window.until},
    )


def billing(ctx: RuleContext) -> str:
    """The relation a rule sums billing over, decided once per run: ``analysis_totals`` (the
    analysis's monthly sums per resource, tag set and charge key, shaped like line items) when
    the stored analysis covers the store's current loads, as `costaudit audit` and `costaudit
    run` make sure; else ``current_line_items`` itself. Both give the same sums (the totals are
    those sums); the totals have a fraction of the rows. A rule that counts, or orders, lines
    must not read it."""
    if ctx.scratch.billing is None:
        from costaudit.analysis.run import latest_run, loads_digest

        run = latest_run(ctx.con)
        views = {name for (name,) in ctx.con.execute("SELECT view_name FROM duckdb_views()").fetchall()}
        current = bool(run) and "analysis_totals" in views and run["loads_digest"] == loads_digest(ctx.con)
        ctx.scratch.billing = "analysis_totals" if current else "current_line_items"
    return ctx.scratch.billing


def charge_keys(ctx: RuleContext) -> str:
    """A TEMP table of the run: every distinct charge key billed (``charge_key``, the rows'
    ``x_ChargeKey``) with its key columns (`costaudit.schema.CHARGE_KEY_COLUMNS`: service, usage
    type, operation, descriptions, units, region...).

    A rule that picks lines by what was charged classifies these few thousand keys (text
    patterns, once each) and keeps the rows whose ``x_ChargeKey`` is among the chosen ones: an
    integer semi-join, instead of a pattern or a many-column text join per row. Copied from the
    analysis's own keys when the rules read its totals (`billing`); else found with one group-by
    of the line items on the integer key, the text read from one row per key."""
    columns = ", ".join(quote_ident(c) for c in CHARGE_KEY_COLUMNS)
    if billing(ctx) == "analysis_totals":
        return ctx.scratch.table(ctx.con, "charge keys", f"SELECT charge_key, {columns} FROM analysis_charge_keys")
    return ctx.scratch.table(
        ctx.con, "charge keys",
        f"""WITH found AS (SELECT x_ChargeKey AS charge_key, min(rowid) AS first_row FROM line_items GROUP BY 1)
        SELECT f.charge_key, {columns}
        FROM (SELECT rowid AS first_row, {columns} FROM line_items WHERE rowid IN (SELECT first_row FROM found)) li
        JOIN found f USING (first_row)""",
    )


def same_resource(billing_id: str, name: str) -> str:
    """True when a billing ResourceId and another id name the same resource: equal, or one ends
    with '/' or ':' and the other (ARNs, ARM ids and GCP full names end with the short name),
    case-insensitively.

    As a join condition this is a nested loop over every pair (quadratic in the ids): join
    with `same_resource_pairs`, which gives exactly the pairs for which this holds."""
    b, n = f"lower({billing_id})", f"lower({name})"
    return (
        f"({b} = {n} OR ends_with({b}, '/' || {n}) OR ends_with({b}, ':' || {n})"
        f" OR ends_with({n}, '/' || {b}) OR ends_with({n}, ':' || {b}))"
    )


def _tails(keys: str, name: str) -> str:
    """Recursive CTE ``name(k, tail)``: for each lower-cased key ``k`` of CTE ``keys``, the key
    itself and every tail that starts just after a '/' or ':' (one row per delimiter)."""
    first_delimiter = "least(nullif(instr(tail, '/'), 0), nullif(instr(tail, ':'), 0))"
    return f"""{name}(k, tail) AS (
    SELECT k, k FROM {keys}
    UNION ALL
    SELECT k, substr(tail, p + 1) FROM (SELECT k, tail, {first_delimiter} AS p FROM {name}) WHERE p IS NOT NULL
  )"""


def same_resource_pairs(left: str, right: str) -> str:
    """A subquery of the (left_id, right_id) pairs for which `same_resource` holds, computed as
    equi-joins instead of a nested loop over every pair.

    `left` and `right` are SELECTs with one column ``id`` (NULLs and repeats are fine). Each
    distinct id is lower-cased and cut into its tails after every '/' or ':' (an ARN ends in
    ``instance/i-1`` and ``i-1``, an ARM id in ``.../virtualMachines/vm1`` and ``vm1``, a GCP full
    name in ``instances/vm1`` and ``vm1``), the id itself included. `same_resource(l, r)` holds
    exactly when r's key is one of l's tails or l's key one of r's tails, so the pairs are two
    hash joins of tails against keys: the work is the number of ids times their delimiters,
    never left ids x right ids."""
    return f"""(
  WITH RECURSIVE
  sr_left AS (SELECT DISTINCT id, lower(id) AS k FROM ({left}) WHERE id IS NOT NULL),
  sr_right AS (SELECT DISTINCT id, lower(id) AS k FROM ({right}) WHERE id IS NOT NULL),
  sr_left_keys AS (SELECT DISTINCT k FROM sr_left),
  sr_right_keys AS (SELECT DISTINCT k FROM sr_right),
  {_tails('sr_left_keys', 'sr_left_tails')},
  {_tails('sr_right_keys', 'sr_right_tails')},
  sr_key_pairs AS (
    SELECT t.k AS left_key, r.k AS right_key FROM sr_left_tails t JOIN sr_right_keys r ON r.k = t.tail
    UNION
    SELECT l.k AS left_key, t.k AS right_key FROM sr_right_tails t JOIN sr_left_keys l ON l.k = t.tail
  )
  SELECT l.id AS left_id, r.id AS right_id
  FROM sr_key_pairs p JOIN sr_left l ON l.k = p.left_key JOIN sr_right r ON r.k = p.right_key
)"""


def money(expr: str) -> str:
    """Cast an amount to the store's exact money type."""
    return f"CAST(({expr}) AS DECIMAL(38,12))"


def cents(expr: str) -> str:
    """An amount rounded to the cent (half away from zero), still DECIMAL."""
    return f"CAST(round(CAST(({expr}) AS DECIMAL(38,12)), 2) AS DECIMAL(38,12))"
