"""The same content stored more than once: in several buckets, regions or providers.

Objects from the imported inventories (current versions only) are grouped by (hash kind,
content hash, size). Only hashes of one kind compare: MD5 digests (S3 single-part ETags of
non-KMS objects, GCS md5Hash, Azure Content-MD5) match each other across providers; an S3
multipart ETag (``<md5 of part md5s>-<parts>``) matches only an identical multipart ETag, which
means equal content uploaded with the same part size, so such matches are reported with lower
confidence (and can be turned off); CRC32C (GCS composite objects) is 32 bits and is used only
when enabled. In each group the oldest copy is kept and every other copy is redundant.

One finding per location (bucket, or Azure container) holding redundant copies:

    saving = redundant bytes x that location's storage price per byte-month

The price is the location's own billed storage cost in its latest period in the window divided
by the bytes its inventory lists (billing scope: the bucket, or the Azure storage account), so
saving = billed storage cost x redundant bytes / inventoried bytes. A location absent from the
loaded bills is priced from the shipped list prices of its storage class (USD per GiB-month);
without either, the finding is reported without a saving.
"""

from __future__ import annotations

from .contract import Finding, Need, Param, Rule, RuleContext
from .sqlparts import WINDOW, billing, provider_key, same_resource_pairs, storage_volume_line

RULE = Rule(
    id="storage_duplicate_content",
    title="Same content stored in several places",
    family="storage",
    severity="medium",
    why="Copies of the same objects in several buckets, regions or clouds are each billed in full; copies "
    "made once for a migration or an experiment are easy to forget.",
    how_to_fix="Keep one copy (or the copies you need for latency or recovery), point readers at it, and delete "
    "or lifecycle-expire the others; prefer replication rules over ad-hoc copies when a second copy is needed.",
    needs=(
        Need(
            "storage_objects",
            ("content_hash", "size_bytes"),
            label="storage inventories with content hashes",
            how="import S3 Inventory, GCS inventory reports or Azure blob inventory with "
            "`costaudit import inventory FILE` (include ETag / md5Hash / Content-MD5)",
        ),
    ),
    parameters={
        "min_object_size_mb": Param(1.0, "objects smaller than this (MiB) are ignored"),
        "match_multipart_etags": Param(True, "match identical S3 multipart ETags (same part size), lower confidence"),
        "match_crc32c": Param(False, "match GCS objects on CRC32C when they have no MD5 (32-bit, weak)"),
    },
    references=(
        "AWS Storage Blog: Managing duplicate objects in Amazon S3 (ETag + size over S3 Inventory)",
        "rclone dedupe --by-hash (rclone.org/commands/rclone_dedupe)",
        "../shared/reference/rules.md section 7.2",
    ),
)

SQL = f"""
WITH objects AS (
  SELECT o.*, coalesce(o.storage_account, o.bucket) AS billing_name
  FROM storage_objects o
  WHERE coalesce(o.is_latest, true) AND o.size_bytes > 0 AND o.size_bytes >= $min_object_size_mb * 1048576
    AND o.content_hash IS NOT NULL
    AND (o.hash_kind = 'md5' OR (o.hash_kind = 'multipart-etag' AND $match_multipart_etags)
         OR (o.hash_kind = 'crc32c' AND $match_crc32c))
),
grouped AS (
  SELECT *,
         row_number() OVER (PARTITION BY hash_kind, content_hash, size_bytes
                            ORDER BY last_modified NULLS LAST, location, object_key) AS copy_rank,
         count(*) OVER (PARTITION BY hash_kind, content_hash, size_bytes) AS copies
  FROM objects
),
kept AS (
  SELECT hash_kind, content_hash, size_bytes, location AS kept_location
  FROM grouped WHERE copies > 1 AND copy_rank = 1
),
per_location AS (
  SELECT g.provider, g.location, any_value(g.billing_name) AS billing_name, any_value(g.region) AS region,
         any_value(g.billing_account_id) AS inventory_account, mode(g.storage_class) AS storage_class,
         count(*) AS redundant_objects, CAST(sum(g.size_bytes) AS BIGINT) AS redundant_bytes,
         count(*) FILTER (WHERE g.hash_kind = 'multipart-etag') AS multipart_matches,
         count(*) FILTER (WHERE g.hash_kind = 'crc32c') AS crc32c_matches,
         list(DISTINCT k.kept_location ORDER BY k.kept_location)[1:3] AS copies_kept_in,
         list(g.object_key ORDER BY g.size_bytes DESC, g.object_key)[1:3] AS examples
  FROM grouped g JOIN kept k USING (hash_kind, content_hash, size_bytes)
  WHERE g.copy_rank > 1
  GROUP BY g.provider, g.location
),
scope_bytes AS (
  SELECT provider, coalesce(storage_account, bucket) AS billing_name, CAST(sum(size_bytes) AS BIGINT) AS inventoried_bytes
  FROM storage_objects GROUP BY 1, 2
),
billed_names AS (  -- (billed resource id, inventoried name) pairs that name the same bucket or account
  SELECT * FROM {same_resource_pairs(f"SELECT ResourceId AS id FROM $BILLING WHERE {WINDOW}",
                                     'SELECT billing_name AS id FROM per_location')}
),
billed AS (
  SELECT n.provider, n.billing_name, li.BillingAccountId AS account, any_value(li.SubAccountId) AS sub_account,
         max(li.RegionId) AS billed_region, li.BillingCurrency AS currency, li.BillingPeriodStart AS period,
         CAST(sum(li.$COST) AS DECIMAL(38,12)) AS storage_cost
  FROM $BILLING li
  JOIN billed_names b ON b.left_id = li.ResourceId
  JOIN (SELECT DISTINCT provider, billing_name FROM per_location) n
    ON n.billing_name = b.right_id AND {provider_key('li.ProviderName')} = {provider_key('n.provider')}
  WHERE {WINDOW.replace('BillingPeriodStart', 'li.BillingPeriodStart')} AND {storage_volume_line('li')}
    AND li.ChargeCategory IN ('Usage', 'Credit')
  GROUP BY n.provider, n.billing_name, li.BillingAccountId, li.BillingCurrency, li.BillingPeriodStart
  QUALIFY row_number() OVER (PARTITION BY n.provider, n.billing_name ORDER BY li.BillingPeriodStart DESC,
                             storage_cost DESC) = 1
),
list_priced AS (
  SELECT p.provider, p.location, sp.price_per_gib_month, sp.currency AS list_currency, sp.price_note
  FROM per_location p JOIN storage_prices sp
    ON sp.provider_key = {provider_key('p.provider')} AND sp.storage_class = upper(p.storage_class)
  QUALIFY row_number() OVER (PARTITION BY p.provider, p.location
                             ORDER BY (sp.region = lower(coalesce(p.region, ''))) DESC, sp.region) = 1
),
estimated AS (
  SELECT p.*, s.inventoried_bytes, b.account, b.sub_account, b.billed_region, b.period, b.storage_cost,
         lp.price_per_gib_month, lp.price_note,
         coalesce(b.currency, lp.list_currency) AS currency,
         CASE
           WHEN b.storage_cost IS NOT NULL
             THEN CAST(round(b.storage_cost * p.redundant_bytes / s.inventoried_bytes, 2) AS DECIMAL(38,12))
           WHEN lp.price_per_gib_month IS NOT NULL
             THEN CAST(round(lp.price_per_gib_month * p.redundant_bytes / 1073741824, 2) AS DECIMAL(38,12))
         END AS saving
  FROM per_location p
  JOIN scope_bytes s ON s.provider = p.provider AND s.billing_name = p.billing_name
  LEFT JOIN billed b ON b.provider = p.provider AND b.billing_name = p.billing_name
  LEFT JOIN list_priced lp ON lp.provider = p.provider AND lp.location = p.location
)
SELECT provider, coalesce(account, inventory_account) AS billing_account_id, sub_account AS sub_account_id,
       coalesce(region, billed_region) AS region, location AS resource_id, period AS billing_period, currency,
       storage_cost AS monthly_cost_in_scope, saving AS estimated_monthly_saving,
       CASE
         WHEN storage_cost IS NOT NULL THEN printf(
           'billed storage cost of %s in %s (%s) x redundant bytes %d / inventoried bytes %d; cost basis %s',
           billing_name, strftime(period, '%Y-%m'), storage_cost::VARCHAR, redundant_bytes, inventoried_bytes, $cost_basis)
         WHEN price_per_gib_month IS NOT NULL THEN printf(
           'redundant bytes %d / 2^30 x list price %s per GiB-month (%s); %s is not in the loaded bills',
           redundant_bytes, price_per_gib_month::VARCHAR, price_note, billing_name)
         ELSE 'no price: ' || billing_name || ' is not in the loaded bills and its storage class has no list price'
       END AS estimate_method,
       json_object(
         'redundant_objects', redundant_objects, 'redundant_bytes', redundant_bytes,
         'redundant_gib', round(redundant_bytes / 1073741824, 3), 'inventoried_bytes_in_billing_scope', inventoried_bytes,
         'billing_scope', billing_name, 'storage_class', storage_class, 'copies_kept_in', copies_kept_in,
         'example_keys', examples,
         'match', CASE WHEN multipart_matches + crc32c_matches = 0 THEN 'md5 + size'
                       ELSE printf('%d of %d by md5 + size, %d by identical multipart ETag + size (lower confidence: '
                                   'equal only for equal part sizes), %d by crc32c', redundant_objects - multipart_matches
                                   - crc32c_matches, redundant_objects, multipart_matches, crc32c_matches) END,
         'billed_storage_cost', round(storage_cost, 2),
         'price_per_gib_month', coalesce(round(storage_cost / (inventoried_bytes / 1073741824), 6), price_per_gib_month)
       ) AS evidence,
       printf('%d object(s), %.3f GiB, also stored in %s', redundant_objects, redundant_bytes / 1073741824,
              array_to_string(copies_kept_in, ', ')) AS summary,
       'open' AS status
FROM estimated
"""


def evaluate(ctx: RuleContext) -> list[Finding]:
    """One finding per location holding copies of content kept elsewhere."""
    return ctx.findings(SQL.replace("$COST", ctx.cost).replace("$BILLING", billing(ctx)))
