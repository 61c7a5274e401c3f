"""What makes the rules scale: id matching as equi-joins, tables shared by the compute rules
within a run, tags parsed once per distinct value, and one data-needs query per table.

Each rewrite is checked against the code it replaced: `same_resource` (the nested-loop join
condition) is the reference for `same_resource_pairs`, and the compute rules' former metric
matching is kept here, verbatim, as the reference for the shared match table.
"""

from __future__ import annotations

import random
import shutil
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pytest

from costaudit.connectors.imports_metrics import import_metrics
from costaudit.loader import load_paths
from costaudit.rules.compute_common import matches_sql, utilisation_cte
from costaudit.rules.contract import Need, RunScratch
from costaudit.rules.instance_catalogue import refresh_catalogue
from costaudit.rules.needs import NeedsProfile, check_needs
from costaudit.rules.registry import all_rules
from costaudit.rules.runner import resolve_window, run_audit
from costaudit.rules.sqlparts import same_resource, same_resource_pairs
from costaudit.store import connect

from .test_rules_cases import CASES_DIR, write_metrics

# Billing ids (ARNs, ARM ids, GCP full names) and metric / inventory names that end like them,
# differ in case, are suffixes of each other without a delimiter, or are degenerate.
BILLED = [
    "arn:aws:ec2:us-east-1:111122223333:instance/i-0abc",
    "ARN:AWS:EC2:US-EAST-1:111122223333:INSTANCE/I-0ABC",
    "arn:aws:ec2:us-east-1:111122223333:instance/i-0abcd",
    "i-0abc",
    "I-0Abc",
    "/subscriptions/S1/resourceGroups/RG-A/providers/Microsoft.Compute/virtualMachines/vm-1",
    "/subscriptions/s1/resourcegroups/rg-b/providers/microsoft.compute/virtualmachines/VM-1",
    "//compute.googleapis.com/projects/p1/zones/us-central1-a/instances/vm-1",
    "projects/p1/zones/z/instances/vm-1",
    "vm-1",
    "x-vm-1",
    "arn:aws:s3:::acme-datasets",
    "acme-datasets",
    "1",
    "a/",
    "",
    "/",
    ":",
    "a:b/c",
    "b/c",
    "c",
    "ü:Ä/é",
    None,
    "instance/i-0abc",
]
NAMES = [
    "i-0abc",
    "I-0ABC",
    "i-0abcd",
    "vm-1",
    "VM-1",
    "rg-a/providers/microsoft.compute/virtualmachines/vm-1",
    "0abc",
    "abc",
    "instances/vm-1",
    "datasets",
    "ACME-DATASETS",
    "",
    "/",
    "c",
    "b/c",
    "é",
    "ä/É",
    None,
    "i-0abc ",
    "111122223333:instance/i-0abc",
    "arn:aws:ec2:us-east-1:111122223333:instance/i-0abc",
    "1",
]


def _pairs_both_ways(con, left: list, right: list) -> tuple[set, list]:
    con.execute("CREATE OR REPLACE TABLE l AS SELECT unnest(?::VARCHAR[]) AS id", [left])
    con.execute("CREATE OR REPLACE TABLE r AS SELECT unnest(?::VARCHAR[]) AS id", [right])
    nested = set(con.execute(f"SELECT DISTINCT l.id, r.id FROM l, r WHERE {same_resource('l.id', 'r.id')}").fetchall())
    joined = con.execute(
        f"SELECT left_id, right_id FROM {same_resource_pairs('SELECT id FROM l', 'SELECT id FROM r')}"
    ).fetchall()
    return nested, joined


def test_same_resource_pairs_are_the_nested_loop_pairs_on_tricky_ids():
    con = duckdb.connect()
    nested, joined = _pairs_both_ways(con, BILLED, NAMES)
    assert len(joined) == len(set(joined)), "each pair once"
    assert set(joined) == nested
    # what the suffix rule means, spelled out on a few of them
    assert ("arn:aws:ec2:us-east-1:111122223333:instance/i-0abc", "I-0ABC") in nested  # ARN tail, any case
    assert ("arn:aws:ec2:us-east-1:111122223333:instance/i-0abcd", "i-0abc") not in nested  # no delimiter
    assert ("arn:aws:ec2:us-east-1:111122223333:instance/i-0abc", "0abc") not in nested
    assert ("/subscriptions/s1/resourcegroups/rg-b/providers/microsoft.compute/virtualmachines/VM-1", "vm-1") in nested
    assert ("/subscriptions/s1/resourcegroups/rg-b/providers/microsoft.compute/virtualmachines/VM-1",
            "rg-a/providers/microsoft.compute/virtualmachines/vm-1") not in nested  # another resource group
    assert ("arn:aws:s3:::acme-datasets", "ACME-DATASETS") in nested
    assert ("acme-datasets", "datasets") not in nested
    assert ("instance/i-0abc", "arn:aws:ec2:us-east-1:111122223333:instance/i-0abc") in nested  # either way round
    assert ("a/", "") in nested and ("", "") in nested  # degenerate, but as the condition says
    # and swapped sides give the swapped pairs
    nested_swapped, joined_swapped = _pairs_both_ways(con, NAMES, BILLED)
    assert set(joined_swapped) == nested_swapped == {(b, a) for a, b in nested}


def test_same_resource_pairs_are_the_nested_loop_pairs_on_random_ids():
    rnd = random.Random(7)
    con = duckdb.connect()
    for _ in range(8):
        make = lambda: "".join(rnd.choice("aAb/:") for _ in range(rnd.randint(0, 6)))  # noqa: E731
        nested, joined = _pairs_both_ways(con, [make() for _ in range(150)], [make() for _ in range(150)])
        assert set(joined) == nested and len(joined) == len(set(joined))


# The compute rules' metric matching before issue 7 (a nested loop over instances x metric ids),
# kept as the reference for the shared match table.
_OLD_MATCHED = """
    metric_ids AS (
      SELECT DISTINCT resource_id AS metric_resource FROM resource_metrics WHERE metric IN ({listed})
    ),
    matched AS (
      SELECT i.iid, m.metric_resource FROM instances i JOIN metric_ids m
        ON {condition}
      QUALIFY row_number() OVER (PARTITION BY i.iid ORDER BY length(m.metric_resource) DESC, m.metric_resource) = 1
    )"""
METRIC_SETS = [
    ("cpu_utilization", "memory_utilization"),
    ("gpu_utilization", "cpu_utilization"),
    ("gpu_utilization", "gpu_memory_utilization", "cpu_utilization", "memory_utilization"),
]


def test_compute_metric_matching_picks_what_the_nested_loop_picked():
    con = duckdb.connect()
    billed = [b for b in BILLED if b is not None]
    con.execute("CREATE TABLE instances AS SELECT row_number() OVER () AS iid, id AS resource_id FROM unnest(?::VARCHAR[]) t(id)",
                [billed + ["arn:aws:ec2:eu-west-1:2:instance/i-none"]])
    rnd = random.Random(3)
    metrics = ["cpu_utilization", "memory_utilization", "gpu_utilization", "gpu_memory_utilization", "network_in_bytes"]
    rows = [(name, rnd.choice(metrics)) for name in NAMES if name is not None for _ in range(2)]
    con.execute("CREATE TABLE resource_metrics (resource_id VARCHAR, metric VARCHAR, sampled_at TIMESTAMPTZ, value DOUBLE)")
    con.executemany("INSERT INTO resource_metrics VALUES (?, ?, TIMESTAMPTZ '2024-02-01 00:00:00+00', 1)", rows)
    con.execute(f"CREATE TABLE matches AS {matches_sql('instances')}")
    params = {"until": datetime(2024, 3, 1, tzinfo=UTC), "lookback_days": 14}
    for metric_set in METRIC_SETS:
        listed = ", ".join(f"'{m}'" for m in metric_set)
        old = con.execute(
            "WITH " + _OLD_MATCHED.format(listed=listed, condition=same_resource("i.resource_id", "m.metric_resource"))
            + " SELECT iid, metric_resource FROM matched ORDER BY iid"
        ).fetchall()
        new = con.execute(
            "WITH " + utilisation_cte(metric_set).replace("$MATCHES", "matches")
            + " SELECT iid, metric_resource FROM matched ORDER BY iid", params,
        ).fetchall()
        assert new == old, metric_set
        assert len(old) > 5  # the case is not vacuous


# The compute rules' former utilisation CTE (every metric's p95, samples and days as FILTERed
# aggregates of one group-by per instance), verbatim: the reference for the per-metric group-by.
_OLD_UTILISATION = """
    utilisation AS (
      SELECT e.iid, min(r.sampled_at) AS first_sample, max(r.sampled_at) AS last_sample,
             {per_metric}
      FROM sample_end e JOIN matched mm USING (iid)
      JOIN resource_metrics r ON r.resource_id = mm.metric_resource
      WHERE r.metric IN ({listed})
        AND r.sampled_at > e.last_sample - to_days(CAST($lookback_days AS INTEGER)) AND r.sampled_at <= e.last_sample
      GROUP BY 1
    )"""


def _old_utilisation(metric_set: tuple[str, ...]) -> str:
    per_metric = ",\n".join(
        f"quantile_cont(r.value, 0.95) FILTER (WHERE r.metric = '{m}') AS p95_{m},\n"
        f"count(*) FILTER (WHERE r.metric = '{m}') AS samples_{m},\n"
        f"count(DISTINCT CAST(r.sampled_at AS DATE)) FILTER (WHERE r.metric = '{m}') AS days_{m}"
        for m in metric_set
    )
    return _OLD_UTILISATION.format(per_metric=per_metric, listed=", ".join(f"'{m}'" for m in metric_set))


def test_utilisation_per_metric_equals_the_filtered_aggregates_it_replaced():
    """Instances with every metric, some metrics only, samples outside the lookback or after the
    window, one sample a day or several: the same p95, sample and day counts and lookback."""
    con = duckdb.connect()
    rnd = random.Random(7)
    ids = [f"i-{n:04d}" for n in range(60)]
    con.execute("CREATE TABLE instances AS SELECT row_number() OVER () AS iid, id AS resource_id "
                "FROM unnest(?::VARCHAR[]) t(id)", [ids])
    metrics = ["cpu_utilization", "memory_utilization", "gpu_utilization", "gpu_memory_utilization"]
    con.execute("CREATE TABLE resource_metrics (resource_id VARCHAR, metric VARCHAR, sampled_at TIMESTAMPTZ, value DOUBLE)")
    rows = []
    for number, rid in enumerate(ids[:55]):  # five instances have no metrics at all
        present = rnd.sample(metrics, rnd.randint(1, 4))
        for metric in present:
            for _ in range(rnd.randint(1, 40)):
                day = rnd.randint(1, 29) if number % 5 else rnd.randint(1, 3)  # some with few days
                stamp = datetime(2024, 2, day, rnd.randint(0, 23), rnd.choice((0, 30)), tzinfo=UTC)
                rows.append((rid, metric, stamp, round(rnd.uniform(0, 100), 3)))
        if number % 7 == 0:  # a sample after the window's end, which sets no lookback
            rows.append((rid, present[0], datetime(2024, 3, 2, tzinfo=UTC), 99.0))
    con.executemany("INSERT INTO resource_metrics VALUES (?, ?, ?, ?)", rows)
    con.execute(f"CREATE TABLE matches AS {matches_sql('instances')}")
    params = {"until": datetime(2024, 3, 1, tzinfo=UTC), "lookback_days": 14}
    for metric_set in METRIC_SETS:
        cte = utilisation_cte(metric_set).replace("$MATCHES", "matches")
        old_cte = cte[: cte.index("    metric_use AS (")].rstrip().rstrip(",") + ",\n" + _old_utilisation(metric_set)
        columns = ", ".join(["iid", "first_sample", "last_sample"] + [
            f"{kind}_{m}" for m in metric_set for kind in ("p95", "samples", "days")])
        query = " SELECT {} FROM utilisation ORDER BY iid"
        new = con.execute("WITH " + cte + query.format(columns), params).fetchall()
        old = con.execute("WITH " + old_cte + query.format(columns), params).fetchall()
        assert new == old, metric_set
        assert len(old) > 40  # the case is not vacuous
        # ... and it covers metrics absent from an instance's lookback: NULL p95, 0 samples and days
        absent = [r for r in old if any(r[3 + 3 * k] is None for k in range(len(metric_set)))]
        assert absent and all(r[4 + 3 * k] == 0 and r[5 + 3 * k] == 0
                              for r in absent for k in range(len(metric_set)) if r[3 + 3 * k] is None)


def test_run_scratch_builds_a_table_once_and_drops_it():
    con = duckdb.connect()
    scratch = RunScratch()
    first = scratch.table(con, "k", "SELECT 1 AS x")
    assert scratch.table(con, "k", "SELECT 2 AS x") == first  # reused, not rebuilt
    assert con.execute(f"SELECT x FROM {first}").fetchall() == [(1,)]
    other = RunScratch().table(con, "k", "SELECT 3 AS x")
    assert other != first  # two runs never share a table
    scratch.drop(con)
    assert con.execute(f"SELECT count(*) FROM duckdb_tables() WHERE table_name = '{first}'").fetchall() == [(0,)]


@pytest.fixture
def rightsize_store(tmp_path: Path):
    con = connect(tmp_path / "store.duckdb")
    load_paths(con, [str(CASES_DIR / "compute_rightsize" / "fires_m5_to_large" / "billing.csv")])
    yield con
    con.close()


def test_the_compute_rules_share_their_tables_and_the_run_drops_them(rightsize_store, tmp_path, monkeypatch):
    asked: list[str] = []
    built: list[str] = []
    table = RunScratch.table

    def counting(self, con, key, select, params=None):
        asked.append(key)
        if key not in self.tables:
            built.append(key.split(" ")[1])
        return table(self, con, key, select, params)

    monkeypatch.setattr(RunScratch, "table", counting)
    spec = [{"resource_id": "i-0big", "metric": "cpu_utilization", "start": "2024-02-01T00:00:00Z", "values": [5, 14]},
            {"resource_id": "i-0gpu", "metric": "gpu_utilization", "start": "2024-02-01T00:00:00Z", "values": [1]}]
    import_metrics(rightsize_store, [str(write_metrics(spec, tmp_path / "m.csv"))])
    report = run_audit(rightsize_store, only=["compute_rightsize", "compute_gpu_idle", "compute_gpu_oversized"])
    assert [o.status for o in report.outcomes] == ["ok", "ok", "ok"]
    # built once for the three rules: the store's charge keys, the compute types, instances, id matches
    assert len(asked) == 12 and sorted(built) == ["instances", "keys", "metric", "type"]
    leftover = rightsize_store.execute(
        "SELECT count(*) FROM duckdb_tables() WHERE temporary AND table_name LIKE 'costaudit_scratch_%'"
    ).fetchall()
    assert leftover == [(0,)]


class CountingConnection:
    """Passes queries to DuckDB and counts them."""

    def __init__(self, con):
        self.con = con
        self.queries: list[str] = []

    def execute(self, sql, params=None):
        self.queries.append(sql)
        return self.con.execute(sql, params or {})


def test_data_needs_take_one_query_per_table_and_say_what_the_rule_checks_said(rightsize_store):
    refresh_catalogue(rightsize_store)  # as run_audit does first
    window = resolve_window(rightsize_store, None, None)
    rules = all_rules()
    counting = CountingConnection(rightsize_store)
    profile = NeedsProfile(counting, [n for r in rules for n in r.rule.needs], window)
    together = {r.id: check_needs(counting, r.rule.needs, window, profile) for r in rules}
    alone = {r.id: check_needs(rightsize_store, r.rule.needs, window) for r in rules}
    assert together == alone
    assert together["compute_rightsize"] == (
        "needs utilisation metrics (cpu_utilization): no rows; import them with `costaudit import metrics FILE` "
        "(resource_id, metric, timestamp, value)"
    )
    assert together["storage_aged_snapshots"] is None
    asked = [q for q in counting.queries if q.startswith("SELECT EXISTS")]
    tables = {n.table for r in rules for n in r.rule.needs} & profile.relations()
    assert len(asked) == len(tables)  # one query per table that exists, for every rule's needs on it
    assert sum(q.startswith("DESCRIBE") for q in counting.queries) == len(tables)


def test_a_need_with_a_broken_filter_does_not_decide_the_others(rightsize_store):
    window = resolve_window(rightsize_store, None, None)
    good = Need("current_line_items", ("ResourceId",))
    empty = Need("current_line_items", ("ResourceId",), where="ServiceCategory = 'No such category'", label="nothing")
    broken = Need("current_line_items", ("ResourceId",), where="no_such_column = 1", label="broken")
    profile = NeedsProfile(rightsize_store, [good, empty, broken], window)
    assert check_needs(rightsize_store, (good,), window, profile) is None
    assert check_needs(rightsize_store, (empty,), window, profile) == "needs nothing: no rows in the audit window"
    with pytest.raises(duckdb.Error):
        check_needs(rightsize_store, (broken,), window, profile)


def test_audit_results_do_not_depend_on_the_shared_tables(tmp_path):
    """The demo case of each compute rule gives the same findings in one run or alone."""
    case = CASES_DIR / "compute_rightsize" / "fires_m5_to_large"
    shutil.copy(case / "billing.csv", tmp_path / "billing.csv")
    con = connect(tmp_path / "store.duckdb")
    load_paths(con, [str(tmp_path / "billing.csv")])
    spec = [{"resource_id": "i-0big", "metric": m, "start": "2024-02-01T00:00:00Z", "values": [5, 14]}
            for m in ("cpu_utilization", "memory_utilization")]
    import_metrics(con, [str(write_metrics(spec, tmp_path / "m.csv"))])
    compute = ["compute_rightsize", "compute_gpu_idle", "compute_gpu_oversized"]
    together = run_audit(con, only=compute)
    alone = [f for rule in compute for f in run_audit(con, only=[rule]).findings]

    def key(f):
        return f.fingerprint, f.status, f.finding.estimated_monthly_saving, f.finding.evidence

    assert sorted(map(key, together.findings), key=str) == sorted(map(key, alone), key=str)
    assert any(f.status == "open" for f in together.findings)
    con.close()


def test_an_older_store_s_keyed_findings_table_is_rebuilt_and_keeps_its_runs(rightsize_store, tmp_path):
    """Stores made before `findings` lost its PRIMARY KEY (3-4 s of storing 945k findings) get the
    table rebuilt by the next audit: earlier runs' findings stay, the new run's are added."""
    con = rightsize_store
    spec = [{"resource_id": "i-0big", "metric": "cpu_utilization", "start": "2024-02-01T00:00:00Z", "values": [5, 14]}]
    import_metrics(con, [str(write_metrics(spec, tmp_path / "m.csv"))])
    count = "SELECT count(*) FROM findings WHERE run_id = ?"
    first = run_audit(con, only=["compute_rightsize"])
    [(stored,)] = con.execute(count, [first.run_id]).fetchall()
    assert stored > 0
    columns = con.execute(
        "SELECT column_name, data_type, is_nullable FROM information_schema.columns "
        "WHERE table_name = 'findings' ORDER BY ordinal_position"
    ).fetchall()
    ddl = ", ".join(f'"{name}" {kind}{"" if nullable == "YES" else " NOT NULL"}' for name, kind, nullable in columns)
    con.execute("CREATE TABLE findings_old AS SELECT * FROM findings")
    con.execute("DROP TABLE findings")
    con.execute(f"CREATE TABLE findings ({ddl}, PRIMARY KEY (run_id, fingerprint))")
    con.execute("INSERT INTO findings SELECT * FROM findings_old")
    con.execute("DROP TABLE findings_old")
    keyed = "SELECT count(*) FROM duckdb_constraints() WHERE table_name = 'findings' AND constraint_type = 'PRIMARY KEY'"
    assert con.execute(keyed).fetchall() == [(1,)]
    second = run_audit(con, only=["compute_rightsize"])
    assert con.execute(keyed).fetchall() == [(0,)]
    assert con.execute(count, [first.run_id]).fetchall() == [(stored,)]
    assert con.execute(count, [second.run_id]).fetchall() == [(stored,)]  # same bills, same findings
    assert con.execute("SELECT count(*) FROM latest_findings").fetchall() == [(stored,)]
