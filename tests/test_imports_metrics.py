"""`costaudit import metrics`: long-format utilisation samples from CSV or Parquet, validated and
stored idempotently; stored values are checked against an independent read of the files."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest
from click.testing import CliRunner

from costaudit.audit_cmd import import_group
from costaudit.connectors.imports_metrics import import_metrics
from costaudit.errors import InputError


def write(path: Path, text: str) -> Path:
    path.write_text(text.lstrip(), encoding="utf-8")
    return path


def test_csv_with_source_metric_names_is_stored_under_ours(store, tmp_path):
    path = write(
        tmp_path / "cw.csv",
        """
Resource_ID,Metric,Timestamp,Value,unit
i-1,CPUUtilization,2024-02-01T00:00:00Z,12.5,Percent
i-1,cpuutilization,2024-02-01T01:00:00+01:00,99,Percent
i-1,mem_used_percent,2024-02-01 00:00:00,40,Percent
i-1,NetworkOut,2024-02-01T00:00:00Z,1048576,Bytes
/subscriptions/S/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/vm-1,Percentage CPU,2024-02-01T00:00:00Z,3.25,Percent
gpu-1,DCGM_FI_DEV_GPU_UTIL,2024-02-01T00:00:00Z,0,Percent
""",
    )
    report = import_metrics(store, [str(path)])
    assert report.samples == 6 and report.resources == 3
    stored = store.execute(
        "SELECT resource_id, metric, strftime(sampled_at, '%Y-%m-%dT%H:%M'), value FROM resource_metrics ORDER BY ALL"
    ).fetchall()
    assert stored == [
        ("/subscriptions/S/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/vm-1", "cpu_utilization",
         "2024-02-01T00:00", 3.25),
        ("gpu-1", "gpu_utilization", "2024-02-01T00:00", 0.0),
        # 01:00+01:00 is midnight UTC: the same sample as the first row; the higher value is kept
        ("i-1", "cpu_utilization", "2024-02-01T00:00", 99.0),
        ("i-1", "memory_utilization", "2024-02-01T00:00", 40.0),
        ("i-1", "network_out_bytes", "2024-02-01T00:00", 1048576.0),
    ]


def test_parquet_import_matches_an_independent_read_and_is_idempotent(store, tmp_path):
    path = tmp_path / "gpu.parquet"
    duckdb.execute(
        f"""COPY (SELECT 'i-' || (i % 3) AS resource_id,
                         CASE WHEN i % 2 = 0 THEN 'gpu_utilization' ELSE 'gpu_memory_utilization' END AS metric,
                         TIMESTAMP '2024-02-01' + to_hours(i) AS timestamp, (i % 97)::DOUBLE AS value
                  FROM range(500) t(i)) TO '{path}' (FORMAT parquet)"""
    )
    first = import_metrics(store, [str(path)])
    again = import_metrics(store, [str(path)])
    assert first.samples == again.samples == 500
    expected = duckdb.execute(f"SELECT metric, count(*), sum(value) FROM read_parquet('{path}') GROUP BY 1 ORDER BY 1").fetchall()
    stored = store.execute("SELECT metric, count(*), sum(value) FROM resource_metrics GROUP BY 1 ORDER BY 1").fetchall()
    assert stored == expected
    # a corrected delivery replaces the samples it repeats
    write(tmp_path / "fix.csv", "resource_id,metric,timestamp,value\ni-0,gpu_utilization,2024-02-01T00:00:00Z,55\n")
    import_metrics(store, [str(tmp_path / "fix.csv")])
    assert store.execute(
        "SELECT value FROM resource_metrics WHERE resource_id = 'i-0' AND sampled_at = TIMESTAMPTZ '2024-02-01 00:00:00+00'"
    ).fetchall() == [(55.0,)]
    assert store.execute("SELECT count(*) FROM resource_metrics").fetchall() == [(500,)]


@pytest.mark.parametrize(
    "body, column, row, message",
    [
        ("resource_id,metric,value\ni-1,cpu_utilization,5\n", "timestamp", None, "missing required column 'timestamp'"),
        ("resource_id,metric,timestamp,value\ni-1,cpu_utilization,2024-02-01,5\ni-1,disk_io,2024-02-01,5\n",
         "metric", 2, "metric 'disk_io' is not one of cpu_utilization"),
        ("resource_id,metric,timestamp,value\ni-1,cpu_utilization,yesterday,5\n", "timestamp", 1,
         "'yesterday' is not a timestamp"),
        ("resource_id,metric,timestamp,value\ni-1,cpu_utilization,2024-02-01,high\n", "value", 1, "'high' is not a number"),
        ("resource_id,metric,timestamp,value\ni-1,cpu_utilization,2024-02-01,130\ni-1,cpu_utilization,2024-02-02,101\n",
         "value", 1, "cpu_utilization 130.0 is outside 0-100 (percent metrics are percentages) (2 such rows)"),
        ("resource_id,metric,timestamp,value\ni-1,network_in_bytes,2024-02-01,-1\n", "value", 1, "is negative"),
        ("resource_id,metric,timestamp,value\n,cpu_utilization,2024-02-01,1\n", "resource_id", 1, "resource_id is empty"),
    ],
)
def test_bad_rows_are_named_and_nothing_is_stored(store, tmp_path, body, column, row, message):
    good = write(tmp_path / "a_good.csv", "resource_id,metric,timestamp,value\ni-9,cpu_utilization,2024-02-01,5\n")
    bad = write(tmp_path / "b_bad.csv", body)
    with pytest.raises(InputError) as caught:
        import_metrics(store, [str(good), str(bad)])
    error = caught.value
    assert message in error.problem
    assert error.column == column and error.row == row
    assert str(bad) in error.file or error.file.endswith("b_bad.csv") or "(and" in error.file
    assert store.execute("SELECT count(*) FROM resource_metrics").fetchall() == [(0,)]


def test_fractions_are_flagged(store, tmp_path):
    lines = "".join(f"vm-1,cpu_utilization,2024-02-01T{h:02d}:00:00Z,0.{h + 10}\n" for h in range(24))
    report = import_metrics(store, [str(write(tmp_path / "gcp.csv", "resource_id,metric,timestamp,value\n" + lines))])
    assert report.warnings == [
        "cpu_utilization of vm-1 never exceeds 1: if the source reports fractions (0-1), multiply by 100 before importing"
    ]


def test_not_a_metrics_file(store, tmp_path):
    doc = write(tmp_path / "m.json", '{"a": [1,\n 2]}\n')
    with pytest.raises(InputError, match="json is not a metrics file"):
        import_metrics(store, [str(doc)])


def test_an_empty_file_says_metrics_were_expected(store, tmp_path):
    empty = write(tmp_path / "m.csv", "")
    with pytest.raises(InputError, match="the file is empty; expected utilisation metrics"):
        import_metrics(store, [str(empty)])


def test_cli_import_metrics(db_path, tmp_path):
    path = write(tmp_path / "m.csv", "resource_id,metric,timestamp,value\ni-1,cpu_utilization,2024-02-01T00:00:00Z,5\n")
    result = CliRunner().invoke(import_group, ["metrics", str(path)], obj={"db": db_path})
    assert result.exit_code == 0, result.output
    assert "Imported 1 samples for 1 resources" in result.output
    assert "cpu_utilization" in result.output and "2024-02-01 00:00" in result.output


def test_a_store_with_the_former_keyed_table_drops_the_key_and_keeps_its_samples(store, tmp_path):
    """Stores made before resource_metrics lost its PRIMARY KEY (an index that cost 50 s of a
    7.6M-sample import) are rebuilt without it by the next import: old samples stay, repeated
    ones are replaced, and nothing is stored twice."""
    store.execute("DROP TABLE resource_metrics")
    store.execute("""CREATE TABLE resource_metrics (resource_id VARCHAR NOT NULL, metric VARCHAR NOT NULL,
                     sampled_at TIMESTAMPTZ NOT NULL, value DOUBLE NOT NULL, source_file VARCHAR,
                     imported_at TIMESTAMPTZ, PRIMARY KEY (resource_id, metric, sampled_at))""")
    store.execute("INSERT INTO resource_metrics VALUES ('i-old', 'cpu_utilization', TIMESTAMPTZ '2024-01-01 00:00:00+00', "
                  "7, 'old.csv', NULL), ('i-1', 'cpu_utilization', TIMESTAMPTZ '2024-02-01 00:00:00+00', 1, 'old.csv', NULL)")
    path = write(tmp_path / "new.csv", "resource_id,metric,timestamp,value\ni-1,cpu_utilization,2024-02-01T00:00:00Z,42\n"
                 "i-2,cpu_utilization,2024-02-01T00:00:00Z,3\n")
    import_metrics(store, [str(path)])
    keys = "SELECT count(*) FROM duckdb_constraints() WHERE table_name = 'resource_metrics' AND constraint_type = 'PRIMARY KEY'"
    assert store.execute(keys).fetchall() == [(0,)]
    rows = "SELECT resource_id, value FROM resource_metrics ORDER BY ALL"
    assert store.execute(rows).fetchall() == [("i-1", 42.0), ("i-2", 3.0), ("i-old", 7.0)]
    import_metrics(store, [str(path)])
    assert store.execute(rows).fetchall() == [("i-1", 42.0), ("i-2", 3.0), ("i-old", 7.0)]
    nulls = "SELECT count(*) FROM duckdb_constraints() WHERE table_name = 'resource_metrics' AND constraint_type = 'NOT NULL'"
    assert store.execute(nulls).fetchall() == [(4,)]
