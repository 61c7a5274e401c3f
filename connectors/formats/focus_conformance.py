"""FOCUS 1.2 conformance rules applied by the FOCUS reader to what a file states.

A FOCUS file of any version is stored as FOCUS 1.2, so values that FOCUS 1.2 forbids are converted
here, in SQL over the rows the reader has read (never row by row in Python). Each rule is either
mandated by the FOCUS 1.2 column text or a derivation from another value of the same row:

==================================  ==========================================================================
rule id                             what it does (FOCUS 1.2 requirement)
==================================  ==========================================================================
consumed-not-usage                  ConsumedQuantity and ConsumedUnit nulled where ChargeCategory is not Usage or
                                    CommitmentDiscountStatus is Unused (ConsumedQuantity MUST be null there;
                                    ConsumedUnit MUST be null when ConsumedQuantity is null)
consumed-unit-without-quantity      ConsumedUnit nulled where ConsumedQuantity is null (same ConsumedUnit rule)
unit-price-tax                      List/Contracted unit prices (billing and pricing currency) nulled on Tax rows
                                    (each MUST be null when ChargeCategory is Tax)
unit-price-negative                 a negative unit price nulled where FOCUS allows a null one: ChargeCategory not
                                    Usage/Purchase, or ChargeClass Correction (MUST be non-negative when not null)
unit-format                         PricingUnit/ConsumedUnit/CommitmentDiscountUnit respelled in Unit Format where
                                    ``data/focus_units.csv`` lists an exact equivalent (``Lambda-GB-Seconds`` ->
                                    ``GB-Seconds``)
region-name-from-id                 RegionName looked up from RegionId in costaudit's AWS/Azure region tables
region-id-from-name                 RegionId looked up from RegionName in the same tables
region-name-without-id              RegionName nulled where no RegionId is stated or found (MUST be null then)
region-id-without-name              RegionName set to the RegionId where no RegionName is stated or found
                                    (RegionName MUST NOT be null when RegionId is set; the id is the only name
                                    the row gives, and dropping the region would lose routes and locations)
resource-type-without-id            ResourceType nulled where ResourceId is null (MUST be null then)
resource-type-from-id               ResourceType read from the ResourceId where the id states it (MUST NOT be null
                                    when ResourceId is set): AWS ARN ``arn:p:svc:region:acct:<type>/<id>`` or
                                    ``<type>:<id>``; a type-less ARN of SQS/SNS/S3; an EC2-style id prefix
                                    (``i-`` instance); Azure ``.../providers/<ns>/<type>/<name>`` -> ``<ns>/<type>``;
                                    OCI ``ocid1.<type>.<realm>...`` (``data/focus_aws_resource_types.csv``)
resource-type-generic               ResourceType ``<ServiceName> resource`` (no ServiceName: ``<ProviderName>
                                    resource``) where the id states no type: the kind of resource as far as the
                                    row tells
service-category                    a ServiceName filed under several ServiceCategory/ServiceSubcategory pairs in
                                    one delivery gets one pair (ServiceName MUST have one and only one category):
                                    costaudit's service table for that provider, else the pair on most rows (ties:
                                    alphabetical). Without a ServiceSubcategory column the subcategory stays null.
                                    Rows that state no ServiceName (stored as ``Unknown``) are left alone: they
                                    may be different services.
service-subcategory-from-table      a null ServiceSubcategory (every row before FOCUS 1.1; MUST NOT be null) filled
                                    from costaudit's service table where the table files the service under the
                                    row's ServiceCategory; otherwise the export writes ``Other (<category>)``
==================================  ==========================================================================

Every value a rule drops or replaces is kept, as the file stated it, in ``x_OriginalValues`` (a JSON
object: column -> stated value); ``x_ConformanceAdjustments`` lists the ids of the rules that changed
the row. Money (the four cost metrics) is never changed. Rules only fire on values FOCUS 1.2 forbids,
so reading back costaudit's own export changes nothing.

Not converted: SkuMeter. FOCUS 1.0 files have no SkuMeter and the reader takes it only from columns
that are the meter (``x_UsageType``, ``x_SkuMeterName``); FOCUS says SkuMeter SHOULD NOT be null when
SkuId is set, and a ChargeDescription or unit is not a meter, so costaudit leaves it null.
"""

from __future__ import annotations

import duckdb

from costaudit.schema import READER_COLUMNS

from ..base import data_file, json_object_from_columns
from ..sql import quote_ident, quote_literal

# rule id -> the description written, with its row count, into an export's metadata.json.
RULES: dict[str, str] = {
    "consumed-not-usage": "ConsumedQuantity/ConsumedUnit nulled on rows that are not Usage or are Unused commitment",
    "consumed-unit-without-quantity": "ConsumedUnit nulled where ConsumedQuantity is null",
    "unit-price-tax": "ListUnitPrice/ContractedUnitPrice nulled on Tax rows",
    "unit-price-negative": "negative ListUnitPrice/ContractedUnitPrice nulled where FOCUS allows null",
    "unit-format": "PricingUnit/ConsumedUnit/CommitmentDiscountUnit respelled in FOCUS Unit Format",
    "region-name-from-id": "RegionName looked up from RegionId",
    "region-id-from-name": "RegionId looked up from RegionName",
    "region-name-without-id": "RegionName nulled: no RegionId stated or found",
    "region-id-without-name": "RegionName set to the RegionId: no RegionName stated or found",
    "resource-type-without-id": "ResourceType nulled where ResourceId is null",
    "resource-type-from-id": "ResourceType read from the ResourceId",
    "resource-type-generic": "ResourceType set to '<ServiceName> resource': the ResourceId states no type",
    "service-category": "ServiceCategory/ServiceSubcategory set to the one pair of the ServiceName",
    "service-subcategory-from-table": "ServiceSubcategory filled from costaudit's service table",
}

# lower(ProviderName) -> the key of costaudit's own lookup tables.
PROVIDER_KEYS: dict[str, str] = {
    "aws": "aws", "amazon web services": "aws", "amazon web services, inc.": "aws", "amazon": "aws",
    "microsoft": "azure", "microsoft azure": "azure", "azure": "azure",
    "google cloud": "gcp", "google cloud platform": "gcp", "google": "gcp", "gcp": "gcp",
}
UNIT_PRICES = ("ListUnitPrice", "ContractedUnitPrice", "PricingCurrencyListUnitPrice", "PricingCurrencyContractedUnitPrice")
UNIT_COLUMNS = ("PricingUnit", "ConsumedUnit", "CommitmentDiscountUnit")
# Columns a rule may change; their stated values go to x_OriginalValues when they do.
ADJUSTED = (
    "ConsumedQuantity", *UNIT_COLUMNS, *UNIT_PRICES, "RegionId", "RegionName", "ResourceType",
    "ServiceCategory", "ServiceSubcategory",
)
ORIGINALS = "x_OriginalValues"
ADJUSTMENTS = "x_ConformanceAdjustments"


def _csv(name: str) -> str:
    return f"read_csv({quote_literal(data_file(name))}, header = true, comment = '#', all_varchar = true)"


def register_lookups(con: duckdb.DuckDBPyConnection) -> None:
    """TEMP lookup tables the conformance SQL joins: regions, units, resource types, services.

    Every table is unique on its join key, so a join never duplicates a row (the loader's
    reconciliation would catch it anyway)."""
    tables = {
        # RegionId -> RegionName, per provider.
        "ca_focus_region_names": f"""
            SELECT 'aws' AS provider_key, region_code AS region_id, region_name FROM {_csv('aws_regions.csv')}
            UNION ALL
            SELECT DISTINCT 'azure', RegionId, RegionName FROM {_csv('azure_regions.csv')}""",
        # lower(RegionName) (or any spelling Azure uses for the region) -> RegionId; ambiguous names dropped.
        "ca_focus_region_ids": f"""
            SELECT provider_key, name_key, min(region_id) AS region_id FROM (
              SELECT 'aws' AS provider_key, lower(region_name) AS name_key, region_code AS region_id
              FROM {_csv('aws_regions.csv')}
              UNION ALL
              SELECT 'azure', lower(OriginalValue), RegionId FROM {_csv('azure_regions.csv')}
              UNION ALL
              SELECT 'azure', lower(RegionName), RegionId FROM {_csv('azure_regions.csv')})
            GROUP BY ALL HAVING count(DISTINCT region_id) = 1""",
        "ca_focus_units": f"SELECT unit, focus_unit FROM {_csv('focus_units.csv')}",
        "ca_focus_aws_types": f"SELECT kind, key, resource_type FROM {_csv('focus_aws_resource_types.csv')}",
        # (provider, ServiceName) -> the category pair costaudit's readers give that service.
        "ca_focus_services": f"""
            SELECT 'aws' AS provider_key, service_name, service_category AS category,
                   service_subcategory AS subcategory FROM {_csv('aws_services.csv')}
            UNION
            SELECT 'azure', ServiceName, ServiceCategory, ServiceSubcategory FROM {_csv('azure_services.csv')}
            UNION
            SELECT 'gcp', service_description, service_category, service_subcategory FROM {_csv('gcp_services.csv')}""",
    }
    for table, sql in tables.items():
        con.execute(f"CREATE OR REPLACE TEMP TABLE {quote_ident(table)} AS {sql}")
    # A service name listed twice with different pairs is no single answer: drop it.
    con.execute(
        "DELETE FROM ca_focus_services WHERE (provider_key, service_name) IN (SELECT provider_key, service_name "
        "FROM ca_focus_services GROUP BY ALL HAVING count(*) > 1)"
    )


def _provider_key(expr: str) -> str:
    whens = " ".join(f"WHEN {quote_literal(k)} THEN {quote_literal(v)}" for k, v in PROVIDER_KEYS.items())
    return f"CASE lower(trim({expr})) {whens} END"


def _resource_type_from_id() -> str:
    """SQL over ca_d's columns: the ResourceType a ResourceId states, else NULL."""
    arn_resource = "ltrim(regexp_extract(ResourceId, '^arn:[^:]*:[^:]*:[^:]*:[^:]*:(.*)$', 1), '/')"
    arm_rest = "regexp_extract(ResourceId, '(?i)/providers/((?:[^/]+/?)+)$', 1)"
    # ns/type/name[/type/name...] -> ns/type[/type...]: the namespace and every type segment.
    arm_type = (f"array_to_string(list_filter(string_split({arm_rest}, '/'), lambda x, i: i = 1 OR i % 2 = 0), '/')")
    return f"""CASE
        WHEN ResourceId LIKE 'arn:%' THEN coalesce(
            ca__arn_type, nullif(regexp_extract({arn_resource}, '^([^/:]+)[/:]', 1), ''))
        WHEN regexp_matches(ResourceId, '(?i)/providers/[^/]+/[^/]+/[^/]+') THEN {arm_type}
        WHEN regexp_full_match(ResourceId, 'ocid[0-9]+\\.[a-z0-9]+\\..+') THEN split_part(ResourceId, '.', 2)
        ELSE ca__prefix_type
      END"""


def conform_sql(stated_select: str, *, has_subcategory: bool, stated_columns: set[str]) -> str:
    """Wrap the reader's SELECT (READER_COLUMNS over ``raw``) in the conformance rules.

    ``has_subcategory``: the file has a ServiceSubcategory column (FOCUS >= 1.1).
    ``stated_columns``: the FOCUS columns the file has; a value the reader derived rather than read
    (e.g. PricingCurrencyListUnitPrice of a 1.0 file) is not recorded as an original.
    """
    no_consumption = "(ChargeCategory IS DISTINCT FROM 'Usage' OR CommitmentDiscountStatus IS NOT DISTINCT FROM 'Unused')"
    price_nullable = "(ChargeCategory NOT IN ('Usage', 'Purchase') OR ChargeClass IS NOT DISTINCT FROM 'Correction')"
    any_price = " OR ".join(f"{quote_ident(p)} IS NOT NULL" for p in UNIT_PRICES)
    any_negative = " OR ".join(f"{quote_ident(p)} < 0" for p in UNIT_PRICES)
    service_changed = (
        "(ca__category IS NOT NULL AND (ServiceCategory IS DISTINCT FROM ca__category"
        " OR ServiceSubcategory IS DISTINCT FROM ca__subcategory))"
    )
    flags = {
        "consumed-not-usage": f"{no_consumption} AND (ConsumedQuantity IS NOT NULL OR ConsumedUnit IS NOT NULL)",
        "consumed-unit-without-quantity": f"NOT {no_consumption} AND ConsumedQuantity IS NULL AND ConsumedUnit IS NOT NULL",
        "unit-price-tax": f"ChargeCategory = 'Tax' AND ({any_price})",
        "unit-price-negative": f"ChargeCategory IS DISTINCT FROM 'Tax' AND {price_nullable} AND ({any_negative})",
        "unit-format": (
            "ca__unit_PricingUnit IS NOT NULL OR ca__unit_CommitmentDiscountUnit IS NOT NULL"
            f" OR (ca__unit_ConsumedUnit IS NOT NULL AND NOT {no_consumption} AND ConsumedQuantity IS NOT NULL)"
        ),
        "region-name-from-id": "RegionId IS NOT NULL AND RegionName IS NULL AND ca__region_name IS NOT NULL",
        "region-id-from-name": "RegionId IS NULL AND RegionName IS NOT NULL AND ca__region_id IS NOT NULL",
        "region-name-without-id": "RegionId IS NULL AND RegionName IS NOT NULL AND ca__region_id IS NULL",
        "region-id-without-name": "RegionId IS NOT NULL AND RegionName IS NULL AND ca__region_name IS NULL",
        "resource-type-without-id": "ResourceId IS NULL AND ResourceType IS NOT NULL",
        "resource-type-from-id": "ResourceId IS NOT NULL AND ResourceType IS NULL AND ca__resource_type IS NOT NULL",
        "resource-type-generic": "ResourceId IS NOT NULL AND ResourceType IS NULL AND ca__resource_type IS NULL",
        "service-category": service_changed,
        "service-subcategory-from-table": (
            f"(CASE WHEN {service_changed} THEN ca__subcategory ELSE ServiceSubcategory END) IS NULL"
            " AND ca__table_subcategory IS NOT NULL"
            f" AND ca__table_category = (CASE WHEN {service_changed} THEN ca__category ELSE ServiceCategory END)"
        ),
    }
    assert set(flags) == set(RULES)
    flag = {rule: f"ca__f_{i}" for i, rule in enumerate(RULES)}

    def unit(column: str, *, nulled: str = "FALSE") -> str:
        ident = quote_ident(column)
        return f"CASE WHEN {nulled} THEN NULL ELSE coalesce(ca__unit_{column}, {ident}) END"

    def price(column: str) -> str:
        ident = quote_ident(column)
        return (f"CASE WHEN {flag['unit-price-tax']} OR ({flag['unit-price-negative']} AND {ident} < 0) "
                f"THEN NULL ELSE {ident} END")

    final = {name: quote_ident(name) for name, _ in READER_COLUMNS}
    final.update({
        "ConsumedQuantity": f"CASE WHEN {flag['consumed-not-usage']} THEN NULL ELSE ConsumedQuantity END",
        "ConsumedUnit": unit("ConsumedUnit", nulled=f"{flag['consumed-not-usage']} OR {flag['consumed-unit-without-quantity']}"),
        "PricingUnit": unit("PricingUnit"),
        "CommitmentDiscountUnit": unit("CommitmentDiscountUnit"),
        **{p: price(p) for p in UNIT_PRICES},
        "RegionId": f"CASE WHEN {flag['region-id-from-name']} THEN ca__region_id ELSE RegionId END",
        "RegionName": (f"CASE WHEN {flag['region-name-from-id']} THEN ca__region_name "
                       f"WHEN {flag['region-id-without-name']} THEN RegionId "
                       f"WHEN {flag['region-name-without-id']} THEN NULL ELSE RegionName END"),
        "ResourceType": (f"CASE WHEN {flag['resource-type-without-id']} THEN NULL "
                         f"WHEN {flag['resource-type-from-id']} THEN ca__resource_type "
                         f"WHEN {flag['resource-type-generic']} THEN coalesce(ServiceName, ProviderName) || ' resource' "
                         "ELSE ResourceType END"),
        "ServiceName": "coalesce(ServiceName, 'Unknown')",
        "ServiceCategory": f"CASE WHEN {flag['service-category']} THEN ca__category ELSE ServiceCategory END",
        "ServiceSubcategory": (f"CASE WHEN {flag['service-subcategory-from-table']} THEN ca__table_subcategory "
                               f"WHEN {flag['service-category']} THEN ca__subcategory ELSE ServiceSubcategory END"),
    })
    recorded = [c for c in ADJUSTED if c in stated_columns or not c.startswith("PricingCurrency")]
    subcategory = "t.subcategory" if has_subcategory else "NULL"
    lookups = ",\n      ".join(
        [
            "rn.region_name AS ca__region_name",
            "ri.region_id AS ca__region_id",
            *(f"u_{c}.focus_unit AS ca__unit_{c}" for c in UNIT_COLUMNS),
            "arn.resource_type AS ca__arn_type",
            "pre.resource_type AS ca__prefix_type",
            "CASE WHEN svc.ca__n IS NOT NULL THEN coalesce(t.category, svc.ca__cat) END AS ca__category",
            f"CASE WHEN svc.ca__n IS NULL THEN NULL WHEN t.category IS NOT NULL THEN {subcategory} "
            "ELSE svc.ca__sub END AS ca__subcategory",
            "t.category AS ca__table_category",
            "t.subcategory AS ca__table_subcategory",
        ]
    )
    unit_joins = "\n    ".join(
        f"LEFT JOIN ca_focus_units u_{c} ON u_{c}.unit = s.{quote_ident(c)}" for c in UNIT_COLUMNS
    )
    aws_id_prefix = "regexp_extract(s.ResourceId, '^((?:[a-z]+-)+)[0-9a-zA-Z]+$', 1)"
    flag_list = ",\n      ".join(f"({flags[rule]}) AS {flag[rule]}" for rule in RULES)
    final_list = ",\n      ".join(f"{expr} AS {quote_ident(name)}" for name, expr in final.items()
                                  if name not in (ORIGINALS, ADJUSTMENTS))
    stated_list = ", ".join(f"{quote_ident(c)} AS {quote_ident('ca__o_' + c)}" for c in recorded)
    originals = json_object_from_columns(
        (c, f"CASE WHEN {quote_ident(c)} IS DISTINCT FROM {quote_ident('ca__o_' + c)} THEN {quote_ident('ca__o_' + c)} END")
        for c in recorded
    )
    applied = ", ".join(f"CASE WHEN {flag[rule]} THEN {quote_literal(rule)} END" for rule in RULES)
    kept = ", ".join(quote_ident(n) for n, _ in READER_COLUMNS if n not in (ORIGINALS, ADJUSTMENTS))
    return f"""
WITH ca_s AS (
  SELECT *, {_provider_key('ProviderName')} AS ca__pk FROM ({stated_select}) ca_raw
),
ca_pairs AS (
  SELECT ProviderName, ServiceName, ServiceCategory, ServiceSubcategory, count(*) AS ca__rows
  FROM ca_s WHERE ServiceName IS NOT NULL GROUP BY ALL
),
ca_svc AS (
  -- services filed under more than one (category, subcategory) pair in this delivery
  SELECT ProviderName AS ca__p, ServiceName AS ca__n,
    list(ServiceCategory ORDER BY ca__rows DESC, ServiceCategory, ServiceSubcategory NULLS LAST)[1] AS ca__cat,
    list(ServiceSubcategory ORDER BY ca__rows DESC, ServiceCategory, ServiceSubcategory NULLS LAST)[1] AS ca__sub
  FROM ca_pairs GROUP BY ALL HAVING count(*) > 1
),
ca_l AS (
  SELECT s.*,
      {lookups}
  FROM ca_s s
    LEFT JOIN ca_focus_region_names rn ON rn.provider_key = s.ca__pk AND lower(rn.region_id) = lower(s.RegionId)
    LEFT JOIN ca_focus_region_ids ri ON ri.provider_key = s.ca__pk AND ri.name_key = lower(s.RegionName)
    {unit_joins}
    LEFT JOIN ca_focus_aws_types arn ON arn.kind = 'arn-service' AND s.ResourceId LIKE 'arn:%'
      AND arn.key = split_part(s.ResourceId, ':', 3)
    LEFT JOIN ca_focus_aws_types pre ON pre.kind = 'id-prefix' AND s.ca__pk = 'aws' AND pre.key = {aws_id_prefix}
    LEFT JOIN ca_svc svc ON svc.ca__p IS NOT DISTINCT FROM s.ProviderName AND svc.ca__n = s.ServiceName
    LEFT JOIN ca_focus_services t ON t.provider_key = s.ca__pk AND t.service_name = s.ServiceName
),
ca_d AS (
  SELECT *, {_resource_type_from_id()} AS ca__resource_type FROM ca_l
),
ca_f AS (
  SELECT {final_list},
      {quote_ident(ORIGINALS)} AS ca__originals, {quote_ident(ADJUSTMENTS)} AS ca__adjustments,
      {stated_list},
      {', '.join(flag.values())}
  FROM (SELECT *, {flag_list} FROM ca_d)
),
ca_o AS (
  SELECT *, {originals} AS ca__new_originals,
      nullif(concat_ws(',', ca__adjustments, {applied}), '') AS ca__all_adjustments
  FROM ca_f
)
SELECT {kept},
  CASE WHEN ca__new_originals IS NULL THEN ca__originals WHEN ca__originals IS NULL THEN ca__new_originals
       ELSE json_merge_patch(ca__new_originals, ca__originals) END AS {quote_ident(ORIGINALS)},
  ca__all_adjustments AS {quote_ident(ADJUSTMENTS)}
FROM ca_o
"""
