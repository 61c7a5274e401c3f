"""Snapshots and backups that keep billing past a configurable age.

Snapshot and backup charges are recognised by their descriptions (EBS snapshots and archive,
RDS/Aurora backup storage, AWS Backup warm/cold storage, Compute Engine snapshots and machine
images, Azure disk snapshots and backup) or by resource ids that name a snapshot. A resource's
age is measured from the first charge the loaded bills hold for it to the end of its latest
charge in the window: bills do not state creation dates, so the age is a lower bound (load older
months to see more of it). A snapshot older than ``max_age_days`` is a finding:

    saving = its cost in its latest billing period in the window (deleting it)
"""

from __future__ import annotations

from .contract import Finding, Need, Param, Rule, RuleContext
from .sqlparts import WINDOW, billing, charge_keys

RULE = Rule(
    id="storage_aged_snapshots",
    title="Old snapshot or backup still billing",
    family="storage",
    severity="low",
    why="Snapshots and backups outlive the disks and databases they protect; without a retention policy they "
    "bill every month for years.",
    how_to_fix="Delete snapshots past your retention period, move long-term ones to an archive tier, and set a "
    "lifecycle policy (Data Lifecycle Manager, AWS Backup plans, snapshot schedules) so they expire.",
    needs=(
        Need(
            "current_line_items",
            ("ResourceId", "ChargePeriodStart"),
            label="billing lines with resource ids",
            how="load an export with resource-level charges",
        ),
    ),
    parameters={
        "max_age_days": Param(180, "snapshots and backups billed for longer than this are reported"),
    },
    references=(
        "awslabs/aws-well-architected-labs 300_CUR_Queries cost_optimization.md: EBS Snapshot Trends (> 6 months)",
        "aws-samples/aws-cudos-framework-deployment kpi_ebs_snap_view.sql (snapshots over 1 year)",
        "turbot/steampipe-mod-azure-thrifty compute_snapshot_max_age",
    ),
)

_SNAPSHOT_TEXT = (
    r"(?i)(snapshot|ChargedBackupUsage|BackupUsage|Backup Storage|WarmStorage-ByteHrs|ColdStorage-ByteHrs"
    r"|Machine Image|backup)"
)
_SNAPSHOT_ID = r"(?i)(snapshot/|/snapshots/|(^|[/:])snap-[0-9a-f]+$|/backupvaults?/|:backup)"

SQL = f"""
WITH snapshot_keys AS MATERIALIZED (  -- charge keys whose descriptions name a snapshot or backup (once per key)
  SELECT charge_key FROM $KEYS
  WHERE regexp_matches(concat_ws(' | ', x_UsageType, x_SkuDescription, x_SkuMeterSubcategory, ChargeDescription),
                       '{_SNAPSHOT_TEXT}')
),
billed_ids AS MATERIALIZED (  -- distinct first: the id pattern then runs once per resource, not per line
  SELECT DISTINCT ResourceId FROM $BILLING WHERE ResourceId IS NOT NULL
),
snapshot_ids AS MATERIALIZED (
  SELECT ResourceId FROM billed_ids WHERE regexp_matches(ResourceId, '{_SNAPSHOT_ID}')
),
snapshot_lines AS (
  SELECT li.ProviderName AS provider, li.BillingAccountId AS account, li.SubAccountId AS sub_account,
         li.RegionId AS region, li.ResourceId AS resource_id, li.BillingCurrency AS currency,
         li.BillingPeriodStart AS period, li.ChargePeriodStart, li.ChargePeriodEnd,
         CAST(li.$COST AS DECIMAL(38,12)) AS cost,
         coalesce(li.x_UsageType, li.x_SkuDescription, li.ChargeDescription) AS description
  FROM $BILLING li
  WHERE li.ResourceId IS NOT NULL AND li.ChargeCategory IN ('Usage', 'Credit')
    AND (li.ResourceId IN (SELECT ResourceId FROM snapshot_ids)
         OR li.x_ChargeKey IN (SELECT charge_key FROM snapshot_keys))
),
history AS (  -- over every loaded period, not only the window: age needs the first charge
  SELECT provider, account, resource_id, min(ChargePeriodStart) AS first_billed
  FROM snapshot_lines GROUP BY ALL
),
in_window AS (
  SELECT * FROM snapshot_lines WHERE {WINDOW.replace('BillingPeriodStart', 'period')}
  QUALIFY period = max(period) OVER (PARTITION BY provider, account, resource_id)
),
by_description AS (
  SELECT provider, account, resource_id, currency, period, description, any_value(sub_account) AS sub_account,
         max(region) AS region, max(ChargePeriodEnd) AS last_billed, CAST(sum(cost) AS DECIMAL(38,12)) AS cost
  FROM in_window GROUP BY provider, account, resource_id, currency, period, description
),
latest AS (  -- described by what most of its cost was billed as
  SELECT provider, account, resource_id, currency, period, any_value(sub_account) AS sub_account,
         max(region) AS region, max(last_billed) AS last_billed,
         first(description ORDER BY cost DESC, description) AS description, CAST(sum(cost) AS DECIMAL(38,12)) AS cost
  FROM by_description GROUP BY provider, account, resource_id, currency, period
)
SELECT l.provider, l.account AS billing_account_id, l.sub_account AS sub_account_id, l.region, l.resource_id,
       l.period AS billing_period, l.currency, l.cost AS monthly_cost_in_scope,
       CAST(round(l.cost, 2) AS DECIMAL(38,12)) AS estimated_monthly_saving,
       'deleting it removes its cost in scope (its charges in ' || strftime(l.period, '%Y-%m')
         || '); cost basis ' || $cost_basis AS estimate_method,
       json_object(
         'description', l.description, 'first_billed', strftime(h.first_billed, '%Y-%m-%d'),
         'last_billed', strftime(l.last_billed, '%Y-%m-%d'),
         'age_days_at_least', date_diff('day', h.first_billed, l.last_billed),
         'max_age_days', $max_age_days, 'cost_in_scope', round(l.cost, 2)
       ) AS evidence,
       printf('%s billed since %s (at least %d days, limit %d)', l.description, strftime(h.first_billed, '%Y-%m-%d'),
              date_diff('day', h.first_billed, l.last_billed), $max_age_days) AS summary,
       'open' AS status
FROM latest l JOIN history h USING (provider, account, resource_id)
WHERE date_diff('day', h.first_billed, l.last_billed) > $max_age_days AND l.cost > 0
"""


def evaluate(ctx: RuleContext) -> list[Finding]:
    """Snapshots and backups billed for longer than the age limit."""
    return ctx.findings(SQL.replace("$COST", ctx.cost).replace("$BILLING", billing(ctx)).replace("$KEYS", charge_keys(ctx)))
