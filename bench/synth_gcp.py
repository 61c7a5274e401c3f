"""Synthetic Google Cloud detailed billing export (BigQuery rows as Parquet), by DuckDB SQL.

Layout: ``<out>/gcp/bench-billing-export/invoice_month=YYYYMM/part-0000N.parquet``, the nested
columns of ``gcp_billing_export_resource_v1_<account>`` typed as a BigQuery Parquet extract types
them (FLOAT64 -> DOUBLE, NUMERIC -> DECIMAL(38,9), TIMESTAMP -> timestamp with time zone).

One billing account (USD), projects growing with the rows, about 2,700 SKUs over 20 regions:
Compute Engine core/RAM of 18 machine families (and their spot SKUs), GPUs, persistent disks and
snapshots, internet / inter-region / inter-zone data transfer, Cloud NAT, Cloud Storage classes,
Cloud SQL, GKE, Cloud Run, Vertex AI training and prediction, Gemini token SKUs, BigQuery. Labels
on resources (team, env, app, data-class), machine_spec system labels, sustained-use and
committed-use credits, a tax row per project, a rounding error and commitment fees per month.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

import duckdb
from synth_common import Spec, copy_parquet, hexid, next_month, pick, register_catalogue, uniform

EXPORT = "bench-billing-export"
ACCOUNT = "01BE4C-5A1E00-C0FFEE"
REGIONS = [
    ("us-central1", "Iowa", "Americas", "US"), ("us-east1", "South Carolina", "Americas", "US"),
    ("us-east4", "Northern Virginia", "Americas", "US"), ("us-west1", "Oregon", "Americas", "US"),
    ("us-west2", "Los Angeles", "Americas", "US"), ("us-west4", "Las Vegas", "Americas", "US"),
    ("northamerica-northeast1", "Montreal", "Americas", "CA"), ("southamerica-east1", "Sao Paulo", "Americas", "BR"),
    ("europe-west1", "Belgium", "EMEA", "BE"), ("europe-west2", "London", "EMEA", "GB"),
    ("europe-west3", "Frankfurt", "EMEA", "DE"), ("europe-west4", "Netherlands", "EMEA", "NL"),
    ("europe-north1", "Finland", "EMEA", "FI"), ("me-west1", "Tel Aviv", "EMEA", "IL"),
    ("asia-east1", "Taiwan", "APAC", "TW"), ("asia-northeast1", "Tokyo", "APAC", "JP"),
    ("asia-south1", "Mumbai", "APAC", "IN"), ("asia-southeast1", "Singapore", "APAC", "SG"),
    ("australia-southeast1", "Sydney", "APAC", "AU"), ("africa-south1", "Johannesburg", "EMEA", "ZA"),
]
# family -> (core price per hour, machine prefix, fixed machine or None)
FAMILIES = {
    "N1": (0.031611, "n1-standard-", None), "N2": (0.031611, "n2-standard-", None),
    "N2D": (0.027502, "n2d-standard-", None), "E2": (0.021811, "e2-standard-", None),
    "C2": (0.03398, "c2-standard-", None), "C2D": (0.029563, "c2d-standard-", None),
    "C3": (0.03465, "c3-standard-", None), "C3D": (0.030093, "c3d-standard-", None),
    "C4": (0.03465, "c4-standard-", None), "N4": (0.030, "n4-standard-", None),
    "T2D": (0.027502, "t2d-standard-", None), "M1": (0.0348, "m1-megamem-", None),
    "M2": (0.0348, "m2-ultramem-", None), "M3": (0.0368, "m3-megamem-", None),
    "H3": (0.04411, "h3-standard-", None), "A2": (0.031611, "", "a2-highgpu-1g"),
    "A3": (0.029917, "", "a3-highgpu-8g"), "G2": (0.024988, "", "g2-standard-8"),
}
GPUS = [("Nvidia Tesla T4 GPU", 0.35, "1"), ("Nvidia Tesla A100 GPU", 2.933908, "1"), ("Nvidia H100 80GB GPU", 9.797, "8"),
        ("Nvidia L4 GPU", 0.56, "1"), ("Nvidia Tesla V100 GPU", 2.48, "1")]
UNITS = {  # amount model -> (usage unit, pricing unit, usage units per pricing unit)
    "core": ("seconds", "hour", 3600.0), "ram": ("byte-seconds", "gibibyte hour", 3600.0 * 2**30),
    "gpu": ("seconds", "hour", 3600.0), "hours": ("seconds", "hour", 3600.0), "gb": ("bytes", "gibibyte", 2.0**30),
    "gbmo": ("byte-seconds", "gibibyte month", 2.0**30 * 3600 * 24 * 30), "ops": ("requests", "10 thousand requests", 1e4),
    "tokens": ("count", "1000 count", 1000.0),
}
SERVICES = {
    "Compute Engine": "6F81-5844-456A", "Networking": "E505-1604-58F8", "Cloud Storage": "95FF-2EF5-5EA1",
    "Vertex AI": "C7E2-9256-1C43", "BigQuery": "24E6-581D-38E5", "Cloud SQL": "9662-B51E-5089",
    "Kubernetes Engine": "CCD8-9BF1-090E", "Cloud Run": "152E-C115-5142", "Cloud Logging": "5490-F7B7-8DF6",
    "Cloud Pub/Sub": "A1E8-BE35-7EBC", "Cloud Memorystore for Redis": "5AF5-2C11-D467",
}


def _sku(service: str, description: str, model: str, price: float, rkind: str, region: tuple | None,
         zonal: bool = False, machine: str | None = None, prefix: str | None = None, credits: bool = False) -> dict:
    unit, pricing_unit, factor = UNITS[model]
    return {
        "service_id": SERVICES[service], "service_desc": service, "sku_desc": description, "model": model,
        "unit": unit, "pricing_unit": pricing_unit, "factor": factor, "price": round(price, 9), "rkind": rkind,
        "region": region[0] if region else "global", "country": region[3] if region else "US", "zonal": zonal,
        "machine": machine, "prefix": prefix, "credits": credits,
    }


def catalogue() -> list[dict]:
    """About 2,700 SKUs: per region machine families, GPUs, disks, transfer, storage, AI; plus global SKUs."""
    out: list[dict] = []
    for index, region in enumerate(REGIONS):
        rid, place, continent, _ = region
        factor = 1.0 + (index % 4) * 0.07
        for fam, (core, prefix, machine) in FAMILIES.items():
            for spot in (False, True):
                label = f"Spot Preemptible {fam}" if spot else fam
                share = 0.3 if spot else 1.0
                out.append(_sku("Compute Engine", f"{label} Instance Core running in {place}", "core",
                                core * factor * share, "instance", region, True, machine, prefix, not spot))
                out.append(_sku("Compute Engine", f"{label} Instance Ram running in {place}", "ram",
                                core * 0.134 * factor * share, "instance", region, True, machine, prefix, not spot))
        for gpu, price, _count in GPUS:
            out.append(_sku("Compute Engine", f"{gpu} running in {place}", "gpu", price * factor, "instance", region,
                            True, "a2-highgpu-1g" if "A100" in gpu else "a3-highgpu-8g" if "H100" in gpu else None,
                            "g2-standard-" if "L4" in gpu else "n1-standard-"))
        for disk, price in (("Storage PD Capacity", 0.04), ("SSD backed PD Capacity", 0.17),
                            ("Balanced PD Capacity", 0.1), ("Hyperdisk Balanced Capacity", 0.08)):
            out.append(_sku("Compute Engine", f"{disk} in {place}", "gbmo", price * factor, "disk", region, True))
        out.append(_sku("Compute Engine", f"Storage PD Snapshot in {place}", "gbmo", 0.05 * factor, "snapshot", region))
        for dest in ("Americas", "EMEA", "APAC", "China", "Australia"):
            out.append(_sku("Compute Engine", f"Network Internet Data Transfer Out from {continent} to {dest}", "gb",
                            0.12 if dest != "China" else 0.23, "instance", region, True))
        for other_id, other_place, other_continent, _ in REGIONS:
            if other_id != rid:
                out.append(_sku("Compute Engine", f"Network Inter Region Data Transfer Out from {place} to {other_place}",
                                "gb", 0.02 if other_continent == continent else 0.08, "instance", region, True))
        out.append(_sku("Compute Engine", "Network Inter Zone Data Transfer Out", "gb", 0.01, "instance", region, True))
        out.append(_sku("Networking", f"Networking Cloud NAT Data Processing in {place}", "gb", 0.045, "nat", region))
        out.append(_sku("Networking", f"Networking Cloud NAT Gateway Uptime in {place}", "hours", 0.0014, "nat", region))
        out.append(_sku("Networking", f"Network Load Balancing: Forwarding Rule Minimum Service Charge in {place}",
                        "hours", 0.025, "none", region))
        for cls, price in (("Standard", 0.02), ("Nearline", 0.01), ("Coldline", 0.004), ("Archive", 0.0012)):
            out.append(_sku("Cloud Storage", f"{cls} Storage {place}", "gbmo", price * factor, "bucket", region))
        out.append(_sku("Cloud Storage", f"Regional Standard Class A Operations {place}", "ops", 0.05, "bucket", region))
        out.append(_sku("Cloud Storage", f"Regional Standard Class B Operations {place}", "ops", 0.004, "bucket", region))
        for part, model, price in (("vCPU", "core", 0.0413), ("RAM", "ram", 0.007), ("Standard storage", "gbmo", 0.17)):
            out.append(_sku("Cloud SQL", f"Cloud SQL for PostgreSQL: Zonal - {part} in {place}", model, price * factor,
                            "sql", region, True))
        out.append(_sku("Kubernetes Engine", f"Regional Kubernetes Clusters in {place}", "hours", 0.1, "gke", region))
        out.append(_sku("Cloud Run", f"CPU Allocation Time (tier 1) in {place}", "core", 0.000024 * 3600, "none", region))
        out.append(_sku("Vertex AI", f"Vertex AI Training: Nvidia Tesla A100 GPU running in {place}", "gpu", 3.37,
                        "vertex", region))
        out.append(_sku("Vertex AI", f"Vertex AI Prediction: N1 Predefined Instance Core running in {place}", "core",
                        0.0437, "vertex", region))
        out.append(_sku("Cloud Memorystore for Redis", f"Redis Capacity Standard M2 {place}", "hours", 0.054,
                        "none", region))
    for model in ("Gemini 1.5 Pro", "Gemini 1.5 Flash", "Gemini 2.0 Flash", "Gemini 2.5 Pro", "Claude 3.5 Sonnet"):
        for direction, price in (("Input", 0.00125), ("Output", 0.005)):
            out.append(_sku("Vertex AI", f"{model} {direction} Tokens", "tokens", price, "none", None))
    for multi in ("US", "EU", "ASIA"):
        out.append(_sku("Cloud Storage", f"Standard Storage {multi} Multi-region", "gbmo", 0.026, "bucket", None))
        out.append(_sku("Cloud Storage", f"Network Data Transfer GCP Replication within {multi}", "gb", 0.02, "bucket",
                        None))
    out.append(_sku("BigQuery", "Analysis", "gb", 6.25 / 1024, "none", None))
    out.append(_sku("BigQuery", "Active Logical Storage", "gbmo", 0.02, "none", None))
    out.append(_sku("Cloud Logging", "Log Volume", "gb", 0.5, "none", None))
    out.append(_sku("Cloud Pub/Sub", "Message Delivery Basic", "gb", 0.04, "none", None))
    return out


def _labels(seed: int) -> str:
    tagged = f"{uniform('r', seed, 60)} >= 0.2"

    def entry(key: str, value: str) -> str:
        return f"struct_pack(key := '{key}', value := CASE WHEN {tagged} THEN {value} END)"

    entries = [
        entry("team", f"'team-' || CAST(hash(r, {seed}, 61) % 60 AS VARCHAR)"),
        entry("env", f"['prod', 'staging', 'dev', 'test'][CAST(1 + hash(r, {seed}, 62) % 4 AS BIGINT)]"),
        entry("app", f"'app-' || CAST(hash(r, {seed}, 63) % 300 AS VARCHAR)"),
        entry("data-class", f"CASE WHEN rkind IN ('bucket', 'disk', 'snapshot') THEN ['scratch', 'reproducible', "
                            f"'critical', 'archive'][CAST(1 + hash(r, {seed}, 64) % 4 AS BIGINT)] END"),
        entry("dataset", f"CASE WHEN rkind = 'bucket' THEN 'ds-' || CAST(hash(r, {seed}, 65) % 300 AS VARCHAR) END"),
    ]
    return f"list_filter([{', '.join(entries)}], lambda e: e.value IS NOT NULL)"


def _usage_rows(spec: Spec, month: int, start: date, lo: int, hi: int, n_cat: int) -> str:
    seed = spec.seed
    hours = (next_month(start) - start).days * 24
    amount = f"""CASE model
        WHEN 'core' THEN CAST(cores AS DOUBLE)
        WHEN 'ram' THEN cores * 4.0
        WHEN 'gpu' THEN CASE WHEN machine = 'a3-highgpu-8g' THEN 8.0 ELSE 1.0 END
        WHEN 'hours' THEN 1.0
        WHEN 'gb' THEN round(pow({uniform('i', seed, month, 58)}, 3) * 200, 6)
        WHEN 'gbmo' THEN round((10 + hash(r, {seed}, 59) % 4000) / {hours}.0, 9)
        WHEN 'ops' THEN round(pow({uniform('i', seed, month, 58)}, 2) * 50, 4)
        ELSE round(pow({uniform('i', seed, month, 58)}, 2) * 5000, 3) END"""
    return f"""
      SELECT *, {amount} AS pricing_amount, 'regular' AS cost_type, NULL::DOUBLE AS fixed_cost
      FROM (
        SELECT b.*, c.*, CASE WHEN c.machine = 'a2-highgpu-1g' THEN 12 WHEN c.machine = 'a3-highgpu-8g' THEN 208
                              WHEN c.machine = 'g2-standard-8' THEN 8 ELSE b.size END AS cores
        FROM (
          SELECT i, r, hash(r, {seed}, 52) % {spec.accounts()} AS project_n,
                 {pick(hours, 1, 'i', seed, month, 53)} AS hour,
                 [2, 4, 8, 16, 32][CAST(1 + hash(r, {seed}, 54) % 5 AS BIGINT)] AS size,
                 {uniform('i', seed, month, 55)} AS x,
                 {pick(n_cat, 2.2, 'r', seed, 51)} AS cu
          FROM (SELECT i, {pick(spec.resources(), 1.6, 'i', seed, month, 50)} AS r FROM range({lo}, {hi}) t(i))
        ) b JOIN gcp_catalogue c ON c.u = b.cu
      )
    """


def _extra_rows(spec: Spec, month: int, first_row: int) -> str:
    """Per month: a tax row per project, commitment fees, a rounding error."""
    n = spec.accounts()
    seed = spec.seed
    return f"""
      SELECT k + {first_row} AS i, k AS r, k % {n} AS project_n, 0 AS hour, 2 AS size, 0.5 AS x, NULL::BIGINT AS cu,
             c.* EXCLUDE (service_id, service_desc, sku_desc, model, unit, pricing_unit),
             CASE WHEN k < {n} THEN '' ELSE c.service_id END AS service_id,
             CASE WHEN k < {n} THEN 'Invoice' ELSE c.service_desc END AS service_desc,
             CASE WHEN k < {n} THEN 'State sales tax (4.71%)' WHEN k < {n} + 2 THEN
                  'Commitment v1: N2 Cpu in Americas for 1 Year' ELSE 'Rounding error' END AS sku_desc,
             'hours' AS model, NULL AS unit, NULL AS pricing_unit, 0 AS cores, 0.0 AS pricing_amount,
             CASE WHEN k < {n} THEN 'tax' WHEN k < {n} + 2 THEN 'regular' ELSE 'rounding_error' END AS cost_type,
             CASE WHEN k < {n} THEN round(5 + {uniform('k', seed, month, 70)} * 300, 6)
                  WHEN k < {n} + 2 THEN round(1000 + {uniform('k', seed, month, 71)} * 3000, 6)
                  ELSE -0.003 END AS fixed_cost
      FROM range({n + 3}) t(k) JOIN gcp_catalogue c ON c.u = 0
    """


def part_sql(spec: Spec, month: int, start: date, lo: int, hi: int, last: bool, n_cat: int) -> str:
    """The export's nested columns for rows [lo, hi) of one month (and the extras when `last`)."""
    seed = spec.seed
    usage_rows = spec.rows - spec.accounts() - 3
    rows = _usage_rows(spec, month, start, lo, min(hi, usage_rows), n_cat)
    if last:
        rows = f"SELECT * FROM ({rows}) UNION ALL BY NAME SELECT * FROM ({_extra_rows(spec, month, usage_rows)})"
    zone = "CASE WHEN zonal THEN region || '-' || ['a', 'b', 'c'][CAST(1 + hash(r, 57) % 3 AS BIGINT)] END"
    project = "'bench-project-' || CAST(project_n AS VARCHAR)"
    global_name = f"""CASE rkind
        WHEN 'instance' THEN '//compute.googleapis.com/projects/' || {project} || '/zones/' || zone || '/instances/vm-' || CAST(r AS VARCHAR)
        WHEN 'disk' THEN '//compute.googleapis.com/projects/' || {project} || '/zones/' || zone || '/disks/disk-' || CAST(r AS VARCHAR)
        WHEN 'snapshot' THEN '//compute.googleapis.com/projects/' || {project} || '/global/snapshots/snap-' || CAST(r AS VARCHAR)
        WHEN 'bucket' THEN '//storage.googleapis.com/projects/_/buckets/bench-bucket-' || CAST(r AS VARCHAR)
        WHEN 'nat' THEN '//compute.googleapis.com/projects/' || {project} || '/regions/' || region || '/routers/nat-' || CAST(r AS VARCHAR)
        WHEN 'sql' THEN '//cloudsql.googleapis.com/projects/' || {project} || '/instances/sql-' || CAST(r AS VARCHAR)
        WHEN 'vertex' THEN '//aiplatform.googleapis.com/projects/' || {project} || '/locations/' || region || '/endpoints/ep-' || CAST(r AS VARCHAR)
        WHEN 'gke' THEN '//container.googleapis.com/projects/' || {project} || '/locations/' || region || '/clusters/gke-' || CAST(r AS VARCHAR)
      END"""
    label_type = "STRUCT(key VARCHAR, value VARCHAR)[]"
    credit_type = "STRUCT(name VARCHAR, amount DOUBLE, full_name VARCHAR, id VARCHAR, type VARCHAR)[]"
    money = "DECIMAL(38,9)"
    return f"""
    WITH s AS (
      SELECT *, {zone} AS zone,
             TIMESTAMPTZ '{start}' + to_hours(CAST(hour AS INTEGER)) AS t0,
             coalesce(fixed_cost, round(pricing_amount * price, 6)) AS cost
      FROM ({rows})
    )
    SELECT
      '{ACCOUNT}' AS billing_account_id,
      struct_pack(id := service_id, description := service_desc) AS service,
      struct_pack(id := CASE WHEN cu IS NULL AND cost_type = 'tax' THEN 'TAX-US-0001' WHEN cu IS NULL THEN ''
                             ELSE sku_id END, description := sku_desc) AS sku,
      CASE WHEN cu IS NULL THEN TIMESTAMPTZ '{start}' ELSE t0 END AS usage_start_time,
      CASE WHEN cu IS NULL THEN TIMESTAMPTZ '{next_month(start)}' ELSE t0 + INTERVAL 1 HOUR END AS usage_end_time,
      struct_pack(id := {project}, number := CAST(400000000000 + project_n AS VARCHAR),
                  name := 'Bench project ' || CAST(project_n AS VARCHAR),
                  labels := [struct_pack(key := 'cost-center', value := 'cc-' || CAST(project_n % 40 AS VARCHAR))],
                  ancestry_numbers := '/123456789012/' || CAST(400000000000 + project_n AS VARCHAR) || '/') AS project,
      CASE WHEN cu IS NULL THEN []::{label_type} ELSE {_labels(seed)} END AS labels,
      CASE WHEN cu IS NOT NULL AND model IN ('core', 'ram', 'gpu') AND rkind = 'instance' THEN [
          struct_pack(key := 'compute.googleapis.com/machine_spec', value := coalesce(machine, prefix || CAST(cores AS VARCHAR))),
          struct_pack(key := 'compute.googleapis.com/cores', value := CAST(cores AS VARCHAR)),
          struct_pack(key := 'compute.googleapis.com/memory', value := CAST(cores * 4096 AS VARCHAR))]
        ELSE []::{label_type} END AS system_labels,
      CASE WHEN cu IS NOT NULL THEN struct_pack(location := coalesce(zone, region), country := country, region := region,
                                                zone := zone) END AS location,
      []::STRUCT(key VARCHAR, value VARCHAR, inherited BOOLEAN, namespace VARCHAR)[] AS tags,
      CASE WHEN cu IS NULL THEN TIMESTAMPTZ '{next_month(start)}' + INTERVAL 2 DAY ELSE t0 + INTERVAL 3 HOUR END AS export_time,
      cost,
      'USD' AS currency,
      1.0 AS currency_conversion_rate,
      struct_pack(amount := pricing_amount * factor, unit := unit, amount_in_pricing_units := pricing_amount,
                  pricing_unit := pricing_unit) AS usage,
      CASE WHEN cu IS NOT NULL AND credits AND x < 0.15 THEN
             [struct_pack(name := 'Sustained Usage Discount', amount := -round(cost * 0.2, 6),
                          full_name := 'Sustained usage discount', id := 'Sustained Usage Discount',
                          type := 'SUSTAINED_USAGE_DISCOUNT')]
           WHEN cu IS NOT NULL AND credits AND x < 0.25 THEN
             [struct_pack(name := 'Committed Usage Discount: CPU', amount := -round(cost * 0.55, 6),
                          full_name := 'Committed use discount: CPU in ' || region,
                          id := 'Committed Usage Discount: CPU', type := 'COMMITTED_USAGE_DISCOUNT')]
           WHEN cu IS NOT NULL AND model = 'tokens' AND x < 0.05 THEN
             [struct_pack(name := 'FreeTrial:bench', amount := -round(cost, 6), full_name := 'Free trial credit',
                          id := 'bench-free-trial', type := 'PROMOTION')]
           ELSE []::{credit_type} END AS credits,
      struct_pack(month := '{start:%Y%m}') AS invoice,
      cost_type,
      NULL::STRUCT(id VARCHAR, description VARCHAR, mode VARCHAR, type VARCHAR) AS adjustment_info,
      CASE WHEN cu IS NULL THEN cost ELSE round(cost * 1.05, 6) END AS cost_at_list,
      'GOOGLE' AS transaction_type,
      'Google LLC' AS seller_name,
      CASE WHEN cu IS NOT NULL THEN struct_pack(effective_price := CAST(price AS {money}), tier_start_amount := CAST(0 AS {money}),
                                                unit := pricing_unit, pricing_unit_quantity := CAST(1 AS {money})) END AS price,
      CASE WHEN cu IS NOT NULL AND rkind <> 'none' THEN struct_pack(
             name := regexp_extract({global_name}, '[^/]+$'), global_name := {global_name}) END AS resource
    FROM s
    """


def generate(con: duckdb.DuckDBPyConnection, spec: Spec, out: Path) -> list[Path]:
    """Write each month's part files under `out`/gcp/<export>/invoice_month=YYYYMM/."""
    extra = spec.accounts() + 3
    if spec.rows < extra + 10 or spec.parts()[-1][1] - spec.parts()[-1][0] < extra:
        raise ValueError(f"Google Cloud needs --rows of at least {extra + 10} and parts of at least {extra} rows")
    n_cat = register_catalogue(con, "gcp_catalogue_raw", catalogue(), spec.seed, "sku_desc")
    con.execute(
        f"""CREATE OR REPLACE TABLE gcp_catalogue AS
            SELECT *, upper(regexp_replace({hexid(12, 'sku_desc', spec.seed)}, '(....)(....)(....)', '\\1-\\2-\\3'))
                   AS sku_id
            FROM gcp_catalogue_raw"""
    )
    written: list[Path] = []
    root = out / "gcp" / EXPORT
    for month, start in enumerate(spec.month_starts()):
        parts = spec.parts()
        for n, (lo, hi) in enumerate(parts):
            path = root / f"invoice_month={start:%Y%m}" / f"part-{n:05d}.parquet"
            sql = part_sql(spec, month, start, lo, hi, n == len(parts) - 1, n_cat)
            written.append(copy_parquet(con, sql, path, spec.row_group_size))
    return written


def data_glob(out: Path) -> str:
    return str(out / "gcp" / EXPORT / "*" / "*.parquet")


def month_inputs(out: Path, start: date) -> tuple[str, list[Path]]:
    folder = out / "gcp" / EXPORT / f"invoice_month={start:%Y%m}"
    return str(folder / "*.parquet"), [folder]


BARE_SCAN = """SELECT project.id AS account, service.description AS service, sku.description AS usage_type,
       count(*) AS n, sum(cost) AS cost
FROM {reader}({files}) GROUP BY ALL"""
