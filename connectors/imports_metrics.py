"""Import utilisation metrics from files into ``resource_metrics`` (until metric connectors exist).

Format: long, one sample per row, CSV (with a header) or Parquet::

    resource_id,metric,timestamp,value
    i-0a1b2c3d4e5f00001,cpu_utilization,2024-02-01T00:00:00Z,12.5

``resource_id`` is the id the bill uses (an EC2 instance id or ARN, an Azure resource id, a
Google Cloud instance full name); ids are matched case-insensitively, and an id matches a
billing id that ends with ``/id`` or ``:id``. ``metric`` is one of `METRICS`; a few common
source names are accepted as aliases (`ALIASES`). Percent metrics are 0-100; a value outside
that range is an error. ``timestamp`` is ISO 8601 (UTC unless it has an offset).

Importing is idempotent: a sample already stored for the same (resource, metric, timestamp) is
replaced. When one file repeats a sample, the highest value is kept, so that a duplicate can
only make a resource look busier, never idler.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

import duckdb

from costaudit.errors import InputError

from .base import FILE_COLUMN, Cols
from .files import SourceFile, describe, expand_paths, raw_relation_sql, sniff
from .sql import install_macros, quote_ident, quote_literal

PERCENT_METRICS = ("cpu_utilization", "memory_utilization", "gpu_utilization", "gpu_memory_utilization")
BYTE_METRICS = ("network_in_bytes", "network_out_bytes")
METRICS = PERCENT_METRICS + BYTE_METRICS
# Source names read as ours. Only names with the same meaning and unit: Google Cloud Monitoring's
# cpu/utilization is a 0-1 fraction and nvidia-smi's utilization.memory is memory *bandwidth*,
# so neither is an alias.
ALIASES = {
    "cpuutilization": "cpu_utilization",        # CloudWatch AWS/EC2
    "percentage cpu": "cpu_utilization",        # Azure Monitor
    "cpu_utilisation": "cpu_utilization",
    "mem_used_percent": "memory_utilization",   # CloudWatch agent
    "memory_utilisation": "memory_utilization",
    "nvidia_smi_utilization_gpu": "gpu_utilization",  # CloudWatch agent nvidia_gpu
    "dcgm_fi_dev_gpu_util": "gpu_utilization",  # NVIDIA DCGM exporter
    "gpu_utilisation": "gpu_utilization",
    "networkin": "network_in_bytes",            # CloudWatch AWS/EC2
    "networkout": "network_out_bytes",
    "network in total": "network_in_bytes",     # Azure Monitor
    "network out total": "network_out_bytes",
}
REQUIRED = ("resource_id", "metric", "timestamp", "value")


@dataclass
class MetricsImport:
    """What an import stored: samples, resources and the time covered per metric."""

    files: list[str]
    samples: int
    resources: int
    by_metric: dict[str, tuple[int, datetime, datetime]] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


def _metric_expr(cols: Cols) -> str:
    raw = f"lower(trim({cols.str('metric')}))"
    cases = " ".join(f"WHEN {quote_literal(alias)} THEN {quote_literal(name)}" for alias, name in ALIASES.items())
    return f"CASE {raw} {cases} ELSE {raw} END"


def _staged_sql(cols: Cols, relation: str) -> str:
    value = cols.ref("value")
    value_expr = f"TRY_CAST(trim({value}) AS DOUBLE)" if cols.is_text(cols.name("value") or "") else f"TRY_CAST({value} AS DOUBLE)"
    return f"""
        SELECT {cols.str('resource_id')} AS resource_id,
               {_metric_expr(cols)} AS metric,
               {cols.ts('timestamp')} AS sampled_at,
               {value_expr} AS value,
               CAST({cols.str('timestamp')} AS VARCHAR) AS timestamp_text,
               CAST({cols.str('value')} AS VARCHAR) AS value_text,
               {quote_ident(FILE_COLUMN)} AS source_file,
               row_number() OVER (PARTITION BY {quote_ident(FILE_COLUMN)}) AS source_row
        FROM {relation}
    """


def _shown(text: str | None) -> str:
    return "an empty value" if text is None else repr(text)


_CHECKS = [
    ("resource_id", "resource_id IS NULL", lambda r: "resource_id is empty; expected the resource id the bill uses"),
    (
        "metric",
        f"metric IS NULL OR metric NOT IN ({', '.join(quote_literal(m) for m in METRICS)})",
        lambda r: f"metric {r['metric']!r} is not one of {', '.join(METRICS)}",
    ),
    ("timestamp", "sampled_at IS NULL", lambda r: f"{_shown(r['timestamp_text'])} is not a timestamp (expected ISO 8601)"),
    ("value", "value IS NULL OR isnan(value) OR isinf(value)", lambda r: f"{_shown(r['value_text'])} is not a number"),
    (
        "value",
        f"metric IN ({', '.join(quote_literal(m) for m in PERCENT_METRICS)}) AND (value < 0 OR value > 100)",
        lambda r: f"{r['metric']} {r['value']} is outside 0-100 (percent metrics are percentages)",
    ),
    ("value", f"metric IN ({', '.join(quote_literal(m) for m in BYTE_METRICS)}) AND value < 0",
     lambda r: f"{r['metric']} {r['value']} is negative"),
]


def _validate(con: duckdb.DuckDBPyConnection) -> None:
    for column, condition, message in _CHECKS:
        cursor = con.execute(
            f"SELECT *, count(*) OVER () AS bad_rows FROM metrics_staged WHERE {condition} "
            "ORDER BY source_file, source_row LIMIT 1"
        )
        names = [d[0] for d in cursor.description]
        found = cursor.fetchall()
        if found:
            row = dict(zip(names, found[0], strict=True))
            more = f" ({row['bad_rows']} such rows)" if row["bad_rows"] > 1 else ""
            raise InputError(row["source_file"], message(row) + more, row=int(row["source_row"]), column=column)


def _group(files: list[SourceFile]) -> list[list[SourceFile]]:
    groups: dict[tuple[str, str], list[SourceFile]] = {}
    for file in files:
        if file.kind not in ("csv", "parquet"):
            raise InputError(str(file.path), f"{file.kind} is not a metrics file; expected CSV (with a header) or Parquet")
        groups.setdefault(file.group_key, []).append(file)
    return list(groups.values())


def import_metrics(con: duckdb.DuckDBPyConnection, paths: list[str]) -> MetricsImport:
    """Validate and store utilisation samples from CSV/Parquet files. All or nothing."""
    from costaudit.rules.schema import drop_primary_key, ensure_rules_schema

    install_macros(con)
    ensure_rules_schema(con)
    files = [sniff(p, expected="utilisation metrics") for p in expand_paths(paths)]
    if not files:
        raise InputError(", ".join(paths), "no metrics file found")
    parts = []
    for group in _group(files):
        for file in group:  # files are read together, so check each one's own header first
            own = describe(con, [file])
            for name in REQUIRED:
                if not own.has(name):
                    raise InputError(
                        own.source,
                        f"missing required column {name!r} (a metrics file has columns {', '.join(REQUIRED)}; "
                        f"found {', '.join(list(own.types)[:8])})",
                        column=name,
                    )
        parts.append(_staged_sql(describe(con, group), raw_relation_sql(group)))
    con.execute("CREATE OR REPLACE TEMP TABLE metrics_staged AS " + " UNION ALL ".join(parts))
    try:
        _validate(con)
        now = datetime.now(UTC)
        con.execute("BEGIN TRANSACTION")
        try:
            drop_primary_key(con, "resource_metrics")
            # A sample imported again replaces the stored one; within the files, the largest value
            # of a (resource, metric, time) wins.
            con.execute(
                """
                DELETE FROM resource_metrics r USING (SELECT DISTINCT resource_id, metric, sampled_at FROM metrics_staged) s
                WHERE r.resource_id = s.resource_id AND r.metric = s.metric AND r.sampled_at = s.sampled_at
                """
            )
            con.execute(
                """
                INSERT INTO resource_metrics
                SELECT resource_id, metric, sampled_at, max(value), any_value(source_file), $now
                FROM metrics_staged GROUP BY resource_id, metric, sampled_at
                """,
                {"now": now},
            )
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
        report = MetricsImport(
            files=[str(f.path) for f in files],
            samples=con.execute("SELECT count(*) FROM metrics_staged").fetchall()[0][0],
            resources=con.execute("SELECT count(DISTINCT resource_id) FROM metrics_staged").fetchall()[0][0],
        )
        for metric, count, first, last in con.execute(
            "SELECT metric, count(*), min(sampled_at), max(sampled_at) FROM metrics_staged GROUP BY 1 ORDER BY 1"
        ).fetchall():
            report.by_metric[metric] = (count, first, last)
        # 0-1 fractions imported as percent would make every resource look idle: say so.
        for resource_id, metric in con.execute(
            f"""SELECT resource_id, metric FROM metrics_staged
                WHERE metric IN ({', '.join(quote_literal(m) for m in PERCENT_METRICS)})
                GROUP BY 1, 2 HAVING max(value) <= 1 AND count(*) >= 24 ORDER BY 1, 2"""
        ).fetchall():
            report.warnings.append(
                f"{metric} of {resource_id} never exceeds 1: if the source reports fractions (0-1), "
                "multiply by 100 before importing"
            )
        return report
    finally:
        con.execute("DROP TABLE IF EXISTS metrics_staged")
