"""SQL shared by the egress rules: the analysis view they read, and per-month grouping.

The egress rules read the analysis views over the charge totals (``network_transfer_totals``:
charges that move data, with their class, route and volume in GB; ``analysis_totals``: every
current charge with its AI and network classification; ``ai_spend_totals``). A row there is the
sum of a month's line items of one resource, tag set and charge key, so a rule's sums are the
line items' sums at a fraction of the rows. ``costaudit audit`` refreshes the analysis before it
runs the rules, so a store that was never analysed reports these rules as skipped, with the reason.

Conventions of every egress rule:

* costs are the configured basis (EffectiveCost or BilledCost) of ``Usage`` and ``Credit`` lines,
  summed per billing period; a finding reports a resource's **latest** period in the window;
* amounts are never added across currencies (currency is part of every grouping key);
* a transfer line without a resource id is reported under ``<sub-account>:<usage type>``, and
  its evidence says so (``no_resource_id_in_bill``).
"""

from __future__ import annotations

from .contract import Need
from .sqlparts import WINDOW

NETWORK_NEED = Need(
    "network_transfer_totals",
    ("network_class",),
    label="classified network transfer (the analysis view network_transfer_totals)",
    how="run `costaudit audit`, which refreshes the analysis before the rules (or `costaudit summary`)",
)
ANALYSIS_NEED = Need(
    "analysis_totals",
    ("ServiceCategory",),
    label="analysed charges (the analysis view analysis_totals)",
    how="run `costaudit audit`, which refreshes the analysis before the rules (or `costaudit summary`)",
)

# Lines that count as spend: usage and the credits against it (not purchases, tax or fees).
CHARGES = "ChargeCategory IN ('Usage', 'Credit')"


def window(alias: str = "") -> str:
    """The audit window on a relation with BillingPeriodStart (optionally qualified)."""
    return WINDOW.replace("BillingPeriodStart", f"{alias}.BillingPeriodStart") if alias else WINDOW


def resource_key(alias: str = "", fallback: str = "coalesce({a}x_UsageType, {a}ChargeDescription, 'transfer')") -> str:
    """The resource a transfer line is reported under: its ResourceId, else
    ``<sub-account>:<fallback>`` (by default the usage type)."""
    a = f"{alias}." if alias else ""
    return f"coalesce({a}ResourceId, coalesce({a}SubAccountId, {a}BillingAccountId) || ':' || {fallback.format(a=a)})"


def latest_period(relation: str, keys: str = "provider, account, resource_id") -> str:
    """Rows of `relation` in the latest billing period (column ``period``) of each key."""
    return f"SELECT * FROM {relation} QUALIFY period = max(period) OVER (PARTITION BY {keys})"


def share(param: str) -> str:
    """A 0-1 share parameter as an exact decimal for money arithmetic."""
    return f"CAST(${param} AS DECIMAL(18,6))"


def cents(expr: str) -> str:
    """Money rounded to the cent, kept DECIMAL."""
    return f"CAST(round({expr}, 2) AS DECIMAL(38,12))"


def rate_per_gb(cost: str, gb: str) -> str:
    """The billed price per GB (4 decimals), NULL without volume."""
    return f"round(CAST({cost} AS DOUBLE) / nullif(CAST({gb} AS DOUBLE), 0), 4)"
