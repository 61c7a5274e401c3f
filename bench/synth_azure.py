"""Synthetic Azure Cost Management export (EA cost details, actual cost), by DuckDB SQL.

Layout, as a scheduled export run writes it to a storage container::

    <out>/azure/<export>/<YYYYMMDD-YYYYMMDD>/<run time>/<run id>/part_<n>_0001.parquet (or .csv.gz)
    <out>/azure/<export>/<YYYYMMDD-YYYYMMDD>/<run time>/<run id>/manifest.json

The 55 EA columns of the 2023+ cost-details schema (CostInBillingCurrency, BillingCurrencyCode,
MeterCategory/SubCategory/Name, ResourceId, Tags as an unbraced JSON body, AdditionalInfo...).
Dates are text (``MM/DD/YYYY``) as the export writes them; amounts are DOUBLE in Parquet.
One EA billing account (USD), subscriptions growing with the rows, about 2,800 meters over 20
regions: VM series incl. NC/ND GPU series and spot, managed disks, snapshots, blob storage tiers
(LRS/GRS), bandwidth (internet, inter-region, inter-zone), NAT gateway, load balancer, Azure
OpenAI tokens, Azure Machine Learning, SQL Database, AKS, Log Analytics, Cosmos DB, Functions.
Reservation-covered VM hours cost 0 (actual cost); a few reservation purchases per month.
"""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import duckdb
from synth_common import (
    Spec,
    copy_csv_gz,
    copy_parquet,
    hexid,
    next_month,
    pick,
    register_catalogue,
    uniform,
    write_json,
)

EXPORT = "bench-actual"
ACCOUNT = "86310099"
REGIONS = [
    ("eastus", "US East"), ("eastus2", "US East 2"), ("westus2", "US West 2"), ("westus3", "US West 3"),
    ("centralus", "US Central"), ("southcentralus", "US South Central"), ("canadacentral", "CA Central"),
    ("brazilsouth", "BR South"), ("westeurope", "EU West"), ("northeurope", "EU North"), ("uksouth", "UK South"),
    ("francecentral", "FR Central"), ("germanywestcentral", "DE West Central"), ("swedencentral", "SE Central"),
    ("uaenorth", "AE North"), ("japaneast", "JA East"), ("koreacentral", "KR Central"),
    ("southeastasia", "AP Southeast"), ("centralindia", "IN Central"), ("australiaeast", "AU East"),
]
# series -> (price per vCPU-hour, sizes as (meter name, vCPUs))
SERIES = {
    "Dv3": (0.048, [("D2 v3", 2), ("D4 v3", 4), ("D8 v3", 8), ("D16 v3", 16)]),
    "Dsv5": (0.048, [("D2s v5", 2), ("D4s v5", 4), ("D8s v5", 8), ("D16s v5", 16), ("D32s v5", 32)]),
    "Ev5": (0.063, [("E2 v5", 2), ("E4 v5", 4), ("E8 v5", 8), ("E16 v5", 16)]),
    "Fsv2": (0.0423, [("F2s v2", 2), ("F4s v2", 4), ("F8s v2", 8), ("F16s v2", 16)]),
    "BS": (0.0208, [("B1ms", 1), ("B2s", 2), ("B2ms", 2), ("B4ms", 4)]),
    "Lsv3": (0.078, [("L8s v3", 8), ("L16s v3", 16)]),
    "Msv2": (0.21, [("M208ms v2", 208)]),
    "NCasT4 v3": (0.131, [("NC4as T4 v3", 4), ("NC16as T4 v3", 16), ("NC64as T4 v3", 64)]),
    "NCads A100 v4": (0.306, [("NC24ads A100 v4", 24), ("NC48ads A100 v4", 48), ("NC96ads A100 v4", 96)]),
    "NDH100v5": (1.02, [("ND96isr H100 v5", 96)]),
    "NVadsA10 v5": (0.151, [("NV6ads A10 v5", 6), ("NV36ads A10 v5", 36)]),
}


def _meter(category: str, sub: str, name: str, unit: str, price: float, model: str, rkind: str,
           region: tuple[str, str] | None, service: str, family: str, info: str | None = None) -> dict:
    place = region[1] if region else "Global"
    return {
        "category": category, "sub": sub, "meter": name, "unit": unit, "price": round(price, 8), "model": model,
        "rkind": rkind, "region": region[0] if region else "global", "meter_region": place,
        "product": f"{category} {sub} - {name} - {place}", "service": service, "family": family, "info": info,
    }


def catalogue() -> list[dict]:
    """About 2,800 meters: per region VM sizes (and spot), storage, bandwidth, networking, AI, databases."""
    out: list[dict] = []
    for index, region in enumerate(REGIONS):
        factor = 1.0 + (index % 5) * 0.05
        for series, (per_cpu, sizes) in SERIES.items():
            for name, vcpus in sizes:
                service_type = "Standard_" + name.replace(" ", "_")
                info = f'{{"ServiceType": "{service_type}", "UsageType": "ComputeHR", "VCPUs": {vcpus}}}'
                for spot in (False, True):
                    out.append(_meter("Virtual Machines", f"{series} Series", name + (" Spot" if spot else ""),
                                      "1 Hour", per_cpu * vcpus * factor * (0.3 if spot else 1.0),
                                      "spot" if spot else "vm", "vm", region, "Microsoft.Compute", "Compute", info))
        for disk, price in (("P10 LRS Disk", 19.71), ("P30 LRS Disk", 135.17), ("E10 LRS Disk", 9.6),
                            ("S10 LRS Disk", 5.89), ("P40 LRS Disk", 259.05), ("E30 LRS Disk", 76.8)):
            tier = {"P": "Premium SSD", "E": "Standard SSD", "S": "Standard HDD"}[disk[0]]
            out.append(_meter("Storage", f"{tier} Managed Disks", disk, "1/Month", price * factor / 730,
                              "hours", "disk", region, "Microsoft.Compute", "Storage"))
        out.append(_meter("Storage", "Standard HDD Managed Disks", "LRS Snapshots", "1 GB/Month", 0.05,
                          "gbmo", "snapshot", region, "Microsoft.Compute", "Storage"))
        for name, price in (("Hot LRS Data Stored", 0.0184), ("Hot GRS Data Stored", 0.0368),
                            ("Cool LRS Data Stored", 0.01), ("Cool RA-GRS Data Stored", 0.025),
                            ("Archive LRS Data Stored", 0.002), ("Hot ZRS Data Stored", 0.023)):
            out.append(_meter("Storage", "Tiered Block Blob", name, "1 GB/Month", price * factor, "gbmo",
                              "storage", region, "Microsoft.Storage", "Storage"))
        for name, price in (("Hot LRS Write Operations", 0.065), ("Hot Read Operations", 0.005),
                            ("Hot GRS Data Write", 0.022)):
            out.append(_meter("Storage", "Tiered Block Blob", name, "10K", price, "ops", "storage", region,
                              "Microsoft.Storage", "Storage"))
        for sub, name, price in (("Rtn Preference: MGN", "Standard Data Transfer Out", 0.087),
                                 ("Inter-Region", "Intra Continent Data Transfer Out", 0.02),
                                 ("Inter-Region", "Inter Continent Data Transfer Out", 0.05),
                                 ("Inter Availability Zone", "Standard Inter Availability Zone Data Transfer Out", 0.01),
                                 ("Rtn Preference: MGN", "Standard Data Transfer In", 0.0)):
            out.append(_meter("Bandwidth", sub, name, "1 GB", price, "gb", "vm", region, "Microsoft.Compute",
                              "Networking"))
        out.append(_meter("NAT Gateway", "NAT Gateway", "Standard Gateway", "1 Hour", 0.045, "hours", "nat",
                          region, "Microsoft.Network", "Networking"))
        out.append(_meter("NAT Gateway", "NAT Gateway", "Standard Data Processed", "1 GB", 0.045, "gb", "nat",
                          region, "Microsoft.Network", "Networking"))
        out.append(_meter("Load Balancer", "Load Balancer", "Standard Included LB Rules and Outbound Rules",
                          "1 Hour", 0.025, "hours", "lb", region, "Microsoft.Network", "Networking"))
        out.append(_meter("Load Balancer", "Load Balancer", "Standard Data Processed", "1 GB", 0.005, "gb", "lb",
                          region, "Microsoft.Network", "Networking"))
        for model, price in (("gpt-4o-0513-Inp-glbl", 0.0025), ("gpt-4o-0513-Outp-glbl", 0.01),
                             ("gpt-4o-mini-0718-Inp-glbl", 0.00015), ("gpt-4o-mini-0718-Outp-glbl", 0.0006),
                             ("text-embedding-3-large-Inp", 0.00013)):
            out.append(_meter("Cognitive Services", "Azure OpenAI", f"{model} Tokens", "1K", price, "tokens",
                              "openai", region, "Microsoft.CognitiveServices", "AI + Machine Learning"))
        out.append(_meter("Azure Machine Learning", "NCadsA100v4 Series", "NC24ads A100 v4", "1 Hour", 3.67, "vm",
                          "aml", region, "Microsoft.MachineLearningServices", "AI + Machine Learning"))
        for name, price in (("vCore", 0.145), ("Data Stored", 0.115 / 730), ("Backup Storage", 0.1 / 730)):
            out.append(_meter("SQL Database", "General Purpose - Compute Gen5", name, "1 Hour", price * factor,
                              "hours", "sql", region, "Microsoft.Sql", "Databases"))
        out.append(_meter("Azure Kubernetes Service", "Standard", "Standard Uptime SLA", "1 Hour", 0.1, "hours",
                          "aks", region, "Microsoft.ContainerService", "Compute"))
        out.append(_meter("Log Analytics", "Log Analytics", "Pay-as-you-go Data Ingestion", "1 GB", 2.3, "gb",
                          "law", region, "Microsoft.OperationalInsights", "Management and Governance"))
        out.append(_meter("Azure Cosmos DB", "Azure Cosmos DB", "100 RU/s", "1 Hour", 0.008, "hours", "cosmos",
                          region, "Microsoft.DocumentDB", "Databases"))
        out.append(_meter("Functions", "Functions", "Standard Execution Time", "10 GB Seconds", 0.00016, "ops",
                          "func", region, "Microsoft.Web", "Compute"))
    return out


def _guid(*parts: object) -> str:
    """SQL: a GUID-shaped id from hashes."""
    a, b = hexid(16, *parts, 80), hexid(16, *parts, 81)
    return f"({a}[1:8] || '-' || {a}[9:12] || '-4' || {a}[13:15] || '-8' || {b}[1:3] || '-' || {b}[4:15])"


def _resource_id(sub: str, group: str) -> str:
    base = f"'/subscriptions/' || {sub} || '/resourceGroups/' || {group} || '/providers/'"
    name = "CAST(r AS VARCHAR)"
    kinds = {
        "vm": f"'Microsoft.Compute/virtualMachines/vm-' || {name}",
        "disk": f"'Microsoft.Compute/disks/disk-' || {name}",
        "snapshot": f"'Microsoft.Compute/snapshots/snap-' || {name}",
        "storage": f"'Microsoft.Storage/storageAccounts/stbench' || {name}",
        "nat": f"'Microsoft.Network/natGateways/nat-' || {name}",
        "lb": f"'Microsoft.Network/loadBalancers/lb-' || {name}",
        "openai": f"'Microsoft.CognitiveServices/accounts/oai-' || {name}",
        "aml": f"'Microsoft.MachineLearningServices/workspaces/aml-' || {name}",
        "sql": f"'Microsoft.Sql/servers/sql-' || {name} || '/databases/db-' || {name}",
        "aks": f"'Microsoft.ContainerService/managedClusters/aks-' || {name}",
        "law": f"'Microsoft.OperationalInsights/workspaces/law-' || {name}",
        "cosmos": f"'Microsoft.DocumentDB/databaseAccounts/cosmos-' || {name}",
        "func": f"'Microsoft.Web/sites/func-' || {name}",
    }
    whens = " ".join(f"WHEN '{k}' THEN {v}" for k, v in kinds.items())
    return f"lower({base} || CASE rkind {whens} END)"


def _tags(seed: int) -> str:
    """EA writes tags as the body of a JSON object, without braces."""
    pairs = [
        ("team", f"'team-' || CAST(hash(r, {seed}, 91) % 60 AS VARCHAR)"),
        ("env", f"['prod', 'staging', 'dev', 'test'][CAST(1 + hash(r, {seed}, 92) % 4 AS BIGINT)]"),
        ("app", f"'app-' || CAST(hash(r, {seed}, 93) % 300 AS VARCHAR)"),
    ]
    body = " || ',' || ".join(f"'\"{k}\": \"' || {v} || '\"'" for k, v in pairs)
    storage = (f"CASE WHEN rkind IN ('storage', 'disk', 'snapshot') THEN ',\"data-class\": \"' || ['scratch', "
               f"'reproducible', 'critical', 'archive'][CAST(1 + hash(r, {seed}, 94) % 4 AS BIGINT)] || '\"' ELSE '' END")
    return f"CASE WHEN {uniform('r', seed, 90)} >= 0.2 THEN {body} || {storage} END"


def part_sql(spec: Spec, month: int, start: date, lo: int, hi: int, last: bool, n_cat: int) -> str:
    seed = spec.seed
    days = (next_month(start) - start).days
    purchases = 3
    usage_rows = spec.rows - purchases
    amount = f"""CASE model
        WHEN 'vm' THEN CASE WHEN {uniform('i', seed, month, 86)} < 0.1 THEN round({uniform('i', seed, month, 87)} * 24, 6) ELSE 24.0 END
        WHEN 'spot' THEN round(1 + {uniform('i', seed, month, 87)} * 23, 6)
        WHEN 'hours' THEN 24.0
        WHEN 'gbmo' THEN round((10 + hash(r, {seed}, 88) % 4000) / {days}.0, 6)
        WHEN 'gb' THEN round(pow({uniform('i', seed, month, 87)}, 3) * 500, 6)
        WHEN 'ops' THEN round(pow({uniform('i', seed, month, 87)}, 2) * 100, 4)
        ELSE round(pow({uniform('i', seed, month, 87)}, 2) * 20000, 3) END"""
    rows = f"""
      SELECT b.*, c.*, {amount} AS quantity, 'Usage' AS charge_type
      FROM (
        SELECT i, r, hash(r, {seed}, 82) % {spec.accounts()} AS sub_n, {pick(days, 1, 'i', seed, month, 83)} AS day,
               {uniform('i', seed, month, 84)} AS x, {pick(n_cat, 2.2, 'r', seed, 85)} AS cu
        FROM (SELECT i, {pick(spec.resources(), 1.6, 'i', seed, month, 89)} AS r
              FROM range({lo}, {min(hi, usage_rows)}) t(i))
      ) b JOIN azure_catalogue c ON c.u = b.cu
    """
    if last:
        rows += f"""
      UNION ALL BY NAME
      SELECT k + {usage_rows} AS i, k AS r, k AS sub_n, 0 AS day, 0.5 AS x, c.u AS cu, c.* EXCLUDE (model),
             'purchase' AS model, 1.0 AS quantity, 'Purchase' AS charge_type
      FROM range({purchases}) t(k)
      JOIN azure_catalogue c ON c.u = (SELECT min(u) FROM azure_catalogue WHERE model = 'vm')
    """
    sub = "(lpad(CAST(sub_n AS VARCHAR), 8, '0') || '-0000-4000-8000-' || lpad(CAST(sub_n AS VARCHAR), 12, '0'))"
    group = "('rg-' || CAST(hash(r, 95) % 50 AS VARCHAR))"
    covered = "model = 'vm' AND x < 0.1"
    return f"""
    WITH s AS (
      SELECT *, {sub} AS sub_id, {group} AS rg,
             CASE WHEN model = 'purchase' THEN round(2000 + {uniform('i', seed, month, 96)} * 8000, 2)
                  WHEN {covered} THEN 0.0 ELSE round(quantity * price, 6) END AS cost
      FROM ({rows})
    )
    SELECT
      'Section ' || CAST(sub_n % 5 AS VARCHAR) AS InvoiceSectionName,
      'Dept ' || CAST(sub_n % 12 AS VARCHAR) AS AccountName,
      'owner' || CAST(sub_n % 12 AS VARCHAR) || '@example.com' AS AccountOwnerId,
      sub_id AS SubscriptionId,
      'bench-sub-' || CAST(sub_n AS VARCHAR) AS SubscriptionName,
      CASE WHEN model <> 'purchase' THEN rg END AS ResourceGroup,
      CASE WHEN model <> 'purchase' THEN region END AS ResourceLocation,
      strftime(DATE '{start}' + CAST(day AS INTEGER), '%m/%d/%Y') AS Date,
      CASE WHEN model = 'purchase' THEN 'Reserved VM Instance, Standard_D4s_v5, US East, 1 Year' ELSE product END AS ProductName,
      category AS MeterCategory,
      sub AS MeterSubCategory,
      {_guid('meter', seed)} AS MeterId,
      meter AS MeterName,
      meter_region AS MeterRegion,
      unit AS UnitOfMeasure,
      quantity AS Quantity,
      CASE WHEN {covered} THEN 0.0 ELSE price END AS EffectivePrice,
      cost AS CostInBillingCurrency,
      'CC-' || CAST(sub_n % 40 AS VARCHAR) AS CostCenter,
      CASE WHEN model <> 'purchase' THEN service END AS ConsumedService,
      CASE WHEN model <> 'purchase' THEN {_resource_id('sub_id', 'rg')} END AS ResourceId,
      CASE WHEN model <> 'purchase' THEN {_tags(seed)} END AS Tags,
      'MS-AZR-0017P' AS OfferId,
      CASE WHEN model IN ('vm', 'spot') THEN info END AS AdditionalInfo,
      NULL::VARCHAR AS ServiceInfo1,
      NULL::VARCHAR AS ServiceInfo2,
      CASE WHEN model <> 'purchase' THEN regexp_extract({_resource_id('sub_id', 'rg')}, '[^/]+$') END AS ResourceName,
      CASE WHEN {covered} OR model = 'purchase' THEN {_guid("'reservation'", seed, 'sub_n % 3')} END AS ReservationId,
      CASE WHEN {covered} OR model = 'purchase' THEN 'RI_D4sv5_' || CAST(sub_n % 3 AS VARCHAR) END AS ReservationName,
      price AS UnitPrice,
      CASE WHEN {covered} OR model = 'purchase' THEN {_guid("'order'", seed, 'sub_n % 3')} END AS ProductOrderId,
      CASE WHEN {covered} OR model = 'purchase' THEN 'Reserved VM Instance, 1 Year' END AS ProductOrderName,
      CASE WHEN {covered} OR model = 'purchase' THEN '12' END AS Term,
      'Azure' AS PublisherType,
      'Microsoft' AS PublisherName,
      charge_type AS ChargeType,
      CASE WHEN model = 'purchase' THEN 'Recurring' ELSE 'UsageBased' END AS Frequency,
      CASE WHEN model = 'purchase' OR {covered} THEN 'Reservation' WHEN model = 'spot' THEN 'Spot' ELSE 'OnDemand' END AS PricingModel,
      CASE WHEN rkind IN ('vm', 'disk') AND model <> 'purchase' THEN CAST(1 + hash(r, 97) % 3 AS VARCHAR) END AS AvailabilityZone,
      '{ACCOUNT}' AS BillingAccountId,
      'Bench EA' AS BillingAccountName,
      'USD' AS BillingCurrencyCode,
      '{start:%m/%d/%Y}' AS BillingPeriodStartDate,
      '{next_month(start) - timedelta(days=1):%m/%d/%Y}' AS BillingPeriodEndDate,
      '{ACCOUNT}' AS BillingProfileId,
      'Bench EA' AS BillingProfileName,
      CAST(1000 + sub_n % 5 AS VARCHAR) AS InvoiceSectionId,
      'True' AS IsAzureCreditEligible,
      'AAA-' || lpad(CAST(hash(meter, 98) % 100000 AS VARCHAR), 5, '0') AS PartNumber,
      price AS PayGPrice,
      NULL::VARCHAR AS PlanName,
      family AS ServiceFamily,
      NULL::VARCHAR AS CostAllocationRuleName,
      CASE WHEN {covered} OR model = 'purchase' THEN {_guid("'reservation'", seed, 'sub_n % 3')} END AS benefitId,
      CASE WHEN {covered} OR model = 'purchase' THEN 'RI_D4sv5_' || CAST(sub_n % 3 AS VARCHAR) END AS benefitName
    FROM s
    """


def generate(con: duckdb.DuckDBPyConnection, spec: Spec, out: Path, file_format: str = "parquet") -> list[Path]:
    """Write one export run per month (parts + manifest.json) under `out`/azure/<export>/."""
    if spec.rows < 20 or spec.parts()[-1][1] - spec.parts()[-1][0] < 3:
        raise ValueError("Azure needs --rows of at least 20 and parts of at least 3 rows")
    n_cat = register_catalogue(con, "azure_catalogue", catalogue(), spec.seed, "product")
    suffix = "parquet" if file_format == "parquet" else "csv.gz"
    written: list[Path] = []
    for month, start in enumerate(spec.month_starts()):
        last_day = next_month(start) - timedelta(days=1)
        run_id = f"{start:%Y%m}0000-0000-4000-8000-{spec.seed:012d}"
        run_time = f"{next_month(start):%Y%m%d}T050000"
        folder = Path(EXPORT) / f"{start:%Y%m%d}-{last_day:%Y%m%d}" / run_time / run_id
        parts = spec.parts()
        blobs = []
        for n, (lo, hi) in enumerate(parts):
            path = out / "azure" / folder / f"part_{n}_0001.{suffix}"
            sql = part_sql(spec, month, start, lo, hi, n == len(parts) - 1, n_cat)
            if file_format == "parquet":
                copy_parquet(con, sql, path, spec.row_group_size)
            else:
                copy_csv_gz(con, sql, path)
            written.append(path)
            blobs.append({"blobName": f"costexports/{folder.as_posix()}/{path.name}", "byteCount": path.stat().st_size,
                          "dataRowCount": hi - lo})
        manifest = {
            "manifestVersion": "2024-04-01", "byteCount": sum(b["byteCount"] for b in blobs),
            "blobCount": len(blobs), "dataRowCount": spec.rows,
            "exportConfig": {
                "exportName": EXPORT,
                "resourceId": f"/providers/Microsoft.Billing/billingAccounts/{ACCOUNT}/providers/"
                              f"Microsoft.CostManagement/exports/{EXPORT}",
                "dataVersion": "2021-10-01", "apiVersion": "2023-07-01-preview", "type": "ActualCost",
                "timeFrame": "TheLastBillingMonth", "granularity": "Daily",
            },
            "deliveryConfig": {
                "partitionData": True, "dataOverwriteBehavior": "OverwritePreviousReport",
                "fileFormat": "Parquet" if file_format == "parquet" else "Csv",
                "compressionMode": "snappy" if file_format == "parquet" else "gzip",
                "containerUri": "/subscriptions/00000000-0000-4000-8000-000000000000/resourceGroups/rg-billing/"
                                "providers/Microsoft.Storage/storageAccounts/stbenchexports",
                "rootFolderPath": "costexports",
            },
            "runInfo": {
                "executionType": "Scheduled", "submittedTime": f"{next_month(start)}T05:00:00.0000000Z",
                "runId": run_id, "startDate": f"{start}T00:00:00", "endDate": f"{last_day}T00:00:00",
            },
            "blobs": blobs,
        }
        written.append(write_json(out / "azure" / folder / "manifest.json", manifest))
    return written


def data_glob(out: Path) -> str:
    return str(out / "azure" / EXPORT / "*" / "*" / "*" / "part_*")


def month_inputs(out: Path, start: date) -> tuple[str, list[Path]]:
    folder = out / "azure" / EXPORT / f"{start:%Y%m%d}-{next_month(start) - timedelta(days=1):%Y%m%d}"
    return str(folder / "*" / "*" / "part_*"), [folder]


BARE_SCAN = """SELECT SubscriptionId AS account, MeterCategory AS service, MeterName AS usage_type,
       count(*) AS n, sum(CostInBillingCurrency) AS cost
FROM {reader}({files}) GROUP BY ALL"""
